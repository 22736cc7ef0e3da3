import { describe, expect, it } from 'vitest';
import type { CommandIo } from '../../src/cli/command.js';
import { ProgressBar, formatRate } from '../../src/cli/progress.js';

function io(isTTY: boolean, env: Record<string, string> = {}): { io: CommandIo; written: string[] } {
  const written: string[] = [];
  const stream = { isTTY, write: (s: string) => written.push(s) > 0 } as unknown as CommandIo['stderr'];
  return { io: { stdout: stream, stderr: stream, env, cwd: '/' }, written };
}

describe('ProgressBar', () => {
  it('draws only on a terminal, and not under CI or when turned off', () => {
    expect(ProgressBar.for(io(false).io, 'x')).toBeNull();
    expect(ProgressBar.for(io(true, { CI: 'true' }).io, 'x')).toBeNull();
    expect(ProgressBar.for(io(true).io, 'x', false)).toBeNull();
    expect(ProgressBar.for(io(true).io, 'x')).not.toBeNull();
  });

  it('redraws one line with the fraction done, and erases it when done', () => {
    const { io: tty, written } = io(true);
    const bar = ProgressBar.for(tty, 'replaying')!;
    bar.update({ done: 50, total: 200, unit: 'bytes' }, 1234);
    expect(written[0]).toMatch(/^\rreplaying \[#{6}-{18}\]  25%  1,234 entries/);
    bar.done();
    expect(written[1]).toBe('\r\x1b[K');
  });

  it('formats rates', () => {
    expect([formatRate(950), formatRate(45_000), formatRate(2_340_000)]).toEqual(['950', '45k', '2.3M']);
  });
});

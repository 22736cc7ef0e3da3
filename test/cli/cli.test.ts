// The built `playout` binary, run as a user runs it: `npm run build` once, then
// `node dist/cli/main.js …` in a child process, looking only at exit codes, stdout and stderr.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PlogReader } from '../../src/adapters/plog.js';
import type { Entry } from '../../src/core/index.js';
import type { Manifest, Verdict } from '../../tools/gen-fixtures.js';
import { ensureBuilt } from '../helpers/built-cli.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..', '..');
const FIXTURES = join(ROOT, 'replay-fixtures');
const manifest = JSON.parse(await readFile(join(FIXTURES, 'manifest.json'), 'utf8')) as Manifest;
const verdict = JSON.parse(await readFile(join(FIXTURES, 'hunt-desync.verdict.json'), 'utf8')) as Verdict;
const small = manifest.fixtures.find((f) => f.file === 'hunt-small.plog')!;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function playout(...args: string[]): Promise<Result> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(ROOT, 'dist', 'cli', 'main.js'), ...args], { cwd: FIXTURES, maxBuffer: 64 << 20, env: { ...process.env, CI: '' } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Exit 2 with one line on stderr naming the code, and no stack trace. */
function expectBadInput(r: Result, code: string): void {
  expect(r.code).toBe(2);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^playout \\w+: ${code}: `));
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

let tmp: string;
beforeAll(async () => {
  await ensureBuilt();
  tmp = await mkdtemp(join(tmpdir(), 'playout-cli-'));
}, 180_000);
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('playout --help', () => {
  it.each(['replay', 'verify', 'bisect', 'diff', 'inspect'])('%s --help shows usage and an example', async (name) => {
    const r = await playout(name, '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`playout ${name}`);
    expect(r.stdout).toMatch(/Examples?:\n\s+playout /);
  });
});

describe('playout replay', () => {
  it('prints every tick digest and the final one; piped output carries no progress bar', async () => {
    const r = await playout('replay', 'hunt-small.plog');
    expect(r.code).toBe(0);
    expect(r.stdout.match(/^tick /gm)).toHaveLength(small.ticks);
    expect(r.stdout).toContain(`final: tick ${small.final!.tick}, seq ${small.final!.seq}, digest ${small.final!.digest}`);
    expect(r.stdout + r.stderr).not.toContain('\r');
  });

  it('--json is one document; --to-tick and --check are honoured', async () => {
    const r = await playout('replay', 'hunt-small.plog', '--json', '--to-tick', '9', '--check');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { final: { tick: number }; digests: unknown[]; checked: boolean };
    expect(doc.final.tick).toBe(9);
    expect(doc.digests).toHaveLength(10);
    expect(doc.checked).toBe(true);
  });

  it('exits 1 on a log whose recorded digests this build does not compute', async () => {
    const r = await playout('replay', 'hunt-desync-b.plog.gz', '--quiet');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`DESYNC: the log records digest`);
    expect(r.stdout).toContain(`for tick ${verdict.tick}`);
  });

  it('replays a node store directory', async () => {
    const { LmdbLogStore } = await import('../../src/adapters/lmdb-store.js');
    const entries: Entry[] = [];
    for await (const b of (await PlogReader.open(join(FIXTURES, 'hunt-small.plog'))).batches()) entries.push(...b);
    const store = await LmdbLogStore.open(join(tmp, 'store'));
    await store.append(small.shard, entries);
    await store.close();
    const r = await playout('replay', join(tmp, 'store'), '--shard', small.shard, '--quiet');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`digest ${small.final!.digest}`);
  });
});

describe('playout verify / bisect / diff / inspect', () => {
  const names = [`seq ${verdict.entry.seq}`, ...verdict.records.map((x) => `${x.table}["${x.key}"]`)];

  it('verify localises the desync pair: tick, entry, records (exit 1)', async () => {
    const r = await playout('verify', 'hunt-desync-b.plog.gz');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`DESYNC at tick ${verdict.tick}`);
    for (const n of names) expect(r.stdout).toContain(n);
    const f = verdict.records[1]!.fields[0]!;
    expect(r.stdout).toContain(`${f.path}: expected ${JSON.stringify(f.recorded)}, actual ${JSON.stringify(f.reference)}`);
  });

  it('verify --json, and exit 0 on the side that agrees', async () => {
    const r = await playout('verify', 'hunt-desync-b.plog.gz', '--json', '--recorded-by', 'treasure-hunt-nondeterministic');
    const doc = JSON.parse(r.stdout) as { mismatch: { localised: { culprit: { entry: { seq: number } } } } };
    expect(doc.mismatch.localised.culprit.entry.seq).toBe(verdict.entry.seq);
    const ok = await playout('verify', 'hunt-desync-a.plog.gz');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('OK: every recorded digest matches');
  });

  it('bisect under two builds and of two captures', async () => {
    const one = await playout('bisect', 'hunt-desync-a.plog.gz', '--reducer-b', 'treasure-hunt-nondeterministic');
    expect(one.code).toBe(1);
    expect(one.stdout).toContain(`DIVERGED at tick ${verdict.tick}`);
    for (const n of names) expect(one.stdout).toContain(n);
    const two = await playout('bisect', 'hunt-desync-a.plog.gz', 'hunt-desync-b.plog.gz');
    expect(two.code).toBe(1);
    expect(two.stdout).toContain(`the logs first differ at seq`);
    for (const n of names) expect(two.stdout).toContain(n);
    const same = await playout('bisect', 'hunt-small.plog', 'hunt-small.plog');
    expect(same.code).toBe(0);
  });

  it('diff at the diverging tick (exit 1) and the tick before (exit 0)', async () => {
    const r = await playout('diff', 'hunt-desync-a.plog.gz', '--reducer-b', 'treasure-hunt-nondeterministic', '--tick', String(verdict.tick));
    expect(r.code).toBe(1);
    for (const n of names.slice(1)) expect(r.stdout).toContain(n);
    const before = await playout('diff', 'hunt-desync-a.plog.gz', '--reducer-b', 'treasure-hunt-nondeterministic', '--tick', String(verdict.tick - 1));
    expect(before.code).toBe(0);
    expect(before.stdout).toContain('EQUAL');
  });

  it('inspect shows counts, the upgrade and an intact chain', async () => {
    const r = await playout('inspect', 'hunt-100k.plog.gz');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/entries 100,0\d\d: seq 1\.\.100,?0\d\d/);
    expect(r.stdout).toContain('upgrades: to version 2');
    expect(r.stdout).toContain('chain: OK');
    const json = JSON.parse((await playout('inspect', 'hunt-from-snapshot.plog', '--json')).stdout) as { source: { snapshot: { tick: number } } };
    expect(json.source.snapshot.tick).toBe(59);
  });
});

describe('bad input: exit 2, one line, a code, never a stack trace', () => {
  it('a missing file', async () => expectBadInput(await playout('replay', 'no-such.plog'), 'PLAYOUT_SOURCE_NOT_FOUND'));
  it('a wrong shard', async () => expectBadInput(await playout('verify', 'hunt-small.plog', '--shard', 'hunt-nowhere'), 'PLAYOUT_SHARD_NOT_FOUND'));
  it('an unknown option', async () => expectBadInput(await playout('replay', 'hunt-small.plog', '--frobnicate'), 'PLAYOUT_INVALID_ARGUMENT'));
  it('a malformed option value', async () => {
    const r = await playout('replay', 'hunt-small.plog', '--to-tick', 'soon');
    expectBadInput(r, 'PLAYOUT_INVALID_ARGUMENT');
    expect(r.stderr).toContain('--to-tick');
  });
  it('a missing argument', async () => expectBadInput(await playout('diff', 'hunt-small.plog', '--tick', '3'), 'PLAYOUT_INVALID_ARGUMENT'));
  it('an unknown build', async () => expectBadInput(await playout('bisect', 'hunt-small.plog', '--reducer-b', 'no-such-build'), 'PLAYOUT_INVALID_ARGUMENT'));
  it('a tick the log does not hold', async () => expectBadInput(await playout('diff', 'hunt-small.plog', 'hunt-small.plog', '--tick', '4000'), 'PLAYOUT_TICK_NOT_RETAINED'));
  it('a corrupt file, with the seq of the first bad entry', async () => {
    const bytes = new Uint8Array(await readFile(join(FIXTURES, 'hunt-small.plog')));
    bytes[bytes.length - 3000]! ^= 0x04;
    await writeFile(join(tmp, 'corrupt.plog'), bytes);
    const r = await playout('replay', join(tmp, 'corrupt.plog'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/PLAYOUT_(ENTRY_HASH_MISMATCH|FIXTURE_CORRUPT): .*(entry|seq) \d+/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const i = await playout('inspect', join(tmp, 'corrupt.plog'));
    expect(i.code).toBe(2);
    expect(i.stdout).toContain('chain: BROKEN');
  });
  it('not a fixture at all', async () => {
    await writeFile(join(tmp, 'notes.txt'), 'hello\n');
    expectBadInput(await playout('inspect', join(tmp, 'notes.txt')), 'PLAYOUT_FIXTURE_FORMAT_UNKNOWN');
  });
});

// A progress bar for long runs, on stderr, only when stderr is a terminal (never in pipes,
// files or CI logs): `replaying [########------------] 41%  412,311 entries  1.2M entries/s`.
import type { ReadProgress } from '../adapters/replay-source.js';
import type { CommandIo } from './command.js';

const WIDTH = 24;
const REDRAW_MS = 100;

export class ProgressBar {
  private readonly out: CommandIo['stderr'];
  private readonly label: string;
  private readonly t0 = Date.now();
  private lastDrawMs = 0;
  private drawn = false;

  constructor(out: CommandIo['stderr'], label: string) {
    this.out = out;
    this.label = label;
  }

  /** A bar when stderr is a terminal, not in CI, and not turned off (--no-progress), else null. */
  static for(io: CommandIo, label: string, wanted = true): ProgressBar | null {
    if (!wanted || io.stderr.isTTY !== true || io.env.CI === 'true') return null;
    return new ProgressBar(io.stderr, label);
  }

  update(p: ReadProgress, entries: number): void {
    const now = Date.now();
    if (now - this.lastDrawMs < REDRAW_MS) return;
    this.lastDrawMs = now;
    const fraction = p.total !== null && p.total > 0 ? Math.min(1, p.done / p.total) : null;
    const filled = fraction === null ? 0 : Math.round(fraction * WIDTH);
    const bar = fraction === null ? '' : ` [${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%`;
    const seconds = (now - this.t0) / 1000;
    const rate = seconds > 0 ? entries / seconds : 0;
    this.out.write(`\r${this.label}${bar}  ${entries.toLocaleString('en-US')} entries  ${formatRate(rate)} entries/s\x1b[K`);
    this.drawn = true;
  }

  /** Erase the bar (before the command prints its result). */
  done(): void {
    if (this.drawn) this.out.write('\r\x1b[K');
    this.drawn = false;
  }
}

export function formatRate(perSecond: number): string {
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(1)}M`;
  if (perSecond >= 1e4) return `${Math.round(perSecond / 1e3)}k`;
  return perSecond.toFixed(0);
}

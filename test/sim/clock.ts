// ManualClock: the simulated twin of the Clock port (src/ports/clock.ts). Time moves only when
// the simulation says so; timers run in (due time, creation order), so one seed always gives
// one interleaving [TigerBeetle testing/time.zig].
import type { Clock, Timer } from '../../src/ports/clock.js';

class ManualTimer implements Timer {
  cancelled = false;
  constructor(
    public dueMs: number,
    readonly order: number,
    readonly fn: () => void,
    readonly intervalMs: number | null,
  ) {}
  cancel(): void {
    this.cancelled = true;
  }
}

export class ManualClock implements Clock {
  private now: number;
  private order = 0;
  /** A binary min-heap by (dueMs, order). */
  private heap: ManualTimer[] = [];

  constructor(startMs = 0) {
    this.now = startMs;
  }

  nowMs(): number {
    return this.now;
  }

  after(delayMs: number, fn: () => void): Timer {
    return this.push(new ManualTimer(this.now + Math.max(0, delayMs), this.order++, fn, null));
  }

  every(intervalMs: number, fn: () => void): Timer {
    if (!(intervalMs > 0)) throw new RangeError(`every: intervalMs must be > 0, received ${intervalMs}`);
    return this.push(new ManualTimer(this.now + intervalMs, this.order++, fn, intervalMs));
  }

  /** Due time of the next live timer, or null. */
  nextDueMs(): number | null {
    this.dropCancelled();
    return this.heap.length > 0 ? this.heap[0]!.dueMs : null;
  }

  /**
   * Run the next timer due at or before `untilMs` (moving time to it); false when none is.
   * One timer per call, so that the caller can let promises settle between timers.
   */
  runNext(untilMs: number): boolean {
    this.dropCancelled();
    const t = this.heap[0];
    if (t === undefined || t.dueMs > untilMs) return false;
    this.pop();
    if (t.dueMs > this.now) this.now = t.dueMs;
    if (t.intervalMs !== null) {
      t.dueMs += t.intervalMs;
      this.push(t);
    }
    t.fn();
    return true;
  }

  /** Move time forward to `ms` without running anything (the caller ran what was due). */
  set(ms: number): void {
    if (ms > this.now) this.now = ms;
  }

  private dropCancelled(): void {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
  }

  private push(t: ManualTimer): ManualTimer {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
    return t;
  }

  private pop(): ManualTimer | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function less(a: ManualTimer, b: ManualTimer): boolean {
  return a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.order < b.order);
}

// The node's real clock: monotonic milliseconds (performance.now, which does not jump with NTP
// steps, unlike Date.now) and Node timers. Its simulated twin is test/sim/clock.ts.
import type { Clock, Timer } from '../ports/clock.js';

export class SystemClock implements Clock {
  nowMs(): number {
    return performance.now();
  }

  after(delayMs: number, fn: () => void): Timer {
    const t = setTimeout(fn, Math.max(0, delayMs));
    return { cancel: () => clearTimeout(t) };
  }

  every(intervalMs: number, fn: () => void): Timer {
    const t = setInterval(fn, Math.max(1, intervalMs));
    return { cancel: () => clearInterval(t) };
  }
}

// The node's clock: the one place where wall time and timers enter a region node.
//
// src/replication/ never reads it: the node calls `clock.nowMs()` and passes the number to the
// state machines (`follower.onTimer(nowMs)`), and arms a timer for `follower.nextWakeMs()`.
// Implementations: src/adapters/system-clock.ts (Node's monotonic clock and timers) and the
// manual twin test/sim/clock.ts, which the simulations advance by hand so that a whole
// cluster runs from one seed without waiting.

/** A scheduled callback; `cancel` is idempotent. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /**
   * Milliseconds on a monotonic clock. Only differences are meaningful: it does not jump
   * with the wall clock, so timeouts and backoff never fire early or late after an NTP step.
   */
  nowMs(): number;
  /** Run `fn` once, `delayMs` from now (0: on the next turn, never synchronously). */
  after(delayMs: number, fn: () => void): Timer;
  /** Run `fn` every `intervalMs` until cancelled. */
  every(intervalMs: number, fn: () => void): Timer;
}

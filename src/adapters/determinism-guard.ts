// Checked mode's poisoned globals. During a reducer call, Math.random, Date, performance.now,
// timers and crypto.randomUUID throw a DeterminismViolation naming the reducer, the input type
// and the seq. The violation is also remembered, so a reducer that catches the throw is still
// reported when its call returns.
//
// This lives outside src/core/ because it touches the globals that core may not name.
import { PlayoutError } from '../core/errors.js';
import type { DeterminismGuard, GuardedCall } from '../core/shard-machine.js';

type Patch = { target: object; key: string; original: PropertyDescriptor | undefined };

export class GlobalsGuard implements DeterminismGuard {
  private current: GuardedCall | null = null;
  private violation: string | null = null;

  run<T>(call: GuardedCall, fn: () => T): T {
    if (this.current !== null) return fn(); // already inside a guarded call
    this.current = call;
    this.violation = null;
    const patches = this.poison();
    let result: T;
    try {
      result = fn();
    } catch (err) {
      // A reducer that caught the violation and then failed otherwise still reports the violation:
      // it is the cause, the other error a consequence.
      if (this.violation !== null) throw this.error(call, this.violation);
      throw err;
    } finally {
      for (let i = patches.length - 1; i >= 0; i--) {
        const p = patches[i]!;
        if (p.original) Object.defineProperty(p.target, p.key, p.original);
        else delete (p.target as Record<string, unknown>)[p.key];
      }
      this.current = null;
    }
    if (this.violation !== null) throw this.error(call, this.violation);
    return result;
  }

  private error(call: GuardedCall, what: string): PlayoutError {
    const input = call.inputType === null ? call.call : `${call.call}(${call.inputType})`;
    return new PlayoutError(
      'PLAYOUT_DETERMINISM_VIOLATION',
      `DeterminismViolation: reducer ${call.reducer} called ${what} in ${input} at entry ${call.seq}; reducers get time from ctx.tick/ctx.timeMs and randomness from ctx.rng`,
      { seq: call.seq, received: what, expected: 'no wall clock, Math.random, timers or crypto randomness' },
    );
  }

  private poison(): Patch[] {
    const patches: Patch[] = [];
    const trap = (what: string) => {
      const self = this;
      return function poisoned(): never {
        self.violation ??= what;
        throw self.error(self.current!, what);
      };
    };
    const patch = (target: object | undefined, key: string, what: string) => {
      if (target === undefined || target === null) return;
      const original = Object.getOwnPropertyDescriptor(target, key);
      if (original && original.configurable === false && original.writable === false) return;
      patches.push({ target, key, original });
      Object.defineProperty(target, key, { value: trap(what), configurable: true, writable: true, enumerable: false });
    };
    const g = globalThis as unknown as Record<string, unknown>;
    patch(Math, 'random', 'Math.random()');
    const poisonedDate = trap('Date');
    const DateProxy = new Proxy(g.Date as DateConstructor, {
      construct: () => poisonedDate(),
      apply: () => poisonedDate(),
      get: (t, k) => (k === 'now' ? trap('Date.now()') : Reflect.get(t, k)),
    });
    patches.push({ target: g, key: 'Date', original: Object.getOwnPropertyDescriptor(g, 'Date') });
    Object.defineProperty(g, 'Date', { value: DateProxy, configurable: true, writable: true, enumerable: false });
    patch(g.performance as object | undefined, 'now', 'performance.now()');
    for (const timer of ['setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask']) patch(g, timer, `${timer}()`);
    const c = g.crypto as object | undefined;
    patch(c, 'randomUUID', 'crypto.randomUUID()');
    patch(c, 'getRandomValues', 'crypto.getRandomValues()');
    return patches;
  }
}

import { describe, expect, it } from 'vitest';
import { ManualClock } from './clock.js';

describe('ManualClock', () => {
  it('runs timers in due order, ties in creation order, and only when told', () => {
    const clock = new ManualClock(100);
    const seen: string[] = [];
    clock.after(20, () => seen.push('b'));
    clock.after(10, () => seen.push('a'));
    clock.after(20, () => seen.push('c'));
    const cancelled = clock.after(15, () => seen.push('x'));
    cancelled.cancel();
    expect(seen).toEqual([]);
    expect(clock.nextDueMs()).toBe(110);
    while (clock.runNext(1_000));
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(clock.nowMs()).toBe(120);
  });

  it('repeats an interval timer until cancelled, and never runs past the bound', () => {
    const clock = new ManualClock();
    const at: number[] = [];
    const t = clock.every(30, () => at.push(clock.nowMs()));
    while (clock.runNext(100));
    expect(at).toEqual([30, 60, 90]);
    expect(clock.nowMs()).toBe(90);
    t.cancel();
    expect(clock.runNext(1_000)).toBe(false);
    expect(() => clock.every(0, () => undefined)).toThrow(RangeError);
  });
});

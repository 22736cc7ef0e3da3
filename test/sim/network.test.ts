import { describe, expect, it } from 'vitest';
import { ManualClock } from './clock.js';
import { SimNetwork } from './network.js';

function run(seed: number, faults = { delayMsMin: 1, delayMsMax: 50, lossRate: 0.2, duplicateRate: 0.2 }) {
  const clock = new ManualClock();
  const net = new SimNetwork<number>(clock, seed, faults);
  const got: number[] = [];
  net.listen('b', (from, m) => {
    expect(from).toBe('a');
    got.push(m);
  });
  for (let i = 0; i < 200; i++) net.send('a', 'b', i);
  while (clock.runNext(10_000));
  return { got, net };
}

describe('SimNetwork', () => {
  it('loses, duplicates and reorders messages, the same way for the same seed', () => {
    const a = run(5);
    const b = run(5);
    expect(a.got).toEqual(b.got);
    expect(a.net.counters.lost).toBeGreaterThan(10);
    expect(a.net.counters.duplicated).toBeGreaterThan(10);
    expect(new Set(a.got).size).toBeLessThan(a.got.length);
    expect(a.got).not.toEqual([...a.got].sort((x, y) => x - y));
    expect(run(6).got).not.toEqual(a.got);
  });

  it('delivers nothing across a cut link, including messages in flight when it was cut', () => {
    const clock = new ManualClock();
    const net = new SimNetwork<string>(clock, 1, { delayMsMin: 10, delayMsMax: 10, lossRate: 0, duplicateRate: 0 });
    const got: string[] = [];
    net.listen('b', (_, m) => got.push(m));
    net.listen('a', (_, m) => got.push(m));
    net.send('a', 'b', 'in flight');
    net.cut('a', 'b');
    net.send('b', 'a', 'cut');
    while (clock.runNext(100));
    expect(got).toEqual([]);
    net.heal('a', 'b');
    net.send('a', 'b', 'healed');
    net.isolate('b', ['a', 'b', 'c']);
    net.send('b', 'a', 'isolated');
    while (clock.runNext(200));
    expect(got).toEqual([]);
    net.healAll();
    net.send('b', 'a', 'back');
    while (clock.runNext(300));
    expect(got).toEqual(['back']);
  });
});

import { describe, expect, it } from 'vitest';
import { ReducerRegistry, ShardMachine, encodeSnapshot, isPlayoutError, toHex, type Entry } from '../../src/core/index.js';
import { stateAtTick, tickStateOf } from '../../src/replication/state-at-tick.js';
import { MemoryLogStore } from '../sim/log-store.js';
import { tallyReducer } from '../sim/tally-reducer.js';
import { SHARD, makeLog } from './chain.js';

const registry = new ReducerRegistry([tallyReducer()]);

async function storeWith(log: readonly Entry[], snapshotTicks: readonly number[] = []): Promise<{ store: MemoryLogStore; digests: Map<number, string> }> {
  const store = new MemoryLogStore();
  const digests = new Map<number, string>();
  const m = new ShardMachine(registry, { onTick: (d) => digests.set(d.tick, toHex(d.digest)) });
  await store.append(SHARD, log);
  for (const e of log) {
    m.apply(e);
    if (m.atTickBoundary && snapshotTicks.includes(m.lastDigest!.tick)) {
      const s = m.snapshot();
      await store.putSnapshot(SHARD, s.tick, s.seq, encodeSnapshot(s));
    }
  }
  return { store, digests };
}

describe('stateAtTick', () => {
  it('rebuilds every tick from genesis to the digest recorded when it was first computed', async () => {
    const { store, digests } = await storeWith(makeLog(12));
    for (const tick of [0, 5, 11]) {
      const s = tickStateOf(stateAtTick(store, registry, SHARD, tick));
      expect(s.tick).toBe(tick);
      expect(toHex(s.digest)).toBe(digests.get(tick));
    }
  });

  it('starts from the nearest snapshot at or below the tick when the log was truncated', async () => {
    const log = makeLog(12);
    const { store, digests } = await storeWith(log, [4, 8]);
    const base = store.snapshot(SHARD, 4)!;
    await store.truncateBelow(SHARD, base.seq + 1);
    expect(toHex(tickStateOf(stateAtTick(store, registry, SHARD, 4)).digest)).toBe(digests.get(4));
    expect(toHex(tickStateOf(stateAtTick(store, registry, SHARD, 10)).digest)).toBe(digests.get(10));
    let caught: unknown = null;
    try {
      stateAtTick(store, registry, SHARD, 2);
    } catch (err) {
      caught = err;
    }
    expect(isPlayoutError(caught, 'PLAYOUT_TICK_NOT_RETAINED')).toBe(true);
  });

  it('refuses a tick the log has not closed yet, and a tick that is not a tick', async () => {
    const { store } = await storeWith(makeLog(3));
    expect(() => stateAtTick(store, registry, SHARD, 3)).toThrow(expect.objectContaining({ code: 'PLAYOUT_TICK_NOT_RETAINED', tick: 3 }));
    expect(() => stateAtTick(store, registry, SHARD, -1)).toThrow(expect.objectContaining({ code: 'PLAYOUT_INVALID_ARGUMENT', path: 'tick' }));
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReducerRegistry, ShardMachine, encodeSnapshot, isPlayoutError, toHex, type Entry } from '../../src/core/index.js';
import { retainedTicks, stateAtTick, tickStateOf } from '../../src/replication/state-at-tick.js';
import { tallyReducer } from '../sim/tally-reducer.js';
import { SHARD, makeLog } from './chain.js';
import { LmdbLogStore } from '../../src/adapters/lmdb-store.js';
import type { LogStore } from '../../src/ports/log-store.js';
import { MemoryLogStore } from '../sim/log-store.js';
import { expectCode } from '../adapters/log-store-contract.js';
import { buildCounterLog, counterRegistry, replayAll } from '../adapters/fixtures/counter-log.js';

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

const TICKS = 40;
const log = buildCounterLog({ shard: 'tt', ticks: TICKS, seed: 21, snapshotEveryTicks: 7 });
const full = replayAll(log.entries);

/** A store that records where each iteration started (to see that a snapshot was used). */
function spy(store: LogStore): { store: LogStore; starts: number[] } {
  const starts: number[] = [];
  const wrapped = Object.create(store) as LogStore;
  wrapped.iterate = (shard, seqFrom, seqTo) => {
    starts.push(seqFrom);
    return store.iterate(shard, seqFrom, seqTo);
  };
  return { store: wrapped, starts };
}

describe('stateAtTick on the counter log (lmdb store and the simulated twin)', () => {
  it('equals a full replay at every tick, from the nearest snapshot (lmdb store)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'playout-state-at-'));
    const store = await LmdbLogStore.open(dir);
    try {
      await store.append('tt', log.entries);
      for (const s of log.snapshots) await store.putSnapshot('tt', s.tick, s.seq, s.bytes);
      const s = spy(store);
      for (let t = 0; t < TICKS; t++) {
        const m = stateAtTick(s.store, counterRegistry, 'tt', t);
        expect(m.lastDigest!.tick).toBe(t);
        expect(toHex(m.lastDigest!.digest), `tick ${t}`).toBe(toHex(full.digests.get(t)!));
      }
      // Ticks 7… start after the snapshot of tick 6, 13, … (never from genesis); ticks at a snapshot replay nothing.
      expect(s.starts[0]).toBe(1);
      expect(s.starts[10]).toBe(log.snapshots[0]!.seq + 1);
      expect(s.starts.length).toBe(TICKS - log.snapshots.length);
      const m = stateAtTick(store, counterRegistry, 'tt', 20);
      const reference = replayAll(log.entries.slice(0, log.entries.findIndex((e) => e.kind === 'tick' && e.tick === 20) + 1));
      expect(m.exportState()).toEqual(reference.machine.exportState());
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('replays from genesis when there is no snapshot', async () => {
    const store = new MemoryLogStore();
    await store.append('tt', log.entries);
    for (const t of [0, 1, 17, TICKS - 1]) {
      expect(toHex(stateAtTick(store, counterRegistry, 'tt', t).lastDigest!.digest)).toBe(toHex(full.digests.get(t)!));
    }
  });

  it('refuses ticks older than the retained log or not yet closed, and unknown shards', async () => {
    const store = new MemoryLogStore();
    // Up to and including an input after the tick entry closing tick 29: tick 30 is open.
    const cut = log.entries.findIndex((e) => e.kind === 'tick' && e.tick === 29) + 2;
    await store.append('tt', log.entries.slice(0, cut));
    for (const s of log.snapshots) if (s.seq <= cut) await store.putSnapshot('tt', s.tick, s.seq, s.bytes);
    const base = log.snapshots[1]!;
    await store.truncateBelow('tt', base.seq + 1);
    expect(retainedTicks(store, 'tt')).toEqual({ tickMin: base.tick, tickMax: 30 });
    await expectCode(() => stateAtTick(store, counterRegistry, 'tt', base.tick - 1), 'PLAYOUT_TICK_NOT_RETAINED');
    expect(toHex(stateAtTick(store, counterRegistry, 'tt', base.tick).lastDigest!.digest)).toBe(toHex(full.digests.get(base.tick)!));
    expect(toHex(stateAtTick(store, counterRegistry, 'tt', 29).lastDigest!.digest)).toBe(toHex(full.digests.get(29)!));
    await expectCode(() => stateAtTick(store, counterRegistry, 'tt', 30), 'PLAYOUT_TICK_NOT_RETAINED');
    await expectCode(() => stateAtTick(store, counterRegistry, 'tt', 31), 'PLAYOUT_TICK_NOT_RETAINED');
    await expectCode(() => stateAtTick(store, counterRegistry, 'nope', 1), 'PLAYOUT_SHARD_NOT_FOUND');
    await expectCode(() => stateAtTick(store, counterRegistry, 'tt', -1), 'PLAYOUT_INVALID_ARGUMENT');
  });

  it('never applies a corrupt entry', async () => {
    const store = new MemoryLogStore();
    await store.append('tt', log.entries);
    store.corruptEntry('tt', 30);
    await expectCode(() => stateAtTick(store, counterRegistry, 'tt', TICKS - 1), 'PLAYOUT_STORE_CORRUPT', 30);
  });
});

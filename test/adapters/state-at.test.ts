import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/index.js';
import { LmdbLogStore } from '../../src/adapters/lmdb-store.js';
import { retainedTicks, stateAt } from '../../src/adapters/state-at.js';
import type { LogStore } from '../../src/ports/log-store.js';
import { MemoryLogStore } from '../sim/log-store.js';
import { expectCode } from './log-store-contract.js';
import { buildCounterLog, counterRegistry, replayAll } from './fixtures/counter-log.js';

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

describe('stateAt', () => {
  it('equals a full replay at every tick, from the nearest snapshot (lmdb store)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'playout-state-at-'));
    const store = await LmdbLogStore.open(dir);
    try {
      await store.append('tt', log.entries);
      for (const s of log.snapshots) await store.putSnapshot('tt', s.tick, s.seq, s.bytes);
      const s = spy(store);
      for (let t = 0; t < TICKS; t++) {
        const m = stateAt(s.store, counterRegistry, 'tt', t);
        expect(m.lastDigest!.tick).toBe(t);
        expect(toHex(m.lastDigest!.digest), `tick ${t}`).toBe(toHex(full.digests.get(t)!));
      }
      // Ticks 7… start after the snapshot of tick 6, 13, … (never from genesis); ticks at a snapshot replay nothing.
      expect(s.starts[0]).toBe(1);
      expect(s.starts[10]).toBe(log.snapshots[0]!.seq + 1);
      expect(s.starts.length).toBe(TICKS - log.snapshots.length);
      const m = stateAt(store, counterRegistry, 'tt', 20);
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
      expect(toHex(stateAt(store, counterRegistry, 'tt', t).lastDigest!.digest)).toBe(toHex(full.digests.get(t)!));
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
    await expectCode(() => stateAt(store, counterRegistry, 'tt', base.tick - 1), 'PLAYOUT_TICK_NOT_RETAINED');
    expect(toHex(stateAt(store, counterRegistry, 'tt', base.tick).lastDigest!.digest)).toBe(toHex(full.digests.get(base.tick)!));
    expect(toHex(stateAt(store, counterRegistry, 'tt', 29).lastDigest!.digest)).toBe(toHex(full.digests.get(29)!));
    await expectCode(() => stateAt(store, counterRegistry, 'tt', 30), 'PLAYOUT_TICK_NOT_RETAINED');
    await expectCode(() => stateAt(store, counterRegistry, 'tt', 31), 'PLAYOUT_TICK_NOT_RETAINED');
    await expectCode(() => stateAt(store, counterRegistry, 'nope', 1), 'PLAYOUT_SHARD_NOT_FOUND');
    await expectCode(() => stateAt(store, counterRegistry, 'tt', -1), 'PLAYOUT_INVALID_ARGUMENT');
  });

  it('never applies a corrupt entry', async () => {
    const store = new MemoryLogStore();
    await store.append('tt', log.entries);
    store.corruptEntry('tt', 30);
    await expectCode(() => stateAt(store, counterRegistry, 'tt', TICKS - 1), 'PLAYOUT_STORE_CORRUPT', 30);
  });
});

// LmdbLogStore serves the live tail of a log (the entries of its latest appends) from memory:
// the answers must be exactly what a cold read of the store gives, never more than is durable,
// and never the bytes of entries a truncation replaced.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LmdbLogStore } from '../../src/adapters/lmdb-store.js';
import { buildCounterLog } from './fixtures/counter-log.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'playout-lmdb-tail-'));
  dirs.push(d);
  return d;
}

const hexes = (list: Uint8Array[]): string[] => list.map((b) => Buffer.from(b).toString('hex'));

describe('LmdbLogStore tail', () => {
  const A = buildCounterLog({ shard: 's1', ticks: 60, seed: 5 }).entries;
  const B = buildCounterLog({ shard: 's1', ticks: 60, seed: 6 }).entries;

  it('answers rangeRaw after appends exactly as a cold read of the store does, bytesMax included', async () => {
    const dir = tempDir();
    const store = await LmdbLogStore.open(dir);
    try {
      // Pipelined appends, as the shard host makes them.
      const cut = [0, 7, 40, 41, A.length];
      await Promise.all(cut.slice(1).map((to, i) => store.append('s1', A.slice(cut[i], to))));
      const cold = await LmdbLogStore.open(dir, { readOnly: true });
      try {
        const last = A.length;
        for (const [from, to, bytesMax] of [
          [1, last, 1 << 20],
          [5, 30, 1 << 20],
          [last, last, 1 << 20],
          [3, last, 200],
          [3, last, 1],
          [2, last + 50, 1 << 20],
        ] as const) {
          expect(hexes(store.rangeRaw('s1', from, to, bytesMax)), `[${from}, ${to}] within ${bytesMax} bytes`).toEqual(hexes(cold.rangeRaw('s1', from, to, bytesMax)));
        }
        expect(store.rangeRaw('s1', last + 1, last + 5, 1 << 20)).toEqual([]);
      } finally {
        await cold.close();
      }
    } finally {
      await store.close();
    }
  });

  it('never serves entries a truncation replaced, even when an append was in flight across it', async () => {
    const dir = tempDir();
    const store = await LmdbLogStore.open(dir);
    try {
      await store.append('s1', A.slice(0, 20));
      // An append still in flight when the log is cut back to nothing.
      const inFlight = store.append('s1', A.slice(20, 30));
      const removed = store.truncateAbove('s1', 0);
      await inFlight;
      await removed;
      await store.append('s1', B.slice(0, 25));
      expect(hexes(store.rangeRaw('s1', 1, 25, 1 << 20))).toEqual(hexes(B.slice(0, 25).map((e) => e.bytes)));
      expect(store.rangeRaw('s1', 26, 30, 1 << 20)).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('serves nothing below the first retained seq after truncateBelow', async () => {
    const log = buildCounterLog({ shard: 's1', ticks: 60, seed: 5, snapshotEveryTicks: 20 });
    const snap = log.snapshots[0];
    if (snap === undefined) return expect.fail('the fixture has no snapshot');
    const dir = tempDir();
    const store = await LmdbLogStore.open(dir);
    try {
      await store.append('s1', log.entries);
      await store.putSnapshot('s1', snap.tick, snap.seq, snap.bytes);
      await store.truncateBelow('s1', snap.seq + 1);
      expect(store.rangeRaw('s1', 1, snap.seq + 3, 1 << 20)).toEqual([]);
      expect(hexes(store.rangeRaw('s1', snap.seq + 1, snap.seq + 3, 1 << 20))).toEqual(hexes(log.entries.slice(snap.seq, snap.seq + 3).map((e) => e.bytes)));
    } finally {
      await store.close();
    }
  });
});

// The LogStore contract (src/ports/log-store.ts) as one suite, run against every
// implementation: test/adapters/lmdb-store.test.ts (LmdbLogStore) and
// test/sim/log-store.test.ts (MemoryLogStore). A behaviour belongs here when both must show it.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Entry, type ErrorCode, ZERO_HASH, isPlayoutError, readSnapshotHeader, sealEntry, toHex } from '../../src/core/index.js';
import type { LogStore } from '../../src/ports/log-store.js';
import { buildCounterLog, type CounterLog } from './fixtures/counter-log.js';

export interface StoreHarness {
  store: LogStore;
  /** The store as found after a restart (all resolved writes must be there). */
  reopen(): Promise<LogStore>;
  /** Flip a byte of the stored entry `seq` the way the medium would; returns the store to read from. */
  corruptEntry(shard: string, seq: number): Promise<LogStore>;
  cleanup(): Promise<void>;
}

export async function expectCode(p: Promise<unknown> | (() => unknown), code: ErrorCode, seq?: number): Promise<void> {
  let err: unknown = null;
  try {
    if (typeof p === 'function') await p();
    else await p;
  } catch (e) {
    err = e;
  }
  if (!isPlayoutError(err)) throw new Error(`expected ${code}, got ${err === null ? 'no error' : String(err)}`);
  expect(err.code, err.message).toBe(code);
  if (seq !== undefined) expect(err.seq).toBe(seq);
}

const hex = (es: readonly Entry[]): string[] => es.map((e) => toHex(e.hash));
const rawHex = (bs: readonly Uint8Array[]): string[] => bs.map((b) => toHex(b));

export function logStoreContract(name: string, make: () => Promise<StoreHarness>): void {
  describe(`LogStore contract: ${name}`, () => {
    let h: StoreHarness;
    let store: LogStore;
    // Tick t is closed by the tick entry at seq tickSeq[t]; snapshots every 5 ticks.
    const log: CounterLog = buildCounterLog({ shard: 's1', ticks: 30, seed: 7, snapshotEveryTicks: 5 });
    const E = log.entries;
    const other: CounterLog = buildCounterLog({ shard: 's1', ticks: 30, seed: 8, snapshotEveryTicks: 5 });

    beforeEach(async () => {
      h = await make();
      store = h.store;
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it('holds nothing when new', () => {
      expect(store.shards()).toEqual([]);
      expect(store.head('s1')).toBeNull();
      expect(store.firstSeq('s1')).toBeNull();
      expect(store.get('s1', 1)).toBeNull();
      expect(store.range('s1', 1, 10)).toEqual([]);
      expect(store.rangeRaw('s1', 1, 10, 1 << 20)).toEqual([]);
      expect(store.snapshot('s1')).toBeNull();
      expect(store.snapshots('s1')).toEqual([]);
      expect(store.digests('s1', 0, 100)).toEqual([]);
      expect(store.getMeta('s1', 'applied')).toBeNull();
    });

    it('appends and reads back entries by seq', async () => {
      await store.append('s1', E.slice(0, 10));
      await store.append('s1', E.slice(10, 20));
      expect(store.shards()).toEqual(['s1']);
      const last = E[19]!;
      expect(store.head('s1')).toEqual({ seq: 20, hash: last.hash, tick: last.tick, epoch: last.epoch });
      expect(store.firstSeq('s1')).toBe(1);
      expect(toHex(store.get('s1', 7)!.hash)).toBe(toHex(E[6]!.hash));
      expect(store.get('s1', 21)).toBeNull();
      expect(hex(store.range('s1', 1, 20))).toEqual(hex(E.slice(0, 20)));
      expect(hex(store.range('s1', 5, 9))).toEqual(hex(E.slice(4, 9)));
      expect(hex(store.range('s1', 15, 100))).toEqual(hex(E.slice(14, 20)));
      expect(store.range('s1', 21, 30)).toEqual([]);
      expect(hex([...store.iterate('s1', 3)])).toEqual(hex(E.slice(2, 20)));
      expect(hex([...store.iterate('s1', 3, 4)])).toEqual(hex(E.slice(2, 4)));
      expect(rawHex(store.rangeRaw('s1', 1, 20, 1 << 20))).toEqual(rawHex(E.slice(0, 20).map((e) => e.bytes)));
    });

    it('cuts rangeRaw at bytesMax but always returns at least one entry', async () => {
      await store.append('s1', E.slice(0, 20));
      const sizes = E.slice(0, 20).map((e) => e.bytes.length);
      expect(store.rangeRaw('s1', 1, 20, 1)).toHaveLength(1);
      const limit = sizes[0]! + sizes[1]! + sizes[2]!;
      expect(store.rangeRaw('s1', 1, 20, limit)).toHaveLength(3);
      expect(store.rangeRaw('s1', 1, 20, limit - 1)).toHaveLength(2);
    });

    it('keeps shards apart, including ids that prefix each other', async () => {
      const a = buildCounterLog({ shard: 'a', ticks: 3 }).entries;
      const ab = buildCounterLog({ shard: 'ab', ticks: 5 }).entries;
      const aDotB = buildCounterLog({ shard: 'a.b', ticks: 4 }).entries;
      await Promise.all([store.append('ab', ab), store.append('a', a), store.append('a.b', aDotB)]);
      expect(store.shards()).toEqual(['a', 'a.b', 'ab']);
      expect(store.head('a')!.seq).toBe(a.length);
      expect(store.head('ab')!.seq).toBe(ab.length);
      expect(hex(store.range('a', 1, 1000))).toEqual(hex(a));
      expect(hex(store.range('a.b', 1, 1000))).toEqual(hex(aDotB));
    });

    it('refuses an append that does not continue the head, writing nothing of the batch', async () => {
      await store.append('s1', E.slice(0, 10));
      // A gap, a duplicate, a wrong prev, another shard, a batch broken inside.
      await expectCode(store.append('s1', E.slice(11, 13)), 'PLAYOUT_STORE_CONFLICT', 12);
      await expectCode(store.append('s1', E.slice(8, 12)), 'PLAYOUT_STORE_CONFLICT', 9);
      await expectCode(store.append('s1', other.entries.slice(10, 12)), 'PLAYOUT_STORE_CONFLICT', 11);
      const foreign = buildCounterLog({ shard: 's2', ticks: 5 }).entries;
      await expectCode(store.append('s1', foreign.slice(10, 11)), 'PLAYOUT_STORE_CONFLICT');
      await expectCode(store.append('s1', [E[10]!, E[11]!, E[13]!]), 'PLAYOUT_STORE_CONFLICT', 14);
      await expectCode(store.append('s1', [E[10]!, E[11]!, other.entries[12]!]), 'PLAYOUT_STORE_CONFLICT', 13);
      expect(store.head('s1')!.seq).toBe(10);
      expect(store.get('s1', 11)).toBeNull();
      // An empty shard starts with a genesis at seq 1 and zero prev.
      await expectCode(store.append('s2', foreign.slice(1, 3)), 'PLAYOUT_STORE_CONFLICT', 2);
      const fakeGenesis = sealEntry({ shard: 's2', seq: 1, epoch: 1, tick: 0, kind: 'input', type: 'x', version: 1, origin: null, ingestId: null, payload: null, digest: null, prev: ZERO_HASH });
      await expectCode(store.append('s2', [fakeGenesis]), 'PLAYOUT_STORE_CONFLICT', 1);
      expect(store.head('s2')).toBeNull();
      expect(store.shards()).toEqual(['s1']);
      await store.append('s1', E.slice(10, 12));
      expect(store.head('s1')!.seq).toBe(12);
    });

    it('lets appends in flight continue each other and share flushes', async () => {
      const writes = [store.append('s1', E.slice(0, 5)), store.append('s1', E.slice(5, 6)), store.append('s1', E.slice(6, 20))];
      // Reads see only what is durable: nothing has resolved yet.
      expect(store.head('s1')).toBeNull();
      await Promise.all(writes);
      expect(store.head('s1')!.seq).toBe(20);
      expect(hex(store.range('s1', 1, 20))).toEqual(hex(E.slice(0, 20)));
    });

    it('orders many small writes issued in bursts and across turns', async () => {
      const long = buildCounterLog({ shard: 's1', ticks: 150, seed: 9 }).entries;
      const writes: Promise<unknown>[] = [];
      let i = 0;
      while (i < long.length) {
        // A burst of single-entry appends with metadata between, then sometimes a pause.
        const burst = 1 + (i % 7);
        for (let k = 0; k < burst && i < long.length; k++, i++) writes.push(store.append('s1', [long[i]!]));
        writes.push(store.putMeta('s1', 'applied', i));
        if (i % 3 === 0) await writes[writes.length - 1];
        else if (i % 5 === 0) await new Promise((r) => setImmediate(r));
      }
      await Promise.all(writes);
      expect(store.head('s1')!.seq).toBe(long.length);
      expect(hex(store.range('s1', 1, long.length))).toEqual(hex(long));
      expect(store.getMeta('s1', 'applied')).toBe(long.length);
    });

    it('refuses one conflicting append among several in flight, alone', async () => {
      const ok1 = store.append('s1', E.slice(0, 5));
      const bad = store.append('s1', E.slice(6, 8));
      const ok2 = store.append('s1', E.slice(5, 9));
      await expectCode(bad, 'PLAYOUT_STORE_CONFLICT', 7);
      await ok1;
      await ok2;
      expect(hex(store.range('s1', 1, 100))).toEqual(hex(E.slice(0, 9)));
    });

    it('resolves an empty append at once and refuses bad arguments with their codes', async () => {
      await store.append('s1', []);
      expect(store.head('s1')).toBeNull();
      await expectCode(store.append('Not A Shard', E.slice(0, 1)), 'PLAYOUT_SHARD_ID_INVALID');
      await expectCode(() => store.head('Bad/Id'), 'PLAYOUT_SHARD_ID_INVALID');
      await expectCode(() => store.get('s1', 0), 'PLAYOUT_INVALID_ARGUMENT');
      await expectCode(() => store.range('s1', 1.5, 3), 'PLAYOUT_INVALID_ARGUMENT');
      await expectCode(() => store.rangeRaw('s1', 1, 3, 0), 'PLAYOUT_INVALID_ARGUMENT');
      await expectCode(store.append('s1', 'entries' as unknown as Entry[]), 'PLAYOUT_INVALID_ARGUMENT');
      await expectCode(store.append('s1', [{ seq: 1 } as unknown as Entry]), 'PLAYOUT_INVALID_ARGUMENT');
    });

    it('keeps every resolved write across a restart', async () => {
      await store.append('s1', E.slice(0, 30));
      const s = log.snapshots[1]!;
      await store.putSnapshot('s1', s.tick, s.seq, s.bytes);
      await store.putDigests('s1', log.digests.slice(0, 5));
      await store.putMeta('s1', 'applied', 30);
      const again = await h.reopen();
      expect(again.head('s1')!.seq).toBe(30);
      expect(hex(again.range('s1', 1, 30))).toEqual(hex(E.slice(0, 30)));
      expect(again.snapshots('s1')).toEqual([{ tick: s.tick, seq: s.seq, bytes: s.bytes.length }]);
      expect(again.digests('s1', 0, 4).map((d) => toHex(d.digest))).toEqual(log.digests.slice(0, 5).map((d) => toHex(d.digest)));
      expect(again.getMeta('s1', 'applied')).toBe(30);
      await again.append('s1', E.slice(30, 31));
      expect(again.head('s1')!.seq).toBe(31);
    });

    it('stores snapshots by tick and finds the latest at or below a tick', async () => {
      await store.append('s1', E);
      const [s0, s1, s2] = log.snapshots;
      await store.putSnapshot('s1', s1!.tick, s1!.seq, s1!.bytes);
      await store.putSnapshot('s1', s0!.tick, s0!.seq, s0!.bytes);
      await store.putSnapshot('s1', s2!.tick, s2!.seq, s2!.bytes);
      expect(store.snapshots('s1').map((s) => s.tick)).toEqual([4, 9, 14]);
      expect(store.snapshot('s1')!.tick).toBe(14);
      expect(store.snapshot('s1', 13)!.tick).toBe(9);
      expect(store.snapshot('s1', 9)!.tick).toBe(9);
      expect(toHex(store.snapshot('s1', 5)!.bytes)).toBe(toHex(s0!.bytes));
      expect(store.snapshot('s1', 3)).toBeNull();
      expect(await store.deleteSnapshot('s1', 9)).toBe(true);
      expect(await store.deleteSnapshot('s1', 9)).toBe(false);
      expect(store.snapshots('s1').map((s) => s.tick)).toEqual([4, 14]);
    });

    it('refuses a snapshot that is corrupt, mislabelled or from another history', async () => {
      await store.append('s1', E);
      const s = log.snapshots[0]!;
      await expectCode(store.putSnapshot('s1', s.tick + 1, s.seq, s.bytes), 'PLAYOUT_INVALID_ARGUMENT');
      await expectCode(store.putSnapshot('s2', s.tick, s.seq, s.bytes), 'PLAYOUT_INVALID_ARGUMENT');
      const flipped = s.bytes.slice();
      flipped[10] = flipped[10]! ^ 1;
      await expectCode(store.putSnapshot('s1', s.tick, s.seq, flipped), 'PLAYOUT_INVALID_ARGUMENT');
      const foreign = other.snapshots[0]!;
      await expectCode(store.putSnapshot('s1', foreign.tick, foreign.seq, foreign.bytes), 'PLAYOUT_STORE_CONFLICT');
      expect(store.snapshots('s1')).toEqual([]);
    });

    it('takes the fields of a snapshot its caller encoded, after checking the bytes\' hash', async () => {
      await store.append('s1', E);
      const s = log.snapshots[1]!;
      const header = readSnapshotHeader(s.bytes);
      await store.putSnapshot('s1', s.tick, s.seq, s.bytes, header);
      expect(store.snapshots('s1')).toEqual([{ tick: s.tick, seq: s.seq, bytes: s.bytes.length }]);
      expect(toHex(store.snapshot('s1')!.bytes)).toBe(toHex(s.bytes));
      // The log's base after truncating below it comes from the given fields.
      await store.truncateBelow('s1', s.seq + 1);
      expect(store.firstSeq('s1')).toBe(s.seq + 1);
      const t = log.snapshots[2]!;
      const flipped = t.bytes.slice();
      flipped[10] = flipped[10]! ^ 1;
      await expectCode(store.putSnapshot('s1', t.tick, t.seq, flipped, readSnapshotHeader(t.bytes)), 'PLAYOUT_INVALID_ARGUMENT');
      await expectCode(store.putSnapshot('s1', t.tick + 1, t.seq, t.bytes, readSnapshotHeader(t.bytes)), 'PLAYOUT_INVALID_ARGUMENT');
      await expectCode(store.putSnapshot('s1', t.tick, t.seq, t.bytes, { ...readSnapshotHeader(t.bytes), lastHash: new Uint8Array(16) }), 'PLAYOUT_STORE_CONFLICT');
      expect(store.snapshots('s1').map((x) => x.tick)).toEqual([s.tick]);
    });

    it('stores tick digests by tick', async () => {
      await store.putDigests('s1', log.digests.slice(0, 10));
      const got = store.digests('s1', 3, 6);
      expect(got.map((d) => [d.tick, d.seq, toHex(d.digest)])).toEqual(log.digests.slice(3, 7).map((d) => [d.tick, d.seq, toHex(d.digest)]));
      expect(store.digests('s1', 20, 30)).toEqual([]);
      await expectCode(store.putDigests('s1', [{ tick: 1, seq: 2, digest: new Uint8Array(3) }]), 'PLAYOUT_INVALID_ARGUMENT');
    });

    it('truncates below a kept snapshot only, dropping what can no longer be replayed', async () => {
      await store.append('s1', E);
      for (const s of log.snapshots.slice(0, 3)) await store.putSnapshot('s1', s.tick, s.seq, s.bytes);
      await store.putDigests('s1', log.digests);
      const [s0, s1] = log.snapshots;
      await expectCode(store.truncateBelow('s1', s1!.seq), 'PLAYOUT_INVALID_ARGUMENT');
      expect(store.firstSeq('s1')).toBe(1);
      await store.truncateBelow('s1', s1!.seq + 1);
      expect(store.firstSeq('s1')).toBe(s1!.seq + 1);
      expect(store.head('s1')!.seq).toBe(E.length);
      expect(store.get('s1', s1!.seq)).toBeNull();
      expect(store.range('s1', 1, 10)).toEqual([]);
      expect(hex(store.range('s1', s1!.seq + 1, s1!.seq + 3))).toEqual(hex(E.slice(s1!.seq, s1!.seq + 3)));
      expect(store.snapshots('s1').map((s) => s.tick)).toEqual([9, 14]);
      expect(store.digests('s1', 0, 100)[0]!.tick).toBe(s1!.tick);
      // The base cannot be deleted; older targets are no-ops.
      await expectCode(store.deleteSnapshot('s1', s1!.tick), 'PLAYOUT_INVALID_ARGUMENT');
      await store.truncateBelow('s1', s0!.seq + 1);
      expect(store.firstSeq('s1')).toBe(s1!.seq + 1);
      const again = await h.reopen();
      expect(again.firstSeq('s1')).toBe(s1!.seq + 1);
      expect(again.head('s1')!.seq).toBe(E.length);
    });

    it('bootstraps an empty shard from a snapshot and continues right after it', async () => {
      const s = log.snapshots[2]!;
      await store.putSnapshot('s1', s.tick, s.seq, s.bytes);
      const base = E[s.seq - 1]!;
      expect(store.head('s1')).toEqual({ seq: s.seq, hash: base.hash, tick: base.tick, epoch: base.epoch });
      expect(store.firstSeq('s1')).toBe(s.seq + 1);
      expect(store.shards()).toEqual(['s1']);
      await expectCode(store.append('s1', E.slice(0, 3)), 'PLAYOUT_STORE_CONFLICT', 1);
      await expectCode(store.deleteSnapshot('s1', s.tick), 'PLAYOUT_INVALID_ARGUMENT');
      await store.append('s1', E.slice(s.seq, s.seq + 10));
      expect(store.firstSeq('s1')).toBe(s.seq + 1);
      expect(store.head('s1')!.seq).toBe(s.seq + 10);
      expect(store.range('s1', 1, 10)).toEqual([]);
      const again = await h.reopen();
      expect(again.firstSeq('s1')).toBe(s.seq + 1);
      await again.append('s1', E.slice(s.seq + 10, s.seq + 11));
      expect(again.head('s1')!.seq).toBe(s.seq + 11);
    });

    it('drops a whole log when truncating to a snapshot beyond its head (a follower far behind)', async () => {
      await store.append('s1', E.slice(0, 10));
      const s = log.snapshots[3]!;
      expect(s.seq).toBeGreaterThan(10);
      await store.putSnapshot('s1', s.tick, s.seq, s.bytes);
      await store.truncateBelow('s1', s.seq + 1);
      expect(store.head('s1')!.seq).toBe(s.seq);
      expect(store.firstSeq('s1')).toBe(s.seq + 1);
      expect(store.get('s1', 5)).toBeNull();
      await store.append('s1', E.slice(s.seq));
      expect(store.head('s1')!.seq).toBe(E.length);
    });

    it('truncates a divergent suffix above a seq and returns it', async () => {
      await store.append('s1', E);
      for (const s of log.snapshots) await store.putSnapshot('s1', s.tick, s.seq, s.bytes);
      await store.putDigests('s1', log.digests);
      const cut = log.snapshots[1]!.seq + 3;
      const removed = await store.truncateAbove('s1', cut);
      expect(hex(removed)).toEqual(hex(E.slice(cut)));
      expect(store.head('s1')!.seq).toBe(cut);
      expect(store.get('s1', cut + 1)).toBeNull();
      expect(store.snapshots('s1').every((s) => s.seq <= cut)).toBe(true);
      expect(store.snapshots('s1')).toHaveLength(2);
      expect(store.digests('s1', 0, 1000).every((d) => d.seq <= cut)).toBe(true);
      expect(await store.truncateAbove('s1', cut + 5)).toEqual([]);
      // The log continues from the cut.
      await store.append('s1', E.slice(cut, cut + 2));
      expect(store.head('s1')!.seq).toBe(cut + 2);
    });

    it('applies appends in flight interleaved with snapshots and truncations in call order', async () => {
      const s = log.snapshots[1]!;
      const end = s.seq + 25;
      expect(E.length).toBeGreaterThanOrEqual(end + 2);
      // Nothing awaited: each write must see exactly the writes issued before it.
      const writes: Promise<unknown>[] = [
        store.append('s1', E.slice(0, 10)),
        store.append('s1', E.slice(10, s.seq + 5)),
        store.putSnapshot('s1', s.tick, s.seq, s.bytes),
        store.append('s1', E.slice(s.seq + 5, s.seq + 15)),
        store.truncateBelow('s1', s.seq + 1),
        store.append('s1', E.slice(s.seq + 15, s.seq + 20)),
      ];
      const removed = store.truncateAbove('s1', s.seq + 12);
      writes.push(store.append('s1', E.slice(s.seq + 12, s.seq + 18)), store.putMeta('s1', 'applied', s.seq + 18), store.append('s1', E.slice(s.seq + 18, end)));
      // One that no longer joins (the suffix it continued was cut) is refused alone.
      const stale = store.append('s1', E.slice(s.seq + 20, s.seq + 22));
      await Promise.all(writes);
      expect(hex(await removed)).toEqual(hex(E.slice(s.seq + 12, s.seq + 20)));
      await expectCode(stale, 'PLAYOUT_STORE_CONFLICT', s.seq + 21);
      expect(store.firstSeq('s1')).toBe(s.seq + 1);
      expect(store.head('s1')!.seq).toBe(end);
      expect(hex(store.range('s1', s.seq + 1, 1000))).toEqual(hex(E.slice(s.seq, end)));
      // And more after them, settled or not.
      await Promise.all([store.append('s1', E.slice(end, end + 1)), store.append('s1', E.slice(end + 1, end + 2))]);
      const again = await h.reopen();
      expect(again.firstSeq('s1')).toBe(s.seq + 1);
      expect(hex(again.range('s1', s.seq + 1, 1000))).toEqual(hex(E.slice(s.seq, end + 2)));
      expect(again.getMeta('s1', 'applied')).toBe(s.seq + 18);
    });

    it('refuses truncating above into the base of a truncated log', async () => {
      await store.append('s1', E);
      const s = log.snapshots[1]!;
      await store.putSnapshot('s1', s.tick, s.seq, s.bytes);
      await store.truncateBelow('s1', s.seq + 1);
      await expectCode(store.truncateAbove('s1', s.seq - 1), 'PLAYOUT_INVALID_ARGUMENT');
      const removed = await store.truncateAbove('s1', s.seq);
      expect(removed).toHaveLength(E.length - s.seq);
      expect(store.head('s1')!.seq).toBe(s.seq);
      expect(store.firstSeq('s1')).toBe(s.seq + 1);
    });

    it('stores small canonical metadata per shard', async () => {
      await store.putMeta('s1', 'applied', 42);
      await store.putMeta('s1', 'fence', { epoch: 3, region: 'eu-fra' });
      await store.putMeta('s2', 'applied', 7);
      expect(store.getMeta('s1', 'applied')).toBe(42);
      expect(store.getMeta('s1', 'fence')).toEqual({ epoch: 3, region: 'eu-fra' });
      expect(store.getMeta('s2', 'applied')).toBe(7);
      await store.putMeta('s1', 'applied', null);
      expect(store.getMeta('s1', 'applied')).toBeNull();
      await expectCode(store.putMeta('s1', 'bad', { x: undefined }), 'PLAYOUT_VALUE_NOT_CANONICAL');
      await expectCode(store.putMeta('s1', '', 1), 'PLAYOUT_INVALID_ARGUMENT');
      expect(store.shards()).toEqual([]);
    });

    it('reports a corrupt entry with its seq and never returns it', async () => {
      await store.append('s1', E.slice(0, 20));
      const s = await h.corruptEntry('s1', 12);
      await expectCode(() => s.get('s1', 12), 'PLAYOUT_STORE_CORRUPT', 12);
      await expectCode(() => s.range('s1', 1, 20), 'PLAYOUT_STORE_CORRUPT', 12);
      await expectCode(() => [...s.iterate('s1', 10)], 'PLAYOUT_STORE_CORRUPT', 12);
      await expectCode(() => s.rangeRaw('s1', 12, 20, 1 << 20), 'PLAYOUT_STORE_CORRUPT', 12);
      expect(hex(s.range('s1', 1, 11))).toEqual(hex(E.slice(0, 11)));
      expect(hex(s.range('s1', 13, 20))).toEqual(hex(E.slice(12, 20)));
    });

    it('reports a corrupt head with its seq instead of inventing one', async () => {
      await store.append('s1', E.slice(0, 20));
      const s = await h.corruptEntry('s1', 20);
      await expectCode(() => s.head('s1'), 'PLAYOUT_STORE_CORRUPT', 20);
      await expectCode(() => s.range('s1', 19, 20), 'PLAYOUT_STORE_CORRUPT', 20);
      expect(s.range('s1', 1, 19)).toHaveLength(19);
      expect(s.shards()).toEqual(['s1']);
    });
  });
}

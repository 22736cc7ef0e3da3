// LmdbLogStore's queued append path (src/adapters/lmdb-store.ts header): a shard's next batch
// is checked against the log's tail as queued and written as plain puts, without a JS callback
// inside the write transaction. These tests pin down that the path is taken, that it refuses
// exactly what the transaction path refuses, and that failures never leave a gap.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Rng, isPlayoutError, toHex, type Entry } from '../../src/core/index.js';
import { ENTRY_KEYS } from '../../src/adapters/lmdb-codecs.js';
import { LmdbLogStore } from '../../src/adapters/lmdb-store.js';
import { component, which } from '../helpers/components.js';
import { buildCounterLog } from './fixtures/counter-log.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'playout-lmdb-queued-'));
  dirs.push(d);
  return d;
}

const hex = (es: readonly Entry[]): string[] => es.map((e) => toHex(e.hash));

/** The rejection of `p` (fails the test when it resolves). */
async function rejection(p: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await p;
  } catch (err) {
    if (!isPlayoutError(err)) throw err;
    return { code: err.code, message: err.message, path: err.path, expected: err.expected, received: err.received, seq: err.seq };
  }
  throw new Error('expected a rejection, the write resolved');
}

describe('LmdbLogStore queued appends', () => {
  const A = buildCounterLog({ shard: 's1', ticks: 300, seed: 3 }).entries;
  const B = buildCounterLog({ shard: 's2', ticks: 200, seed: 4 }).entries;
  const other = buildCounterLog({ shard: 's1', ticks: 30, seed: 8 }).entries;

  it('makes many appends issued without awaiting durable in order, all but the first of a shard queued', async () => {
    const seed = Number(process.env.PLAYOUT_SEED ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`queued appends: reproduce with seed=${seed} (PLAYOUT_SEED=${seed})`);
    const rng = Rng.fromSeed(seed);
    const dir = tempDir();
    const store = await LmdbLogStore.open(dir);
    try {
      // The first append of a shard goes through a transaction (it writes the shard's record).
      await store.append('s1', A.slice(0, 1));
      await store.append('s2', B.slice(0, 1));
      const writes: Promise<void>[] = [];
      const cuts = { s1: 1, s2: 1 };
      let calls = 2;
      while (cuts.s1 < A.length || cuts.s2 < B.length) {
        const shard = cuts.s2 >= B.length || (cuts.s1 < A.length && rng.int(0, 2) > 0) ? 's1' : 's2';
        const log = shard === 's1' ? A : B;
        const n = rng.int(1, 40);
        writes.push(store.append(shard, log.slice(cuts[shard], cuts[shard] + n)));
        cuts[shard] = Math.min(log.length, cuts[shard] + n);
        calls++;
        // Sometimes across event turns, mostly within one.
        if (rng.int(0, 9) === 0) await new Promise((r) => setImmediate(r));
      }
      await Promise.all(writes);
      expect(store.head('s1')!.seq, `seed=${seed}`).toBe(A.length);
      expect(hex(store.range('s1', 1, A.length)), `seed=${seed}`).toEqual(hex(A));
      expect(hex(store.range('s2', 1, B.length)), `seed=${seed}`).toEqual(hex(B));
      expect(store.appendPaths(), `seed=${seed}`).toEqual({ queued: calls - 2, inTransaction: 2 });
      await store.close();
      const again = await LmdbLogStore.open(dir);
      try {
        expect(hex(again.range('s1', 1, A.length))).toEqual(hex(A));
        expect(hex(again.range('s2', 1, B.length))).toEqual(hex(B));
        // After a restart the tail comes from the stored log: the next append is queued.
        const more = buildCounterLog({ shard: 's1', ticks: 310, seed: 3 }).entries;
        expect(hex(more.slice(0, A.length))).toEqual(hex(A));
        await again.append('s1', more.slice(A.length, A.length + 5));
        expect(again.head('s1')!.seq).toBe(A.length + 5);
        expect(again.appendPaths()).toEqual({ queued: 1, inTransaction: 0 });
      } finally {
        await again.close();
      }
    } finally {
      await store.close();
    }
  });

  it('takes the queued path again once the transaction callback of the last log-changing write has run, not only when all settled', async () => {
    const store = await LmdbLogStore.open(tempDir());
    try {
      const writes: Promise<void>[] = [];
      let settled = 0;
      const track = (w: Promise<void>): void => {
        writes.push(w);
        void w.then(() => settled++);
      };
      // Issued in one turn: no transaction callback has run yet, so all go through transactions.
      track(store.append('s1', A.slice(0, 3)));
      track(store.append('s1', A.slice(3, 6)));
      track(store.append('s1', A.slice(6, 9)));
      expect(store.appendPaths()).toEqual({ queued: 0, inTransaction: 3 });
      // One append per turn until the queued path takes over: after the last callback ran,
      // which may well be before all appends settled.
      let next = 9;
      while (store.appendPaths().queued === 0) {
        await new Promise((r) => setImmediate(r));
        track(store.append('s1', A.slice(next, next + 2)));
        next += 2;
        expect(next).toBeLessThan(A.length);
      }
      console.log(`queued path after ${writes.length} appends, ${settled} of them settled`);
      await Promise.all(writes);
      expect(hex(store.range('s1', 1, next))).toEqual(hex(A.slice(0, next)));
    } finally {
      await store.close();
    }
  });

  it('writes tick digests queued between appends as plain puts: the appends after them stay queued and all land', async () => {
    const log = buildCounterLog({ shard: 's1', ticks: 120, seed: 5 });
    const dir = tempDir();
    const store = await LmdbLogStore.open(dir);
    try {
      await store.append('s1', log.entries.slice(0, 10));
      const before = store.appendPaths();
      // What a region node does: the digests of the ticks closed so far go with its next append.
      const writes: Promise<void>[] = [];
      for (let i = 10, d = 0; i < log.entries.length; i += 10, d += 2) {
        writes.push(store.putDigests('s1', log.digests.slice(d, d + 2)));
        writes.push(store.append('s1', log.entries.slice(i, i + 10)));
      }
      await Promise.all(writes);
      expect(store.appendPaths()).toEqual({ queued: before.queued + writes.length / 2, inTransaction: before.inTransaction });
      const lastTick = log.digests[Math.min(log.digests.length, writes.length) - 1]!.tick;
      expect(store.digests('s1', 0, lastTick).map((d) => [d.tick, d.seq, toHex(d.digest)])).toEqual(
        log.digests.filter((d) => d.tick <= lastTick).map((d) => [d.tick, d.seq, toHex(d.digest)]),
      );
      expect(hex(store.range('s1', 1, log.entries.length))).toEqual(hex(log.entries));
    } finally {
      await store.close();
    }
  });

  it('refuses an append that does not join the queued tail with the transaction path\'s error, writing nothing', async () => {
    // Store q refuses on the queued path; store t, whose tail is unknown while a (no-op)
    // truncation is in flight, refuses inside the transaction: the errors must be the same.
    const q = await LmdbLogStore.open(tempDir());
    const t = await LmdbLogStore.open(tempDir());
    try {
      await q.append('s1', A.slice(0, 10));
      await t.append('s1', A.slice(0, 10));
      const inFlightQ = q.append('s1', A.slice(10, 20));
      const inFlightT = t.append('s1', A.slice(10, 20));
      const noop = t.truncateAbove('s1', 20);
      const before = { q: q.appendPaths(), t: t.appendPaths() };
      const bad = [
        (s: LmdbLogStore) => s.append('s1', A.slice(21, 23)), // a gap
        (s: LmdbLogStore) => s.append('s1', A.slice(18, 22)), // overlaps
        (s: LmdbLogStore) => s.append('s1', other.slice(20, 22)), // seq 21, another history's prev
      ];
      const refusedQ = bad.map((f) => rejection(f(q)));
      const refusedT = bad.map((f) => rejection(f(t)));
      const goodQ = q.append('s1', A.slice(20, 30));
      await Promise.all([inFlightQ, inFlightT, noop]);
      const errorsQ = await Promise.all(refusedQ);
      const errorsT = await Promise.all(refusedT);
      expect(errorsQ).toEqual(errorsT);
      expect(errorsQ.map((e) => [e.code, e.path, e.seq])).toEqual([
        ['PLAYOUT_STORE_CONFLICT', 'seq', 22],
        ['PLAYOUT_STORE_CONFLICT', 'seq', 19],
        ['PLAYOUT_STORE_CONFLICT', 'prev', 21],
      ]);
      expect(errorsQ[2]!.expected).toBe(toHex(A[19]!.hash));
      // q refused them before queuing anything; t in its transactions.
      expect(q.appendPaths()).toEqual({ queued: before.q.queued + 1, inTransaction: before.q.inTransaction });
      expect(t.appendPaths().inTransaction).toBe(before.t.inTransaction + 3);
      await goodQ;
      expect(hex(q.range('s1', 1, 100))).toEqual(hex(A.slice(0, 30)));
      expect(t.head('s1')!.seq).toBe(20);
      expect(t.get('s1', 21)).toBeNull();
    } finally {
      await q.close();
      await t.close();
    }
  });

  it('goes through transactions while truncations are in flight, and back to queued appends once they settle', async () => {
    const log = buildCounterLog({ shard: 's1', ticks: 60, seed: 5, snapshotEveryTicks: 10 });
    const E = log.entries;
    const s = log.snapshots[1]!;
    const store = await LmdbLogStore.open(tempDir());
    try {
      await store.append('s1', E.slice(0, 5));
      const writes: Promise<unknown>[] = [
        store.append('s1', E.slice(5, s.seq + 10)),
        store.putSnapshot('s1', s.tick, s.seq, s.bytes),
        store.append('s1', E.slice(s.seq + 10, s.seq + 20)),
        store.truncateBelow('s1', s.seq + 1),
        store.append('s1', E.slice(s.seq + 20, s.seq + 25)),
        store.truncateAbove('s1', s.seq + 15),
        store.append('s1', E.slice(s.seq + 15, s.seq + 30)),
      ];
      // Queued: the two appends before the truncateBelow; in transactions: the first and the two after a truncation.
      expect(store.appendPaths()).toEqual({ queued: 2, inTransaction: 3 });
      await Promise.all(writes);
      expect(store.firstSeq('s1')).toBe(s.seq + 1);
      expect(hex(store.range('s1', s.seq + 1, 1000))).toEqual(hex(E.slice(s.seq, s.seq + 30)));
      await store.append('s1', E.slice(s.seq + 30, s.seq + 31));
      expect(store.appendPaths()).toEqual({ queued: 3, inTransaction: 3 });
      expect(store.head('s1')!.seq).toBe(s.seq + 31);
    } finally {
      await store.close();
    }
  });

  it('refuses a queued append whose predecessor is not stored or whose first entry is, and writes none of it', async () => {
    const dir = tempDir();
    const store = await LmdbLogStore.open(dir);
    try {
      await store.append('s1', A.slice(0, 20));
      // Entry 20 disappears behind the store's back (what a lost transaction leaves): the
      // append continuing it must not be written after a hole.
      const raw = open({ path: dir, maxDbs: 16, encoding: 'binary' });
      const db = raw.openDB<Uint8Array, [string, number]>({ name: 'entries', encoding: 'binary', keyEncoder: ENTRY_KEYS } as { name: string; encoding: 'binary' });
      try {
        db.removeSync(['s1', 20]);
        const err = await rejection(store.append('s1', A.slice(20, 30)));
        expect(err.code).toBe('PLAYOUT_STORE_WRITE_FAILED');
        expect(err.message).toContain('entry 20');
        expect(db.getBinary(['s1', 21])).toBeUndefined();
        expect(db.getBinary(['s1', 29])).toBeUndefined();
        // Entry 20 back, and 21 of another history written behind the store's back (another
        // process writing): the queued append does not overwrite it.
        db.putSync(['s1', 20], A[19]!.bytes);
        db.putSync(['s1', 21], other[20]!.bytes);
        const again = await rejection(store.append('s1', A.slice(20, 30)));
        expect(again.code).toBe('PLAYOUT_STORE_WRITE_FAILED');
        expect(again.message).toContain('entry 21 is already stored');
        expect(toHex(db.getBinary(['s1', 21])!)).toBe(toHex(other[20]!.bytes));
        expect(db.getBinary(['s1', 22])).toBeUndefined();
      } finally {
        await raw.close();
      }
      expect(store.appendPaths().queued).toBe(2);
    } finally {
      await store.close();
    }
  });
});

// A real write failure: the file size limit of this process (RLIMIT_FSIZE, which Node turns
// into EFBIG instead of a signal) stops lmdb from growing its data file, as a full disk does.
// It applies to this test worker's process only (vitest runs test files in forked processes).
const prlimit = which('prlimit');
const limits = component('prlimit', prlimit === null ? 'prlimit (util-linux) is not on PATH: apt-get install util-linux' : null);

describe.skipIf(limits.skip)('LmdbLogStore write failures', () => {
  beforeAll(() => limits.require());
  const log = buildCounterLog({ shard: 's1', ticks: 600, seed: 3 });
  const A = log.entries;

  const setFileSizeLimit = (bytes: number | 'unlimited'): void => {
    execFileSync(prlimit!, ['--pid', String(process.pid), `--fsize=${bytes}:unlimited`]);
  };

  it('rejects a failed append and those queued after it with PLAYOUT_STORE_WRITE_FAILED; one joining the durable head then succeeds', async () => {
    expect(A.length).toBeGreaterThan(1500);
    const dir = tempDir();
    const store = await LmdbLogStore.open(dir);
    try {
      await store.append('s1', A.slice(0, 5));
      await store.append('s1', A.slice(5, 10));
      const queuedBefore = store.appendPaths().queued;
      setFileSizeLimit(statSync(join(dir, 'data.mdb')).size);
      let failures: Record<string, unknown>[];
      try {
        // Too big for the free pages of the file: they need it to grow.
        const writes = [store.append('s1', A.slice(10, 700)), store.append('s1', A.slice(700, 1400))];
        expect(store.appendPaths().queued).toBe(queuedBefore + 2);
        failures = await Promise.all(writes.map((w) => rejection(w)));
      } finally {
        setFileSizeLimit('unlimited');
      }
      expect(failures.map((f) => f.code)).toEqual(['PLAYOUT_STORE_WRITE_FAILED', 'PLAYOUT_STORE_WRITE_FAILED']);
      expect(String(failures[0]!.message)).toMatch(/File too large|not stored/);
      expect(store.head('s1')!.seq).toBe(10);
      expect(store.get('s1', 11)).toBeNull();
      // Settled: the tail is the durable head again, and the append joining it is queued.
      await store.append('s1', A.slice(10, 20));
      expect(store.appendPaths().queued).toBe(queuedBefore + 3);
      expect(hex(store.range('s1', 1, 100))).toEqual(hex(A.slice(0, 20)));
      await store.close();
      const again = await LmdbLogStore.open(dir);
      try {
        expect(hex(again.range('s1', 1, 100))).toEqual(hex(A.slice(0, 20)));
      } finally {
        await again.close();
      }
    } finally {
      setFileSizeLimit('unlimited');
      await store.close();
    }
  });

  it('rejects digests whose transaction failed with PLAYOUT_STORE_WRITE_FAILED, stores none of them, and stores them once retried', async () => {
    const dir = tempDir();
    const store = await LmdbLogStore.open(dir);
    try {
      await store.append('s1', log.entries.slice(0, 10));
      setFileSizeLimit(statSync(join(dir, 'data.mdb')).size);
      let failures: Record<string, unknown>[];
      try {
        // In one transaction with an append too big for the file's free pages, as a node queues them.
        const writes = [store.putDigests('s1', log.digests.slice(0, 3)), store.append('s1', log.entries.slice(10, 1000))];
        failures = await Promise.all(writes.map((w) => rejection(w)));
      } finally {
        setFileSizeLimit('unlimited');
      }
      expect(failures.map((f) => f.code)).toEqual(['PLAYOUT_STORE_WRITE_FAILED', 'PLAYOUT_STORE_WRITE_FAILED']);
      expect(store.digests('s1', 0, 1_000)).toEqual([]);
      expect(store.head('s1')!.seq).toBe(10);
      await store.putDigests('s1', log.digests.slice(0, 3));
      expect(store.digests('s1', 0, 1_000).map((d) => toHex(d.digest))).toEqual(log.digests.slice(0, 3).map((d) => toHex(d.digest)));
    } finally {
      setFileSizeLimit('unlimited');
      await store.close();
    }
  });

  it('re-derives the tail from the durable head once a failed append has settled', async () => {
    const dir = tempDir();
    const store = await LmdbLogStore.open(dir);
    try {
      await store.append('s1', A.slice(0, 10));
      setFileSizeLimit(statSync(join(dir, 'data.mdb')).size);
      let failed: Promise<Record<string, unknown>>;
      try {
        failed = rejection(store.append('s1', A.slice(10, 1000)));
        await failed;
      } finally {
        setFileSizeLimit('unlimited');
      }
      expect((await failed).code).toBe('PLAYOUT_STORE_WRITE_FAILED');
      const paths = store.appendPaths();
      // The failure settled: the next append is queued again, onto the durable head.
      await store.append('s1', A.slice(10, 1000));
      expect(store.appendPaths()).toEqual({ queued: paths.queued + 1, inTransaction: paths.inTransaction });
      expect(store.head('s1')!.seq).toBe(1000);
    } finally {
      setFileSizeLimit('unlimited');
      await store.close();
    }
  });
});

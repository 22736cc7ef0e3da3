import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { toHex, type Entry } from '../../src/core/index.js';
import { LmdbLogStore } from '../../src/adapters/lmdb-store.js';
import { ENTRY_KEYS } from '../../src/adapters/lmdb-codecs.js';
import { expectCode, logStoreContract } from './log-store-contract.js';
import { buildCounterLog } from './fixtures/counter-log.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'playout-lmdb-'));
}

/** Rewrite one stored entry's bytes behind the store's back, through lmdb itself. */
async function rewriteEntry(dir: string, shard: string, seq: number, change: (bytes: Uint8Array) => Uint8Array): Promise<void> {
  const env = open({ path: dir, maxDbs: 16, encoding: 'binary' });
  const db = env.openDB<Uint8Array, [string, number]>({ name: 'entries', encoding: 'binary', keyEncoder: ENTRY_KEYS } as { name: string; encoding: 'binary' });
  const bytes = db.getBinary([shard, seq]);
  if (bytes === undefined) throw new Error(`no entry ${seq}`);
  db.putSync([shard, seq], change(Uint8Array.from(bytes)));
  await env.close();
}

logStoreContract('LmdbLogStore', async () => {
  const dir = tempDir();
  let store = await LmdbLogStore.open(dir);
  return {
    get store() {
      return store;
    },
    reopen: async () => {
      await store.close();
      store = await LmdbLogStore.open(dir);
      return store;
    },
    corruptEntry: async (shard, seq) => {
      await store.close();
      await rewriteEntry(dir, shard, seq, (b) => {
        b[b.length >> 1] = b[b.length >> 1]! ^ 0x01;
        return b;
      });
      store = await LmdbLogStore.open(dir);
      return store;
    },
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('LmdbLogStore specifics', () => {
  const E = buildCounterLog({ shard: 's1', ticks: 20, seed: 5 }).entries;

  it('reports a record stored under the wrong seq as corrupt, with the seq of its key', async () => {
    const dir = tempDir();
    try {
      const store = await LmdbLogStore.open(dir);
      await store.append('s1', E.slice(0, 10));
      await store.close();
      await rewriteEntry(dir, 's1', 7, () => Uint8Array.from(E[5]!.bytes));
      const again = await LmdbLogStore.open(dir);
      await expectCode(() => again.get('s1', 7), 'PLAYOUT_STORE_CORRUPT', 7);
      await expectCode(() => again.rangeRaw('s1', 1, 10, 1 << 20), 'PLAYOUT_STORE_CORRUPT', 7);
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a truncated record (a torn value) as corrupt', async () => {
    const dir = tempDir();
    try {
      const store = await LmdbLogStore.open(dir);
      await store.append('s1', E.slice(0, 10));
      await store.close();
      await rewriteEntry(dir, 's1', 10, (b) => b.subarray(0, b.length - 5));
      const again = await LmdbLogStore.open(dir);
      // The head itself is unreadable: head() says so instead of inventing one.
      await expectCode(() => again.head('s1'), 'PLAYOUT_STORE_CORRUPT', 10);
      await expectCode(() => again.range('s1', 9, 10), 'PLAYOUT_STORE_CORRUPT', 10);
      expect(again.range('s1', 1, 9)).toHaveLength(9);
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads entries in batches through entryCursor, the good ones before a damaged record, then its error', async () => {
    const dir = tempDir();
    try {
      const store = await LmdbLogStore.open(dir);
      await store.append('s1', E.slice(0, 20));
      await store.close();
      await rewriteEntry(dir, 's1', 13, (b) => {
        b[b.length >> 1] = b[b.length >> 1]! ^ 0x01;
        return b;
      });
      const again = await LmdbLogStore.open(dir, { readOnly: true });
      const cursor = again.entryCursor('s1', 2);
      const first: Entry[] = [];
      expect(cursor.read(first, 5)).toBe(5);
      expect(first.map((e) => e.seq)).toEqual([2, 3, 4, 5, 6]);
      expect(first.map((e) => toHex(e.hash))).toEqual(E.slice(1, 6).map((e) => toHex(e.hash)));
      // Entries 7..12 are good: the batch ends at them and the next read reports seq 13.
      const second: Entry[] = [];
      expect(cursor.read(second, 100)).toBe(6);
      expect(second.map((e) => e.seq)).toEqual([7, 8, 9, 10, 11, 12]);
      await expectCode(() => cursor.read([], 100), 'PLAYOUT_STORE_CORRUPT', 13);
      expect(cursor.read([], 100)).toBe(0);
      // A range that stops before the damage reads to its end; one closed early releases its cursor.
      const upTo = again.entryCursor('s1', 1, 12);
      const all: Entry[] = [];
      while (upTo.read(all, 4) > 0);
      expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      const early = again.entryCursor('s1', 1);
      expect(early.read([], 3)).toBe(3);
      early.close();
      expect(early.read([], 3)).toBe(0);
      // Out of the retained range: nothing.
      expect(again.entryCursor('s1', 21).read([], 10)).toBe(0);
      expect(again.entryCursor('nope', 1).read([], 10)).toBe(0);
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('opens read-only beside a writer and refuses to write', async () => {
    const dir = tempDir();
    try {
      const store = await LmdbLogStore.open(dir);
      await store.append('s1', E.slice(0, 10));
      const reader = await LmdbLogStore.open(dir, { readOnly: true });
      expect(reader.head('s1')!.seq).toBe(10);
      expect(reader.range('s1', 1, 10).map((e) => toHex(e.hash))).toEqual(E.slice(0, 10).map((e) => toHex(e.hash)));
      await expectCode(reader.append('s1', E.slice(10, 11)), 'PLAYOUT_INVALID_ARGUMENT');
      await reader.close();
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses to open a missing directory read-only', async () => {
    await expectCode(LmdbLogStore.open(join(tmpdir(), 'playout-no-such-store-dir'), { readOnly: true }), 'PLAYOUT_SOURCE_NOT_FOUND');
  });
});

describe('LmdbLogStore writers', () => {
  it('treats a directory name with a dot as a directory (lmdb would take it for a file)', async () => {
    const parent = tempDir();
    try {
      const dir = join(parent, 'node.eu-fra');
      const store = await LmdbLogStore.open(dir);
      await store.append('s1', buildCounterLog({ shard: 's1', ticks: 2 }).entries);
      await store.close();
      expect(readdirSync(dir)).toContain('data.mdb');
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it('refuses a second writer on one directory in this process', async () => {
    const dir = tempDir();
    try {
      const store = await LmdbLogStore.open(dir);
      await expectCode(LmdbLogStore.open(dir), 'PLAYOUT_INVALID_ARGUMENT');
      await store.close();
      const again = await LmdbLogStore.open(dir);
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('entry keys', () => {
  it('sort by shard, then numerically by seq, and read back as the seq', () => {
    const seqs = [0, 1, 2, 255, 256, 65_535, 65_536, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER - 1];
    const keys = ['a', 'a.b', 'ab'].flatMap((shard) => seqs.map((seq) => [shard, seq] as [string, number]));
    const encoded = keys.map((k) => {
      const buf = new Uint8Array(128);
      const end = ENTRY_KEYS.writeKey(k, buf, 0);
      expect(ENTRY_KEYS.readKey(buf, 0, end)).toBe(k[1]);
      return Buffer.from(buf.subarray(0, end));
    });
    const sorted = [...encoded].sort(Buffer.compare);
    expect(sorted).toEqual(encoded);
  });
});

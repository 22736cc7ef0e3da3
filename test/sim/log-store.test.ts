import { describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/index.js';
import { expectCode, logStoreContract } from '../adapters/log-store-contract.js';
import { buildCounterLog } from '../adapters/fixtures/counter-log.js';
import { MemoryLogStore } from './log-store.js';

logStoreContract('MemoryLogStore', async () => {
  const store = new MemoryLogStore();
  return {
    store,
    reopen: async () => {
      store.crash();
      return store;
    },
    corruptEntry: async (shard, seq) => {
      store.corruptEntry(shard, seq);
      // As with lmdb, the store is read again after a restart.
      store.crash();
      return store;
    },
    cleanup: async () => store.close(),
  };
});

describe('MemoryLogStore as a simulated disk', () => {
  const E = buildCounterLog({ shard: 's1', ticks: 20, seed: 3 }).entries;

  it('loses writes that were not flushed when it crashes, and rejects them', async () => {
    const store = new MemoryLogStore({ flush: 'manual' });
    const a = store.append('s1', E.slice(0, 5));
    store.flush();
    await a;
    const b = store.append('s1', E.slice(5, 10));
    const c = store.append('s1', E.slice(10, 12));
    expect(store.pendingWrites).toBe(2);
    expect(store.head('s1')!.seq).toBe(5);
    store.crash(1);
    await b;
    await expectCode(c, 'PLAYOUT_STORE_WRITE_FAILED', 11);
    expect(store.head('s1')!.seq).toBe(10);
    // After the crash, appends are checked against what survived.
    await expectCode(store.append('s1', E.slice(12, 13)), 'PLAYOUT_STORE_CONFLICT', 13);
    const d = store.append('s1', E.slice(10, 13));
    store.flush();
    await d;
    expect(store.range('s1', 1, 100).map((e) => toHex(e.hash))).toEqual(E.slice(0, 13).map((e) => toHex(e.hash)));
  });

  it('fails injected writes alone and re-checks the writes queued after them', async () => {
    const store = new MemoryLogStore({ flush: 'manual' });
    const ops: string[] = [];
    store.faults.failWrite = (op) => {
      ops.push(`${op.kind}:${op.seqFrom}-${op.seqTo}`);
      return op.kind === 'append' && op.seqFrom === 6;
    };
    const a = store.append('s1', E.slice(0, 5));
    const b = store.append('s1', E.slice(5, 8));
    const c = store.append('s1', E.slice(8, 9));
    const m = store.putMeta('s1', 'applied', 5);
    store.flush();
    await a;
    await expectCode(b, 'PLAYOUT_STORE_WRITE_FAILED', 6);
    // c continued b, which never reached the disk: a gap is refused, not written.
    await expectCode(c, 'PLAYOUT_STORE_CONFLICT', 9);
    await m;
    expect(ops).toEqual(['append:1-5', 'append:6-8', 'append:9-9', 'putMeta:null-null']);
    expect(store.head('s1')!.seq).toBe(5);
    expect(store.getMeta('s1', 'applied')).toBe(5);
    expect(store.writesFailed).toBe(1);
    store.faults.failWrite = null;
    const d = store.append('s1', E.slice(5, 9));
    store.flush();
    await d;
    expect(store.head('s1')!.seq).toBe(9);
  });

  it('shares one flush between writes issued in the same turn (microtask mode)', async () => {
    const store = new MemoryLogStore();
    await Promise.all([store.append('s1', E.slice(0, 3)), store.append('s1', E.slice(3, 6)), store.putMeta('s1', 'x', 1)]);
    expect(store.flushes).toBe(1);
    await store.append('s1', E.slice(6, 7));
    expect(store.flushes).toBe(2);
  });

  it('hands out copies, so a caller cannot change what is stored', async () => {
    const store = new MemoryLogStore();
    await store.append('s1', E.slice(0, 3));
    const raw = store.rangeRaw('s1', 1, 3, 1 << 20);
    raw[1]![5] = raw[1]![5]! ^ 0xff;
    expect(toHex(store.get('s1', 2)!.hash)).toBe(toHex(E[1]!.hash));
  });
});

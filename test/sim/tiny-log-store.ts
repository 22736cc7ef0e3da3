// A small in-memory LogStore for the replication simulations, until the store engineer's
// MemoryLogStore (test/sim/log-store.ts) lands on main; it keeps that twin's surface for what
// the simulations use: writes become durable on `flush()` (the simulation calls it on a
// simulated disk delay), `crash()` loses what is not durable, reads see durable data only.
import type { Entry } from '../../src/core/entry.js';
import { PlayoutError } from '../../src/core/errors.js';
import { ZERO_HASH, hashEquals } from '../../src/core/hash.js';
import { decodeSnapshot } from '../../src/core/snapshot.js';
import type { LogStore, SnapshotInfo, StoredDigest, StoredHead } from '../../src/ports/log-store.js';

interface Snap {
  tick: number;
  seq: number;
  bytes: Uint8Array;
  head: StoredHead;
}

class ShardLog {
  entries = new Map<number, Entry>();
  first = 0;
  last = 0;
  base: StoredHead | null = null;
  snapshots = new Map<number, Snap>();
  digests = new Map<number, StoredDigest>();
  meta = new Map<string, unknown>();

  clone(): ShardLog {
    const c = new ShardLog();
    c.entries = new Map(this.entries);
    c.first = this.first;
    c.last = this.last;
    c.base = this.base;
    c.snapshots = new Map(this.snapshots);
    c.digests = new Map(this.digests);
    c.meta = new Map(this.meta);
    return c;
  }

  head(): StoredHead | null {
    if (this.last > 0) {
      const e = this.entries.get(this.last)!;
      return { seq: e.seq, hash: e.hash, tick: e.tick, epoch: e.epoch };
    }
    return this.base;
  }
}

type Pending = { apply: (s: Map<string, ShardLog>) => void; resolve: () => void; reject: (e: unknown) => void };

export class TinyLogStore implements LogStore {
  /** What reads see. */
  private durable = new Map<string, ShardLog>();
  /** What writes are checked against (durable + queued). */
  private working = new Map<string, ShardLog>();
  private queue: Pending[] = [];

  get pendingWrites(): number {
    return this.queue.length;
  }

  /** Make every queued write durable and resolve it. */
  flush(): void {
    const q = this.queue;
    this.queue = [];
    for (const p of q) {
      p.apply(this.durable);
      p.resolve();
    }
  }

  /** Lose every write not yet durable. */
  crash(): void {
    const q = this.queue;
    this.queue = [];
    this.working = cloneAll(this.durable);
    for (const p of q) p.reject(new PlayoutError('PLAYOUT_STORE_CONFLICT', 'the process crashed before the write was durable'));
  }

  shards(): string[] {
    return [...this.durable.keys()].sort();
  }

  head(shard: string): StoredHead | null {
    return this.durable.get(shard)?.head() ?? null;
  }

  firstSeq(shard: string): number | null {
    const s = this.durable.get(shard);
    if (s === undefined) return null;
    if (s.last > 0) return s.first;
    return s.base === null ? null : s.base.seq + 1;
  }

  get(shard: string, seq: number): Entry | null {
    return this.durable.get(shard)?.entries.get(seq) ?? null;
  }

  range(shard: string, seqFrom: number, seqTo: number): Entry[] {
    const s = this.durable.get(shard);
    const out: Entry[] = [];
    if (s === undefined) return out;
    for (let q = seqFrom; q <= seqTo; q++) {
      const e = s.entries.get(q);
      if (e === undefined) break;
      out.push(e);
    }
    return out;
  }

  rangeRaw(shard: string, seqFrom: number, seqTo: number, bytesMax: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let bytes = 0;
    for (const e of this.range(shard, seqFrom, seqTo)) {
      if (out.length > 0 && bytes + e.bytes.length > bytesMax) break;
      out.push(e.bytes);
      bytes += e.bytes.length;
    }
    return out;
  }

  *iterate(shard: string, seqFrom: number, seqTo?: number): IterableIterator<Entry> {
    const s = this.durable.get(shard);
    if (s === undefined) return;
    const to = seqTo ?? s.last;
    for (let q = seqFrom; q <= to; q++) {
      const e = s.entries.get(q);
      if (e === undefined) return;
      yield e;
    }
  }

  append(shard: string, entries: readonly Entry[]): Promise<void> {
    const w = this.shard(this.working, shard);
    let prev = w.head();
    for (const e of entries) {
      const ok =
        e.shard === shard &&
        (prev === null ? e.seq === 1 && hashEquals(e.prev, ZERO_HASH) : e.seq === prev.seq + 1 && hashEquals(e.prev, prev.hash));
      if (!ok) {
        return Promise.reject(
          new PlayoutError('PLAYOUT_STORE_CONFLICT', `Cannot append entry ${e.seq} of shard "${shard}": expected seq ${(prev?.seq ?? 0) + 1} chaining to the head`, { seq: e.seq, shard }),
        );
      }
      prev = { seq: e.seq, hash: e.hash, tick: e.tick, epoch: e.epoch };
    }
    const write = (m: Map<string, ShardLog>) => {
      const s = this.shard(m, shard);
      for (const e of entries) {
        s.entries.set(e.seq, e);
        if (s.last === 0) s.first = e.seq;
        s.last = e.seq;
      }
    };
    write(this.working);
    return this.enqueue(write);
  }

  putSnapshot(shard: string, tick: number, seq: number, bytes: Uint8Array): Promise<void> {
    const snap = decodeSnapshot(bytes);
    if (snap.tick !== tick || snap.seq !== seq || snap.shard !== shard) {
      return Promise.reject(new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot store snapshot: it is ${snap.shard}@${snap.tick}/${snap.seq}, not ${shard}@${tick}/${seq}`));
    }
    const point: Snap = { tick, seq, bytes, head: { seq, hash: snap.lastHash, tick, epoch: snap.epoch } };
    const write = (m: Map<string, ShardLog>) => void this.shard(m, shard).snapshots.set(tick, point);
    write(this.working);
    return this.enqueue(write);
  }

  snapshot(shard: string, tickMax?: number): { tick: number; seq: number; bytes: Uint8Array } | null {
    const s = this.durable.get(shard);
    if (s === undefined) return null;
    let best: Snap | null = null;
    for (const p of s.snapshots.values()) if ((tickMax === undefined || p.tick <= tickMax) && (best === null || p.tick > best.tick)) best = p;
    return best === null ? null : { tick: best.tick, seq: best.seq, bytes: best.bytes };
  }

  snapshots(shard: string): SnapshotInfo[] {
    const s = this.durable.get(shard);
    if (s === undefined) return [];
    return [...s.snapshots.values()].sort((a, b) => a.tick - b.tick).map((p) => ({ tick: p.tick, seq: p.seq, bytes: p.bytes.length }));
  }

  putDigests(shard: string, digests: readonly StoredDigest[]): Promise<void> {
    const write = (m: Map<string, ShardLog>) => {
      const s = this.shard(m, shard);
      for (const d of digests) s.digests.set(d.tick, d);
    };
    write(this.working);
    return this.enqueue(write);
  }

  digests(shard: string, tickFrom: number, tickTo: number): StoredDigest[] {
    const s = this.durable.get(shard);
    if (s === undefined) return [];
    const out: StoredDigest[] = [];
    for (let t = tickFrom; t <= tickTo; t++) {
      const d = s.digests.get(t);
      if (d !== undefined) out.push(d);
    }
    return out;
  }

  /** Retention: seqMin - 1 must be a snapshot's seq; it becomes the base. May lie beyond the head (bootstrap). */
  truncateBelow(shard: string, seqMin: number): Promise<void> {
    const w = this.shard(this.working, shard);
    const point = [...w.snapshots.values()].find((p) => p.seq === seqMin - 1);
    if (point === undefined) return Promise.reject(new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot truncate shard "${shard}" below ${seqMin}: no snapshot at seq ${seqMin - 1}`));
    const write = (m: Map<string, ShardLog>) => {
      const s = this.shard(m, shard);
      if (seqMin <= s.first && s.last > 0) return;
      for (const q of [...s.entries.keys()]) if (q < seqMin) s.entries.delete(q);
      s.base = point.head;
      if (s.last < seqMin) {
        s.first = 0;
        s.last = 0;
      } else {
        s.first = seqMin;
      }
      for (const t of [...s.snapshots.keys()]) if (t < point.tick) s.snapshots.delete(t);
    };
    write(this.working);
    return this.enqueue(write);
  }

  async truncateAbove(_shard: string, _seqMax: number): Promise<Entry[]> {
    throw new Error('not used by the replication simulations');
  }

  getMeta<T = unknown>(shard: string, key: string): T | null {
    return (this.durable.get(shard)?.meta.get(key) as T | undefined) ?? null;
  }

  putMeta(shard: string, key: string, value: unknown): Promise<void> {
    const write = (m: Map<string, ShardLog>) => void this.shard(m, shard).meta.set(key, value);
    write(this.working);
    return this.enqueue(write);
  }

  async close(): Promise<void> {}

  private shard(m: Map<string, ShardLog>, shard: string): ShardLog {
    let s = m.get(shard);
    if (s === undefined) m.set(shard, (s = new ShardLog()));
    return s;
  }

  private enqueue(apply: (m: Map<string, ShardLog>) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => this.queue.push({ apply, resolve, reject }));
  }
}

function cloneAll(m: Map<string, ShardLog>): Map<string, ShardLog> {
  const out = new Map<string, ShardLog>();
  for (const [k, v] of m) out.set(k, v.clone());
  return out;
}

// MemoryLogStore: the simulated twin of the LogStore port (src/ports/log-store.ts), for whole
// clusters run in one process from one seed. Same rules as LmdbLogStore (it calls the same
// rule functions, src/adapters/lmdb-store-rules.ts, and passes the same contract suite,
// test/adapters/log-store-contract.ts), plus what a simulation needs from a disk:
//
// - Durability is explicit. Every write is checked and applied at once to the *working*
//   state (what later writes are checked against, like lmdb's committed transactions) and
//   queued; it becomes durable — readable, and its promise resolved — when the queue is
//   flushed. `flush: 'microtask'` (default) flushes once per microtask turn, so writes issued
//   together share a flush; `flush: 'manual'` leaves it to the simulation (`flush()`).
// - `crash(keep)` loses what is not durable: the first `keep` queued writes are flushed, the
//   rest are rejected with PLAYOUT_STORE_WRITE_FAILED and dropped, and the working state is
//   reset to the durable one. The object stays usable as the store found on restart.
// - `faults.failWrite(op)` decides, at flush time, whether a write fails (an I/O error): it is
//   rejected with PLAYOUT_STORE_WRITE_FAILED and leaves nothing; writes queued after it are
//   re-checked against what is durable, exactly as lmdb re-checks later transactions.
// - `corruptEntry(shard, seq)` flips a stored byte (bit rot): reads then report
//   PLAYOUT_STORE_CORRUPT with that seq.
import type { Entry } from '../../src/core/entry.js';
import { AssertionFailed, PlayoutError, assert, describe } from '../../src/core/errors.js';
import { HASH_BYTES } from '../../src/core/hash.js';
import type { SnapshotHeader } from '../../src/core/snapshot.js';
import { decodeCanonical, encodeCanonical } from '../../src/core/codec.js';
import {
  checkAppend,
  checkMetaKey,
  checkRawEntry,
  checkShardId,
  checkSnapshotForPut,
  checkSnapshotMatchesLog,
  checkStoredLink,
  checkStoredSnapshot,
  checkUint,
  decodeStoredEntry,
  headOfEntry,
  refuseDeleteBase,
  refuseTruncateAbove,
  refuseTruncateBelow,
  type SnapshotPoint,
} from '../../src/adapters/lmdb-store-rules.js';
import type { LogStore, SnapshotInfo, StoredDigest, StoredHead, StoredSnapshot } from '../../src/ports/log-store.js';

export type WriteKind = 'append' | 'putSnapshot' | 'deleteSnapshot' | 'putDigests' | 'truncateBelow' | 'truncateAbove' | 'putMeta';

/** What a queued write is, for fault hooks. */
export interface WriteOp {
  readonly kind: WriteKind;
  readonly shard: string;
  /** append: first and last seq; truncations: the bound; otherwise null. */
  readonly seqFrom: number | null;
  readonly seqTo: number | null;
}

export interface MemoryLogStoreOptions {
  flush?: 'microtask' | 'manual';
}

export interface MemoryLogStoreFaults {
  /** Called at flush time for every write; true fails it with PLAYOUT_STORE_WRITE_FAILED. */
  failWrite: ((op: WriteOp) => boolean) | null;
}

interface Snap {
  point: SnapshotPoint;
  bytes: Uint8Array;
}

class ShardData {
  readonly entries = new Map<number, Uint8Array>();
  /** First and last seq held (0 when none). */
  first = 0;
  last = 0;
  lastHead: StoredHead | null = null;
  /** The last entry failed its checks when the store was (re)opened: `head` throws it. */
  headError: PlayoutError | null = null;
  base: StoredHead | null = null;
  readonly snapshots = new Map<number, Snap>();
  readonly digests = new Map<number, StoredDigest>();
  exists = false;

  clone(): ShardData {
    const c = new ShardData();
    for (const [k, v] of this.entries) c.entries.set(k, v);
    c.first = this.first;
    c.last = this.last;
    c.lastHead = this.lastHead;
    c.headError = this.headError;
    c.base = this.base;
    for (const [k, v] of this.snapshots) c.snapshots.set(k, v);
    for (const [k, v] of this.digests) c.digests.set(k, v);
    c.exists = this.exists;
    return c;
  }

  snapshotList(): Snap[] {
    return [...this.snapshots.values()].sort((a, b) => a.point.tick - b.point.tick);
  }

  latestSnapshot(tickMax = Infinity): Snap | null {
    let best: Snap | null = null;
    for (const s of this.snapshots.values()) if (s.point.tick <= tickMax && (best === null || s.point.tick > best.point.tick)) best = s;
    return best;
  }

  /** The chain head (last entry, else base, else the latest snapshot), as the port defines `head`. */
  head(): StoredHead | null {
    if (this.last > 0) return this.lastHead;
    if (this.base !== null) return this.base;
    const s = this.latestSnapshot();
    return s === null ? null : pointHead(s.point);
  }

  firstSeq(): number | null {
    if (this.last > 0) return this.first;
    const h = this.head();
    return h === null ? null : h.seq + 1;
  }
}

function pointHead(p: SnapshotPoint): StoredHead {
  return { seq: p.seq, hash: p.lastHash, tick: p.tick, epoch: p.epoch };
}

/** All of a store's data; one instance is durable, one is working. */
class State {
  readonly shards = new Map<string, ShardData>();
  readonly meta = new Map<string, Uint8Array>();

  clone(): State {
    const c = new State();
    for (const [k, v] of this.shards) c.shards.set(k, v.clone());
    for (const [k, v] of this.meta) c.meta.set(k, v);
    return c;
  }

  shard(shard: string): ShardData {
    let d = this.shards.get(shard);
    if (d === undefined) this.shards.set(shard, (d = new ShardData()));
    return d;
  }

  // Each operation checks everything before it changes anything: a refused write leaves no trace.

  append(shard: string, entries: readonly Entry[], bytes: readonly Uint8Array[]): void {
    const d = this.shard(shard);
    const head = d.head();
    checkAppend(shard, entries, head);
    if (d.last === 0 && d.base === null && head !== null) d.base = head;
    if (d.last === 0) d.first = entries[0]!.seq;
    for (let i = 0; i < entries.length; i++) d.entries.set(entries[i]!.seq, bytes[i]!);
    const lastEntry = entries[entries.length - 1]!;
    d.last = lastEntry.seq;
    d.lastHead = headOfEntry(lastEntry);
    d.headError = null;
    d.exists = true;
  }

  putSnapshot(shard: string, point: SnapshotPoint, bytes: Uint8Array): void {
    const d = this.shard(shard);
    if (d.base !== null && point.seq < d.base.seq) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot store the snapshot of shard "${shard}" at tick ${point.tick}: the retained log starts after seq ${d.base.seq}, and this snapshot (seq ${point.seq}) is older`, {
        shard,
        tick: point.tick,
        path: 'seq',
        expected: `>= ${d.base.seq}`,
        received: String(point.seq),
      });
    }
    const stored = d.entries.get(point.seq);
    checkSnapshotMatchesLog(shard, point, stored === undefined ? null : decodeStoredEntry(shard, point.seq, stored));
    d.snapshots.set(point.tick, { point, bytes });
    d.exists = true;
  }

  deleteSnapshot(shard: string, tick: number): boolean {
    const d = this.shard(shard);
    const s = d.snapshots.get(tick);
    if (s === undefined) return false;
    if ((d.base !== null && d.base.seq === s.point.seq) || (d.base === null && d.last === 0 && d.latestSnapshot()?.point.tick === tick)) throw refuseDeleteBase(shard, tick);
    d.snapshots.delete(tick);
    return true;
  }

  putDigests(shard: string, digests: readonly StoredDigest[]): void {
    const d = this.shard(shard);
    for (const g of digests) d.digests.set(g.tick, g);
  }

  truncateBelow(shard: string, seqMin: number): void {
    const d = this.shard(shard);
    const first = d.firstSeq();
    if (first !== null && seqMin <= first) return;
    const snaps = d.snapshotList();
    const base = snaps.find((s) => s.point.seq === seqMin - 1);
    if (base === undefined) throw refuseTruncateBelow(shard, seqMin, snaps.map((s) => s.point.seq));
    if (d.last > 0) {
      for (let seq = d.first; seq < seqMin && seq <= d.last; seq++) d.entries.delete(seq);
      if (seqMin > d.last) {
        d.first = 0;
        d.last = 0;
        d.lastHead = null;
      } else d.first = seqMin;
    }
    for (const s of snaps) if (s.point.seq < base.point.seq) d.snapshots.delete(s.point.tick);
    for (const tick of [...d.digests.keys()]) if (tick < base.point.tick) d.digests.delete(tick);
    d.base = pointHead(base.point);
  }

  truncateAbove(shard: string, seqMax: number): Entry[] {
    const d = this.shard(shard);
    const head = d.head();
    const first = d.firstSeq();
    if (head === null || first === null || seqMax >= head.seq) return [];
    if (seqMax < first - 1) throw refuseTruncateAbove(shard, seqMax, first - 1);
    const removed: Entry[] = [];
    let before: Entry | null = null;
    for (let seq = seqMax + 1; seq <= d.last; seq++) {
      const e = decodeStoredEntry(shard, seq, d.entries.get(seq)!);
      if (before !== null) checkStoredLink(shard, before, e);
      before = e;
      removed.push(e);
    }
    for (const e of removed) d.entries.delete(e.seq);
    if (seqMax < d.first) {
      d.first = 0;
      d.last = 0;
      d.lastHead = null;
    } else {
      d.last = seqMax;
      d.lastHead = headOfEntry(decodeStoredEntry(shard, seqMax, d.entries.get(seqMax)!));
      d.headError = null;
    }
    if (removed.length > 0) {
      for (const s of d.snapshotList()) if (s.point.seq > seqMax) d.snapshots.delete(s.point.tick);
      for (const [tick, g] of [...d.digests]) if (g.seq > seqMax) d.digests.delete(tick);
    }
    return removed;
  }

  putMeta(shard: string, key: string, value: Uint8Array | null): void {
    const k = `${shard}\u0000${key}`;
    if (value === null) this.meta.delete(k);
    else this.meta.set(k, value);
  }
}

interface Pending {
  readonly op: WriteOp;
  readonly apply: (s: State) => unknown;
  readonly resolve: (v: unknown) => void;
  readonly reject: (err: unknown) => void;
}

export class MemoryLogStore implements LogStore {
  readonly faults: MemoryLogStoreFaults = { failWrite: null };
  private readonly flushMode: 'microtask' | 'manual';
  private durable = new State();
  private working = new State();
  private pending: Pending[] = [];
  private flushQueued = false;
  private closed = false;
  /** Counters for assertions in simulations. */
  flushes = 0;
  writesFailed = 0;

  constructor(options: MemoryLogStoreOptions = {}) {
    this.flushMode = options.flush ?? 'microtask';
  }

  /** Writes queued and not yet durable. */
  get pendingWrites(): number {
    return this.pending.length;
  }

  // --- simulation controls ---------------------------------------------------------------

  /** Make every queued write durable (or failed), in order. */
  flush(): void {
    this.flushQueued = false;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.flushes++;
    let diverged = false;
    for (const p of batch) {
      if (this.faults.failWrite !== null && this.faults.failWrite(p.op)) {
        diverged = true;
        this.writesFailed++;
        p.reject(new PlayoutError('PLAYOUT_STORE_WRITE_FAILED', `Cannot ${p.op.kind} on shard "${p.op.shard}": simulated write failure`, { shard: p.op.shard, seq: p.op.seqFrom }));
        continue;
      }
      let result: unknown;
      try {
        result = p.apply(this.durable);
      } catch (err) {
        // Only reachable after an earlier write of this flush failed: re-checked against
        // what is durable, as lmdb re-checks a transaction after a failed one.
        diverged = true;
        p.reject(err);
        continue;
      }
      p.resolve(result);
    }
    if (diverged) this.working = this.durable.clone();
  }

  /** A crash: the first `keep` queued writes reach the disk, the rest are lost (and rejected). */
  crash(keep = 0): void {
    const lost = this.pending.splice(Math.min(keep, this.pending.length));
    this.flush();
    for (const p of lost) {
      this.writesFailed++;
      p.reject(new PlayoutError('PLAYOUT_STORE_WRITE_FAILED', `Cannot ${p.op.kind} on shard "${p.op.shard}": the process crashed before the write was durable`, { shard: p.op.shard, seq: p.op.seqFrom }));
    }
    // Like lmdb on open: read every head back from the disk, so bit rot there shows.
    for (const [shard, d] of this.durable.shards) {
      if (d.last === 0) continue;
      try {
        d.lastHead = headOfEntry(decodeStoredEntry(shard, d.last, d.entries.get(d.last)!));
        d.headError = null;
      } catch (err) {
        if (!(err instanceof PlayoutError)) throw err;
        d.headError = err;
      }
    }
    this.working = this.durable.clone();
    this.closed = false;
  }

  /** Flip one byte of a stored entry (default: one in the middle of its body). */
  corruptEntry(shard: string, seq: number, byteIndex?: number): void {
    const bytes = this.durable.shards.get(shard)?.entries.get(seq);
    assert(bytes !== undefined, `entry ${seq} of shard "${shard}" is stored`);
    const i = byteIndex ?? Math.floor((bytes.length - HASH_BYTES) / 2);
    bytes[i] = bytes[i]! ^ 0xff;
  }

  // --- reads -----------------------------------------------------------------------------

  shards(): string[] {
    this.checkOpen();
    return [...this.durable.shards].filter(([, d]) => d.head() !== null || d.headError !== null).map(([s]) => s).sort();
  }

  head(shard: string): StoredHead | null {
    const d = this.data(shard);
    if (d?.headError) throw d.headError;
    return d?.head() ?? null;
  }

  firstSeq(shard: string): number | null {
    return this.data(shard)?.firstSeq() ?? null;
  }

  get(shard: string, seq: number): Entry | null {
    checkUint('seq', seq, 1);
    const d = this.data(shard);
    const bytes = d?.entries.get(seq);
    if (bytes === undefined) return null;
    return decodeStoredEntry(shard, seq, bytes);
  }

  range(shard: string, seqFrom: number, seqTo: number): Entry[] {
    return [...this.iterate(shard, seqFrom, seqTo)];
  }

  *iterate(shard: string, seqFrom: number, seqTo?: number): IterableIterator<Entry> {
    checkUint('seqFrom', seqFrom, 1);
    if (seqTo !== undefined) checkUint('seqTo', seqTo, 0);
    const d = this.data(shard);
    if (d === undefined || d.last === 0 || seqFrom < d.first) return;
    const last = Math.min(seqTo ?? d.last, d.last);
    let before: Entry | null = null;
    for (let seq = seqFrom; seq <= last; seq++) {
      const bytes = d.entries.get(seq);
      assert(bytes !== undefined, 'the log is contiguous');
      const e = decodeStoredEntry(shard, seq, bytes);
      if (before !== null) checkStoredLink(shard, before, e);
      before = e;
      yield e;
    }
  }

  rangeRaw(shard: string, seqFrom: number, seqTo: number, bytesMax: number): Uint8Array[] {
    checkUint('seqFrom', seqFrom, 1);
    checkUint('seqTo', seqTo, 0);
    checkUint('bytesMax', bytesMax, 1);
    const d = this.data(shard);
    const out: Uint8Array[] = [];
    if (d === undefined || d.last === 0 || seqFrom < d.first) return out;
    const last = Math.min(seqTo, d.last);
    let total = 0;
    for (let seq = seqFrom; seq <= last; seq++) {
      const bytes = d.entries.get(seq)!;
      if (out.length > 0 && total + bytes.length > bytesMax) break;
      checkRawEntry(shard, seq, bytes);
      // A copy, as lmdb hands out: the caller may not write into the "disk".
      out.push(bytes.slice());
      total += bytes.length;
    }
    return out;
  }

  snapshot(shard: string, tickMax?: number): StoredSnapshot | null {
    if (tickMax !== undefined) checkUint('tickMax', tickMax);
    const s = this.data(shard)?.latestSnapshot(tickMax) ?? null;
    if (s === null) return null;
    checkStoredSnapshot(shard, s.point.tick, s.bytes);
    return { tick: s.point.tick, seq: s.point.seq, bytes: s.bytes.slice() };
  }

  snapshots(shard: string): SnapshotInfo[] {
    const d = this.data(shard);
    return d === undefined ? [] : d.snapshotList().map((s) => ({ tick: s.point.tick, seq: s.point.seq, bytes: s.point.bytes }));
  }

  digests(shard: string, tickFrom: number, tickTo: number): StoredDigest[] {
    checkUint('tickFrom', tickFrom);
    checkUint('tickTo', tickTo);
    const d = this.data(shard);
    if (d === undefined) return [];
    return [...d.digests.values()].filter((g) => g.tick >= tickFrom && g.tick <= tickTo).sort((a, b) => a.tick - b.tick);
  }

  getMeta<T = unknown>(shard: string, key: string): T | null {
    checkShardId(shard);
    checkMetaKey(key);
    this.checkOpen();
    const bytes = this.durable.meta.get(`${shard}\u0000${key}`);
    return bytes === undefined ? null : (decodeCanonical(bytes) as T);
  }

  // --- writes ----------------------------------------------------------------------------

  async append(shard: string, entries: readonly Entry[]): Promise<void> {
    checkShardId(shard);
    if (!Array.isArray(entries)) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot append to shard "${shard}": expected an array of entries, received ${describe(entries)}`, { shard, path: 'entries' });
    }
    if (entries.length === 0) return;
    checkAppend(shard, entries, { seq: entries[0]!.seq - 1, hash: entries[0]!.prev });
    // Copied once: working and durable state share the copy, as both stand for one disk.
    const bytes = entries.map((e) => e.bytes.slice());
    const op: WriteOp = { kind: 'append', shard, seqFrom: entries[0]!.seq, seqTo: entries[entries.length - 1]!.seq };
    await this.submit(op, (s) => s.append(shard, entries, bytes));
  }

  async putSnapshot(shard: string, tick: number, seq: number, bytes: Uint8Array, header?: SnapshotHeader): Promise<void> {
    checkShardId(shard);
    checkUint('tick', tick);
    checkUint('seq', seq, 1);
    const point = checkSnapshotForPut(shard, tick, seq, bytes, header);
    const copy = bytes.slice();
    await this.submit({ kind: 'putSnapshot', shard, seqFrom: seq, seqTo: seq }, (s) => s.putSnapshot(shard, point, copy));
  }

  async deleteSnapshot(shard: string, tick: number): Promise<boolean> {
    checkShardId(shard);
    checkUint('tick', tick);
    return (await this.submit({ kind: 'deleteSnapshot', shard, seqFrom: null, seqTo: null }, (s) => s.deleteSnapshot(shard, tick))) as boolean;
  }

  async putDigests(shard: string, digests: readonly StoredDigest[]): Promise<void> {
    checkShardId(shard);
    if (!Array.isArray(digests)) throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot store digests of shard "${shard}": expected an array, received ${describe(digests)}`, { shard, path: 'digests' });
    const copies = digests.map((d, i) => {
      checkUint(`digests[${i}].tick`, d?.tick);
      checkUint(`digests[${i}].seq`, d.seq, 1);
      if (!(d.digest instanceof Uint8Array) || d.digest.length !== HASH_BYTES) {
        throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot store the digest of tick ${d.tick} of shard "${shard}": expected 16 bytes, received ${describe(d.digest)}`, { shard, path: `digests[${i}].digest`, expected: '16 bytes', received: describe(d.digest) });
      }
      return { tick: d.tick, seq: d.seq, digest: d.digest.slice() };
    });
    if (copies.length === 0) return;
    await this.submit({ kind: 'putDigests', shard, seqFrom: null, seqTo: null }, (s) => s.putDigests(shard, copies));
  }

  async truncateBelow(shard: string, seqMin: number): Promise<void> {
    checkShardId(shard);
    checkUint('seqMin', seqMin, 1);
    await this.submit({ kind: 'truncateBelow', shard, seqFrom: seqMin, seqTo: null }, (s) => s.truncateBelow(shard, seqMin));
  }

  async truncateAbove(shard: string, seqMax: number): Promise<Entry[]> {
    checkShardId(shard);
    checkUint('seqMax', seqMax);
    return (await this.submit({ kind: 'truncateAbove', shard, seqFrom: null, seqTo: seqMax }, (s) => s.truncateAbove(shard, seqMax))) as Entry[];
  }

  async putMeta(shard: string, key: string, value: unknown): Promise<void> {
    checkShardId(shard);
    checkMetaKey(key);
    const bytes = value === null ? null : encodeCanonical(value, `meta "${key}"`);
    await this.submit({ kind: 'putMeta', shard, seqFrom: null, seqTo: null }, (s) => s.putMeta(shard, key, bytes));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
  }

  // --- internals -------------------------------------------------------------------------

  private submit(op: WriteOp, apply: (s: State) => unknown): Promise<unknown> {
    this.checkOpen();
    // Checked against the working state now: a refused write is refused at once and queues nothing.
    apply(this.working);
    return new Promise((resolve, reject) => {
      this.pending.push({ op, apply, resolve, reject });
      if (this.flushMode === 'microtask' && !this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(() => this.flush());
      }
    });
  }

  private data(shard: string): ShardData | undefined {
    checkShardId(shard);
    this.checkOpen();
    return this.durable.shards.get(shard);
  }

  private checkOpen(): void {
    if (this.closed) throw new AssertionFailed('the memory store is closed');
  }
}

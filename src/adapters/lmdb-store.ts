// LmdbLogStore: the embedded durable LogStore (src/ports/log-store.ts) on lmdb, in process.
//
// One lmdb environment per node directory, with named databases:
//
//   entries        [shard, seq]  → entry bytes (canonical body || XXH3-128), as written
//   snapshots      [shard, tick] → encoded snapshot (src/core/snapshot.ts)
//   snapshot-info  [shard, tick] → sealed [seq, lastHash, epoch, bytes]
//   digests        [shard, tick] → sealed [seq, digest]
//   shards         shard         → sealed { base: null | [seq, hash, tick, epoch] }
//   meta           [shard, key]  → sealed canonical value
//   (root)         'playout.store' → sealed { format }
//
// Keys sort numerically by seq within a shard, so a shard's entries are one contiguous key
// range in seq order and a range read is one cursor walk: entries use their own key codec
// (shard || 0 || seq as uint64 big-endian, ENTRY_KEYS below); the other databases use lmdb's
// ordered-binary encoding of [string, number] arrays (numbers as doubles, sign bit flipped). "sealed" = canonical msgpack
// || XXH3-128 of it (lmdb-records.ts), so every record read back is verified, not just entries.
//
// Durability. `overlappingSync: true` (the lmdb-js default on Linux): a transaction commits
// (becomes visible) first and is fsynced afterwards outside the writer lock, so the next
// transaction can commit while the previous one is being flushed. Every write here resolves
// only when lmdb reports its transaction *flushed* (`env.flushed`, captured right after the
// write is queued), never at mere commit. Rejected alternatives:
// - `noSync: true`: nothing is ever fsynced; a machine crash loses acknowledged entries.
// - `overlappingSync: false`: fsync inside the commit, under the writer lock; durable too,
//   but each commit then waits for the previous fsync (bench/store.bench.ts, "append").
// - `commitDelay > 0`: holds every append back by a timer (~10 ms resolution in Node) for
//   fewer transactions. Group commit already happens without it: all writes queued in one
//   event turn share a transaction (`eventTurnBatching`, default on), and writes arriving while
//   a flush is in progress share the next one. So `commitDelay: 0`.
// - `safeRestore`: on reopen after a process crash lmdb keeps the last committed (possibly not
//   yet flushed) transaction when the machine did not reboot. We keep that default and make
//   it durable at once: `open` commits and flushes a marker write before serving any read.
//
// Visibility. lmdb shows a committed transaction to readers before it is flushed. Reads here
// must not (a leader serving a peer an entry it could still lose forks the shard), so each
// shard has a *durable view* (head, firstSeq) that moves only when a write has flushed; entry
// reads are clamped to it. Snapshot, digest and meta records become readable at commit, which
// is harmless: they describe entries that are already durable.
//
// Appends take one of two paths.
//
// - Queued (the common case: a shard's next batch). The store keeps, per shard, a model of the
//   log's tail *as queued*: lastSeq, its hash and firstSeq after every write issued so far.
//   lmdb-js applies plain queued writes in call order and this process is the store's only
//   writer, so the model is exact while every write issued for the shard is a queued append or
//   has settled. The batch is checked against the model on the main thread, then queued as
//   plain puts inside one conditional block (`ifVersion([shard, lastSeq], IF_EXISTS, …)` with
//   `ifNoExists([shard, firstSeq of the batch], …)` nested): no JS runs inside the write
//   transaction, so a busy event loop (a region node parses, validates and applies ~4 ms of
//   every 10) no longer holds every commit back until it gets a turn. The conditions are the
//   safety net: if the append before this one was lost (its transaction failed), its last
//   entry is not stored, the block is skipped and this append rejects with
//   PLAYOUT_STORE_WRITE_FAILED instead of leaving a gap; and a stored entry is never overwritten.
// - In a transaction (`childTransaction`, one per call, nested in lmdb-js's batched
//   transaction): a JS callback checks the chain against what is committed or queued before it.
//   Used when the model is unknown: the first append of a shard (no entry yet: base record,
//   bootstrap from a snapshot), and after any write that changes a shard's entries or base
//   (truncations, an append in a transaction) was issued, until its callback has run: lmdb-js
//   runs a transaction callback only when its write thread reaches a slot not yet written,
//   *after* applying the plain writes queued behind the callback, so a queued append issued
//   before the callback ran could land before it. The callback of the last such write issued
//   sets the model to what it leaves. After a failed write (any) the model stays unknown until
//   every write issued for the shard has settled; then it is re-derived from the durable view
//   (appends issued after the failed one continued it: their blocks are skipped, they reject).
//
// Atomicity of a queued append (verified in lmdb-js 3.5.6, write.js and src/writer.cpp): a
// block (`batch`/`ifVersion` callback) is written to the instruction queue as START_BLOCK (or
// START_CONDITION_BLOCK), its puts, BLOCK_END, all synchronously within the call. The write
// thread (DoWrites) only ends a transaction at a slot not yet written when its block depth is 0
// (`!finishedProgress || conditionDepth` makes it wait instead); the one other way it commits
// early is an interruption by a synchronous transaction from the main thread (WaitForCallbacks,
// INTERRUPT_BATCH), which can only come after the whole block is written, and then the writer
// sees the next slot written and carries on (`*target & 0xf`) past the block. A put that fails
// (disk full, …) sets the worker's resultCode and the whole transaction is aborted, so a batch
// is committed whole or not at all; LMDB makes each commit atomic on disk.
//
// One process writes a node directory at a time (the region node). Other processes may open
// it `readOnly` (the CLI replaying a live node's store) and see the durable state at open.
// Nothing stops a second process from opening it for writing (LMDB serializes writers of
// several processes through its lock file; `writers` below only refuses a second writer in
// this process): its writes would not be in this process's views or tail models. Not supported.
import { mkdirSync, realpathSync, statSync } from 'node:fs';
import { IF_EXISTS, open, type Database, type RootDatabase } from 'lmdb';
import type { Entry } from '../core/entry.js';
import { AssertionFailed, PlayoutError, assert, describe, isPlayoutError } from '../core/errors.js';
import { HASH_BYTES, hashEquals } from '../core/hash.js';
import type { SnapshotHeader } from '../core/snapshot.js';
import type { LogStore, SnapshotInfo, StoredDigest, StoredHead, StoredSnapshot } from '../ports/log-store.js';
import { ENTRY_KEYS, SlabCopier, type SeqKey } from './lmdb-codecs.js';
import { openSealed, sealRecord } from './lmdb-records.js';
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
} from './lmdb-store-rules.js';

export const STORE_FORMAT = 1;
const STORE_KEY = 'playout.store';

type MetaKey = [string, string];

export interface LmdbLogStoreOptions {
  /** Open without writing (another process may be writing); the durable state at open is what reads see. */
  readOnly?: boolean;
}

interface View {
  head: StoredHead | null;
  /** Highest seq of the log (the head's seq, even when its record failed its checks). */
  lastSeq: number | null;
  firstSeq: number | null;
  /** A record at the head that failed its checks: `head` throws it. */
  error: PlayoutError | null;
  /** Order of the write that produced this view (views of older writes never replace it). */
  opId: number;
}

interface Base {
  seq: number;
  hash: Uint8Array;
  tick: number;
  epoch: number;
}

/** A shard's log tail as queued: after every write issued so far, settled or not. */
interface QueuedTail {
  lastSeq: number;
  hash: Uint8Array;
  firstSeq: number;
}

interface ShardWrites {
  /** Writes issued for the shard that may change its entries or base, not settled yet. */
  inFlight: number;
  /** The opId of the last of them issued. */
  lastChange: number;
  /**
   * The queued tail, or null when unknown: until the transaction callback of the last write
   * that changes the log has run (it sets the tail it leaves), or, when that write set none
   * (refused, failed), until every write issued has settled (re-derived from the durable view).
   */
  tail: QueuedTail | null;
}

interface WriteOutcome<T> {
  result: T;
  views: [string, View][];
}

/** Directories open for writing in this process: a second writer would keep stale views. */
const writers = new Set<string>();

const EMPTY_VIEW: View = { head: null, lastSeq: null, firstSeq: null, error: null, opId: 0 };

/** Entries `iterate` reads ahead per cursor step. */
const ITERATE_BATCH = 64;

/** A pass over stored entries, a batch at a time (LmdbLogStore.entryCursor). */
export interface EntryCursor {
  /** Append up to `max` next entries to `out`; the number appended, 0 at the end. */
  read(out: Entry[], max: number): number;
  /** Release the read transaction's cursor (also done when the pass ends). */
  close(): void;
}

function missingRecord(shard: string, seq: number): PlayoutError {
  return new PlayoutError('PLAYOUT_STORE_CORRUPT', `Cannot read entry ${seq} of shard "${shard}" from the store: its record is missing inside the retained log`, { shard, seq });
}

const EMPTY_CURSOR: EntryCursor = { read: () => 0, close: () => undefined };

class StoreEntryCursor implements EntryCursor {
  private expected: number;
  private before: Entry | null = null;
  private error: unknown = null;
  private done = false;

  constructor(
    private readonly shard: string,
    seqFrom: number,
    private readonly last: number,
    private readonly it: Iterator<{ key: unknown; value: Uint8Array }>,
  ) {
    this.expected = seqFrom;
  }

  read(out: Entry[], max: number): number {
    if (this.error !== null) {
      const err = this.error;
      this.error = null;
      throw err;
    }
    if (this.done) return 0;
    const shard = this.shard;
    const it = this.it;
    let expected = this.expected;
    let before = this.before;
    let n = 0;
    try {
      while (n < max) {
        const r = it.next();
        if (r.done === true) {
          this.done = true;
          if (expected <= this.last) throw missingRecord(shard, expected);
          break;
        }
        const seq = r.value.key as number;
        if (seq !== expected) throw missingRecord(shard, expected);
        const e = decodeStoredEntry(shard, seq, r.value.value);
        if (before !== null && !hashEquals(e.prev, before.hash)) checkStoredLink(shard, before, e);
        before = e;
        expected++;
        out.push(e);
        n++;
      }
    } catch (err) {
      this.close();
      // The good entries first: the error comes with the next read.
      if (n === 0) throw err;
      this.error = err;
    } finally {
      this.expected = expected;
      this.before = before;
    }
    return n;
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    this.it.return?.();
  }
}

/** Bytes of recently appended entries kept per shard (see Tail). */
// 12 MiB: about 100,000 entries of the demo game, 10 s of log at 10,000 inputs/s.
const TAIL_BYTES_MAX = 12 << 20;

/**
 * The bytes of a shard's most recent durable appends, in seq order, so that the readers of
 * the live tail (replication streams, a follower's repair after a short cut) are served the
 * bytes the log was just given instead of a cursor walk and a hash check per entry: at 10,000
 * inputs/s that read-back was 6 % of a leader's CPU (bench/http-latency.bench.ts profile).
 * Only bytes of flushed appends enter it, so it never shows more than the durable view; a
 * truncation empties it.
 *
 * Each append is kept as one block (its entries' bytes copied end to end, and where each ends)
 * rather than a view per entry: 100,000 views held for seconds were most of what a node's heap
 * grew by under load, and what its full collections then had to mark (tens of ms of pause).
 * Readers get fresh views, which die young.
 */
class Tail {
  /** Seq of the first entry of blocks[start]. */
  firstSeq = 0;
  /** Seq after the last entry held. */
  endSeq = 0;
  blocks: TailBlock[] = [];
  start = 0;
  bytes = 0;

  get lastSeq(): number {
    return this.endSeq - 1;
  }

  add(entries: readonly Entry[]): void {
    const first = entries[0]!.seq;
    if (this.blocks.length - this.start === 0 || first !== this.endSeq) {
      this.blocks = [];
      this.start = 0;
      this.bytes = 0;
      this.firstSeq = first;
    }
    let total = 0;
    for (let i = 0; i < entries.length; i++) total += entries[i]!.bytes.length;
    const data = new Uint8Array(total);
    const ends = new Int32Array(entries.length);
    let at = 0;
    for (let i = 0; i < entries.length; i++) {
      const b = entries[i]!.bytes;
      data.set(b, at);
      at += b.length;
      ends[i] = at;
    }
    this.blocks.push({ firstSeq: first, data, ends });
    this.endSeq = first + entries.length;
    this.bytes += total;
    while (this.bytes > TAIL_BYTES_MAX && this.blocks.length - this.start > 1) {
      const old = this.blocks[this.start]!;
      this.bytes -= old.data.length;
      this.start++;
      this.firstSeq = this.blocks[this.start]!.firstSeq;
    }
    if (this.start > 1024 && this.start * 2 > this.blocks.length) {
      this.blocks = this.blocks.slice(this.start);
      this.start = 0;
    }
  }

  /** Entries [seqFrom, seqTo] within bytesMax (at least one), or null unless all of them are held. */
  range(seqFrom: number, seqTo: number, bytesMax: number): Uint8Array[] | null {
    if (seqFrom < this.firstSeq || seqTo > this.lastSeq || seqTo < seqFrom) return null;
    // The block holding seqFrom: blocks are in seq order.
    let lo = this.start;
    let hi = this.blocks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.blocks[mid]!.firstSeq <= seqFrom) lo = mid;
      else hi = mid - 1;
    }
    const out: Uint8Array[] = [];
    let total = 0;
    let seq = seqFrom;
    for (let k = lo; k < this.blocks.length && seq <= seqTo; k++) {
      const { firstSeq, data, ends } = this.blocks[k]!;
      for (let i = seq - firstSeq; i < ends.length && seq <= seqTo; i++, seq++) {
        const from = i === 0 ? 0 : ends[i - 1]!;
        const length = ends[i]! - from;
        if (out.length > 0 && total + length > bytesMax) return out;
        out.push(new Uint8Array(data.buffer, data.byteOffset + from, length));
        total += length;
      }
    }
    return out;
  }
}

interface TailBlock {
  /** Seq of the block's first entry. */
  firstSeq: number;
  /** The entries' bytes end to end. */
  data: Uint8Array;
  /** Where each entry's bytes end in data. */
  ends: Int32Array;
}

export class LmdbLogStore implements LogStore {
  readonly dir: string;
  readonly readOnly: boolean;
  private readonly realDir: string;
  private readonly env: RootDatabase<Uint8Array, string>;
  private readonly entries: Database<Uint8Array, SeqKey>;
  private readonly snapshotBytes: Database<Uint8Array, SeqKey>;
  private readonly snapshotInfo: Database<Uint8Array, SeqKey>;
  private readonly digestDb: Database<Uint8Array, SeqKey>;
  private readonly shardDb: Database<Uint8Array, string>;
  private readonly metaDb: Database<Uint8Array, MetaKey>;
  private readonly views = new Map<string, View>();
  private readonly tails = new Map<string, Tail>();
  /** Counts truncations: an append flushed across one does not feed the tail. */
  private truncations = 0;
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Per shard: the queued tail model and the writes in flight that may change it. */
  private readonly shardWrites = new Map<string, ShardWrites>();
  /** Appends by path (tests check that the queued path is taken). */
  private readonly appendCounts = { queued: 0, inTransaction: 0 };
  private opSeq = 0;
  private closed = false;

  private constructor(dir: string, readOnly: boolean) {
    this.dir = dir;
    this.readOnly = readOnly;
    this.realDir = realpathSync(dir);
    this.env = open<Uint8Array, string>({
      path: dir,
      noSubdir: false,
      maxDbs: 16,
      encoding: 'binary',
      readOnly,
      // See the header: durable acknowledgement comes from awaiting the flush, not from these.
      overlappingSync: !readOnly,
      noSync: false,
      commitDelay: 0,
      eventTurnBatching: true,
      cache: false,
      compression: false,
    });
    const opts = { encoding: 'binary' as const, cache: false, compression: false };
    this.entries = this.env.openDB<Uint8Array, SeqKey>({ name: 'entries', ...opts, encoder: new SlabCopier(), keyEncoder: ENTRY_KEYS } as typeof opts & { name: string });
    this.snapshotBytes = this.env.openDB<Uint8Array, SeqKey>({ name: 'snapshots', ...opts });
    this.snapshotInfo = this.env.openDB<Uint8Array, SeqKey>({ name: 'snapshot-info', ...opts });
    this.digestDb = this.env.openDB<Uint8Array, SeqKey>({ name: 'digests', ...opts });
    this.shardDb = this.env.openDB<Uint8Array, string>({ name: 'shards', ...opts });
    this.metaDb = this.env.openDB<Uint8Array, MetaKey>({ name: 'meta', ...opts });
  }

  /** Open (creating unless readOnly) the store in `dir`. */
  static async open(dir: string, options: LmdbLogStoreOptions = {}): Promise<LmdbLogStore> {
    const readOnly = options.readOnly ?? false;
    let isDir = false;
    try {
      isDir = statSync(dir).isDirectory();
    } catch {
      isDir = false;
    }
    if (readOnly && !isDir) {
      throw new PlayoutError('PLAYOUT_SOURCE_NOT_FOUND', `Cannot open the store at ${dir}: no such directory`, { path: dir, expected: 'a store directory', received: 'nothing' });
    }
    if (!readOnly) {
      mkdirSync(dir, { recursive: true });
      const real = realpathSync(dir);
      if (writers.has(real)) {
        throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot open the store at ${dir} for writing: this process already has it open for writing (open it readOnly, or share the instance)`, { path: dir });
      }
    }
    let store: LmdbLogStore;
    try {
      store = new LmdbLogStore(dir, readOnly);
    } catch (err) {
      throw new PlayoutError(readOnly ? 'PLAYOUT_SOURCE_NOT_FOUND' : 'PLAYOUT_STORE_WRITE_FAILED', `Cannot open the store at ${dir}: ${(err as Error).message}`, { path: dir, cause: err });
    }
    if (!readOnly) {
      writers.add(store.realDir);
      // lmdb-js finishes each event turn's batch in a task of its own (write.js, queueTask),
      // and where that batch starts a transaction it makes a commit promise nobody holds: when
      // the commit fails (disk full) that promise and its `commitError` reject unhandled, which
      // ends a Node process. Every write here has its own promise and reports the failure; this
      // takes up lmdb's, right after the task that made it ('beforecommit' runs inside it).
      store.env.on('beforecommit', () => {
        queueMicrotask(() => {
          // (A function for both: lmdb's `committed.then` calls the first one unchecked.)
          store.env.committed.then(() => undefined, swallowCommitError);
        });
      });
    }
    try {
      await store.init();
    } catch (err) {
      writers.delete(store.realDir);
      await store.env.close();
      throw err;
    }
    return store;
  }

  private async init(): Promise<void> {
    const marker = this.env.getBinary(STORE_KEY);
    if (marker !== undefined) {
      const m = openSealed(marker, `the store marker of ${this.dir}`) as { format?: unknown } | null;
      if (m === null || m.format !== STORE_FORMAT) {
        throw new PlayoutError('PLAYOUT_STORE_CORRUPT', `Cannot open the store at ${this.dir}: expected store format ${STORE_FORMAT}, received ${describe(m?.format)}`, {
          path: this.dir,
          expected: String(STORE_FORMAT),
          received: describe(m?.format),
        });
      }
    } else if (this.readOnly) {
      // A directory without our marker is not a store (or one never opened for writing).
      throw new PlayoutError('PLAYOUT_SOURCE_NOT_FOUND', `Cannot open the store at ${this.dir}: it holds no playout store`, { path: this.dir });
    }
    if (!this.readOnly) {
      // Commit and flush one write before trusting anything read: after a process crash lmdb
      // may have restored a transaction that was committed but not yet flushed (see header).
      await this.write(() => {
        this.env.putSync(STORE_KEY, sealRecord({ format: STORE_FORMAT }));
        return { result: undefined, views: [] };
      });
    }
    for (const shard of this.shardDb.getKeys()) {
      this.views.set(shard, this.viewInTxn(shard, 0));
    }
  }

  // --- reads ---------------------------------------------------------------------------

  shards(): string[] {
    this.checkOpen();
    const out: string[] = [];
    for (const [shard, v] of this.views) if (v.head !== null || v.error !== null) out.push(shard);
    return out.sort();
  }

  head(shard: string): StoredHead | null {
    const v = this.view(shard);
    if (v.error !== null) throw v.error;
    return v.head;
  }

  firstSeq(shard: string): number | null {
    return this.view(shard).firstSeq;
  }

  get(shard: string, seq: number): Entry | null {
    checkUint('seq', seq, 1);
    const v = this.view(shard);
    if (v.lastSeq === null || v.firstSeq === null || seq < v.firstSeq || seq > v.lastSeq) return null;
    const bytes = this.entries.getBinary([shard, seq]);
    if (bytes === undefined) throw this.missing(shard, seq);
    return decodeStoredEntry(shard, seq, bytes);
  }

  range(shard: string, seqFrom: number, seqTo: number): Entry[] {
    const out: Entry[] = [];
    for (const e of this.iterate(shard, seqFrom, seqTo)) out.push(e);
    return out;
  }

  *iterate(shard: string, seqFrom: number, seqTo?: number): IterableIterator<Entry> {
    const cursor = this.entryCursor(shard, seqFrom, seqTo);
    const batch: Entry[] = [];
    try {
      for (;;) {
        batch.length = 0;
        if (cursor.read(batch, ITERATE_BATCH) === 0) return;
        for (let i = 0; i < batch.length; i++) yield batch[i]!;
      }
    } finally {
      cursor.close();
    }
  }

  /**
   * A pass over a shard's entries seqFrom..seqTo (default: the durable head), read a batch at a
   * time into the caller's array: one cursor walk, every record decoded, hash-checked and
   * checked against its key and the record before it. A replay reads through this instead of
   * `iterate`, so the per-entry work is a plain loop, not a generator step per entry. A damaged
   * or missing record ends a batch early with the good entries before it; the next `read`
   * throws it.
   */
  entryCursor(shard: string, seqFrom: number, seqTo?: number): EntryCursor {
    checkUint('seqFrom', seqFrom, 1);
    if (seqTo !== undefined) checkUint('seqTo', seqTo, 0);
    const v = this.view(shard);
    if (v.lastSeq === null || v.firstSeq === null || seqFrom < v.firstSeq) return EMPTY_CURSOR;
    const last = Math.min(seqTo ?? v.lastSeq, v.lastSeq);
    if (seqFrom > last) return EMPTY_CURSOR;
    return new StoreEntryCursor(shard, seqFrom, last, this.entries.getRange({ start: [shard, seqFrom], end: [shard, last + 1] })[Symbol.iterator]() as Iterator<{ key: unknown; value: Uint8Array }>);
  }

  rangeRaw(shard: string, seqFrom: number, seqTo: number, bytesMax: number): Uint8Array[] {
    checkUint('seqFrom', seqFrom, 1);
    checkUint('seqTo', seqTo, 0);
    checkUint('bytesMax', bytesMax, 1);
    const v = this.view(shard);
    const out: Uint8Array[] = [];
    if (v.lastSeq === null || v.firstSeq === null || seqFrom < v.firstSeq) return out;
    const last = Math.min(seqTo, v.lastSeq);
    if (seqFrom > last) return out;
    const cached = this.tails.get(shard)?.range(seqFrom, last, bytesMax);
    if (cached) return cached;
    let expected = seqFrom;
    let total = 0;
    for (const { key, value } of this.entries.getRange({ start: [shard, seqFrom], end: [shard, last + 1] })) {
      const seq = key as unknown as number;
      if (seq !== expected) throw this.missing(shard, expected);
      if (out.length > 0 && total + value.length > bytesMax) return out;
      checkRawEntry(shard, seq, value);
      out.push(value);
      total += value.length;
      expected++;
    }
    if (expected <= last) throw this.missing(shard, expected);
    return out;
  }

  snapshot(shard: string, tickMax?: number): StoredSnapshot | null {
    checkShardId(shard);
    if (tickMax !== undefined) checkUint('tickMax', tickMax);
    this.checkOpen();
    const info = this.latestSnapshotInTxn(shard, tickMax);
    if (info === null) return null;
    const bytes = this.snapshotBytes.getBinary([shard, info.tick]);
    if (bytes === undefined) {
      throw new PlayoutError('PLAYOUT_STORE_CORRUPT', `Cannot read the snapshot of shard "${shard}" at tick ${info.tick} from the store: its record is missing`, { shard, tick: info.tick });
    }
    checkStoredSnapshot(shard, info.tick, bytes);
    return { tick: info.tick, seq: info.seq, bytes };
  }

  snapshots(shard: string): SnapshotInfo[] {
    checkShardId(shard);
    this.checkOpen();
    return this.snapshotsInTxn(shard).map((s) => ({ tick: s.tick, seq: s.seq, bytes: s.bytes }));
  }

  digests(shard: string, tickFrom: number, tickTo: number): StoredDigest[] {
    checkShardId(shard);
    checkUint('tickFrom', tickFrom);
    checkUint('tickTo', tickTo);
    this.checkOpen();
    const out: StoredDigest[] = [];
    if (tickTo < tickFrom) return out;
    for (const { key, value } of this.digestDb.getRange({ start: [shard, tickFrom], end: [shard, tickTo + 1] })) {
      const tick = key[1];
      const rec = openSealed(value, `the digest of tick ${tick} of shard "${shard}"`, tick);
      if (!Array.isArray(rec) || rec.length !== 2 || typeof rec[0] !== 'number' || !(rec[1] instanceof Uint8Array) || rec[1].length !== HASH_BYTES) {
        throw new PlayoutError('PLAYOUT_STORE_CORRUPT', `Cannot read the digest of tick ${tick} of shard "${shard}" from the store: expected [seq, 16 bytes], received ${describe(rec)}`, { shard, tick });
      }
      out.push({ tick, seq: rec[0], digest: Uint8Array.from(rec[1]) });
    }
    return out;
  }

  getMeta<T = unknown>(shard: string, key: string): T | null {
    checkShardId(shard);
    checkMetaKey(key);
    this.checkOpen();
    const bytes = this.metaDb.getBinary([shard, key]);
    if (bytes === undefined) return null;
    return openSealed(bytes, `meta "${key}" of shard "${shard}"`) as T;
  }

  // --- writes --------------------------------------------------------------------------

  async append(shard: string, entries: readonly Entry[]): Promise<void> {
    checkShardId(shard);
    if (!Array.isArray(entries)) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot append to shard "${shard}": expected an array of entries, received ${describe(entries)}`, { shard, path: 'entries' });
    }
    if (entries.length === 0) return;
    // Checked before the write too, so a batch that cannot fit any head is refused without
    // one; where it joins the log is checked against the queued tail or inside the transaction.
    checkAppend(shard, entries, { seq: entries[0]!.seq - 1, hash: entries[0]!.prev });
    this.checkWritable();
    const w = this.shardWritesOf(shard);
    if (w.tail !== null) return this.appendQueued(shard, entries, w, w.tail);
    return this.appendInTransaction(shard, entries);
  }

  /** How many appends took each path since open (for tests: the queued path must not regress). */
  appendPaths(): { queued: number; inTransaction: number } {
    return { ...this.appendCounts };
  }

  /** Append onto a known queued tail: plain puts in one conditional block, no JS in the transaction. */
  private appendQueued(shard: string, entries: readonly Entry[], w: ShardWrites, tail: QueuedTail): Promise<void> {
    // The same check (and refusal) as inside a transaction, against the tail as queued.
    checkAppend(shard, entries.length === 1 ? entries : [entries[0]!], { seq: tail.lastSeq, hash: tail.hash });
    const db = this.entries;
    const joins = tail.lastSeq;
    const first = entries[0]!.seq;
    // Two conditions, checked by the write thread as it applies the block: the entry it
    // continues is stored (when an append before it was lost, its transaction having failed,
    // it is not, and this one must not be written after a hole), and its first seq is not
    // (nothing the model does not know of, e.g. another process writing: never overwrite).
    let fresh: Promise<boolean> | null = null;
    const joined = db.ifVersion([shard, joins], IF_EXISTS, () => {
      fresh = db.ifNoExists([shard, first], () => {
        for (let i = 0; i < entries.length; i++) {
          const e = entries[i]!;
          void db.put([shard, e.seq], e.bytes);
        }
      });
    });
    assert(fresh !== null, 'lmdb-js queues a nested block at once');
    // Captured synchronously: `flushed` follows the transaction the block was just queued in.
    const flushed = this.flushedNow();
    const last = entries[entries.length - 1]!;
    const opId = ++this.opSeq;
    const view: View = { head: headOfEntry(last), lastSeq: last.seq, firstSeq: tail.firstSeq, error: null, opId };
    w.tail = { lastSeq: last.seq, hash: last.hash, firstSeq: tail.firstSeq };
    w.inFlight++;
    this.appendCounts.queued++;
    const truncations = this.truncations;
    const done = Promise.all([joined, fresh, flushed]).then(
      ([didJoin, wasFresh]) => {
        if (!didJoin || !wasFresh) {
          this.settle(shard, false);
          const why = !didJoin ? `entry ${joins}, which they continue, is not stored (an append before them failed)` : `entry ${first} is already stored (written by another process?)`;
          throw new PlayoutError('PLAYOUT_STORE_WRITE_FAILED', `Cannot write entries ${first}..${last.seq} of shard "${shard}" to the store at ${this.dir}: ${why}`, { shard, seq: first, path: this.dir });
        }
        this.publish(shard, view);
        this.settle(shard, true);
        this.feedTail(shard, entries, truncations);
      },
      (err: unknown) => {
        this.settle(shard, false);
        return this.writeFailed(err);
      },
    );
    return this.track(done);
  }

  /** Append inside a write transaction, checked against what it holds (the first append of a shard, or an unknown tail). */
  private appendInTransaction(shard: string, entries: readonly Entry[]): Promise<void> {
    const truncations = this.truncations;
    this.appendCounts.inTransaction++;
    const written = this.write(() => {
      const lastSeq = this.lastSeqInTxn(shard);
      let head: { seq: number; hash: Uint8Array } | null;
      let firstSeq: number;
      let newBase: Base | null = null;
      let record: { base: Base | null } | null = null;
      if (lastSeq !== null) {
        const bytes = this.entries.getBinary([shard, lastSeq]);
        assert(bytes !== undefined, 'the last key has a value');
        head = { seq: lastSeq, hash: bytes.subarray(bytes.length - HASH_BYTES) };
        firstSeq = this.firstSeqInTxn(shard)!;
      } else {
        record = this.shardRecordInTxn(shard);
        if (record?.base) head = record.base;
        else {
          const snap = this.latestSnapshotInTxn(shard);
          head = snap === null ? null : { seq: snap.seq, hash: snap.lastHash };
          // Bootstrapping from a snapshot: it becomes the base the log replays from.
          if (snap !== null) newBase = { seq: snap.seq, hash: snap.lastHash, tick: snap.tick, epoch: snap.epoch };
        }
        firstSeq = entries[0]!.seq;
      }
      // The batch's own links were checked above: here only where it joins the log.
      checkAppend(shard, entries.length === 1 ? entries : [entries[0]!], head);
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        this.entries.putSync([shard, e.seq], e.bytes);
      }
      if (newBase !== null || (lastSeq === null && record === null)) {
        this.shardDb.putSync(shard, encodeShardRecord(newBase ?? record?.base ?? null));
      }
      const last = entries[entries.length - 1]!;
      return { result: undefined, views: [[shard, { head: headOfEntry(last), lastSeq: last.seq, firstSeq, error: null, opId: 0 }]] };
    }, shard, true);
    return written.then(() => this.feedTail(shard, entries, truncations));
  }

  /** Flushed appends complete in the order they were made, so the tail grows in seq order. */
  private feedTail(shard: string, entries: readonly Entry[], truncations: number): void {
    if (truncations !== this.truncations) {
      this.tails.delete(shard);
      return;
    }
    let tail = this.tails.get(shard);
    if (tail === undefined) this.tails.set(shard, (tail = new Tail()));
    tail.add(entries);
  }

  async putSnapshot(shard: string, tick: number, seq: number, bytes: Uint8Array, header?: SnapshotHeader): Promise<void> {
    checkShardId(shard);
    checkUint('tick', tick);
    checkUint('seq', seq, 1);
    const point = checkSnapshotForPut(shard, tick, seq, bytes, header);
    return this.write(() => {
      const record = this.shardRecordInTxn(shard);
      if (record?.base && seq < record.base.seq) {
        throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot store the snapshot of shard "${shard}" at tick ${tick}: the retained log starts after seq ${record.base.seq}, and this snapshot (seq ${seq}) is older`, {
          shard,
          tick,
          path: 'seq',
          expected: `>= ${record.base.seq}`,
          received: String(seq),
        });
      }
      const stored = this.entries.getBinary([shard, seq]);
      checkSnapshotMatchesLog(shard, point, stored === undefined ? null : decodeStoredEntry(shard, seq, stored));
      this.snapshotBytes.putSync([shard, tick], bytes);
      this.snapshotInfo.putSync([shard, tick], sealRecord([point.seq, point.lastHash, point.epoch, point.bytes]));
      if (record === null) this.shardDb.putSync(shard, encodeShardRecord(null));
      return { result: undefined, views: [[shard, this.viewInTxn(shard, 0)]] };
    }, shard, false);
  }

  async deleteSnapshot(shard: string, tick: number): Promise<boolean> {
    checkShardId(shard);
    checkUint('tick', tick);
    return this.write(() => {
      const info = this.snapshotsInTxn(shard).find((s) => s.tick === tick);
      if (info === undefined) return { result: false, views: [] };
      const base = this.shardRecordInTxn(shard)?.base ?? null;
      const hasEntries = this.lastSeqInTxn(shard) !== null;
      const latest = this.latestSnapshotInTxn(shard);
      // The base of a truncated log, or the snapshot a log-less shard stands on.
      if ((base !== null && base.seq === info.seq) || (base === null && !hasEntries && latest?.tick === tick)) throw refuseDeleteBase(shard, tick);
      this.snapshotBytes.removeSync([shard, tick]);
      this.snapshotInfo.removeSync([shard, tick]);
      return { result: true, views: [[shard, this.viewInTxn(shard, 0)]] };
    }, shard, false);
  }

  async putDigests(shard: string, digests: readonly StoredDigest[]): Promise<void> {
    checkShardId(shard);
    if (!Array.isArray(digests)) throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot store digests of shard "${shard}": expected an array, received ${describe(digests)}`, { shard, path: 'digests' });
    const records: [number, Uint8Array][] = digests.map((d, i) => {
      checkUint(`digests[${i}].tick`, d?.tick);
      checkUint(`digests[${i}].seq`, d.seq, 1);
      if (!(d.digest instanceof Uint8Array) || d.digest.length !== HASH_BYTES) {
        throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot store the digest of tick ${d.tick} of shard "${shard}": expected 16 bytes, received ${describe(d.digest)}`, { shard, path: `digests[${i}].digest`, expected: '16 bytes', received: describe(d.digest) });
      }
      return [d.tick, sealRecord([d.seq, d.digest])];
    });
    if (records.length === 0) return;
    // Plain puts, not a transaction callback: nothing here needs to read inside the write
    // transaction, and a callback would hold the whole transaction (the appends queued with
    // these digests, once per tick) until this process's event loop gets a turn to run it.
    const puts = records.map(([tick, rec]) => this.digestDb.put([shard, tick], rec));
    const flushed = this.flushedNow();
    const done = Promise.all([...puts, flushed]).then(
      () => undefined,
      (err: unknown) => {
        // Whatever shared the failed transaction is lost too: the shard's queued tail with it.
        this.shardWritesRaw(shard).tail = null;
        return this.writeFailed(err);
      },
    );
    return this.track(done);
  }

  async truncateBelow(shard: string, seqMin: number): Promise<void> {
    checkShardId(shard);
    checkUint('seqMin', seqMin, 1);
    this.truncations++;
    this.tails.delete(shard);
    return this.write(() => {
      const v = this.viewInTxn(shard, 0);
      if (v.firstSeq !== null && seqMin <= v.firstSeq) return { result: undefined, views: [] };
      const snaps = this.snapshotsInTxn(shard);
      const base = snaps.find((s) => s.seq === seqMin - 1);
      if (base === undefined) throw refuseTruncateBelow(shard, seqMin, snaps.map((s) => s.seq));
      for (const key of this.entries.getKeys({ start: [shard, 0], end: [shard, seqMin] })) this.entries.removeSync([shard, key as unknown as number]);
      for (const s of snaps) {
        if (s.seq < base.seq) {
          this.snapshotBytes.removeSync([shard, s.tick]);
          this.snapshotInfo.removeSync([shard, s.tick]);
        }
      }
      for (const key of this.digestDb.getKeys({ start: [shard, 0], end: [shard, base.tick] })) this.digestDb.removeSync(key);
      this.shardDb.putSync(shard, encodeShardRecord({ seq: base.seq, hash: base.lastHash, tick: base.tick, epoch: base.epoch }));
      return { result: undefined, views: [[shard, this.viewInTxn(shard, 0)]] };
    }, shard, true);
  }

  async truncateAbove(shard: string, seqMax: number): Promise<Entry[]> {
    checkShardId(shard);
    checkUint('seqMax', seqMax);
    // Entries above seqMax are about to be replaced: their bytes must not be served again.
    this.truncations++;
    this.tails.delete(shard);
    return this.write(() => {
      const v = this.viewInTxn(shard, 0);
      if (v.head === null || v.firstSeq === null || seqMax >= v.head.seq) return { result: [] as Entry[], views: [] };
      const baseSeq = v.firstSeq - 1;
      if (seqMax < baseSeq) throw refuseTruncateAbove(shard, seqMax, baseSeq);
      const removed: Entry[] = [];
      let before: Entry | null = null;
      for (const { key, value } of this.entries.getRange({ start: [shard, seqMax + 1], end: [shard, Infinity] })) {
        const e = decodeStoredEntry(shard, key as unknown as number, value);
        if (before !== null) checkStoredLink(shard, before, e);
        before = e;
        removed.push(e);
      }
      for (const e of removed) this.entries.removeSync([shard, e.seq]);
      if (removed.length > 0) {
        for (const s of this.snapshotsInTxn(shard)) {
          if (s.seq > seqMax) {
            this.snapshotBytes.removeSync([shard, s.tick]);
            this.snapshotInfo.removeSync([shard, s.tick]);
          }
        }
        // A tick closed after seqMax was closed by a removed tick entry, whose tick is at
        // least that of the first removed entry.
        for (const { key, value } of this.digestDb.getRange({ start: [shard, removed[0]!.tick], end: [shard, Infinity] })) {
          const rec = openSealed(value, `the digest of tick ${key[1]} of shard "${shard}"`, key[1]) as [number, Uint8Array];
          if (rec[0] > seqMax) this.digestDb.removeSync(key);
        }
      }
      return { result: removed, views: [[shard, this.viewInTxn(shard, 0)]] };
    }, shard, true);
  }

  async putMeta(shard: string, key: string, value: unknown): Promise<void> {
    checkShardId(shard);
    checkMetaKey(key);
    const rec = value === null ? null : sealRecord(value, `meta "${key}"`);
    return this.write(() => {
      if (rec === null) this.metaDb.removeSync([shard, key]);
      else this.metaDb.putSync([shard, key], rec);
      return { result: undefined, views: [] };
    }, shard, false);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
    await this.env.close();
    if (!this.readOnly) writers.delete(this.realDir);
  }

  // --- internals -----------------------------------------------------------------------

  /**
   * Run `fn` in its own child transaction of lmdb-js's current batch and resolve with its
   * result once that transaction is flushed; then publish the views it computed. `shard`: the
   * shard whose queued tail a failure makes unknown; `changesLog`: the write may change its
   * entries or base, so the tail is unknown from now until every write issued for it settled.
   */
  private write<T>(fn: () => WriteOutcome<T>, shard: string | null = null, changesLog = false): Promise<T> {
    this.checkWritable();
    // Ordered by call: callbacks run in call order and each sees every write queued before it.
    const opId = ++this.opSeq;
    const w = shard !== null && changesLog ? this.shardWritesRaw(shard) : null;
    if (w !== null) {
      w.tail = null;
      w.inFlight++;
      w.lastChange = opId;
    }
    const txn = this.env.childTransaction(() => {
      const out = fn();
      for (const [s, v] of out.views) {
        v.opId = opId;
        // The last write issued that changes this log, and it has now run: what it leaves is
        // the tail as queued (no append was issued since, and plain writes queued from now on
        // are applied after this callback), so appends need not wait for everything to settle.
        // Its transaction may still fail: the conditional block of the appends continuing it
        // then skips them (see appendQueued).
        if (w !== null && s === shard && w.lastChange === opId) w.tail = queuedTailOfView(v);
      }
      return out;
    });
    const flushed = this.flushedNow();
    const done = Promise.all([txn, flushed]).then(
      ([out]) => {
        for (const [s, v] of out.views) this.publish(s, v);
        if (shard !== null && changesLog) this.settle(shard, true);
        return out.result;
      },
      (err: unknown) => {
        if (shard !== null) {
          if (changesLog) this.settle(shard, false);
          // A write of the shard that failed (not one refused by its checks): whatever shared
          // its transaction is lost too.
          else if (!(err instanceof PlayoutError || err instanceof AssertionFailed)) this.shardWritesRaw(shard).tail = null;
        }
        return this.writeFailed(err);
      },
    );
    return this.track(done);
  }

  /** `env.flushed` now: it follows the transaction the last write was queued in. */
  private flushedNow(): Promise<unknown> {
    const flushed = new Promise<unknown>((resolve, reject) => {
      this.env.flushed.then(resolve, reject);
    });
    flushed.catch(() => undefined);
    return flushed;
  }

  private track<T>(done: Promise<T>): Promise<T> {
    this.inFlight.add(done);
    const forget = (): void => {
      this.inFlight.delete(done);
    };
    done.then(forget, forget);
    return done;
  }

  /** Views of older writes never replace newer ones. */
  private publish(shard: string, v: View): void {
    const current = this.views.get(shard);
    if (current === undefined || current.opId < v.opId) this.views.set(shard, v);
  }

  private shardWritesRaw(shard: string): ShardWrites {
    let w = this.shardWrites.get(shard);
    if (w === undefined) this.shardWrites.set(shard, (w = { inFlight: 0, lastChange: 0, tail: null }));
    return w;
  }

  /** The shard's writes, its queued tail re-derived from the durable view once nothing is in flight. */
  private shardWritesOf(shard: string): ShardWrites {
    const w = this.shardWritesRaw(shard);
    if (w.tail === null && w.inFlight === 0) w.tail = queuedTailOfView(this.views.get(shard));
    return w;
  }

  /** A write that may change the shard's log settled; a failed one leaves its tail unknown. */
  private settle(shard: string, ok: boolean): void {
    const w = this.shardWritesRaw(shard);
    w.inFlight--;
    if (!ok) w.tail = null;
  }

  /** The rejection of a failed write: refusals as they are, lmdb's failures as PLAYOUT_STORE_WRITE_FAILED. */
  private writeFailed(err: unknown): Promise<never> {
    if (err instanceof PlayoutError || err instanceof AssertionFailed) return Promise.reject(err);
    const wrap = (cause: unknown): PlayoutError =>
      new PlayoutError('PLAYOUT_STORE_WRITE_FAILED', `Cannot write to the store at ${this.dir}: ${(cause as Error)?.message ?? String(cause)}`, { path: this.dir, cause });
    // lmdb-js rejects every write of a failed commit with "Commit failed" and the reason in
    // `commitError`, a promise rejected in the same callback: take the reason if it is there.
    const commitError = (err as { commitError?: unknown } | null)?.commitError;
    if (!isThenable(commitError)) return Promise.reject(wrap(err));
    const reason = new Promise<unknown>((resolve) => {
      commitError.then(() => resolve(err), resolve);
      setImmediate(() => resolve(err));
    });
    return reason.then((cause) => {
      throw wrap(cause);
    });
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.readOnly) throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot write to the store at ${this.dir}: it was opened read-only`, { path: this.dir });
  }

  private checkOpen(): void {
    if (this.closed) throw new AssertionFailed(`the store at ${this.dir} is closed`);
  }

  private view(shard: string): View {
    checkShardId(shard);
    this.checkOpen();
    return this.views.get(shard) ?? EMPTY_VIEW;
  }

  private missing(shard: string, seq: number): PlayoutError {
    return missingRecord(shard, seq);
  }

  // Helpers below read through lmdb-js's current transaction: the write transaction inside
  // `write` callbacks (seeing what is queued before), a read snapshot otherwise.

  private lastSeqInTxn(shard: string): number | null {
    for (const key of this.entries.getKeys({ start: [shard, Infinity], end: [shard, 0], reverse: true, limit: 1 })) return key as unknown as number;
    return null;
  }

  private firstSeqInTxn(shard: string): number | null {
    for (const key of this.entries.getKeys({ start: [shard, 0], end: [shard, Infinity], limit: 1 })) return key as unknown as number;
    return null;
  }

  private shardRecordInTxn(shard: string): { base: Base | null } | null {
    const bytes = this.shardDb.getBinary(shard);
    if (bytes === undefined) return null;
    const rec = openSealed(bytes, `the record of shard "${shard}"`) as { base?: unknown } | null;
    const b = rec?.base;
    if (b === null) return { base: null };
    if (!Array.isArray(b) || b.length !== 4 || !(b[1] instanceof Uint8Array)) {
      throw new PlayoutError('PLAYOUT_STORE_CORRUPT', `Cannot read the record of shard "${shard}" from the store: expected { base }, received ${describe(rec)}`, { shard });
    }
    return { base: { seq: b[0] as number, hash: Uint8Array.from(b[1]), tick: b[2] as number, epoch: b[3] as number } };
  }

  private snapshotsInTxn(shard: string): SnapshotPoint[] {
    const out: SnapshotPoint[] = [];
    for (const { key, value } of this.snapshotInfo.getRange({ start: [shard, 0], end: [shard, Infinity] })) out.push(decodeSnapshotInfo(shard, key[1], value));
    return out;
  }

  private latestSnapshotInTxn(shard: string, tickMax?: number): SnapshotPoint | null {
    for (const { key, value } of this.snapshotInfo.getRange({ start: [shard, tickMax ?? Infinity], end: [shard, -1], reverse: true, limit: 1 })) {
      return decodeSnapshotInfo(shard, key[1], value);
    }
    return null;
  }

  /** The view of a shard computed from what the current transaction sees. */
  private viewInTxn(shard: string, opId: number): View {
    const lastSeq = this.lastSeqInTxn(shard);
    if (lastSeq !== null) {
      const firstSeq = this.firstSeqInTxn(shard);
      const bytes = this.entries.getBinary([shard, lastSeq])!;
      try {
        return { head: headOfEntry(decodeStoredEntry(shard, lastSeq, bytes)), lastSeq, firstSeq, error: null, opId };
      } catch (err) {
        if (!isPlayoutError(err)) throw err;
        return { head: null, lastSeq, firstSeq, error: err, opId };
      }
    }
    const base = this.shardRecordInTxn(shard)?.base ?? null;
    if (base !== null) return { head: { seq: base.seq, hash: base.hash, tick: base.tick, epoch: base.epoch }, lastSeq: base.seq, firstSeq: base.seq + 1, error: null, opId };
    const snap = this.latestSnapshotInTxn(shard);
    if (snap !== null) return { head: { seq: snap.seq, hash: snap.lastHash, tick: snap.tick, epoch: snap.epoch }, lastSeq: snap.seq, firstSeq: snap.seq + 1, error: null, opId };
    return { head: null, lastSeq: null, firstSeq: null, error: null, opId };
  }
}

/** The tail a queued append can continue: the durable view's, when it ends in a stored entry. */
function queuedTailOfView(v: View | undefined): QueuedTail | null {
  if (v === undefined || v.error !== null || v.head === null || v.firstSeq === null || v.head.seq < v.firstSeq) return null;
  return { lastSeq: v.head.seq, hash: v.head.hash, firstSeq: v.firstSeq };
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return typeof (x as PromiseLike<unknown> | null)?.then === 'function';
}

/** Takes up a failed commit's rejection and its `commitError` (the writes' own promises report it). */
function swallowCommitError(err: unknown): void {
  const commitError = (err as { commitError?: unknown } | null)?.commitError;
  if (isThenable(commitError)) commitError.then(undefined, () => undefined);
}

function encodeShardRecord(base: Base | null): Uint8Array {
  return sealRecord({ base: base === null ? null : [base.seq, base.hash, base.tick, base.epoch] });
}

function decodeSnapshotInfo(shard: string, tick: number, bytes: Uint8Array): SnapshotPoint {
  const rec = openSealed(bytes, `the snapshot info of tick ${tick} of shard "${shard}"`, tick);
  if (!Array.isArray(rec) || rec.length !== 4 || typeof rec[0] !== 'number' || !(rec[1] instanceof Uint8Array) || typeof rec[2] !== 'number' || typeof rec[3] !== 'number') {
    throw new PlayoutError('PLAYOUT_STORE_CORRUPT', `Cannot read the snapshot info of tick ${tick} of shard "${shard}" from the store: expected [seq, lastHash, epoch, bytes], received ${describe(rec)}`, { shard, tick });
  }
  // msgpack hands binary out as Buffers; the port speaks plain Uint8Array.
  return { tick, seq: rec[0], lastHash: Uint8Array.from(rec[1]), epoch: rec[2], bytes: rec[3] };
}

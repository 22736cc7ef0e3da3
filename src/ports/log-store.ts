// The durable store of a node: entries by (shard, seq), snapshots by (shard, tick), tick
// digests by (shard, tick), and small per-shard metadata (applied seq, epoch, fences …).
//
// Reads are synchronous (lmdb reads are memory-mapped; the simulated twin is a Map), writes
// resolve when durable. Every implementation checks on append that entries continue the
// stored chain (seq = head+1, prev = hash at head) and on read that records are intact.
//
// Implementations: src/adapters/lmdb-store.ts (the embedded default) and its simulated twin
// test/sim/log-store.ts (crashes and write faults on demand). Both pass
// test/adapters/log-store-contract.ts, which is the executable form of the rules below.
//
// Rules every implementation keeps:
// - Reads see only durable writes. An entry whose append has not resolved yet is not in
//   `head`, `get`, `range` or `iterate`: a leader must not serve a peer an entry it could
//   still lose in a crash (the peer would then hold a seq the restarted leader reuses: a fork).
// - The log is a contiguous run [firstSeq, head]. After `truncateBelow` it starts right after
//   a snapshot (its *base*); when a truncation leaves no entries, `head` is that base.
// - Every append, snapshot, digest or meta write is atomic: after a crash it is wholly there
//   or wholly absent. Writes are applied in call order.
// - A record that fails its checks on read (hash, the seq and shard of its key) throws
//   PLAYOUT_STORE_CORRUPT naming the seq (or tick); it is never returned.
// - A write that fails (I/O error, disk full, a simulated fault) rejects with
//   PLAYOUT_STORE_WRITE_FAILED and leaves nothing of itself; the store stays consistent.
import type { Entry } from '../core/entry.js';
import type { SnapshotHeader } from '../core/snapshot.js';

export interface StoredHead {
  readonly seq: number;
  readonly hash: Uint8Array;
  readonly tick: number;
  readonly epoch: number;
}

export interface StoredDigest {
  readonly tick: number;
  /** Seq of the tick entry that closed it. */
  readonly seq: number;
  readonly digest: Uint8Array;
}

export interface SnapshotInfo {
  readonly tick: number;
  /** Seq of the tick entry closing `tick` (the snapshot's head). */
  readonly seq: number;
  readonly bytes: number;
}

export interface StoredSnapshot {
  readonly tick: number;
  readonly seq: number;
  /** The encoded snapshot (src/core/snapshot.ts), its trailing hash verified. */
  readonly bytes: Uint8Array;
}

export interface LogStore {
  /** Shards with at least one entry or snapshot. */
  shards(): string[];

  /**
   * The highest durable seq of the shard with its hash, tick and epoch; when every entry was
   * truncated, the base snapshot's position (seq, last hash, tick, epoch); null for nothing.
   */
  head(shard: string): StoredHead | null;
  /** Lowest seq still retained (1 until truncated; base seq + 1 after), or null when the shard has no log. */
  firstSeq(shard: string): number | null;

  /**
   * Append entries durably (group commit: one transaction per call, many calls may share a
   * flush) and resolve once they survive a crash. The first must continue the head
   * (seq = head+1, prev = hash at head); for a shard without entries either a genesis at seq 1
   * with zero prev, or the entry right after the latest snapshot (bootstrap from a peer's
   * snapshot; that snapshot becomes the base). Each next entry must chain to the one before it,
   * and every entry must belong to `shard`. Appends still in flight count: a second call may
   * continue the first before it resolved. Throws PLAYOUT_STORE_CONFLICT otherwise, and writes
   * nothing of the batch. An empty batch resolves at once.
   */
  append(shard: string, entries: readonly Entry[]): Promise<void>;

  /** One entry, decoded and verified, or null if not held. */
  get(shard: string, seq: number): Entry | null;
  /**
   * Entries [seqFrom, seqTo] in order, verified (hash, key, chain within the range); a
   * contiguous run starting at seqFrom, cut at the head. Empty when seqFrom is not held
   * (below firstSeq or above head): callers compare with firstSeq/head to tell which.
   */
  range(shard: string, seqFrom: number, seqTo: number): Entry[];
  /**
   * Encoded entries [seqFrom, seqTo] without decoding (for serving peers), up to bytesMax in
   * total but always at least one when seqFrom is held. Each record's hash is still verified.
   */
  rangeRaw(shard: string, seqFrom: number, seqTo: number, bytesMax: number): Uint8Array[];
  /**
   * Lazily iterate entries from seqFrom to seqTo (default: the head at the time of the call),
   * in constant memory, verified like `range`. Empty when seqFrom is not held.
   */
  iterate(shard: string, seqFrom: number, seqTo?: number): IterableIterator<Entry>;

  /**
   * Store an encoded snapshot. The store decodes it once to check that it belongs to
   * (shard, tick, seq) and to learn its last hash and epoch (the chain base after truncation);
   * a corrupt or mismatching snapshot is refused with PLAYOUT_INVALID_ARGUMENT. Replaces a
   * snapshot at the same tick. A caller that encoded the bytes itself may pass the snapshot's
   * fields (`header`): the store then checks the bytes' hash and takes the fields as given.
   */
  putSnapshot(shard: string, tick: number, seq: number, bytes: Uint8Array, header?: SnapshotHeader): Promise<void>;
  /** The latest snapshot at or below `tickMax` (default: the latest), or null. */
  snapshot(shard: string, tickMax?: number): StoredSnapshot | null;
  /** Every snapshot held, by tick ascending (no bytes read). */
  snapshots(shard: string): SnapshotInfo[];
  /**
   * Delete one snapshot (retention of snapshots while keeping the log). Refuses the base
   * snapshot of a truncated log (PLAYOUT_INVALID_ARGUMENT): the log could no longer be replayed.
   * Resolves false when there was none at that tick.
   */
  deleteSnapshot(shard: string, tick: number): Promise<boolean>;

  putDigests(shard: string, digests: readonly StoredDigest[]): Promise<void>;
  /** Digests held for ticks [tickFrom, tickTo], ascending (gaps where none was stored). */
  digests(shard: string, tickFrom: number, tickTo: number): StoredDigest[];

  /**
   * Retention: drop entries with seq < seqMin. seqMin - 1 must be the seq of a snapshot held
   * (it becomes the base the log replays from), else PLAYOUT_INVALID_ARGUMENT and nothing
   * changes. Snapshots older than the base and digests of ticks before it are dropped too: the
   * store keeps exactly what can be rebuilt. seqMin <= firstSeq is a no-op. The base may lie
   * beyond the head (a follower bootstrapping from a peer's newer snapshot drops its whole log).
   */
  truncateBelow(shard: string, seqMin: number): Promise<void>;
  /**
   * Drop entries with seq > seqMax (a divergent suffix after failover) and return them,
   * decoded, in seq order. Snapshots and digests of ticks closed after seqMax go too (they
   * describe the divergent state). seqMax below the base is refused (PLAYOUT_INVALID_ARGUMENT).
   * Metadata is the caller's: it does not change `applied` or fences.
   */
  truncateAbove(shard: string, seqMax: number): Promise<Entry[]>;

  /** A small canonical value (applied seq, fences, epoch promises …), or null. */
  getMeta<T = unknown>(shard: string, key: string): T | null;
  /** Store a canonical value (PLAYOUT_VALUE_NOT_CANONICAL otherwise); null deletes the key. */
  putMeta(shard: string, key: string, value: unknown): Promise<void>;

  /** Wait for writes in flight, then release the store. Later calls throw. */
  close(): Promise<void>;
}

// The durable store of a node: entries by (shard, seq), snapshots by (shard, tick), tick
// digests by (shard, tick), and small per-shard metadata (applied seq, epoch, fences …).
//
// Reads are synchronous (lmdb reads are memory-mapped; the simulated twin is a Map), writes
// resolve when durable. Every implementation checks on append that entries continue the
// stored chain (seq = head+1, prev = hash at head) and on read that records are intact.
import type { Entry } from '../core/entry.js';

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
  readonly seq: number;
  readonly bytes: number;
}

export interface LogStore {
  /** Shards with at least one entry or snapshot. */
  shards(): string[];

  /** Highest seq held for the shard, or null when it holds nothing. */
  head(shard: string): StoredHead | null;
  /** Lowest seq still retained (after truncation), or null. */
  firstSeq(shard: string): number | null;

  /**
   * Append entries durably (group commit: one transaction per call, many calls may share a
   * flush). The first must continue the head (seq = head+1, prev = hash at head; for an empty
   * shard a genesis at seq 1 or the entry right after the latest snapshot). Throws
   * PLAYOUT_STORE_CONFLICT otherwise, and writes nothing of the batch.
   */
  append(shard: string, entries: readonly Entry[]): Promise<void>;

  /** One entry, decoded and verified, or null if not held. */
  get(shard: string, seq: number): Entry | null;
  /** Entries [seqFrom, seqTo], in order, verified; stops early at a missing seq. */
  range(shard: string, seqFrom: number, seqTo: number): Entry[];
  /** Encoded entries [seqFrom, seqTo] without decoding (for serving peers), up to bytesMax total (at least one). */
  rangeRaw(shard: string, seqFrom: number, seqTo: number, bytesMax: number): Uint8Array[];
  /** Lazily iterate entries from seqFrom to the head (constant memory). */
  iterate(shard: string, seqFrom: number, seqTo?: number): IterableIterator<Entry>;

  putSnapshot(shard: string, tick: number, seq: number, bytes: Uint8Array): Promise<void>;
  /** Encoded snapshot at exactly `tick`, or the latest at or below `tickMax` (default: latest). */
  snapshot(shard: string, tickMax?: number): { tick: number; seq: number; bytes: Uint8Array } | null;
  snapshots(shard: string): SnapshotInfo[];

  putDigests(shard: string, digests: readonly StoredDigest[]): Promise<void>;
  digests(shard: string, tickFrom: number, tickTo: number): StoredDigest[];

  /** Drop entries with seq < seqMin (retention below the oldest kept snapshot). */
  truncateBelow(shard: string, seqMin: number): Promise<void>;
  /** Drop entries with seq > seqMax (a divergent suffix after failover); returns what was removed. */
  truncateAbove(shard: string, seqMax: number): Promise<Entry[]>;

  getMeta<T = unknown>(shard: string, key: string): T | null;
  putMeta(shard: string, key: string, value: unknown): Promise<void>;

  close(): Promise<void>;
}

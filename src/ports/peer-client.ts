// What a region node needs from another region (DESIGN.md §5), one client per peer region.
//
// Implementations: src/adapters/http-peer-client.ts (undici, the `/v1` API) and the simulated
// twin test/sim/peer-client.ts (requests over the simulated network). The state machines in
// src/replication/ never call a client: they return actions (`requestRange`, `bootstrap`,
// `fetchBuckets` …) and the node performs them with these methods, then feeds the outcome back.
//
// Errors: every method rejects with a PlayoutError.
// - PLAYOUT_PEER_UNAVAILABLE (retriable): connection refused or reset, timeout, 5xx.
// - PLAYOUT_RANGE_NOT_RETAINED: the peer does not hold the start of the range (HTTP 416);
//   `RangeNotRetained` below carries what it does hold.
// - PLAYOUT_ENTRY_* / PLAYOUT_SNAPSHOT_CORRUPT: the peer sent bytes that fail their checks
//   (they are never returned; the caller penalises the peer).
// - PLAYOUT_TICK_NOT_RETAINED, PLAYOUT_SHARD_NOT_FOUND, PLAYOUT_SHARD_QUARANTINED: as named.
import type { Entry } from '../core/entry.js';
import type { StoredDigest } from './log-store.js';
import type { EntrySource, PeerShardStatus } from './entry-source.js';

/** Details of a PLAYOUT_RANGE_NOT_RETAINED rejection: what the peer holds instead. */
export interface RangeNotRetained {
  /** Lowest seq the peer retains, or null when it holds no log for the shard. */
  readonly firstSeq: number | null;
  /** The peer's durable head (0 when it holds nothing). */
  readonly head: number;
}

// --- the bucket protocol (desync diagnosis, DESIGN.md §4–§5) ----------------------------------
//
// Two regions that disagree at tick T name the differing records in two round trips instead of
// shipping whole states (src/replication/bucket-compare.ts computes both sides):
//   1. `buckets({tick: T, tableSums: <the asker's table sums>})`: the peer answers its digest,
//      every table sum, and the 4,096 bucket sums of exactly the tables whose sum differs from
//      the asker's (none when all agree).
//   2. `records({tick: T, table, buckets: [...]})`: the peer answers the records of those
//      buckets; the asker diffs them against its own records of the same buckets.

export interface BucketsQuery {
  readonly tick: number;
  /** The asker's table sums (16 bytes each); null asks for the bucket sums of every table. */
  readonly tableSums: Readonly<Record<string, Uint8Array>> | null;
}

export interface TableBuckets {
  readonly table: string;
  /** The table sum (its digest), 16 bytes. */
  readonly sum: Uint8Array;
  /** 4,096 × 16 bytes when requested (the sum differs, or tableSums was null), else null. */
  readonly bucketSums: Uint8Array | null;
}

export interface BucketsAnswer {
  readonly tick: number;
  /** Seq of the tick entry that closed `tick`. */
  readonly seq: number;
  readonly digest: Uint8Array;
  /** Every table of the reducer, by name ascending. */
  readonly tables: readonly TableBuckets[];
}

export interface RecordsQuery {
  readonly tick: number;
  readonly table: string;
  /** Bucket numbers (0–4095), ascending, at most BUCKETS_PER_QUERY_MAX. */
  readonly buckets: readonly number[];
}

export interface RecordsAnswer {
  readonly tick: number;
  readonly table: string;
  readonly buckets: readonly number[];
  /** Every record of those buckets, [key, value], by key ascending. */
  readonly records: readonly (readonly [string, unknown])[];
}

/** An encoded snapshot (src/core/snapshot.ts) as a peer serves it. */
export interface PeerSnapshot {
  readonly tick: number;
  /** Seq of the tick entry closing `tick`. */
  readonly seq: number;
  readonly bytes: Uint8Array;
}

export interface RequestOptions {
  /** Abort the request (a timeout, or the shard stopped). */
  readonly signal?: AbortSignal | null;
}

export interface PeerClient {
  /** The peer's region id. */
  readonly region: string;

  /** The peer's view of one shard (`GET /v1/status`, or the shard's row of it). */
  status(shard: string, options?: RequestOptions): Promise<PeerShardStatus>;

  /**
   * Entries [seqFrom, seqTo], verified (hash of each), in order, a contiguous run from
   * seqFrom; the peer may return a shorter run (a page cut by its size limit, or its head).
   * Rejects PLAYOUT_RANGE_NOT_RETAINED when it does not hold seqFrom.
   */
  entries(shard: string, seqFrom: number, seqTo: number, options?: RequestOptions & { readonly bytesMax?: number }): Promise<Entry[]>;

  /** A long-lived stream of the shard's entries from seqFrom on, with heartbeats. */
  stream(): EntrySource;

  /** The peer's own tick digests for ticks [tickFrom, tickTo] (gaps where it has none). */
  digests(shard: string, tickFrom: number, tickTo: number, options?: RequestOptions): Promise<StoredDigest[]>;

  /** Round 1 of the bucket protocol at a retained tick. */
  buckets(shard: string, query: BucketsQuery, options?: RequestOptions): Promise<BucketsAnswer>;
  /** Round 2 of the bucket protocol. */
  records(shard: string, query: RecordsQuery, options?: RequestOptions): Promise<RecordsAnswer>;

  /**
   * The peer's latest snapshot at or below `tickMax` (null: its latest), its trailing hash
   * verified. Decoding, the digest recomputation and the chain check are the caller's.
   */
  snapshot(shard: string, tickMax: number | null, options?: RequestOptions): Promise<PeerSnapshot>;
}

// Where a follower's entries come from: the leader's HTTP stream, a Kafka topic (the leader's
// cluster or a MirrorMaker 2 mirror), a fixture file. Every source feeds the same `Follower`
// (src/replication/follower.ts), which orders, dedupes and chain-checks what it receives, so a
// source may deliver late, twice, out of order or not at all: at-least-once is enough.
//
// Implementations: src/adapters/http-entry-source.ts (GET /v1/shards/:shard/stream),
// src/adapters/kafka-entry-source.ts, and the simulated links in test/sim/.
import type { Entry } from '../core/entry.js';
import type { PlayoutError } from '../core/errors.js';

/** A tick digest as a region publishes it. */
export interface PublishedDigest {
  readonly tick: number;
  readonly digest: Uint8Array;
}

/**
 * What a region says about one shard, in stream heartbeats and in `GET /v1/status`:
 * enough for a follower to know who is ahead, who can serve a range, and who disagrees.
 */
export interface PeerShardStatus {
  readonly region: string;
  readonly shard: string;
  /** The sender's durable head (highest seq it can serve), 0 when it holds nothing. */
  readonly head: number;
  /** Hash of the entry at `head`, or null when unknown (lets a follower verify a range's end). */
  readonly headHash: Uint8Array | null;
  /** Tick of the entry at `head` (0 when it holds nothing): lag in ms = tick difference × tickMs. */
  readonly tick: number;
  /** Lowest seq the sender still retains (it serves [firstSeq, head]), or null when unknown. */
  readonly firstSeq: number | null;
  readonly epoch: number;
  /** The sender's latest closed tick's digest (its own computation), or null before tick 0 closes. */
  readonly digest: PublishedDigest | null;
  /** True when the sender has quarantined the shard (its digests are not to be trusted). */
  readonly quarantined: boolean;
}

export interface EntrySourceHandler {
  /**
   * Entries of one shard, in the order received (usually ascending, not necessarily
   * contiguous). `region` is the region that sent them when the source knows it (the HTTP
   * stream's peer; the leader for Kafka), else null.
   */
  onEntries(shard: string, entries: readonly Entry[], region: string | null): void;
  /** A sender's status, carried between entries on the stream (and when idle). */
  onHeartbeat(status: PeerShardStatus): void;
  /**
   * The source lost its connection or met bad data (a torn frame, an entry failing its hash:
   * never delivered). It reconnects by itself; the follower repairs what was lost.
   */
  onError(error: PlayoutError, shard: string | null): void;
}

export interface EntrySource {
  /** For logs and status: `http:us-sfo`, `kafka:playout.log@eu-fra`. */
  readonly name: string;
  /** Start delivering to `handler`; resolves once connected (or on the first attempt). */
  start(handler: EntrySourceHandler): Promise<void>;
  /**
   * Deliver entries of `shard` from `seqFrom` on. Called again after a gap, a restart or a
   * bootstrap to reposition; a source that cannot seek (a Kafka consumer group) may deliver
   * from earlier and rely on the follower's dedupe.
   */
  follow(shard: string, seqFrom: number): void;
  unfollow(shard: string): void;
  /** Stop and release connections; no handler call after it resolves. */
  close(): Promise<void>;
}

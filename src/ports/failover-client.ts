// What failover tooling (the `playout failover` CLI, or a node serving
// `GET /v1/shards/:shard/failover-plan`) asks of each region holding a shard, and the records
// they exchange (DESIGN.md §6). The records are the contract between the pure rules
// (src/replication/fence.ts, epoch-history.ts, failover-coordinator.ts) and the node's routes:
// hashes travel as 32 lowercase hex digits so that they are readable in JSON, in status output
// and in the store's meta values alike.
//
// Routes (all under /v1, JSON bodies; reads need scope `peer`, changes need scope `admin`):
//   GET  /v1/shards/:shard/failover                 → RegionFailoverStatus     status()
//   GET  /v1/shards/:shard/epochs                   → EpochsAnswer             epochs()
//   GET  /v1/shards/:shard/entries?from&to&format=json (existing)             entries()
//   POST /v1/shards/:shard/fence          FenceRequest    → FenceGrant         fence()
//   POST /v1/shards/:shard/fence/release  ReleaseRequest  → ReleaseAnswer      release()
//   POST /v1/shards/:shard/promote        PromoteRequest  → PromoteAnswer      promote()
//   POST /v1/shards/:shard/epoch          AnnounceRequest → AnnounceAnswer     announce()
//   GET  /v1/shards/:shard/failover-plan?to=R[&acceptLoss=true] → FailoverPlan (src/replication/failover-coordinator.ts)
//
// Errors: every method rejects with a PlayoutError — PLAYOUT_PEER_UNAVAILABLE when the region
// does not answer, else the region's own code (PLAYOUT_FENCE_CONFLICT 409, PLAYOUT_SHARD_NOT_FOUND
// 404, PLAYOUT_FAILOVER_TARGET_UNFIT 409, PLAYOUT_FAILOVER_INCOMPLETE 503 …).
import { z } from 'zod';
import { ENTRY_KINDS, RegionIdSchema, ShardIdSchema } from '../core/entry.js';

const uint = z.number().int().nonnegative();
export const Hex128Schema = z.string().regex(/^[0-9a-f]{32}$/, '32 lowercase hex digits');
/** A failover's id: chosen by the coordinator, unique per execution (promises are made to it). */
export const FailoverIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, 'a failover id: letters, digits, . _ : -, at most 64 characters');

/**
 * One epoch of a shard's history: who sequenced it and where it starts. Epoch 1 starts with the
 * genesis entry (seq 1); every later epoch with its `epoch` entry. Stored per shard in the store's
 * meta (key `failover.epochs`, see src/replication/epoch-history.ts) so that it survives log
 * truncation below snapshots.
 */
export const EpochRecordSchema = z.strictObject({
  epoch: uint.min(1),
  leader: RegionIdSchema,
  /** Seq of the epoch's first entry (its `epoch` entry; the genesis for the first epoch). */
  firstSeq: uint.min(1),
  /** The last seq the previous epochs kept (firstSeq - 1): the epoch entry's payload field. */
  lastSeqPrevEpoch: uint,
  /** Hash of the entry at lastSeqPrevEpoch (zeros for the genesis): what a region must hold there to keep its log. */
  prevHash: Hex128Schema,
  /** Hash of the epoch's first entry. */
  entryHash: Hex128Schema,
  /** Tick of the epoch's first entry. */
  tick: uint,
  /** Wall-clock time (ms since 1970) at which the leader appended it; null when rebuilt from the log alone. */
  atMs: uint.nullable(),
  /** The failover that started it (null for the first epoch or when rebuilt from the log). */
  failoverId: FailoverIdSchema.nullable(),
});
export type EpochRecord = z.infer<typeof EpochRecordSchema>;

/**
 * A promise not to accept entries of epochs below `epoch` beyond `seqMax`, made to one candidate
 * for one failover (a vote: a region promises an epoch to one candidate only).
 */
export const FencePromiseSchema = z.strictObject({
  epoch: uint.min(2),
  candidate: RegionIdSchema,
  failoverId: FailoverIdSchema,
  /** Entries of epochs < epoch are refused beyond this seq (the region's head when it promised; the catch-up target for the candidate itself). */
  seqMax: uint,
  atMs: uint,
});
export type FencePromise = z.infer<typeof FencePromiseSchema>;

/** Per shard per region: the established epoch and any pending promise (store meta key `failover.fence`). */
export const FenceStateSchema = z.strictObject({
  shard: ShardIdSchema,
  region: RegionIdSchema,
  /** The latest epoch this region knows to be established (its epoch entry exists). */
  epoch: uint,
  /** Its leader (null before the region knows the shard's first leader). */
  leader: RegionIdSchema.nullable(),
  /**
   * Where every epoch this region knows of starts, ascending: epochs below `epoch` end at its
   * `lastSeqPrevEpoch` (an entry of epoch e is admitted only up to the lastSeqPrevEpoch of the
   * first epoch after e).
   */
  ends: z.array(z.strictObject({ epoch: uint.min(1), lastSeqPrevEpoch: uint })),
  promise: FencePromiseSchema.nullable(),
});
export type FenceState = z.infer<typeof FenceStateSchema>;

export const AckModeSchema = z.enum(['leader', 'quorum']);

/** What a region knows about another region's head (heartbeats, durable reports). */
export const PeerHeadSchema = z.strictObject({
  region: RegionIdSchema,
  head: uint.nullable(),
  epoch: uint.nullable(),
  /** How long ago it was last heard from (null: never). */
  lastHeardMsAgo: uint.nullable(),
});
export type PeerHead = z.infer<typeof PeerHeadSchema>;

/** One region's view of one shard, everything a failover plan reads (GET …/failover). */
export const RegionFailoverStatusSchema = z.strictObject({
  region: RegionIdSchema,
  shard: ShardIdSchema,
  ack: AckModeSchema,
  /** Highest durable seq (0: nothing). */
  head: uint,
  headHash: Hex128Schema.nullable(),
  /** Epoch of the entry at head (0: nothing). */
  headEpoch: uint,
  headTick: uint,
  /** The tick of the next entry: headTick + 1 when the head is a tick entry, else headTick. */
  openTick: uint,
  firstSeq: uint.nullable(),
  applied: uint,
  lastAgreedTick: uint.nullable(),
  quarantined: z.boolean(),
  /** Why the shard stopped here, or null. */
  stopped: z.string().nullable(),
  fence: FenceStateSchema,
  epochs: z.array(EpochRecordSchema),
  peers: z.array(PeerHeadSchema),
});
export type RegionFailoverStatus = z.infer<typeof RegionFailoverStatusSchema>;

export const EpochsAnswerSchema = z.strictObject({
  shard: ShardIdSchema,
  region: RegionIdSchema,
  epochs: z.array(EpochRecordSchema),
  fence: FenceStateSchema,
});
export type EpochsAnswer = z.infer<typeof EpochsAnswerSchema>;

export const FenceRequestSchema = z.strictObject({
  epoch: uint.min(2),
  candidate: RegionIdSchema,
  failoverId: FailoverIdSchema,
});
export type FenceRequest = z.infer<typeof FenceRequestSchema>;

/**
 * A granted promise. The region answers only once its head is durable and the promise is in its
 * store, so `head` can be relied on: it holds [.., head] and refuses older epochs beyond it.
 */
export const FenceGrantSchema = z.strictObject({
  region: RegionIdSchema,
  shard: ShardIdSchema,
  epoch: uint.min(2),
  candidate: RegionIdSchema,
  failoverId: FailoverIdSchema,
  head: uint,
  headHash: Hex128Schema.nullable(),
  headEpoch: uint,
  headTick: uint,
  openTick: uint,
  /** This region was sequencing the shard: it stopped, and `head` is its final head. */
  wasLeader: z.boolean(),
  fence: FenceStateSchema,
  /** The region's epoch history (what the coordinator compares to find divergent suffixes). */
  epochs: z.array(EpochRecordSchema),
});
export type FenceGrant = z.infer<typeof FenceGrantSchema>;

export const ReleaseRequestSchema = z.strictObject({ epoch: uint.min(2), failoverId: FailoverIdSchema });
export type ReleaseRequest = z.infer<typeof ReleaseRequestSchema>;
export const ReleaseAnswerSchema = z.strictObject({ released: z.boolean(), fence: FenceStateSchema });
export type ReleaseAnswer = z.infer<typeof ReleaseAnswerSchema>;

/**
 * Make the candidate lead epoch `epoch`: truncate its divergent suffix above `truncateAbove`
 * (into a quarantine report), catch up to `catchUpTo` from `sources` (verifying the hash there),
 * append the epoch entry at a tick boundary, start sequencing. Answered once the epoch entry is
 * durable, or with PLAYOUT_FAILOVER_INCOMPLETE after `timeoutMs`. Idempotent per (epoch,
 * failoverId): a repeated request joins the promotion in progress or gets its answer.
 */
export const PromoteRequestSchema = z.strictObject({
  epoch: uint.min(2),
  failoverId: FailoverIdSchema,
  catchUpTo: z.strictObject({ seq: uint.min(1), hash: Hex128Schema, epoch: uint.min(1) }),
  sources: z.array(RegionIdSchema),
  truncateAbove: uint.nullable(),
  timeoutMs: uint.min(1),
});
export type PromoteRequest = z.infer<typeof PromoteRequestSchema>;

export const PromoteAnswerSchema = z.strictObject({
  record: EpochRecordSchema,
  /** The candidate's head before it caught up. */
  caughtUpFrom: uint,
  /** Entries the candidate truncated into a quarantine report (0: none). */
  quarantined: uint,
  /** The seq at which the candidate sequences its first input. */
  sequencingFrom: uint,
  /** The tick the candidate sequences its first input in (a tick boundary). */
  sequencingTick: uint,
  /** The new leader's whole epoch history, ending with `record`. */
  epochs: z.array(EpochRecordSchema),
});
export type PromoteAnswer = z.infer<typeof PromoteAnswerSchema>;

/** A new epoch started: follow its leader (and reconcile a divergent suffix against `epochs`). */
export const AnnounceRequestSchema = z.strictObject({
  record: EpochRecordSchema,
  /** The new leader's whole epoch history, for regions that missed earlier epochs. */
  epochs: z.array(EpochRecordSchema),
});
export type AnnounceRequest = z.infer<typeof AnnounceRequestSchema>;
export const AnnounceAnswerSchema = z.strictObject({
  fence: FenceStateSchema,
  /** Entries this region truncated into a quarantine report when it learned the epoch. */
  quarantined: uint,
});
export type AnnounceAnswer = z.infer<typeof AnnounceAnswerSchema>;

/** An entry as the failover tooling lists it (lost windows, quarantine reports). */
export const EntryRowSchema = z.strictObject({
  seq: uint.min(1),
  epoch: uint,
  tick: uint,
  kind: z.enum(ENTRY_KINDS),
  type: z.string().nullable(),
  version: uint.nullable(),
  origin: z.string().nullable(),
  ingestId: z.string().nullable(),
  payload: z.unknown(),
  hash: Hex128Schema,
});
export type EntryRow = z.infer<typeof EntryRowSchema>;

export interface FailoverRequestOptions {
  readonly signal?: AbortSignal | null;
  /** Overrides the client's default request timeout (promote waits for the catch-up). */
  readonly timeoutMs?: number;
}

export interface FailoverClient {
  /** The region this client talks to. */
  readonly region: string;
  status(shard: string, options?: FailoverRequestOptions): Promise<RegionFailoverStatus>;
  epochs(shard: string, options?: FailoverRequestOptions): Promise<EpochsAnswer>;
  /** Entries [seqFrom, seqTo] the region holds (a shorter run when it holds less; paged by the region). */
  entries(shard: string, seqFrom: number, seqTo: number, options?: FailoverRequestOptions): Promise<EntryRow[]>;
  fence(shard: string, request: FenceRequest, options?: FailoverRequestOptions): Promise<FenceGrant>;
  release(shard: string, request: ReleaseRequest, options?: FailoverRequestOptions): Promise<ReleaseAnswer>;
  promote(shard: string, request: PromoteRequest, options?: FailoverRequestOptions): Promise<PromoteAnswer>;
  announce(shard: string, request: AnnounceRequest, options?: FailoverRequestOptions): Promise<AnnounceAnswer>;
}

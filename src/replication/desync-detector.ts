// Desync detector (DESIGN.md §5), one per shard per region. Pure: fed digests and answers,
// returns actions.
//
// Each region compares its own tick digests with the leader's — carried in the log (the tick
// entry closing T+1 carries the leader's digest of T) and in the leader's heartbeats — and with
// the digests other regions publish. The log is the authority: a mismatch with the leader
// quarantines this shard (it keeps receiving and storing, stops applying and serving state);
// a mismatch with a non-leader peer that agrees with nobody is that peer's problem, reported as
// a warning. On quarantine the detector records the first diverging tick and runs the bucket
// protocol against the leader at that tick to name the differing records, then resyncs from a
// healthy region's snapshot, automatically or on command.
import type { Entry } from '../core/entry.js';
import type { PlayoutError } from '../core/errors.js';
import type { PeerShardStatus } from '../ports/entry-source.js';
import type { BucketsAnswer, BucketsQuery, RecordsAnswer, RecordsQuery } from '../ports/peer-client.js';
import type { RecordDiff, TickState } from './bucket-compare.js';

export interface DesyncConfig {
  readonly shard: string;
  /** This node's region. */
  readonly region: string;
  /** The leader region of the current epoch (its digests are the log's). */
  readonly leader: string;
  /** 'auto': resync from a healthy peer's snapshot at once; 'command': wait for resync(). */
  readonly resync: 'auto' | 'command';
  /** Local, leader and peer digests kept for comparison, in ticks. */
  readonly digestWindowTicks: number;
  /** Automatic resyncs in a row (desync again soon after) before waiting for a command. */
  readonly autoResyncMax: number;
  /** A resync that desyncs again within this many ticks counts as "in a row". */
  readonly autoResyncWindowTicks: number;
  /** A bucket-protocol request or a resync not answered within this is failed. */
  readonly requestTimeoutMs: number;
}

export const DESYNC_DEFAULTS = {
  resync: 'auto',
  digestWindowTicks: 4_096,
  autoResyncMax: 3,
  autoResyncWindowTicks: 1_000,
  requestTimeoutMs: 10_000,
} as const satisfies Omit<DesyncConfig, 'shard' | 'region' | 'leader'>;

/** A digest this region computed (ShardMachine's onTick). */
export interface LocalDigest {
  readonly tick: number;
  readonly seq: number;
  readonly digest: Uint8Array;
}

// --- actions ---------------------------------------------------------------------------

/**
 * Quarantine the shard now: `follower.quarantine()`, refuse to serve its state
 * (PLAYOUT_SHARD_QUARANTINED), keep receiving and storing entries.
 */
export interface QuarantineAction {
  readonly op: 'quarantine';
  /** The first diverging tick. */
  readonly tick: number;
  readonly error: PlayoutError;
}

export interface DesyncAlertAction {
  readonly op: 'alert';
  readonly level: 'warning' | 'critical';
  readonly error: PlayoutError;
}

/**
 * Build this region's own state at `tick` (nearest local snapshot + replay of the local log:
 * `stateAtTick` in src/replication/state-at-tick.ts) and call `onLocalState(compareId, state)`,
 * or `onLocalStateFailure(compareId, error)`.
 */
export interface CaptureLocalAction {
  readonly op: 'captureLocal';
  readonly compareId: number;
  readonly tick: number;
}

/** Round 1: `PeerClient.buckets(shard, query)`; answer with onBucketsAnswer / onRequestFailure. */
export interface FetchBucketsAction {
  readonly op: 'fetchBuckets';
  readonly requestId: number;
  readonly peer: string;
  readonly query: BucketsQuery;
  readonly timeoutMs: number;
}

/** Round 2: `PeerClient.records(shard, query)`; answer with onRecordsAnswer / onRequestFailure. */
export interface FetchRecordsAction {
  readonly op: 'fetchRecords';
  readonly requestId: number;
  readonly peer: string;
  readonly query: RecordsQuery;
  readonly timeoutMs: number;
}

/** The diagnosis is complete: log it, keep it for `GET /v1/status`, count it. */
export interface DesyncReportAction {
  readonly op: 'report';
  readonly report: DesyncReport;
}

/**
 * Resync from `peer`: fetch its snapshot at or below tickMax (`PeerClient.snapshot`), decode
 * and restore it (the digest is recomputed), check `detector.expectedDigest(snapshot.tick)`
 * when not null and the local hash at snapshot.seq, restore the ShardMachine from it, call
 * `follower.restored(seq, lastHash, tick)` and then `resynced(requestId, tick)`; or
 * `resyncFailed(requestId, error)`.
 */
export interface ResyncAction {
  readonly op: 'resync';
  readonly requestId: number;
  readonly peer: string;
  /** The newest tick whose closing entry the local store holds (the snapshot must not be newer). */
  readonly tickMax: number | null;
  readonly timeoutMs: number;
}

export type DesyncAction = QuarantineAction | DesyncAlertAction | CaptureLocalAction | FetchBucketsAction | FetchRecordsAction | DesyncReportAction | ResyncAction;

// --- diagnosis and status ----------------------------------------------------------------

export interface TableDiff {
  readonly table: string;
  readonly localSum: Uint8Array;
  readonly peerSum: Uint8Array;
  /** Buckets whose sums differ, ascending. */
  readonly buckets: readonly number[];
  /** Records of the first BUCKETS_PER_QUERY_MAX differing buckets that differ. */
  readonly records: readonly RecordDiff[];
  /** More buckets differed than were fetched. */
  readonly truncated: boolean;
}

export interface DesyncReport {
  readonly shard: string;
  /** The first diverging tick, and the seq of the tick entry that closed it. */
  readonly tick: number;
  readonly seq: number;
  /** The leader's digest of that tick, and this region's. */
  readonly expected: Uint8Array;
  readonly actual: Uint8Array;
  /** The region the records were compared with. */
  readonly peer: string | null;
  /**
   * False when this region's state rebuilt at that tick (snapshot + replay) no longer differs:
   * the divergence did not reproduce (nondeterminism that depends on something besides the log).
   */
  readonly reproduced: boolean;
  readonly tables: readonly TableDiff[];
  /** Why the diagnosis stopped short (a peer unreachable, the tick no longer retained), or null. */
  readonly incomplete: string | null;
}

export interface DesyncStatus {
  readonly shard: string;
  readonly quarantined: boolean;
  /** Latest tick whose local digest equals the leader's, or null. */
  readonly lastAgreedTick: number | null;
  readonly firstDivergingTick: number | null;
  /** Mismatches with the leader seen (one per tick). */
  readonly mismatches: number;
  /** Peers whose published digest disagreed with ours and the leader's: region → latest such tick. */
  readonly peerMismatches: Readonly<Record<string, number>>;
  readonly lastReport: DesyncReport | null;
  readonly resyncs: number;
  readonly resyncsFailed: number;
  /** True while an automatic resync is withheld (too many in a row) until a command. */
  readonly resyncNeedsCommand: boolean;
}

export class DesyncDetector {
  readonly config: DesyncConfig;

  constructor(config: DesyncConfig) {
    this.config = config;
  }

  /** A tick closed locally (call from ShardMachine's onTick). */
  onLocalDigest(_d: LocalDigest, _nowMs: number): DesyncAction[] {
    throw new Error('not implemented yet');
  }

  /** The leader's digest of `tick` (from a tick entry's `digest`, or the leader's heartbeat). */
  onLeaderDigest(_tick: number, _digest: Uint8Array, _nowMs: number): DesyncAction[] {
    throw new Error('not implemented yet');
  }

  /** Convenience: feeds the leader digests carried by these log entries (call on every durable batch). */
  onLogEntries(_entries: readonly Entry[], _nowMs: number): DesyncAction[] {
    throw new Error('not implemented yet');
  }

  /** A peer's heartbeat/status: its published digest. */
  onPeerStatus(_status: PeerShardStatus, _nowMs: number): DesyncAction[] {
    throw new Error('not implemented yet');
  }

  onLocalState(_compareId: number, _state: TickState, _nowMs: number): DesyncAction[] {
    throw new Error('not implemented yet');
  }

  onLocalStateFailure(_compareId: number, _error: PlayoutError, _nowMs: number): DesyncAction[] {
    throw new Error('not implemented yet');
  }

  onBucketsAnswer(_requestId: number, _answer: BucketsAnswer, _nowMs: number): DesyncAction[] {
    throw new Error('not implemented yet');
  }

  onRecordsAnswer(_requestId: number, _answer: RecordsAnswer, _nowMs: number): DesyncAction[] {
    throw new Error('not implemented yet');
  }

  onRequestFailure(_requestId: number, _error: PlayoutError, _nowMs: number): DesyncAction[] {
    throw new Error('not implemented yet');
  }

  /** `POST /v1/shards/:shard/resync`: resync now (also when automatic resync is withheld). */
  resync(_nowMs: number): DesyncAction[] {
    throw new Error('not implemented yet');
  }

  resynced(_requestId: number, _tick: number, _nowMs: number): DesyncAction[] {
    throw new Error('not implemented yet');
  }

  resyncFailed(_requestId: number, _error: PlayoutError, _nowMs: number): DesyncAction[] {
    throw new Error('not implemented yet');
  }

  /** The leader's digest of `tick` when known (to verify a resync snapshot), else null. */
  expectedDigest(_tick: number): Uint8Array | null {
    throw new Error('not implemented yet');
  }

  /** After a failover: the new leader's digests are the reference. */
  setLeader(_region: string): void {
    throw new Error('not implemented yet');
  }

  onTimer(_nowMs: number): DesyncAction[] {
    throw new Error('not implemented yet');
  }

  nextWakeMs(): number | null {
    throw new Error('not implemented yet');
  }

  status(): DesyncStatus {
    throw new Error('not implemented yet');
  }
}

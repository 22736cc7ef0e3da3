// Follower (DESIGN.md §5): one per shard per region. A pure state machine fed by any entry
// source (the leader's HTTP stream, Kafka, repair responses), returning the actions its caller
// performs (append, apply, request a range, bootstrap …), in the style of Aeron's and
// TigerBeetle's `onX(…, nowMs) → actions`. It owns ordering, dedupe, fork and gap detection,
// repair planning with per-peer health, and the chain check of everything it accepts.
//
//   seq == accepted+1, prev == hash at accepted → append durably (then apply once durable)
//   seq <= accepted                             → duplicate: same hash → drop; else fork → stop
//   seq >  accepted+1                           → gap: buffer (bounded), request [accepted+1, seq-1]
//   no progress for repairDelayMs while a peer is ahead → request [accepted+1, min(peerHead, +batchMax)]
//   a repaired range must chain to the local head (and to the buffered entry after it)
//   no peer retains accepted+1                  → bootstrap from a peer snapshot
//
// `accepted` is the highest seq chain-checked and handed to the store; `head` the highest the
// store has acknowledged as durable. Entries are applied only once durable, so a crash never
// leaves the machine ahead of the log.
import type { Entry } from '../core/entry.js';
import type { PlayoutError } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import type { PeerShardStatus } from '../ports/entry-source.js';
import type { RangeNotRetained } from '../ports/peer-client.js';

export interface FollowerConfig {
  readonly shard: string;
  /** This node's region; never asked for a repair. */
  readonly region: string;
  /** Regions that may serve ranges and snapshots; the order breaks ties between equal peers. */
  readonly peers: readonly string[];
  /**
   * Early entries (seq > head+1) held while the gap before them is repaired. Beyond it the
   * highest seqs are dropped (counted): they are the last to be needed and are fetched again.
   */
  readonly bufferEntriesMax: number;
  /** Most entries asked for in one range request. */
  readonly batchMax: number;
  /**
   * No progress for this long while a peer reports a higher head → request
   * [head+1, min(peerHead, head+batchMax)]. Covers a stream that stalled silently (a Kafka
   * mirror that stopped, a TCP connection that hangs without a reset).
   */
  readonly repairDelayMs: number;
  /**
   * Hold a gap's repair back this long: a source that reorders (the simulated network, a
   * Kafka consumer after a rebalance) usually delivers the missing entries by itself, and an
   * eager repair doubles cross-region traffic. 0 for ordered sources (the HTTP stream).
   */
  readonly gapDelayMs: number;
  /** A range request not answered within this is failed and retried elsewhere. */
  readonly requestTimeoutMs: number;
  /** Range requests in flight at once (pipelined catch-up); at most one per peer at a time. */
  readonly repairInflightMax: number;
  /** Backoff after a peer's first failure; doubles per consecutive failure up to the max. */
  readonly backoffMsMin: number;
  readonly backoffMsMax: number;
  /** A peer that sent a refused (forged or corrupt) range is asked last for this long. */
  readonly penaltyMs: number;
  /** A bootstrap (snapshot fetch, verify, store) not finished within this is failed. */
  readonly bootstrapTimeoutMs: number;
}

/** Defaults for every tunable (the node's region config may override each). */
export const FOLLOWER_DEFAULTS = {
  bufferEntriesMax: 20_000,
  batchMax: 2_000,
  repairDelayMs: 500,
  gapDelayMs: 0,
  requestTimeoutMs: 2_000,
  repairInflightMax: 4,
  backoffMsMin: 100,
  backoffMsMax: 10_000,
  penaltyMs: 60_000,
  bootstrapTimeoutMs: 60_000,
} as const satisfies Omit<FollowerConfig, 'shard' | 'region' | 'peers'>;

/** What the follower reads from the node's store, synchronously (LogStore reads are). */
export interface FollowerLog {
  /** Hash of the durable entry at `seq`, or null when not held (truncated, or beyond the head). */
  hashAt(seq: number): Uint8Array | null;
}

/** Where a follower starts: the store's durable head and the machine's applied seq. */
export interface FollowerStart {
  /** Durable head seq (0 for an empty store). */
  readonly head: number;
  /** Hash of the entry at `head` (zeros for an empty store; the base snapshot's last hash after truncation). */
  readonly headHash: Uint8Array;
  /** Seq the caller's ShardMachine has applied (≤ head): its restored snapshot's seq, or 0. */
  readonly applied: number;
}

// --- actions -----------------------------------------------------------------------------
//
// Every `on…` call returns the actions its input makes necessary, in the order to perform
// them. The follower never waits: an action that takes time (an append, a request) is
// answered by a later call carrying the same id.

/**
 * Append these entries durably to the store, in order, after every earlier append. Then call
 * `appended(appendId)` — or `appendFailed(appendId, error)`. They are already chain-checked
 * against the previous append (seq = previous+1, prev = previous hash).
 */
export interface AppendAction {
  readonly op: 'append';
  readonly appendId: number;
  readonly entries: readonly Entry[];
}

/** These entries are durable and in order: apply them to the shard's ShardMachine now. */
export interface ApplyAction {
  readonly op: 'apply';
  readonly entries: readonly Entry[];
}

/** Apply the durable entries [seqFrom, seqTo] read from the store (after a restart or a resync). */
export interface ApplyStoredAction {
  readonly op: 'applyStored';
  readonly seqFrom: number;
  readonly seqTo: number;
}

/**
 * Ask `peer` for entries [seqFrom, seqTo] (`PeerClient.entries`), aborting after timeoutMs;
 * answer with `onRangeResponse(requestId, entries)` or `onRangeFailure(requestId, error)`.
 */
export interface RequestRangeAction {
  readonly op: 'requestRange';
  readonly requestId: number;
  readonly peer: string;
  readonly seqFrom: number;
  readonly seqTo: number;
  readonly timeoutMs: number;
}

/** Abort a request (timed out, or no longer needed); any later answer to it is ignored anyway. */
export interface CancelAction {
  readonly op: 'cancel';
  readonly requestId: number;
}

/**
 * No peer retains the range this follower needs: fetch `peer`'s latest snapshot
 * (`PeerClient.snapshot`), check it (decode, digest recomputation, seq ≥ seqMin - 1), store it
 * as the new base (putSnapshot, then truncateBelow(seq+1)), restore the ShardMachine from it,
 * then call `bootstrapped(requestId, seq, lastHash)` — or `bootstrapFailed(requestId, error)`.
 * Emitted only when no append is in flight, and no append is emitted until it is answered.
 */
export interface BootstrapAction {
  readonly op: 'bootstrap';
  readonly requestId: number;
  readonly peer: string;
  /** The first seq this follower needs (head+1); the snapshot must reach at least seqMin - 1. */
  readonly seqMin: number;
  readonly timeoutMs: number;
}

/** Reposition the entry source(s) to deliver from seqFrom (after a bootstrap). */
export interface FollowAction {
  readonly op: 'follow';
  readonly seqFrom: number;
}

/** Log it and count it (`level` maps to the log level and the alert metric's label). */
export interface AlertAction {
  readonly op: 'alert';
  readonly level: 'warning' | 'critical';
  readonly error: PlayoutError;
}

/** The shard must stop (a fork): the follower accepts nothing more until the node replaces it. */
export interface StopAction {
  readonly op: 'stop';
  readonly error: PlayoutError;
}

export type FollowerAction =
  | AppendAction
  | ApplyAction
  | ApplyStoredAction
  | RequestRangeAction
  | CancelAction
  | BootstrapAction
  | FollowAction
  | AlertAction
  | StopAction;

// --- status ------------------------------------------------------------------------------

/**
 * - following: appending and applying.
 * - quarantined: appending, not applying (a desync; see DesyncDetector), until `restored`.
 * - bootstrapping: waiting for a snapshot; nothing is appended meanwhile.
 * - stopped: a fork, or the node stopped the shard; nothing more happens.
 */
export type FollowerMode = 'following' | 'quarantined' | 'bootstrapping' | 'stopped';

export interface FollowerCounters {
  /** Entries offered by sources (streams, Kafka), including duplicates. */
  entriesReceived: number;
  /** Entries handed to the store. */
  entriesAccepted: number;
  duplicates: number;
  /** Duplicates whose stored entry was already truncated (their hash could not be compared). */
  duplicatesUnchecked: number;
  forks: number;
  /** Times an entry arrived beyond head+1. */
  gaps: number;
  /** Early entries dropped because the buffer was full. */
  bufferDropped: number;
  /** Entries refused because they do not chain (a stream entry at head+1 with the wrong prev). */
  chainBreaks: number;
  repairsRequested: number;
  repairsCompleted: number;
  repairsFailed: number;
  repairTimeouts: number;
  /** Entries received in repair responses and accepted. */
  entriesRepaired: number;
  refusedRanges: number;
  bootstraps: number;
  bootstrapsFailed: number;
  appendFailures: number;
}

export interface FollowerPeerStatus {
  readonly region: string;
  /** Highest head the peer reported (or proved by sending entries); null until heard from. */
  readonly head: number | null;
  readonly firstSeq: number | null;
  /** head - local durable head (0 when not ahead; null when unknown). */
  readonly lagEntries: number | null;
  /** Smoothed round-trip time of its range answers, or null before the first. */
  readonly rttMs: number | null;
  readonly failures: number;
  readonly backoffUntilMs: number;
  readonly penalisedUntilMs: number;
  readonly inflight: number;
  readonly lastHeardMs: number | null;
}

export interface FollowerStatus {
  readonly shard: string;
  readonly mode: FollowerMode;
  /** Durable head. */
  readonly head: number;
  /** Highest seq chain-checked and handed to the store (≥ head: appends in flight). */
  readonly accepted: number;
  /** Highest seq handed to the machine. */
  readonly applied: number;
  /** Early entries waiting for a gap to be filled. */
  readonly buffered: number;
  /** Lowest seq missing below the buffered entries (head+1 when a gap is open), or null. */
  readonly gapFrom: number | null;
  readonly counters: Readonly<FollowerCounters>;
  readonly peers: readonly FollowerPeerStatus[];
  /** The error that stopped the follower, if any. */
  readonly stopError: PlayoutError | null;
}

// --- the state machine -------------------------------------------------------------------

export class Follower {
  readonly config: FollowerConfig;

  constructor(config: FollowerConfig, log: FollowerLog, rng: Rng, start: FollowerStart) {
    this.config = config;
    void log;
    void rng;
    void start;
  }

  /** First call: applies what the store holds beyond the machine (applyStored), then asks peers. */
  start(_nowMs: number): FollowerAction[] {
    throw new Error('not implemented yet');
  }

  /** Entries from a source (stream, Kafka), in any order, possibly duplicated. */
  onEntries(_entries: readonly Entry[], _region: string | null, _nowMs: number): FollowerAction[] {
    throw new Error('not implemented yet');
  }

  /** A peer's status (stream heartbeat or status poll): its head, retained range, digest. */
  onPeerStatus(_status: PeerShardStatus, _nowMs: number): FollowerAction[] {
    throw new Error('not implemented yet');
  }

  /** The answer to a requestRange: a contiguous run from seqFrom (possibly shorter than asked). */
  onRangeResponse(_requestId: number, _entries: readonly Entry[], _nowMs: number): FollowerAction[] {
    throw new Error('not implemented yet');
  }

  /** A requestRange failed; `available` is set for PLAYOUT_RANGE_NOT_RETAINED. */
  onRangeFailure(_requestId: number, _error: PlayoutError, _available: RangeNotRetained | null, _nowMs: number): FollowerAction[] {
    throw new Error('not implemented yet');
  }

  /** The append with this id is durable: its entries are applied (unless quarantined). */
  appended(_appendId: number, _nowMs: number): FollowerAction[] {
    throw new Error('not implemented yet');
  }

  /** The append with this id failed (and so does every later one in flight). */
  appendFailed(_appendId: number, _error: PlayoutError, _nowMs: number): FollowerAction[] {
    throw new Error('not implemented yet');
  }

  /** The bootstrap snapshot is stored and restored: the log continues after `seq`. */
  bootstrapped(_requestId: number, _seq: number, _hash: Uint8Array, _nowMs: number): FollowerAction[] {
    throw new Error('not implemented yet');
  }

  bootstrapFailed(_requestId: number, _error: PlayoutError, _nowMs: number): FollowerAction[] {
    throw new Error('not implemented yet');
  }

  /** Stop applying (a desync): entries are still received, checked and stored. */
  quarantine(_nowMs: number): FollowerAction[] {
    throw new Error('not implemented yet');
  }

  /**
   * The machine was restored from a snapshot at `seq` (resync after a desync): apply again
   * from seq+1 (applyStored up to the head, then as entries become durable).
   */
  restored(_seq: number, _hash: Uint8Array, _nowMs: number): FollowerAction[] {
    throw new Error('not implemented yet');
  }

  /** Stop for good (the node saw the machine fail); nothing more is emitted. */
  stop(_error: PlayoutError): FollowerAction[] {
    throw new Error('not implemented yet');
  }

  /** Time passes: request timeouts, backoff expiry, the repair delay. */
  onTimer(_nowMs: number): FollowerAction[] {
    throw new Error('not implemented yet');
  }

  /** When onTimer next has something to do (arm one timer for it), or null. */
  nextWakeMs(): number | null {
    throw new Error('not implemented yet');
  }

  status(): FollowerStatus {
    throw new Error('not implemented yet');
  }
}

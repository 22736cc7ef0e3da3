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
// store has acknowledged as durable. Entries are applied as they are handed to the store, not
// once durable here: they are durable at the region that served them (a leader streams only
// what it holds durably, a peer serves only its durable log), so waiting for this region's own
// fsync would only add its latency to every read of this region's state. The machine is in
// memory: a crash loses it together with the entries, and the restart rebuilds it from the
// durable log. An append that fails takes the machine back to the durable log (`rewind`).
import type { Entry } from '../core/entry.js';
import { PlayoutError, assert } from '../core/errors.js';
import { hashEquals, toHex } from '../core/hash.js';
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
   * The leader region of the current epoch (null when unknown). Its stream is the log's
   * authority: an entry from it that does not chain to the local head proves that the local
   * log holds another history (a fork), not merely a bad entry.
   */
  readonly leader: string | null;
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
  /**
   * The failover fence (docs/failover.md, "Hooks"): asked about every entry before anything else
   * looks at it. Null admits it; an error drops it (counted in `fenced`), never compared as a
   * duplicate: an old leader's suffix beyond the fence would otherwise look like a fork. The node
   * passes `(e) => admits(currentFence, e)`; absent, everything is admitted.
   */
  readonly admit?: AdmitHook | null;
}

/**
 * The fence hooks, see FollowerConfig.admit. `diverges(entry, acceptedSeq)` (the node passes
 * `startsBeforeHead(fence, …)`) is true for an `epoch` entry of an epoch the region does not know
 * yet that starts at or below its accepted head: dropped like a refused entry and reported once
 * per epoch as a `diverged` action, so that the node learns the epoch and truncates.
 */
export interface AdmitHook {
  admit(entry: Entry): PlayoutError | null;
  diverges(entry: Entry, acceptedSeq: number): boolean;
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
} as const satisfies Omit<FollowerConfig, 'shard' | 'region' | 'peers' | 'leader'>;

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
  /** Tick of the entry at `head` (0 for an empty store). */
  readonly headTick: number;
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

/**
 * These entries are chain-checked and in order, and durable here or handed to the store just
 * before (the append action ahead of this one): apply them to the shard's ShardMachine now.
 */
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
 * then call `bootstrapped(requestId, seq, lastHash, tick)` — or `bootstrapFailed(requestId, error)`.
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

/**
 * An append failed after its entries were applied (see the header): rebuild the ShardMachine
 * from the store (its snapshot and durable log), dropping what it applied beyond the durable
 * head `seq`, and any apply of those entries still waiting to be performed. The entries come
 * again (repaired from peers) and are applied when they do.
 */
export interface RewindAction {
  readonly op: 'rewind';
  readonly seq: number;
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

/**
 * An `epoch` entry starts at or below the accepted head (AdmitHook.diverges): this region holds
 * entries the new epoch did not keep. The node learns the epoch from `region` (its epochs),
 * reconciles (truncating the divergent suffix into a quarantine report) and restarts the
 * Follower from the truncated head. Reported once per epoch.
 */
export interface DivergedAction {
  readonly op: 'diverged';
  readonly entry: Entry;
  readonly region: string | null;
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
  | RewindAction
  | RequestRangeAction
  | CancelAction
  | BootstrapAction
  | FollowAction
  | AlertAction
  | DivergedAction
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
  /** Entries dropped by the fence (AdmitHook): refused epochs, and epoch entries that diverge. */
  fenced: number;
}

export interface FollowerPeerStatus {
  readonly region: string;
  /** Highest head the peer reported (or proved by sending entries); null until heard from. */
  readonly head: number | null;
  readonly firstSeq: number | null;
  /** head - local durable head (0 when not ahead; null when unknown). */
  readonly lagEntries: number | null;
  /** The peer's head tick - the local head's tick (× tickMs: the lag in ms), or null when unknown. */
  readonly lagTicks: number | null;
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
  /** Tick of the durable head entry. */
  readonly headTick: number;
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

/** What this follower knows about one peer region. */
class PeerState {
  readonly region: string;
  /** Config order: the last tie-break, so equal peers are always tried in the same order. */
  readonly order: number;
  head: number | null = null;
  epoch = 0;
  /** The tick of the peer's head entry, when it reported one. */
  tick: number | null = null;
  headHash: Uint8Array | null = null;
  firstSeq: number | null = null;
  rttMs: number | null = null;
  /** Consecutive failures (reset by any answer). */
  failures = 0;
  backoffUntilMs = 0;
  penalisedUntilMs = 0;
  inflight = 0;
  lastHeardMs: number | null = null;

  constructor(region: string, order: number) {
    this.region = region;
    this.order = order;
  }

  /** The peer can serve `seq` as far as we know (unknown counts as yes: asking is how we learn). */
  mayHold(seq: number): boolean {
    return (this.firstSeq === null || this.firstSeq <= seq) && (this.head === null || this.head >= seq);
  }
}

class RangeRequest {
  readonly id: number;
  readonly peer: PeerState;
  readonly seqFrom: number;
  readonly seqTo: number;
  readonly sentAtMs: number;
  readonly deadlineMs: number;
  /**
   * Asked for because the sources stalled (not to fill a gap before an entry held here): no
   * longer needed once a source makes progress again, see Follower.sourceProgressed.
   */
  readonly forStall: boolean;

  constructor(id: number, peer: PeerState, seqFrom: number, seqTo: number, sentAtMs: number, deadlineMs: number, forStall: boolean) {
    this.id = id;
    this.peer = peer;
    this.seqFrom = seqFrom;
    this.seqTo = seqTo;
    this.sentAtMs = sentAtMs;
    this.deadlineMs = deadlineMs;
    this.forStall = forStall;
  }
}

/** A repair answer that starts beyond accepted+1: kept whole until the range before it lands. */
class HeldRange {
  readonly requestId: number;
  readonly peer: PeerState;
  readonly entries: readonly Entry[];

  constructor(requestId: number, peer: PeerState, entries: readonly Entry[]) {
    this.requestId = requestId;
    this.peer = peer;
    this.entries = entries;
  }

  get seqFrom(): number {
    return this.entries[0]!.seq;
  }

  get seqTo(): number {
    return this.entries[this.entries.length - 1]!.seq;
  }
}

class Buffered {
  readonly entry: Entry;
  readonly atMs: number;
  /** The region that sent it, when known. */
  readonly region: string | null;

  constructor(entry: Entry, atMs: number, region: string | null) {
    this.entry = entry;
    this.atMs = atMs;
    this.region = region;
  }
}

class PendingAppend {
  readonly appendId: number;
  readonly entries: Entry[];

  constructor(appendId: number, entries: Entry[]) {
    this.appendId = appendId;
    this.entries = entries;
  }
}

class Bootstrap {
  readonly requestId: number;
  readonly peer: PeerState;
  readonly deadlineMs: number;

  constructor(requestId: number, peer: PeerState, deadlineMs: number) {
    this.requestId = requestId;
    this.peer = peer;
    this.deadlineMs = deadlineMs;
  }
}

/**
 * A peer that failed this many times in a row counts as down: it no longer holds back a
 * bootstrap from a peer that answers (a region lost with an old log must not keep a follower
 * from ever catching up).
 */
const PEER_DOWN_FAILURES = 3;

/** Smoothing of the round-trip estimate (TCP's SRTT uses 1/8). */
const RTT_ALPHA = 0.125;

export class Follower {
  readonly config: FollowerConfig;
  private readonly log: FollowerLog;
  private readonly rng: Rng;
  private admitHook: AdmitHook | null;
  /** Epochs already reported `diverged` (once each). */
  private readonly divergedEpochs = new Set<number>();
  /** The lowest epoch reported `diverged`: its entries at held seqs are not compared either. */
  private divergedFrom: number | null = null;

  private mode: FollowerMode = 'following';
  /** Set by quarantine(), cleared by restored(); survives a bootstrap in between. */
  private quarantined = false;
  private leader: string | null;
  private stopError: PlayoutError | null = null;
  private head: number;
  private headHash: Uint8Array;
  private accepted: number;
  private acceptedHash: Uint8Array;
  private applied: number;

  private readonly peers = new Map<string, PeerState>();
  private readonly peerList: PeerState[] = [];

  /** Early entries by seq (all > accepted+1 … or stale, skipped when drained). */
  private readonly buffer = new Map<number, Buffered>();
  private bufferSeqMax = 0;

  private readonly requests = new Map<number, RangeRequest>();
  private readonly held: HeldRange[] = [];
  private bootstrap: Bootstrap | null = null;

  private readonly appends: PendingAppend[] = [];
  /** Appends with an id below this were voided by a failure; their answers are ignored. */
  private appendIdFloor = 1;
  private nextAppendId = 1;
  private nextRequestId = 1;

  /** The latest nowMs seen (for nextWakeMs). */
  private nowMs = Number.NEGATIVE_INFINITY;
  /** Tick of the durable head entry (for lag in ms: peers report theirs). */
  private headTick: number;
  /** Last time an entry from a source (not a repair) was accepted: the stream is alive. */
  private lastSourceProgressMs: number;
  /** Something changed that may call for a new request (see plan). */
  private planDirty = true;
  /** A GAP_UNREPAIRABLE warning was raised for the current episode. */
  private stuckReported = false;

  private readonly counters: FollowerCounters = {
    entriesReceived: 0,
    entriesAccepted: 0,
    duplicates: 0,
    duplicatesUnchecked: 0,
    forks: 0,
    gaps: 0,
    bufferDropped: 0,
    chainBreaks: 0,
    repairsRequested: 0,
    repairsCompleted: 0,
    repairsFailed: 0,
    repairTimeouts: 0,
    entriesRepaired: 0,
    refusedRanges: 0,
    bootstraps: 0,
    bootstrapsFailed: 0,
    appendFailures: 0,
    fenced: 0,
  };

  /** Actions of the call in progress, and the entries it accepted (one append per call). */
  private out: FollowerAction[] = [];
  private toAppend: Entry[] = [];

  constructor(config: FollowerConfig, log: FollowerLog, rng: Rng, start: FollowerStart) {
    assert(config.batchMax >= 1 && config.repairInflightMax >= 1 && config.bufferEntriesMax >= 0, 'follower limits are positive');
    assert(config.backoffMsMin > 0 && config.backoffMsMax >= config.backoffMsMin, 'backoff bounds are ordered');
    assert(start.applied >= 0 && start.applied <= start.head, 'the machine is not ahead of the durable log');
    this.config = config;
    this.log = log;
    this.rng = rng;
    this.admitHook = config.admit ?? null;
    this.leader = config.leader;
    this.head = start.head;
    this.headHash = start.headHash;
    this.accepted = start.head;
    this.acceptedHash = start.headHash;
    this.applied = start.applied;
    this.headTick = start.headTick;
    this.lastSourceProgressMs = Number.NEGATIVE_INFINITY;
    let order = 0;
    for (const region of config.peers) {
      if (region === config.region || this.peers.has(region)) continue;
      const p = new PeerState(region, order++);
      this.peers.set(region, p);
      this.peerList.push(p);
    }
  }

  // --- inputs --------------------------------------------------------------------------

  /** First call: applies what the store holds beyond the machine (applyStored), then asks peers. */
  start(nowMs: number): FollowerAction[] {
    // Give the stream one repair delay to deliver before asking peers: at a restart the
    // stream reconnects at head+1 and usually needs no help.
    this.lastSourceProgressMs = nowMs;
    if (this.mode === 'following' && this.applied < this.head) {
      this.out.push({ op: 'applyStored', seqFrom: this.applied + 1, seqTo: this.head });
      this.applied = this.head;
    }
    return this.finish(nowMs);
  }

  /** Entries from a source (stream, Kafka), in any order, possibly duplicated. */
  onEntries(entries: readonly Entry[], region: string | null, nowMs: number): FollowerAction[] {
    const peer = region === null ? null : (this.peers.get(region) ?? null);
    const acceptedBefore = this.accepted;
    // Duplicates come in runs (a stream overlapping a repair, a source replaying from earlier).
    // Within a run each entry's prev is the hash of the one before it, and an entry's own hash
    // covers its prev: comparing the run's last entry with the local log compares them all, the
    // local log being chained too. One store read per run instead of one per entry.
    let dupFrom = -1;
    let dupTo = -1;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      this.counters.entriesReceived++;
      if (this.mode === 'stopped') break;
      if (e.shard !== this.config.shard) {
        this.alert('warning', new PlayoutError('PLAYOUT_OUT_OF_ORDER', `Cannot follow entry ${e.seq}: expected shard "${this.config.shard}", received "${e.shard}" from ${region ?? 'a source'}`, { seq: e.seq, shard: this.config.shard, path: 'shard', expected: this.config.shard, received: e.shard }));
        continue;
      }
      if (this.refused(e, region)) continue;
      if (peer !== null) {
        // Sending seq proves holding it.
        if (peer.head === null || peer.head < e.seq) peer.head = e.seq;
        peer.lastHeardMs = nowMs;
      }
      if (e.seq <= this.accepted) {
        if (dupTo >= 0) {
          const p = entries[dupTo]!;
          if (e.seq === p.seq + 1 && hashEquals(e.prev, p.hash)) {
            dupTo = i;
            continue;
          }
          this.checkDuplicateRun(entries, dupFrom, dupTo, region);
        }
        dupFrom = dupTo = i;
        continue;
      }
      if (dupTo >= 0) {
        this.checkDuplicateRun(entries, dupFrom, dupTo, region);
        dupFrom = dupTo = -1;
        // A fork found in the run stopped the follower (the check narrows the type too eagerly).
        if ((this.mode as FollowerMode) === 'stopped') break;
      }
      if (e.seq === this.accepted + 1 && this.mode !== 'bootstrapping') {
        if (hashEquals(e.prev, this.acceptedHash)) {
          this.accept(e);
          this.lastSourceProgressMs = nowMs;
          this.drain(nowMs);
        } else {
          this.chainBreak(e, region, peer, nowMs);
        }
      } else {
        this.bufferEntry(e, region, nowMs);
      }
    }
    if (dupTo >= 0 && this.mode !== 'stopped') this.checkDuplicateRun(entries, dupFrom, dupTo, region);
    if (this.accepted > acceptedBefore && this.mode !== 'stopped') this.sourceProgressed();
    return this.finish(nowMs);
  }

  /** A peer's status (stream heartbeat or status poll): its head, retained range, digest. */
  onPeerStatus(status: PeerShardStatus, nowMs: number): FollowerAction[] {
    const peer = this.peers.get(status.region);
    if (peer !== undefined && status.shard === this.config.shard) {
      // Statuses may arrive out of order (a poll answer racing a heartbeat): a head only
      // grows within an epoch. A new epoch may have truncated a divergent suffix, so its
      // word is taken as is.
      if (status.epoch > peer.epoch || peer.head === null || status.head >= peer.head) {
        peer.head = status.head;
        peer.tick = status.tick;
        peer.headHash = status.headHash;
      }
      if (status.epoch > peer.epoch || status.firstSeq === null || peer.firstSeq === null || status.firstSeq >= peer.firstSeq) peer.firstSeq = status.firstSeq;
      if (status.epoch > peer.epoch) peer.epoch = status.epoch;
      peer.lastHeardMs = nowMs;
      this.planDirty = true;
    }
    return this.finish(nowMs);
  }

  /** The answer to a requestRange: a contiguous run from seqFrom (possibly shorter than asked). */
  onRangeResponse(requestId: number, received: readonly Entry[], nowMs: number): FollowerAction[] {
    let entries = received;
    const req = this.requests.get(requestId);
    if (req === undefined) return this.finish(nowMs); // timed out or cancelled: the range is asked again elsewhere
    this.endRequest(req);
    const peer = req.peer;
    peer.lastHeardMs = nowMs;
    peer.failures = 0;
    peer.backoffUntilMs = 0;
    const rtt = Math.max(0, nowMs - req.sentAtMs);
    peer.rttMs = peer.rttMs === null ? rtt : peer.rttMs + RTT_ALPHA * (rtt - peer.rttMs);
    if (this.mode === 'stopped' || this.mode === 'bootstrapping') return this.finish(nowMs);
    if (entries.length === 0) {
      // The peer holds less than it claimed: believe the answer.
      this.counters.repairsFailed++;
      if (peer.head === null || peer.head >= req.seqFrom) peer.head = req.seqFrom - 1;
      return this.finish(nowMs);
    }
    const admitted = this.admittedPrefix(entries, peer.region);
    if (admitted.length === 0) {
      // Everything it sent lies beyond the fence (an old leader's suffix): it cannot help now;
      // back off from it so that the other peers are asked.
      this.counters.repairsFailed++;
      this.peerFailed(peer, nowMs);
      return this.finish(nowMs);
    }
    entries = admitted;
    const problem = this.checkRangeShape(req, entries);
    if (problem !== null) {
      this.refuse(peer, req.seqFrom, req.seqTo, problem, nowMs);
      return this.finish(nowMs);
    }
    const last = entries[entries.length - 1]!;
    if (peer.head === null || peer.head < last.seq) peer.head = last.seq;
    if (entries[0]!.seq > this.accepted + 1) {
      this.held.push(new HeldRange(requestId, peer, entries));
    } else {
      this.integrate(entries, peer, nowMs);
      this.drain(nowMs);
    }
    return this.finish(nowMs);
  }

  /** A requestRange failed; `available` is set for PLAYOUT_RANGE_NOT_RETAINED. */
  onRangeFailure(requestId: number, error: PlayoutError, available: RangeNotRetained | null, nowMs: number): FollowerAction[] {
    const req = this.requests.get(requestId);
    if (req === undefined) return this.finish(nowMs);
    this.endRequest(req);
    this.counters.repairsFailed++;
    const peer = req.peer;
    if (error.code === 'PLAYOUT_RANGE_NOT_RETAINED') {
      // Not a fault of the peer: it told us what it holds, so it is not asked for this again.
      peer.lastHeardMs = nowMs;
      peer.failures = 0;
      if (available !== null) {
        peer.firstSeq = available.firstSeq;
        peer.head = available.head;
      } else if (peer.firstSeq === null || peer.firstSeq <= req.seqFrom) {
        peer.firstSeq = req.seqFrom + 1;
      }
    } else if (isCorruption(error)) {
      this.refuse(peer, req.seqFrom, req.seqTo, error.message, nowMs);
      this.counters.repairsFailed--; // refuse() counted it
    } else {
      this.peerFailed(peer, nowMs);
    }
    return this.finish(nowMs);
  }

  /** The append with this id is durable: its entries are applied now if they were not yet (unless quarantined). */
  appended(appendId: number, nowMs: number): FollowerAction[] {
    if (appendId < this.appendIdFloor) return this.finish(nowMs);
    const a = this.appends[0];
    assert(a !== undefined && a.appendId === appendId, `appends are acknowledged in order: expected ${a?.appendId ?? 'none'}, received ${appendId}`);
    this.appends.shift();
    const last = a.entries[a.entries.length - 1]!;
    assert(last.seq > this.head, 'an append moves the durable head forward');
    this.head = last.seq;
    this.headHash = last.hash;
    this.headTick = last.tick;
    // Usually applied when appended (finish); not when the machine was behind the accepted
    // entries then (a restore, a rewind, a quarantine lifted with appends in flight).
    if (this.mode === 'following' && this.applied < last.seq) {
      const first = a.entries[0]!.seq;
      assert(this.applied >= first - 1, 'entries are applied in order, each once');
      this.out.push({ op: 'apply', entries: this.applied === first - 1 ? a.entries : a.entries.slice(this.applied - first + 1) });
      this.applied = last.seq;
    }
    this.planDirty = true;
    return this.finish(nowMs);
  }

  /** The append with this id failed (and so does every later one in flight). */
  appendFailed(appendId: number, error: PlayoutError, nowMs: number): FollowerAction[] {
    if (appendId < this.appendIdFloor) return this.finish(nowMs);
    this.counters.appendFailures++;
    // Nothing of the failed append (nor of those after it, which continued it) is durable:
    // fall back to the durable head and fetch the rest again from peers.
    this.appendIdFloor = this.nextAppendId;
    this.appends.length = 0;
    this.accepted = this.head;
    this.acceptedHash = this.headHash;
    if (this.applied > this.head) {
      this.applied = this.head;
      this.out.push({ op: 'rewind', seq: this.head });
    }
    this.lastSourceProgressMs = Number.NEGATIVE_INFINITY;
    this.planDirty = true;
    this.alert('warning', error);
    return this.finish(nowMs);
  }

  /** The bootstrap snapshot is stored and restored: the log continues after `seq`. */
  bootstrapped(requestId: number, seq: number, hash: Uint8Array, tick: number, nowMs: number): FollowerAction[] {
    const b = this.bootstrap;
    if (b === null || b.requestId !== requestId || this.mode !== 'bootstrapping') return this.finish(nowMs);
    this.bootstrap = null;
    b.peer.failures = 0;
    this.counters.bootstraps++;
    this.rebase(seq, hash, tick, nowMs);
    return this.finish(nowMs);
  }

  bootstrapFailed(requestId: number, error: PlayoutError, nowMs: number): FollowerAction[] {
    const b = this.bootstrap;
    if (b === null || b.requestId !== requestId || this.mode !== 'bootstrapping') return this.finish(nowMs);
    this.failBootstrap(b, error, nowMs);
    return this.finish(nowMs);
  }

  /**
   * After a failover: the new leader's stream is the authority. Null while the region holds a
   * promise for an epoch not yet established: no region's chain break proves a fork then (the
   * old leader's next entry may lie beyond the fence), it is refused and repaired.
   */
  setLeader(region: string | null): void {
    this.leader = region;
  }

  /**
   * Ask peers now for what they hold beyond the accepted head, without waiting for the repair
   * delay (a candidate catching up to the highest fenced head: the stream that would have carried
   * those entries was refusing them until its fence limit was raised).
   */
  repairNow(nowMs: number): FollowerAction[] {
    this.lastSourceProgressMs = Number.NEGATIVE_INFINITY;
    // A peer backing off because it sent entries the old fence refused can serve them now.
    for (const p of this.peerList) if (p.failures < PEER_DOWN_FAILURES) p.backoffUntilMs = 0;
    this.planDirty = true;
    return this.finish(nowMs);
  }

  get currentLeader(): string | null {
    return this.leader;
  }

  /**
   * Replace the fence hooks (null: admit everything). Entries already buffered or held are checked
   * again at once (they may predate a promise): refused ones are dropped, not drained later.
   */
  setAdmit(hook: AdmitHook | null): void {
    this.admitHook = hook;
    this.recheckFence();
  }

  /**
   * The fence changed (a promise, a release, an epoch established): drop buffered entries and
   * held ranges it now refuses, so that none of them is accepted or compared as a duplicate.
   */
  recheckFence(): void {
    if (this.admitHook === null) return;
    for (const [seq, b] of [...this.buffer]) {
      if (this.admitHook.admit(b.entry) !== null) {
        this.buffer.delete(seq);
        this.counters.fenced++;
      }
    }
    let max = 0;
    for (const seq of this.buffer.keys()) if (seq > max) max = seq;
    this.bufferSeqMax = max;
    for (let i = this.held.length - 1; i >= 0; i--) {
      const h = this.held[i]!;
      const admitted = this.admittedPrefix(h.entries, h.peer.region, false);
      if (admitted.length === h.entries.length) continue;
      this.held.splice(i, 1);
      if (admitted.length > 0) this.held.push(new HeldRange(h.requestId, h.peer, admitted));
    }
    this.planDirty = true;
  }

  /** Stop applying (a desync): entries are still received, checked and stored. */
  quarantine(nowMs: number): FollowerAction[] {
    this.quarantined = true;
    if (this.mode === 'following') this.mode = 'quarantined';
    return this.finish(nowMs);
  }

  /**
   * The machine was restored from a snapshot at `seq` (resync after a desync): apply again
   * from seq+1 (applyStored up to the head, then as entries become durable). A snapshot
   * beyond the durable head is a bootstrap: the caller must have made it the store's base,
   * with no append in flight.
   */
  restored(seq: number, hash: Uint8Array, tick: number, nowMs: number): FollowerAction[] {
    if (this.mode === 'stopped') return this.finish(nowMs);
    if (seq > this.head) {
      assert(this.appends.length === 0, 'a snapshot beyond the head is restored with no append in flight');
      this.cancelAll();
      this.bootstrap = null;
      this.quarantined = false;
      this.rebase(seq, hash, tick, nowMs);
      return this.finish(nowMs);
    }
    const mine = seq === this.head ? this.headHash : this.log.hashAt(seq);
    if (mine !== null && !hashEquals(mine, hash)) {
      this.alert('critical', new PlayoutError('PLAYOUT_FORK', `Cannot resync shard "${this.config.shard}" from a snapshot at seq ${seq}: its last hash ${toHex(hash)} is not the local entry's ${toHex(mine)}; the snapshot belongs to another history`, { shard: this.config.shard, seq, expected: toHex(mine), received: toHex(hash) }));
      return this.finish(nowMs);
    }
    this.quarantined = false;
    this.mode = 'following';
    this.applied = seq;
    if (seq < this.head) this.out.push({ op: 'applyStored', seqFrom: seq + 1, seqTo: this.head });
    this.applied = this.head;
    return this.finish(nowMs);
  }

  /** Stop for good (the node saw the machine fail); nothing more is emitted. */
  stop(error: PlayoutError): FollowerAction[] {
    this.halt(error);
    const out = this.out;
    this.out = [];
    this.toAppend = [];
    return out;
  }

  /** Time passes: request timeouts, backoff expiry, the repair delay. */
  onTimer(nowMs: number): FollowerAction[] {
    for (const req of [...this.requests.values()]) {
      if (req.deadlineMs > nowMs) continue;
      this.endRequest(req);
      this.counters.repairTimeouts++;
      this.counters.repairsFailed++;
      this.out.push({ op: 'cancel', requestId: req.id });
      this.peerFailed(req.peer, nowMs);
    }
    const b = this.bootstrap;
    if (b !== null && b.deadlineMs <= nowMs) {
      this.out.push({ op: 'cancel', requestId: b.requestId });
      this.failBootstrap(b, new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `Bootstrap of shard "${this.config.shard}" from ${b.peer.region} timed out after ${this.config.bootstrapTimeoutMs} ms`, { shard: this.config.shard }), nowMs);
    }
    this.planDirty = true;
    return this.finish(nowMs);
  }

  /**
   * When onTimer next has something to do (arm one timer for it), or null. Only future
   * moments count: whatever was due at the last call has been done or is waiting on one of them.
   */
  nextWakeMs(): number | null {
    if (this.mode === 'stopped') return null;
    const now = this.nowMs;
    let wake = Number.POSITIVE_INFINITY;
    for (const req of this.requests.values()) wake = Math.min(wake, req.deadlineMs);
    if (this.bootstrap !== null) wake = Math.min(wake, this.bootstrap.deadlineMs);
    if (this.mode !== 'bootstrapping' && this.wantsMore()) {
      const repairAt = this.lastSourceProgressMs + this.config.repairDelayMs;
      if (repairAt > now && this.peerAhead() !== null) wake = Math.min(wake, repairAt);
      if (this.config.gapDelayMs > 0) {
        // The buffer is a Map in arrival order: the first entry not yet due is the earliest.
        for (const b of this.buffer.values()) {
          const due = b.atMs + this.config.gapDelayMs;
          if (due > now) {
            wake = Math.min(wake, due);
            break;
          }
        }
      }
      for (const p of this.peerList) if (p.backoffUntilMs > now) wake = Math.min(wake, p.backoffUntilMs);
    }
    return Number.isFinite(wake) ? wake : null;
  }

  status(): FollowerStatus {
    const peers: FollowerPeerStatus[] = this.peerList.map((p) => ({
      region: p.region,
      head: p.head,
      firstSeq: p.firstSeq,
      lagEntries: p.head === null ? null : Math.max(0, p.head - this.head),
      lagTicks: p.tick === null ? null : Math.max(0, p.tick - this.headTick),
      rttMs: p.rttMs,
      failures: p.failures,
      backoffUntilMs: p.backoffUntilMs,
      penalisedUntilMs: p.penalisedUntilMs,
      inflight: p.inflight,
      lastHeardMs: p.lastHeardMs,
    }));
    return {
      shard: this.config.shard,
      mode: this.mode,
      head: this.head,
      headTick: this.headTick,
      accepted: this.accepted,
      applied: this.applied,
      buffered: this.buffer.size,
      gapFrom: this.buffer.size > 0 || this.held.length > 0 ? this.accepted + 1 : null,
      counters: { ...this.counters },
      peers,
      stopError: this.stopError,
    };
  }

  get currentMode(): FollowerMode {
    return this.mode;
  }

  get durableHead(): number {
    return this.head;
  }

  get appliedSeq(): number {
    return this.applied;
  }

  get acceptedSeq(): number {
    return this.accepted;
  }

  // --- internals -------------------------------------------------------------------------

  /** The fence's verdict on one entry: true when it is dropped (counted; a divergence reported). */
  private refused(e: Entry, region: string | null): boolean {
    const hook = this.admitHook;
    if (hook === null) return false;
    if (hook.admit(e) !== null) {
      this.counters.fenced++;
      return true;
    }
    if (hook.diverges(e, this.accepted)) {
      this.counters.fenced++;
      if (!this.divergedEpochs.has(e.epoch)) {
        this.divergedEpochs.add(e.epoch);
        if (this.divergedFrom === null || e.epoch < this.divergedFrom) this.divergedFrom = e.epoch;
        this.out.push({ op: 'diverged', entry: e, region });
      }
      return true;
    }
    // The entries after a diverging epoch entry, at seqs this log holds otherwise: they are the
    // new epoch's, not duplicates of ours, until the node has truncated (and restarted us).
    if (this.divergedFrom !== null && e.epoch >= this.divergedFrom && e.seq <= this.accepted) {
      this.counters.fenced++;
      return true;
    }
    return false;
  }

  /** The run's prefix the fence admits (a range must stay contiguous); the rest is counted as fenced. */
  private admittedPrefix(entries: readonly Entry[], region: string | null, report = true): readonly Entry[] {
    const hook = this.admitHook;
    if (hook === null) return entries;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const refused = report ? this.refused(e, region) : hook.admit(e) !== null;
      if (refused) {
        if (!report) this.counters.fenced++;
        this.counters.fenced += entries.length - i - 1;
        return entries.slice(0, i);
      }
    }
    return entries;
  }

  private accept(e: Entry): void {
    this.accepted = e.seq;
    this.acceptedHash = e.hash;
    this.toAppend.push(e);
    this.counters.entriesAccepted++;
  }

  /** Accept buffered entries and held ranges that now continue the accepted head. */
  private drain(nowMs: number): void {
    if (this.buffer.size === 0 && this.held.length === 0) {
      // Nothing waits (in-order delivery, the common case): called once per accepted entry.
      this.bufferSeqMax = 0;
      return;
    }
    for (;;) {
      if (this.mode === 'stopped' || this.mode === 'bootstrapping') return;
      const b = this.buffer.get(this.accepted + 1);
      if (b !== undefined) {
        this.buffer.delete(b.entry.seq);
        // Buffered before a promise, it must pass the fence as it stands now.
        if (this.refused(b.entry, b.region)) continue;
        if (hashEquals(b.entry.prev, this.acceptedHash)) {
          this.accept(b.entry);
          this.lastSourceProgressMs = nowMs;
        } else {
          this.chainBreak(b.entry, b.region, b.region === null ? null : (this.peers.get(b.region) ?? null), nowMs);
        }
        continue;
      }
      const hi = this.held.findIndex((h) => h.seqFrom <= this.accepted + 1);
      if (hi >= 0) {
        const h = this.held[hi]!;
        this.held.splice(hi, 1);
        const admitted = this.admittedPrefix(h.entries, h.peer.region);
        if (admitted.length > 0 && admitted[admitted.length - 1]!.seq > this.accepted) this.integrate(admitted, h.peer, nowMs);
        continue;
      }
      break;
    }
    if (this.buffer.size === 0) this.bufferSeqMax = 0;
    // Buffered entries at or below the accepted head came in twice (stream and repair).
    if (this.buffer.size > 0 && this.bufferHasStale()) {
      for (const [seq, b] of [...this.buffer]) {
        if (seq > this.accepted) continue;
        this.buffer.delete(seq);
        this.checkDuplicate(b.entry, null);
      }
    }
  }

  /** The first entry of a held range starting at `seq`, as a buffered-like anchor. */
  private heldFrom(seq: number): { entry: Entry } | undefined {
    for (const h of this.held) if (h.seqFrom === seq) return { entry: h.entries[0]! };
    return undefined;
  }

  private bufferHasStale(): boolean {
    // Cheap common case: nothing buffered can be stale unless the head passed the lowest seq.
    for (const seq of this.buffer.keys()) if (seq <= this.accepted) return true;
    return false;
  }

  /**
   * A repaired run that starts at or below accepted+1 (checked contiguous and internally
   * chained). Its overlap with what we hold must be identical; the rest must chain to the
   * accepted head and, when the entry after it is buffered, to that entry.
   */
  private integrate(entries: readonly Entry[], peer: PeerState, nowMs: number): void {
    // The overlap with what we hold: the run is chained (checkRangeShape) and so is the local
    // log, so its last overlapping entry equal to ours makes the whole overlap equal: one store
    // read for an overlap of thousands (a repair racing the stream). Not held (truncated below
    // the log's first entry): nothing older is held either.
    const overlap = Math.max(0, Math.min(entries.length, this.accepted - entries[0]!.seq + 1));
    if (overlap > 0) {
      const e = entries[overlap - 1]!;
      const mine = this.hashHeld(e.seq);
      if (mine !== null && !hashEquals(mine, e.hash)) {
        this.refuse(peer, entries[0]!.seq, entries[entries.length - 1]!.seq, `entry ${e.seq} has hash ${toHex(e.hash)} but the local log holds ${toHex(mine)}`, nowMs);
        return;
      }
    }
    let i = overlap;
    if (i === entries.length) {
      this.counters.repairsCompleted++;
      return;
    }
    const first = entries[i]!;
    if (!hashEquals(first.prev, this.acceptedHash)) {
      this.refuse(peer, first.seq, entries[entries.length - 1]!.seq, `entry ${first.seq} has prev ${toHex(first.prev)} but the local head ${this.accepted} has hash ${toHex(this.acceptedHash)}`, nowMs);
      return;
    }
    const last = entries[entries.length - 1]!;
    const next = this.buffer.get(last.seq + 1) ?? this.heldFrom(last.seq + 1);
    if (next !== undefined && !hashEquals(next.entry.prev, last.hash)) {
      // One of the two is wrong and nothing tells which: refuse the range, drop the buffered
      // entry too, and fetch both again (the penalised peer is asked last).
      this.buffer.delete(last.seq + 1);
      const hi = this.held.findIndex((h) => h.seqFrom === last.seq + 1);
      if (hi >= 0) this.held.splice(hi, 1);
      this.counters.chainBreaks++;
      this.refuse(peer, first.seq, last.seq, `entry ${last.seq} has hash ${toHex(last.hash)} but the entry after it, received earlier, has prev ${toHex(next.entry.prev)}`, nowMs);
      return;
    }
    for (; i < entries.length; i++) {
      const e = entries[i]!;
      const b = this.buffer.get(e.seq);
      if (b !== undefined) {
        this.buffer.delete(e.seq);
        if (!hashEquals(b.entry.hash, e.hash)) {
          this.fork(e.seq, e.hash, b.entry.hash, peer.region);
          return;
        }
        this.counters.duplicates++;
      }
      this.accept(e);
      this.counters.entriesRepaired++;
    }
    this.counters.repairsCompleted++;
    this.stuckReported = false;
  }

  /** The hash of an entry this follower holds (durable or in flight), or null when truncated. */
  private hashHeld(seq: number): Uint8Array | null {
    if (seq === this.accepted) return this.acceptedHash;
    if (seq === this.head) return this.headHash;
    if (seq > this.head) {
      for (const a of this.appends) {
        const first = a.entries[0]!.seq;
        if (seq >= first && seq < first + a.entries.length) return a.entries[seq - first]!.hash;
      }
      const j = this.toAppend.length - (this.accepted - seq) - 1;
      if (j >= 0 && j < this.toAppend.length && this.toAppend[j]!.seq === seq) return this.toAppend[j]!.hash;
      assert(false, `entry ${seq} between head ${this.head} and accepted ${this.accepted} is in flight`);
    }
    return this.log.hashAt(seq);
  }

  /**
   * Duplicates entries[from..to] (consecutive seqs, each entry's prev the hash of the one before
   * it; entries refused by the fence in between are skipped, the chain check covers that): the
   * last one is compared with the local log, and only when it differs are the others, to name
   * the first seq where the histories part.
   */
  private checkDuplicateRun(entries: readonly Entry[], from: number, to: number, region: string | null): void {
    const last = entries[to]!;
    if (from === to) {
      this.checkDuplicate(last, region);
      return;
    }
    const mine = this.hashHeld(last.seq);
    if (mine !== null && hashEquals(mine, last.hash)) {
      this.counters.duplicates += to - from + 1;
      return;
    }
    // The run's members, found back from its last entry along the prevs (entries the fence
    // refused, or of another shard, may lie between them).
    const run: Entry[] = [last];
    for (let j = to - 1, cur = last; j >= from; j--) {
      const e = entries[j]!;
      if (e.seq === cur.seq - 1 && hashEquals(cur.prev, e.hash)) {
        run.push(e);
        cur = e;
      }
    }
    for (let j = run.length - 1; j >= 0 && this.mode !== 'stopped'; j--) this.checkDuplicate(run[j]!, region);
  }

  /**
   * A source delivered the entry after the accepted head: it is alive, and the repairs asked for
   * because it had stalled would only bring duplicates of what it sends next (after a link
   * heals, the status poll and the reopened stream race). They are cancelled; the repair delay
   * applies again from now, so a source that stalls again is repaired again.
   */
  private sourceProgressed(): void {
    for (const req of this.requests.values()) {
      if (!req.forStall) continue;
      this.endRequest(req);
      this.out.push({ op: 'cancel', requestId: req.id });
    }
  }

  private checkDuplicate(e: Entry, region: string | null): void {
    const mine = this.hashHeld(e.seq);
    if (mine === null) {
      this.counters.duplicatesUnchecked++;
    } else if (hashEquals(mine, e.hash)) {
      this.counters.duplicates++;
    } else {
      this.fork(e.seq, mine, e.hash, region);
    }
  }

  private fork(seq: number, expected: Uint8Array, received: Uint8Array, region: string | null): void {
    this.counters.forks++;
    const error = new PlayoutError('PLAYOUT_FORK', `Shard "${this.config.shard}" forked at seq ${seq}: the local log holds hash ${toHex(expected)}, ${region ?? 'a source'} sent ${toHex(received)}; the shard stops and nothing of the other history is applied`, {
      shard: this.config.shard,
      seq,
      expected: toHex(expected),
      received: toHex(received),
    });
    this.alert('critical', error);
    this.halt(error);
    this.out.push({ op: 'stop', error });
  }

  private halt(error: PlayoutError): void {
    if (this.mode === 'stopped') return;
    this.mode = 'stopped';
    this.stopError = error;
    this.cancelAll();
    this.bootstrap = null;
    this.toAppend = [];
  }

  /** An entry at accepted+1 whose prev is not our head's hash: refused, never stored. */
  private chainBreak(e: Entry, region: string | null, peer: PeerState | null, nowMs: number): void {
    this.counters.chainBreaks++;
    if (region !== null && region === this.leader) {
      // The leader's entry after ours names another predecessor: the local log diverged
      // (a re-chained forgery accepted where nothing anchored it, or a lost failover fence).
      this.fork(this.accepted, this.acceptedHash, e.prev, region);
      return;
    }
    if (peer !== null) peer.penalisedUntilMs = nowMs + this.config.penaltyMs;
    this.alert('warning', new PlayoutError('PLAYOUT_CHAIN_BROKEN', `Refused entry ${e.seq} of shard "${this.config.shard}" from ${region ?? 'a source'}: its prev ${toHex(e.prev)} is not the hash of entry ${this.accepted}, ${toHex(this.acceptedHash)}`, {
      shard: this.config.shard,
      seq: e.seq,
      path: 'prev',
      expected: toHex(this.acceptedHash),
      received: toHex(e.prev),
    }));
    this.planDirty = true;
  }

  private bufferEntry(e: Entry, region: string | null, nowMs: number): void {
    const had = this.buffer.get(e.seq);
    if (had !== undefined) {
      if (hashEquals(had.entry.hash, e.hash)) this.counters.duplicates++;
      else this.fork(e.seq, had.entry.hash, e.hash, region);
      return;
    }
    if (this.buffer.size >= this.config.bufferEntriesMax) {
      // Keep the lowest seqs: they are needed first. The dropped ones are fetched again.
      if (e.seq > this.bufferSeqMax || this.bufferSeqMax === 0) {
        this.counters.bufferDropped++;
        return;
      }
      this.buffer.delete(this.bufferSeqMax);
      this.counters.bufferDropped++;
      let max = 0;
      for (const seq of this.buffer.keys()) if (seq > max) max = seq;
      this.bufferSeqMax = max;
    }
    if (!this.buffer.has(e.seq - 1) && e.seq - 1 > this.accepted) {
      this.counters.gaps++;
      this.planDirty = true;
    }
    this.buffer.set(e.seq, new Buffered(e, nowMs, region));
    if (e.seq > this.bufferSeqMax) this.bufferSeqMax = e.seq;
    if (this.config.gapDelayMs === 0) this.planDirty = true;
  }

  private checkRangeShape(req: RangeRequest, entries: readonly Entry[]): string | null {
    if (entries[0]!.seq !== req.seqFrom) return `it starts at seq ${entries[0]!.seq}, not at ${req.seqFrom}`;
    if (entries.length > req.seqTo - req.seqFrom + 1) return `it holds ${entries.length} entries, more than the ${req.seqTo - req.seqFrom + 1} asked for`;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.shard !== this.config.shard) return `entry ${e.seq} belongs to shard "${e.shard}"`;
      if (i > 0) {
        const p = entries[i - 1]!;
        if (e.seq !== p.seq + 1) return `seq ${e.seq} follows ${p.seq}`;
        if (!hashEquals(e.prev, p.hash)) return `entry ${e.seq} does not chain to entry ${p.seq} (prev ${toHex(e.prev)}, hash ${toHex(p.hash)})`;
      }
    }
    return null;
  }

  private refuse(peer: PeerState, seqFrom: number, seqTo: number, why: string, nowMs: number): void {
    this.counters.refusedRanges++;
    this.counters.repairsFailed++;
    peer.penalisedUntilMs = nowMs + this.config.penaltyMs;
    this.peerFailed(peer, nowMs);
    this.alert('warning', new PlayoutError('PLAYOUT_RANGE_REFUSED', `Refused entries ${seqFrom}..${seqTo} of shard "${this.config.shard}" from ${peer.region}: ${why}`, { shard: this.config.shard, seq: seqFrom }));
  }

  private peerFailed(peer: PeerState, nowMs: number): void {
    peer.failures++;
    const base = Math.min(this.config.backoffMsMax, this.config.backoffMsMin * 2 ** Math.min(peer.failures - 1, 30));
    // Equal jitter: at least half the backoff, so a dead peer is not hammered, and spread so
    // that regions retrying the same peer do not do it in step.
    peer.backoffUntilMs = nowMs + base / 2 + this.rng.float() * (base / 2);
    this.planDirty = true;
  }

  private endRequest(req: RangeRequest): void {
    this.requests.delete(req.id);
    req.peer.inflight--;
    this.planDirty = true;
  }

  private cancelAll(): void {
    for (const req of [...this.requests.values()]) {
      this.endRequest(req);
      this.out.push({ op: 'cancel', requestId: req.id });
    }
    this.held.length = 0;
  }

  private failBootstrap(b: Bootstrap, error: PlayoutError, nowMs: number): void {
    this.bootstrap = null;
    this.mode = this.quarantined ? 'quarantined' : 'following';
    this.counters.bootstrapsFailed++;
    this.peerFailed(b.peer, nowMs);
    this.alert('warning', new PlayoutError('PLAYOUT_GAP_UNREPAIRABLE', `Bootstrap of shard "${this.config.shard}" from ${b.peer.region} failed; retrying: ${error.message}`, { shard: this.config.shard, seq: this.accepted + 1, cause: error }));
  }

  /** Continue the log after a snapshot at `seq` (bootstrap, or a resync beyond the head). */
  private rebase(seq: number, hash: Uint8Array, tick: number, nowMs: number): void {
    this.head = seq;
    this.headTick = tick;
    this.headHash = hash;
    this.accepted = seq;
    this.acceptedHash = hash;
    this.applied = seq;
    // A bootstrap does not end a quarantine: only a resync (`restored`) does, once the
    // detector has checked the state it restores.
    this.mode = this.quarantined ? 'quarantined' : 'following';
    for (const s of [...this.buffer.keys()]) if (s <= seq) this.buffer.delete(s);
    this.lastSourceProgressMs = nowMs;
    this.stuckReported = false;
    this.planDirty = true;
    this.out.push({ op: 'follow', seqFrom: seq + 1 });
    this.drain(nowMs);
  }

  private alert(level: 'warning' | 'critical', error: PlayoutError): void {
    this.out.push({ op: 'alert', level, error });
  }

  /** The highest head a usable peer reports beyond ours, or null. */
  private peerAhead(): number | null {
    let best: number | null = null;
    for (const p of this.peerList) if (p.head !== null && p.head > this.accepted && (best === null || p.head > best)) best = p.head;
    return best;
  }

  private wantsMore(): boolean {
    return this.buffer.size > 0 || this.held.length > 0 || this.peerAhead() !== null;
  }

  private finish(nowMs: number): FollowerAction[] {
    if (nowMs > this.nowMs) this.nowMs = nowMs;
    if (this.mode !== 'stopped') {
      // A request whose whole range was accepted meanwhile (from a source, or another answer)
      // would only bring duplicates: cancel it, its slot is worth more to the next range.
      for (const req of this.requests.values()) {
        if (req.seqTo > this.accepted) continue;
        this.endRequest(req);
        this.out.push({ op: 'cancel', requestId: req.id });
      }
      if (this.planDirty || this.requests.size === 0) this.plan(nowMs);
      if (this.toAppend.length > 0) {
        const id = this.nextAppendId++;
        const entries = this.toAppend;
        this.appends.push(new PendingAppend(id, entries));
        this.out.push({ op: 'append', appendId: id, entries });
        // Applied as they go to the store (see the header), when the machine is level with
        // what was accepted before them.
        if (this.mode === 'following' && this.applied === entries[0]!.seq - 1) {
          this.out.push({ op: 'apply', entries });
          this.applied = entries[entries.length - 1]!.seq;
        }
      }
    }
    this.toAppend = [];
    const out = this.out;
    this.out = [];
    return out;
  }

  // --- repair planning ---------------------------------------------------------------------

  /**
   * Request the missing runs of the window [accepted+1, accepted + batchMax × repairInflightMax]
   * that are wanted: a run before a buffered entry (or held range) that has waited gapDelayMs,
   * or anything up to the highest peer head once no source entry arrived for repairDelayMs.
   */
  private plan(nowMs: number): void {
    this.planDirty = false;
    if (this.mode === 'stopped' || this.mode === 'bootstrapping' || this.bootstrap !== null) return;
    if (this.requests.size >= this.config.repairInflightMax) return;
    const ahead = this.peerAhead();
    const streamStalled = nowMs - this.lastSourceProgressMs >= this.config.repairDelayMs;
    const aheadTarget = ahead !== null && streamStalled ? ahead : this.accepted;
    if (this.buffer.size === 0 && this.held.length === 0 && aheadTarget <= this.accepted) return;

    const windowEnd = this.accepted + this.config.batchMax * this.config.repairInflightMax;
    const covered = this.coveredRanges();
    let ci = 0;
    let seq = this.accepted + 1;
    while (seq <= windowEnd && this.requests.size < this.config.repairInflightMax) {
      while (ci < covered.length && covered[ci]![1] < seq) ci++;
      if (ci < covered.length && covered[ci]![0] <= seq) {
        seq = covered[ci]![1] + 1;
        continue;
      }
      if (this.buffer.has(seq)) {
        seq++;
        continue;
      }
      // A missing run starts at seq: find where it ends and what follows it.
      let end = seq;
      const limit = Math.min(windowEnd, ci < covered.length ? covered[ci]![0] - 1 : windowEnd);
      while (end < limit && !this.buffer.has(end + 1)) end++;
      const after = this.buffer.get(end + 1);
      // A run that ends right before an entry we hold is anchored at both ends: it is asked
      // for whole (not cut at the peer's last reported head), so the answer can be checked
      // against that entry's prev.
      let wantTo: number;
      let anchored = false;
      if (after !== undefined && nowMs - after.atMs >= this.config.gapDelayMs) {
        wantTo = end;
        anchored = true;
      } else if (ci < covered.length && covered[ci]![0] === end + 1 && this.isHeld(end + 1)) {
        wantTo = end;
        anchored = true;
      } else wantTo = Math.min(end, aheadTarget);
      if (wantTo >= seq && !this.requestRun(seq, wantTo, anchored, nowMs)) return;
      seq = end + 1;
      if (after === undefined && end >= limit && limit === windowEnd) break;
    }
  }

  private isHeld(seqFrom: number): boolean {
    for (const h of this.held) if (h.seqFrom === seqFrom) return true;
    return false;
  }

  /** [seqFrom, seqTo] of requests in flight and held answers, ascending. */
  private coveredRanges(): [number, number][] {
    const out: [number, number][] = [];
    for (const r of this.requests.values()) out.push([r.seqFrom, r.seqTo]);
    for (const h of this.held) out.push([h.seqFrom, h.seqTo]);
    out.sort((a, b) => a[0] - b[0]);
    return out;
  }

  /** Request [seqFrom, seqTo] in batches from the best peers. False when no peer can be asked now. */
  private requestRun(seqFrom: number, seqTo: number, anchored: boolean, nowMs: number): boolean {
    let a = seqFrom;
    while (a <= seqTo && this.requests.size < this.config.repairInflightMax) {
      const peer = this.choosePeer(a, nowMs);
      if (peer === null) {
        this.noPeerFor(a, nowMs);
        return false;
      }
      let b = Math.min(seqTo, a + this.config.batchMax - 1);
      if (peer.head !== null && !(anchored && b === seqTo)) b = Math.min(b, peer.head);
      const id = this.nextRequestId++;
      const req = new RangeRequest(id, peer, a, b, nowMs, nowMs + this.config.requestTimeoutMs, !anchored);
      this.requests.set(id, req);
      peer.inflight++;
      this.counters.repairsRequested++;
      this.out.push({ op: 'requestRange', requestId: id, peer: peer.region, seqFrom: a, seqTo: b, timeoutMs: this.config.requestTimeoutMs });
      a = b + 1;
    }
    return true;
  }

  /** The healthiest, fastest peer that may hold `seq` and is not backing off. */
  private choosePeer(seq: number, nowMs: number): PeerState | null {
    let best: PeerState | null = null;
    let bestKnown = false;
    for (const p of this.peerList) {
      if (p.backoffUntilMs > nowMs || !p.mayHold(seq)) continue;
      // A peer known to hold seq beats one never heard from (asked only when nobody else can be).
      const known = p.head !== null;
      if (best === null || (known && !bestKnown) || (known === bestKnown && comparePeers(p, best, nowMs) < 0)) {
        best = p;
        bestKnown = known;
      }
    }
    return best;
  }

  /** Nobody can be asked for `seq` now: bootstrap when nobody retains it any more, else wait. */
  private noPeerFor(seq: number, nowMs: number): void {
    let snapshotPeer: PeerState | null = null;
    let waiting = false;
    for (const p of this.peerList) {
      const truncatedPast = p.firstSeq !== null && p.firstSeq > seq && p.head !== null && p.head >= p.firstSeq - 1;
      if (truncatedPast) {
        if (p.backoffUntilMs > nowMs) waiting = waiting || p.failures < PEER_DOWN_FAILURES;
        else if (snapshotPeer === null || (p.head ?? 0) > (snapshotPeer.head ?? 0) || ((p.head ?? 0) === (snapshotPeer.head ?? 0) && comparePeers(p, snapshotPeer, nowMs) < 0)) snapshotPeer = p;
      } else if (p.backoffUntilMs > nowMs && (p.head === null || p.head >= seq) && p.failures < PEER_DOWN_FAILURES) {
        waiting = true; // it may hold the range once it answers again
      }
    }
    if (snapshotPeer !== null && !waiting) {
      if (this.appends.length > 0) return; // the store is rebased only once every append landed
      this.cancelAll();
      const id = this.nextRequestId++;
      this.bootstrap = new Bootstrap(id, snapshotPeer, nowMs + this.config.bootstrapTimeoutMs);
      this.mode = 'bootstrapping';
      this.out.push({ op: 'bootstrap', requestId: id, peer: snapshotPeer.region, seqMin: seq, timeoutMs: this.config.bootstrapTimeoutMs });
      return;
    }
    if (!this.stuckReported && !waiting) {
      this.stuckReported = true;
      this.alert('warning', new PlayoutError('PLAYOUT_GAP_UNREPAIRABLE', `No peer can serve entry ${seq} of shard "${this.config.shard}" now; waiting for a peer to report it`, { shard: this.config.shard, seq }));
    }
  }
}

/** Health first (not penalised, fewer failures), then latency, then configuration order. */
function comparePeers(a: PeerState, b: PeerState, nowMs: number): number {
  const pa = a.penalisedUntilMs > nowMs ? 1 : 0;
  const pb = b.penalisedUntilMs > nowMs ? 1 : 0;
  if (pa !== pb) return pa - pb;
  if (a.failures !== b.failures) return a.failures - b.failures;
  // A peer never measured is tried as if fast: asking it is how its latency is learned.
  const ra = a.rttMs ?? 0;
  const rb = b.rttMs ?? 0;
  if (ra !== rb) return ra - rb;
  return a.order - b.order;
}

/** Errors that mean the peer sent bad bytes (penalised), as opposed to being unreachable. */
function isCorruption(error: PlayoutError): boolean {
  return (
    error.code === 'PLAYOUT_ENTRY_HASH_MISMATCH' ||
    error.code === 'PLAYOUT_ENTRY_MALFORMED' ||
    error.code === 'PLAYOUT_ENTRY_FORMAT_UNKNOWN' ||
    error.code === 'PLAYOUT_CHAIN_BROKEN' ||
    error.code === 'PLAYOUT_RANGE_REFUSED'
  );
}

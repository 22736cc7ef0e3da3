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
import { PlayoutError, assert } from '../core/errors.js';
import { hashEquals, toHex } from '../core/hash.js';
import { StateTable } from '../core/state-table.js';
import type { PeerShardStatus } from '../ports/entry-source.js';
import type { BucketsAnswer, BucketsQuery, RecordsAnswer, RecordsQuery } from '../ports/peer-client.js';
import { BUCKETS_PER_QUERY_MAX, diffRecords, differingBuckets, tableSums, type RecordDiff, type TickState } from './bucket-compare.js';

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
 * or `onLocalStateFailure(compareId, error)`. The tick was closed here by the entry at `seq`:
 * a region applies entries before its log holds them durably, so the rebuild waits until it does.
 */
export interface CaptureLocalAction {
  readonly op: 'captureLocal';
  readonly compareId: number;
  readonly tick: number;
  readonly seq: number;
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

/** Values (digests) by tick, keeping only the newest `max` ticks. */
class DigestWindow<V = Uint8Array> {
  private readonly byTick = new Map<number, V>();
  private readonly max: number;
  newest = -1;

  constructor(max: number) {
    this.max = max;
  }

  get(tick: number): V | null {
    return this.byTick.get(tick) ?? null;
  }

  set(tick: number, digest: V): void {
    this.byTick.set(tick, digest);
    if (tick > this.newest) this.newest = tick;
    if (this.byTick.size > this.max) {
      // Ticks arrive nearly in order, so the oldest are at the front of the Map.
      const floor = this.newest - this.max;
      for (const t of this.byTick.keys()) {
        if (this.byTick.size <= this.max) break;
        if (t <= floor || this.byTick.size > this.max * 2) this.byTick.delete(t);
      }
    }
  }

  deleteAbove(tick: number): void {
    for (const t of [...this.byTick.keys()]) if (t > tick) this.byTick.delete(t);
    this.newest = -1;
    for (const t of this.byTick.keys()) if (t > this.newest) this.newest = t;
  }
}

class Mismatch {
  readonly tick: number;
  readonly seq: number;
  readonly expected: Uint8Array;
  readonly actual: Uint8Array;

  constructor(tick: number, seq: number, expected: Uint8Array, actual: Uint8Array) {
    this.tick = tick;
    this.seq = seq;
    this.expected = expected;
    this.actual = actual;
  }
}

/** One run of the bucket protocol against one peer at the first diverging tick. */
class Comparison {
  readonly id: number;
  readonly mismatch: Mismatch;
  readonly peer: string | null;
  state: TickState | null = null;
  /** Requests in flight: id → table (null for the buckets round). */
  readonly pending = new Map<number, { table: string | null; deadlineMs: number }>();
  readonly tables = new Map<string, { localSum: Uint8Array; peerSum: Uint8Array; buckets: number[]; records: RecordDiff[]; truncated: boolean }>();
  reproduced = true;

  constructor(id: number, mismatch: Mismatch, peer: string | null) {
    this.id = id;
    this.mismatch = mismatch;
    this.peer = peer;
  }
}

class Resync {
  readonly requestId: number;
  readonly peer: string;
  readonly deadlineMs: number;

  constructor(requestId: number, peer: string, deadlineMs: number) {
    this.requestId = requestId;
    this.peer = peer;
    this.deadlineMs = deadlineMs;
  }
}

export class DesyncDetector {
  readonly config: DesyncConfig;
  private leader: string;
  private readonly local: DigestWindow<LocalDigest>;
  private readonly leaderDigests: DigestWindow;
  /** Latest digests other regions published, per region (a few ticks each). */
  private readonly peerDigests = new Map<string, DigestWindow>();
  /** Regions whose digest disagreed with the leader's at their latest compared tick. */
  private readonly peerUnhealthy = new Map<string, number>();
  private readonly peersKnown: string[] = [];

  private quarantined = false;
  private mismatch: Mismatch | null = null;
  private mismatches = 0;
  private lastAgreedTick: number | null = null;
  /** Highest tick closed by an entry the local log holds (resync snapshots must not be newer). */
  private logTickClosed: number | null = null;
  private comparison: Comparison | null = null;
  private lastReport: DesyncReport | null = null;
  private resyncing: Resync | null = null;
  private resyncs = 0;
  private resyncsFailed = 0;
  /** Automatic resyncs in a row, and the tick the last one restored to. */
  private autoResyncStreak = 0;
  private lastResyncTick: number | null = null;
  private resyncNeedsCommand = false;
  /** When every candidate failed: the moment to try them again, else null. */
  private resyncRetryAtMs: number | null = null;
  /** Peers already tried for the current resync (next one on failure). */
  private resyncTried: string[] = [];
  private nextId = 1;
  private out: DesyncAction[] = [];

  constructor(config: DesyncConfig) {
    assert(config.digestWindowTicks >= 1, 'the digest window holds at least one tick');
    this.config = config;
    this.leader = config.leader;
    this.local = new DigestWindow<LocalDigest>(config.digestWindowTicks);
    this.leaderDigests = new DigestWindow(config.digestWindowTicks);
  }

  private get isLeader(): boolean {
    return this.config.region === this.leader;
  }

  // --- digests ---------------------------------------------------------------------------

  /** A tick closed locally (call from ShardMachine's onTick). */
  onLocalDigest(d: LocalDigest, nowMs: number): DesyncAction[] {
    this.local.set(d.tick, d);
    if (this.isLeader) this.leaderDigests.set(d.tick, d.digest);
    this.compareLeader(d.tick, nowMs);
    for (const region of this.peersKnown) this.comparePeer(region, d.tick);
    return this.flush();
  }

  /** The leader's digest of `tick` (from a tick entry's `digest`, or the leader's heartbeat). */
  onLeaderDigest(tick: number, digest: Uint8Array, nowMs: number): DesyncAction[] {
    this.leaderDigest(tick, digest, null, nowMs);
    return this.flush();
  }

  /** Convenience: feeds the leader digests carried by these log entries (call on every durable batch). */
  onLogEntries(entries: readonly Entry[], nowMs: number): DesyncAction[] {
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.kind !== 'tick') continue;
      if (this.logTickClosed === null || e.tick > this.logTickClosed) this.logTickClosed = e.tick;
      if (e.digest !== null && e.tick > 0) this.leaderDigest(e.tick - 1, e.digest, e.seq, nowMs);
    }
    return this.flush();
  }

  /** A peer's heartbeat/status: its published digest. */
  onPeerStatus(status: PeerShardStatus, nowMs: number): DesyncAction[] {
    if (status.shard !== this.config.shard || status.region === this.config.region) return this.flush();
    if (status.region === this.leader) {
      if (!status.quarantined && status.digest !== null) this.leaderDigest(status.digest.tick, status.digest.digest, null, nowMs);
      return this.flush();
    }
    let w = this.peerDigests.get(status.region);
    if (w === undefined) {
      w = new DigestWindow(64);
      this.peerDigests.set(status.region, w);
      this.peersKnown.push(status.region);
    }
    if (status.quarantined) {
      // Its own detector already knows; its digests are not evidence either way, and it is
      // no source for a resync until it recovers.
      this.peerUnhealthy.set(status.region, status.digest?.tick ?? -1);
      return this.flush();
    }
    if (status.digest === null) return this.flush();
    w.set(status.digest.tick, status.digest.digest);
    this.comparePeer(status.region, status.digest.tick);
    return this.flush();
  }

  private leaderDigest(tick: number, digest: Uint8Array, reportedBySeq: number | null, nowMs: number): void {
    const known = this.leaderDigests.get(tick);
    if (known !== null) {
      if (!hashEquals(known, digest) && !this.isLeader) {
        // The log and the leader's heartbeat disagree about the leader's own digest: a bug
        // or a failover in progress; the log wins (it is what every region replays).
        if (reportedBySeq !== null) this.leaderDigests.set(tick, digest);
      }
    } else {
      this.leaderDigests.set(tick, digest);
    }
    this.compareLeader(tick, nowMs);
    for (const region of this.peersKnown) this.comparePeer(region, tick);
  }

  private compareLeader(tick: number, nowMs: number): void {
    const mine = this.local.get(tick);
    const theirs = this.leaderDigests.get(tick);
    if (mine === null || theirs === null) return;
    if (hashEquals(mine.digest, theirs)) {
      if (this.lastAgreedTick === null || tick > this.lastAgreedTick) this.lastAgreedTick = tick;
      return;
    }
    if (this.isLeader) return;
    this.mismatches++;
    if (this.quarantined) return;
    this.quarantine(new Mismatch(tick, mine.seq, theirs, mine.digest), nowMs);
  }

  private comparePeer(region: string, tick: number): void {
    const w = this.peerDigests.get(region);
    const theirs = w?.get(tick) ?? null;
    const leader = this.leaderDigests.get(tick);
    if (theirs === null || leader === null) return;
    if (hashEquals(theirs, leader)) {
      this.peerUnhealthy.delete(region);
      return;
    }
    const previous = this.peerUnhealthy.get(region);
    this.peerUnhealthy.set(region, tick);
    if (previous === undefined) {
      const mine = this.local.get(tick);
      const agree = mine !== null && hashEquals(mine.digest, leader) ? ' (this region agrees with the leader)' : '';
      this.out.push({
        op: 'alert',
        level: 'warning',
        error: new PlayoutError('PLAYOUT_DIGEST_MISMATCH', `Region ${region} published digest ${toHex(theirs)} for tick ${tick} of shard "${this.config.shard}", the leader ${this.leader} has ${toHex(leader)}${agree}`, {
          shard: this.config.shard,
          tick,
          expected: toHex(leader),
          received: toHex(theirs),
        }),
      });
    }
  }

  // --- quarantine and diagnosis --------------------------------------------------------

  private quarantine(m: Mismatch, nowMs: number): void {
    this.quarantined = true;
    this.mismatch = m;
    // A desync soon after an automatic resync means the cause is still here (a reducer that
    // differs in this region): resyncing again would loop, so wait for an operator.
    if (this.lastResyncTick !== null && m.tick - this.lastResyncTick <= this.config.autoResyncWindowTicks) this.autoResyncStreak++;
    else this.autoResyncStreak = 0;
    if (this.config.resync === 'auto' && this.autoResyncStreak >= this.config.autoResyncMax) this.resyncNeedsCommand = true;
    const error = new PlayoutError('PLAYOUT_DIGEST_MISMATCH', `Shard "${this.config.shard}" desynced at tick ${m.tick}: the leader ${this.leader} computed ${toHex(m.expected)}, this region ${this.config.region} ${toHex(m.actual)}; quarantined (receiving, not applying or serving state)`, {
      shard: this.config.shard,
      tick: m.tick,
      expected: toHex(m.expected),
      received: toHex(m.actual),
    });
    this.out.push({ op: 'quarantine', tick: m.tick, error });
    this.out.push({ op: 'alert', level: 'critical', error });
    const id = this.nextId++;
    this.comparison = new Comparison(id, m, this.isLeader ? null : this.leader);
    this.out.push({ op: 'captureLocal', compareId: id, tick: m.tick, seq: m.seq });
    if (this.config.resync === 'auto' && !this.resyncNeedsCommand) this.startResync(nowMs, []);
    else if (this.resyncNeedsCommand) {
      this.out.push({
        op: 'alert',
        level: 'critical',
        error: new PlayoutError('PLAYOUT_DIGEST_MISMATCH', `Shard "${this.config.shard}" desynced again ${this.autoResyncStreak} times soon after a resync; automatic resync is withheld until POST /v1/shards/${this.config.shard}/resync`, { shard: this.config.shard, tick: m.tick }),
      });
    }
  }

  onLocalState(compareId: number, state: TickState, nowMs: number): DesyncAction[] {
    const c = this.comparison;
    if (c === null || c.id !== compareId || c.state !== null) return this.flush();
    if (state.tick !== c.mismatch.tick) {
      this.finishComparison(`the local state given is at tick ${state.tick}, not ${c.mismatch.tick}`);
      return this.flush();
    }
    c.state = state;
    if (hashEquals(state.digest, c.mismatch.expected)) {
      // Rebuilt from the same log, this region now computes the leader's digest: whatever
      // differed did not come from the log.
      c.reproduced = false;
      this.finishComparison(null);
      return this.flush();
    }
    if (c.peer === null) {
      this.finishComparison('no leader to compare with');
      return this.flush();
    }
    const id = this.nextId++;
    c.pending.set(id, { table: null, deadlineMs: nowMs + this.config.requestTimeoutMs });
    this.out.push({ op: 'fetchBuckets', requestId: id, peer: c.peer, query: { tick: state.tick, tableSums: tableSums(state) }, timeoutMs: this.config.requestTimeoutMs });
    return this.flush();
  }

  onLocalStateFailure(compareId: number, error: PlayoutError, _nowMs: number): DesyncAction[] {
    const c = this.comparison;
    if (c !== null && c.id === compareId && c.state === null) this.finishComparison(`this region's state at tick ${c.mismatch.tick} could not be rebuilt: ${error.message}`);
    return this.flush();
  }

  onBucketsAnswer(requestId: number, answer: BucketsAnswer, nowMs: number): DesyncAction[] {
    const c = this.comparison;
    const p = c?.pending.get(requestId);
    if (c === null || c === undefined || p === undefined || p.table !== null || c.state === null) return this.flush();
    c.pending.delete(requestId);
    if (answer.tick !== c.mismatch.tick) {
      this.finishComparison(`${c.peer} answered buckets of tick ${answer.tick}, not ${c.mismatch.tick}`);
      return this.flush();
    }
    const state = c.state;
    try {
      for (const t of answer.tables) {
        if (t.bucketSums === null) continue;
        const localTable = state.tables[t.table] ?? new StateTable(t.table);
        const buckets = differingBuckets(localTable, t.bucketSums);
        if (buckets.length === 0) continue;
        const fetched = buckets.slice(0, BUCKETS_PER_QUERY_MAX);
        c.tables.set(t.table, { localSum: localTable.digest(), peerSum: t.sum, buckets, records: [], truncated: buckets.length > fetched.length });
        const id = this.nextId++;
        c.pending.set(id, { table: t.table, deadlineMs: nowMs + this.config.requestTimeoutMs });
        this.out.push({ op: 'fetchRecords', requestId: id, peer: c.peer!, query: { tick: answer.tick, table: t.table, buckets: fetched }, timeoutMs: this.config.requestTimeoutMs });
      }
      // Tables the peer has and we lack, or the reverse, show up as differing bucket sums
      // above; a table only we have is not in the answer at all.
      for (const name of Object.keys(state.tables)) {
        if (answer.tables.some((t) => t.table === name)) continue;
        const localTable = state.tables[name]!;
        c.tables.set(name, { localSum: localTable.digest(), peerSum: new Uint8Array(16), buckets: [], records: [], truncated: true });
      }
    } catch (err) {
      this.finishComparison(`${c.peer} answered malformed bucket sums: ${(err as Error).message}`);
      return this.flush();
    }
    if (c.pending.size === 0) this.finishComparison(null);
    return this.flush();
  }

  onRecordsAnswer(requestId: number, answer: RecordsAnswer, _nowMs: number): DesyncAction[] {
    const c = this.comparison;
    const p = c?.pending.get(requestId);
    if (c === null || c === undefined || p === undefined || p.table === null || c.state === null) return this.flush();
    c.pending.delete(requestId);
    const t = c.tables.get(p.table)!;
    const localTable = c.state.tables[p.table] ?? new StateTable(p.table);
    if (answer.table !== p.table || answer.tick !== c.mismatch.tick) {
      this.finishComparison(`${c.peer} answered records of ${answer.table}@${answer.tick}, not ${p.table}@${c.mismatch.tick}`);
      return this.flush();
    }
    t.records.push(...diffRecords(localTable, answer));
    if (c.pending.size === 0) this.finishComparison(null);
    return this.flush();
  }

  onRequestFailure(requestId: number, error: PlayoutError, _nowMs: number): DesyncAction[] {
    const c = this.comparison;
    if (c !== null && c.pending.has(requestId)) {
      c.pending.delete(requestId);
      this.finishComparison(`${c.peer} did not answer: ${error.message}`);
    }
    return this.flush();
  }

  private finishComparison(incomplete: string | null): void {
    const c = this.comparison;
    if (c === null) return;
    this.comparison = null;
    const tables: TableDiff[] = [...c.tables.entries()]
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([table, t]) => ({ table, localSum: t.localSum, peerSum: t.peerSum, buckets: t.buckets, records: t.records, truncated: t.truncated }));
    const report: DesyncReport = {
      shard: this.config.shard,
      tick: c.mismatch.tick,
      seq: c.state?.seq ?? c.mismatch.seq,
      expected: c.mismatch.expected,
      actual: c.mismatch.actual,
      peer: c.peer,
      reproduced: c.reproduced,
      tables,
      incomplete: incomplete ?? (c.reproduced && tables.length === 0 && c.state !== null ? 'every table agrees: the difference is in the rng state or the reducer version' : null),
    };
    this.lastReport = report;
    this.out.push({ op: 'report', report });
    const names = tables.flatMap((t) => t.records.map((r) => `${r.table}["${r.key}"]`));
    const what = !report.reproduced
      ? 'it did not reproduce when this region rebuilt the tick from its log'
      : names.length > 0
        ? `${names.length} record(s) differ: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ' …' : ''}`
        : (report.incomplete ?? 'no record named');
    this.out.push({
      op: 'alert',
      level: 'critical',
      error: new PlayoutError('PLAYOUT_DIGEST_MISMATCH', `Desync of shard "${this.config.shard}" at tick ${report.tick} against ${report.peer ?? 'nobody'}: ${what}`, { shard: this.config.shard, tick: report.tick }),
    });
  }

  // --- resync ------------------------------------------------------------------------------

  /** `POST /v1/shards/:shard/resync`: resync now (also when automatic resync is withheld). */
  resync(nowMs: number): DesyncAction[] {
    this.resyncNeedsCommand = false;
    this.autoResyncStreak = 0;
    if (this.resyncing === null && !this.isLeader) this.startResync(nowMs, []);
    return this.flush();
  }

  resynced(requestId: number, tick: number, _nowMs: number): DesyncAction[] {
    const r = this.resyncing;
    if (r === null || r.requestId !== requestId) return this.flush();
    this.resyncing = null;
    this.resyncTried = [];
    this.resyncs++;
    this.quarantined = false;
    this.lastResyncTick = tick;
    // Digests computed after the snapshot's tick came from the diverged state: forget them.
    this.local.deleteAbove(tick);
    if (this.lastAgreedTick !== null && this.lastAgreedTick > tick) this.lastAgreedTick = tick;
    return this.flush();
  }

  resyncFailed(requestId: number, error: PlayoutError, nowMs: number): DesyncAction[] {
    const r = this.resyncing;
    if (r === null || r.requestId !== requestId) return this.flush();
    this.failResync(r, error, nowMs);
    return this.flush();
  }

  private failResync(r: Resync, error: PlayoutError, nowMs: number): void {
    this.resyncing = null;
    this.resyncsFailed++;
    this.resyncTried.push(r.peer);
    this.out.push({ op: 'alert', level: 'warning', error: new PlayoutError(error.code, `Resync of shard "${this.config.shard}" from ${r.peer} failed: ${error.message}`, { shard: this.config.shard, cause: error }) });
    this.startResync(nowMs, this.resyncTried);
  }

  private startResync(nowMs: number, tried: readonly string[]): void {
    this.resyncRetryAtMs = null;
    if (!this.quarantined || this.isLeader || this.resyncing !== null) return;
    const candidates = [this.leader, ...this.peersKnown.filter((p) => p !== this.leader && !this.peerUnhealthy.has(p))].filter((p) => p !== this.config.region);
    const peer = candidates.find((p) => !tried.includes(p)) ?? null;
    if (peer === null) {
      // Every candidate failed once: start over after a pause (they may have a snapshot, or
      // be reachable, by then) rather than spinning through them.
      this.resyncTried = [];
      this.resyncRetryAtMs = nowMs + this.config.requestTimeoutMs;
      return;
    }
    const id = this.nextId++;
    this.resyncing = new Resync(id, peer, nowMs + this.config.requestTimeoutMs);
    this.out.push({ op: 'resync', requestId: id, peer, tickMax: this.logTickClosed, timeoutMs: this.config.requestTimeoutMs });
  }

  /** The leader's digest of `tick` when known (to verify a resync snapshot), else null. */
  expectedDigest(tick: number): Uint8Array | null {
    return this.leaderDigests.get(tick);
  }

  /** After a failover: the new leader's digests are the reference. */
  /**
   * A failover changed whose digests are the reference: the candidate's on a promise, the epoch's
   * leader once established. Everything else is kept (a quarantine, its diagnosis, resync state):
   * a fence change does not heal a desync. `fromTick`: the new epoch's first tick; leader digests
   * of that tick and later, published by the previous leader, belong to a history that was not
   * kept and are forgotten.
   */
  setLeader(region: string, fromTick: number | null = null): void {
    this.leader = region;
    if (fromTick !== null) this.leaderDigests.deleteAbove(fromTick - 1);
  }

  get currentLeader(): string {
    return this.leader;
  }

  onTimer(nowMs: number): DesyncAction[] {
    const c = this.comparison;
    if (c !== null) {
      for (const [id, p] of c.pending) {
        if (p.deadlineMs <= nowMs) {
          c.pending.delete(id);
          this.finishComparison(`${c.peer} did not answer within ${this.config.requestTimeoutMs} ms`);
          this.out.push({ op: 'alert', level: 'warning', error: new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `Bucket comparison request ${id} to ${c.peer} timed out`, { shard: this.config.shard }) });
          break;
        }
      }
    }
    const r = this.resyncing;
    if (r !== null && r.deadlineMs <= nowMs) {
      this.failResync(r, new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `no snapshot within ${this.config.requestTimeoutMs} ms`, { shard: this.config.shard }), nowMs);
    }
    if (this.resyncRetryAtMs !== null && this.resyncRetryAtMs <= nowMs && this.resyncing === null) this.startResync(nowMs, []);
    return this.flush();
  }

  nextWakeMs(): number | null {
    let wake = Number.POSITIVE_INFINITY;
    if (this.comparison !== null) for (const p of this.comparison.pending.values()) wake = Math.min(wake, p.deadlineMs);
    if (this.resyncing !== null) wake = Math.min(wake, this.resyncing.deadlineMs);
    if (this.resyncRetryAtMs !== null) wake = Math.min(wake, this.resyncRetryAtMs);
    return Number.isFinite(wake) ? wake : null;
  }

  get isQuarantined(): boolean {
    return this.quarantined;
  }

  status(): DesyncStatus {
    return {
      shard: this.config.shard,
      quarantined: this.quarantined,
      lastAgreedTick: this.lastAgreedTick,
      firstDivergingTick: this.mismatch?.tick ?? null,
      mismatches: this.mismatches,
      peerMismatches: Object.fromEntries(this.peerUnhealthy),
      lastReport: this.lastReport,
      resyncs: this.resyncs,
      resyncsFailed: this.resyncsFailed,
      resyncNeedsCommand: this.resyncNeedsCommand,
    };
  }

  private flush(): DesyncAction[] {
    const out = this.out;
    this.out = [];
    return out;
  }
}

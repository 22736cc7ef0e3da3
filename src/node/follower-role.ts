// FollowerRole: the glue between a shard's pure state machines (Follower, DesyncDetector in
// src/replication/) and the world (the ShardHost's store and machine, peer clients, the clock).
//
// The state machines return actions; this class performs them and feeds the outcomes back,
// always with the clock's `nowMs`. It adds no protocol logic of its own: ordering, dedupe,
// gaps, repair planning, backoff and the desync decisions are the state machines'.
import { PlayoutError, isPlayoutError } from '../core/errors.js';
import type { Entry } from '../core/entry.js';
import { decodeSnapshot } from '../core/snapshot.js';
import { hashEquals, toHex } from '../core/hash.js';
import type { Rng } from '../core/rng.js';
import type { TickDigest } from '../core/shard-machine.js';
import type { Clock, Timer } from '../ports/clock.js';
import type { PeerShardStatus } from '../ports/entry-source.js';
import { Follower, type AdmitHook, type FollowerAction, type FollowerConfig } from '../replication/follower.js';
import { DesyncDetector, type DesyncAction, type DesyncConfig, type DesyncReport } from '../replication/desync-detector.js';
import { tickStateOf } from '../replication/state-at-tick.js';
import { rangeNotRetainedOf, type HttpPeerClient } from '../adapters/http-peer-client.js';
import type { EntrySource } from '../ports/entry-source.js';
import type { PeerStatus } from '../adapters/http-schemas.js';
import type { ShardHost } from './shard-host.js';

/** Entries applied per turn of the event loop (see FollowerRole.queueApply). */
const APPLY_SLICE = 2_000;
/**
 * Entries applied per turn while appends are in flight: entries keep arriving, and making them
 * durable comes first (they count for quorum acks and are what a catch-up is measured by);
 * applying follows in the turns between.
 */
const APPLY_SLICE_RECEIVING = 256;
/**
 * Entries applied per turn while this region is far behind a peer (more than CATCH_UP_LAG_ENTRIES):
 * catching up the durable log comes first (it is what the region can serve, fail over to, count
 * for quorum), applying takes a small share until the log is level, then catches up itself.
 */
const APPLY_SLICE_CATCHING_UP = 32;
const CATCH_UP_LAG_ENTRIES = 10_000;
/** Beyond this many durable entries waiting to be applied, applying takes its usual share again. */
const APPLY_QUEUED_ENTRIES_CATCHING_UP_MAX = 100_000;
/**
 * A repair that took the accepted head this far beyond the last entry the source delivered
 * repositions the source there: a stream that stalled (or is waiting to reconnect after a link
 * healed) would otherwise send it all again as duplicates, each decoded and checked.
 */
const REPOSITION_ENTRIES_MIN = 1_000;
/**
 * Durable reports to a leader that acknowledges inputs on its own durability (ack mode
 * `leader`) go out at most this often: they only feed its status view of this region's lag,
 * and one per append (hundreds a second at 10,000 inputs/s) costs the leader a request each.
 * Under ack mode `quorum` every report goes out at once (acknowledgements wait for them).
 */
const REPORT_EVERY_MS_LEADER_ACK = 100;

export interface FollowerRoleOptions {
  follower: Omit<FollowerConfig, 'shard' | 'region' | 'peers'>;
  desync: Omit<DesyncConfig, 'shard' | 'region' | 'leader'>;
  /** Retry delay of a failed durable report to the leader. */
  reportRetryMs: number;
  /** The failover fence hooks (docs/failover.md, "Hooks"). */
  admit?: AdmitHook | null;
  /** Whose digests the detector compares with while `leader` is null (the candidate of a promise). */
  reference?: string;
  /** An epoch entry starts below the head (the Follower's `diverged` action): learn that epoch. */
  onDiverged?: (entry: Entry, region: string | null) => void;
}

interface PeerView {
  head: number | null;
  digestTick: number | null;
  digest: Uint8Array | null;
  lastHeardMs: number | null;
  /** Since when this node has been behind the peer's known head (null: level or ahead). */
  behindSinceMs: number | null;
  /** Our digest at `digestTick` once known (status is polled often; it is read once). */
  oursTick: number | null;
  ours: Uint8Array | null;
}

export class FollowerRole {
  readonly host: ShardHost;
  readonly follower: Follower;
  readonly detector: DesyncDetector;
  /** The leader this region follows (null while a failover's promise is pending). */
  leader: string | null;
  lastReport: DesyncReport | null = null;
  private readonly clock: Clock;
  private readonly clients: ReadonlyMap<string, HttpPeerClient>;
  private source: EntrySource;
  private readonly options: FollowerRoleOptions;
  private readonly inflight = new Map<number, AbortController>();
  private readonly views = new Map<string, PeerView>();
  private localTicks: TickDigest[] = [];
  private readonly applyQueue: (readonly Entry[] | { seqFrom: number; seqTo: number })[] = [];
  private applying = false;
  /** Entries waiting in applyQueue's lists (held in memory), and how far the head list is applied. */
  private applyQueuedEntries = 0;
  private applyHeadOffset = 0;
  private wake: Timer | null = null;
  private wakeAtMs: number | null = null;
  private reporting = false;
  private reportAgain = false;
  private lastReportMs = Number.NEGATIVE_INFINITY;
  private reportTimer: Timer | null = null;
  private closed = false;
  /** Appends handed to the host and not yet durable (or failed). */
  private appendsInFlight = 0;
  /** The highest seq the source delivered (or was repositioned to). */
  private sourceSeq: number;

  constructor(host: ShardHost, leader: string | null, clients: ReadonlyMap<string, HttpPeerClient>, source: EntrySource, clock: Clock, rng: Rng, options: FollowerRoleOptions) {
    this.host = host;
    this.leader = leader;
    this.clients = clients;
    this.source = source;
    this.clock = clock;
    this.options = options;
    this.sourceSeq = host.durableSeq;
    const region = host.ctx.region;
    const peers = [...clients.keys()];
    // The leader first: with equal health it is the peer most likely to hold everything.
    peers.sort((a, b) => (a === leader ? -1 : b === leader ? 1 : a < b ? -1 : 1));
    for (const p of peers) this.views.set(p, { head: null, digestTick: null, digest: null, lastHeardMs: null, behindSinceMs: null, oursTick: null, ours: null });
    host.autoApply = false;
    host.onLocalTick = (d) => this.localTicks.push(d);
    this.follower = new Follower({ ...options.follower, leader, shard: host.shard, region, peers, admit: options.admit ?? null }, { hashAt: (seq) => this.hashAt(seq) }, rng, {
      head: host.durableSeq,
      headHash: host.durableHash ?? new Uint8Array(16),
      headTick: host.durableTick,
      // A machine ahead of the durable log applied entries still in flight (see
      // Follower's header): they are applied again, as no-ops, when they come back.
      applied: Math.min(host.machine?.head ?? 0, host.durableSeq),
    });
    this.detector = new DesyncDetector({ ...options.desync, shard: host.shard, region, leader: leader ?? options.reference ?? region });
  }

  // --- failover hooks --------------------------------------------------------------------------

  /**
   * The fence changed: `leader` has authority (null while a promise is pending), `reference`'s
   * digests are compared with. The detector keeps its state (a quarantine survives a failover);
   * `fromTick` is the new epoch's first tick (older leader digests from it on are forgotten).
   */
  setLeader(leader: string | null, reference: string, fromTick: number | null = null): void {
    this.leader = leader;
    this.follower.setLeader(leader);
    this.detector.setLeader(reference, fromTick);
    this.recheckFence();
  }

  /** Entries buffered or held before the fence changed are checked against it again. */
  recheckFence(): void {
    if (this.closed) return;
    this.follower.recheckFence();
    this.run(this.follower.onTimer(this.clock.nowMs()));
  }

  /** Stream from another region (the new leader), from the next seq this follower needs. */
  switchSource(source: EntrySource): void {
    if (this.closed || source === this.source) return;
    this.source.unfollow(this.host.shard);
    this.source = source;
    this.sourceSeq = this.follower.acceptedSeq;
    this.source.follow(this.host.shard, this.follower.acceptedSeq + 1);
  }

  /** Repair from peers now (a candidate catching up to the highest fenced head). */
  repairNow(): void {
    if (!this.closed) this.run(this.follower.repairNow(this.clock.nowMs()));
  }

  /** Resolves once nothing is waiting to be applied. */
  get applyIdle(): boolean {
    return !this.applying && this.applyQueue.length === 0;
  }

  private hashAt(seq: number): Uint8Array | null {
    if (seq === this.host.durableSeq && this.host.durableHash !== null) return this.host.durableHash;
    return this.host.ctx.store.get(this.host.shard, seq)?.hash ?? null;
  }

  start(): void {
    this.run(this.follower.start(this.clock.nowMs()));
    this.source.follow(this.host.shard, this.host.durableSeq + 1);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.wake?.cancel();
    this.reportTimer?.cancel();
    for (const a of this.inflight.values()) a.abort();
    this.inflight.clear();
    this.source.unfollow(this.host.shard);
  }

  // --- inputs from the world -----------------------------------------------------------------

  onEntries(entries: readonly Entry[], region: string | null): void {
    if (this.closed) return;
    const last = entries[entries.length - 1]!.seq;
    if (last > this.sourceSeq) this.sourceSeq = last;
    if (region !== null) this.heard(region, last, null);
    this.run(this.follower.onEntries(entries, region, this.clock.nowMs()));
  }

  onPeerStatus(status: PeerShardStatus): void {
    if (this.closed || !this.views.has(status.region)) return;
    this.heard(status.region, status.head, status.digest);
    const now = this.clock.nowMs();
    this.run(this.follower.onPeerStatus(status, now));
    this.runDesync(this.detector.onPeerStatus(status, now));
  }

  onSourceError(error: PlayoutError): void {
    this.host.log.debug({ shard: this.host.shard, code: error.code }, error.message);
  }

  /** POST /v1/shards/:shard/resync. */
  resync(): void {
    this.runDesync(this.detector.resync(this.clock.nowMs()));
  }

  private heard(region: string, head: number, digest: { tick: number; digest: Uint8Array } | null): void {
    const v = this.views.get(region);
    if (v === undefined) return;
    v.head = Math.max(v.head ?? 0, head);
    v.lastHeardMs = this.clock.nowMs();
    if (digest !== null) {
      v.digestTick = digest.tick;
      v.digest = digest.digest;
    }
    this.updateBehind();
  }

  /** How far the durable log is behind the highest head a peer reported (or proved by sending). */
  private lagEntries(): number {
    let head = 0;
    for (const v of this.views.values()) if (v.head !== null && v.head > head) head = v.head;
    return head - this.host.durableSeq;
  }

  private updateBehind(): void {
    const now = this.clock.nowMs();
    for (const v of this.views.values()) {
      if (v.head !== null && v.head > this.host.durableSeq) v.behindSinceMs ??= now;
      else v.behindSinceMs = null;
    }
  }

  // --- actions --------------------------------------------------------------------------------

  private run(actions: readonly FollowerAction[]): void {
    for (const a of actions) {
      if (this.closed) return;
      switch (a.op) {
        case 'append':
          this.append(a.appendId, a.entries);
          break;
        case 'apply':
          this.queueApply(a.entries);
          break;
        case 'applyStored':
          this.queueApply({ seqFrom: a.seqFrom, seqTo: a.seqTo });
          break;
        case 'rewind':
          this.rewind();
          break;
        case 'requestRange':
          this.requestRange(a.requestId, a.peer, a.seqFrom, a.seqTo, a.timeoutMs);
          break;
        case 'cancel':
          this.inflight.get(a.requestId)?.abort();
          this.inflight.delete(a.requestId);
          break;
        case 'bootstrap':
          this.bootstrap(a.requestId, a.peer, a.seqMin, a.timeoutMs);
          break;
        case 'follow':
          this.sourceSeq = a.seqFrom - 1;
          this.source.follow(this.host.shard, a.seqFrom);
          break;
        case 'alert':
          this.alert(a.level, a.error);
          break;
        case 'diverged':
          this.options.onDiverged?.(a.entry, a.region);
          break;
        case 'stop':
          this.host.stop(a.error);
          break;
      }
    }
    this.arm();
  }

  private append(appendId: number, entries: readonly Entry[]): void {
    const last = entries[entries.length - 1]!.seq;
    if (this.host.stopped !== null) {
      // The shard stopped (a fork, a reducer failure): the follower stops with it.
      this.run(this.follower.stop(this.host.stopped));
      return;
    }
    try {
      this.host.enqueue(entries, 'stream');
    } catch (err) {
      this.run(this.follower.appendFailed(appendId, asPlayoutError(err), this.clock.nowMs()));
      return;
    }
    this.appendsInFlight++;
    this.host.waitDurable(last).then(
      () => {
        this.appendsInFlight--;
        if (this.closed) return;
        this.updateBehind();
        const now = this.clock.nowMs();
        // The leader's digests carried by the log are evidence as soon as the log holds them:
        // applying may lag far behind (a catch-up, a quarantine), the comparison must not.
        this.runDesync(this.detector.onLogEntries(entries, now));
        this.run(this.follower.appended(appendId, now));
        this.reportDurable();
      },
      (err) => {
        this.appendsInFlight--;
        if (!this.closed) this.run(this.follower.appendFailed(appendId, asPlayoutError(err), this.clock.nowMs()));
      },
    );
  }

  /**
   * Apply in slices of APPLY_SLICE entries, one slice per turn of the event loop: a follower
   * catching up is handed tens of thousands of durable entries at once, and applying them in
   * one go would hold heartbeats, stream reads and status answers back for a second or more.
   * Order is kept: slices are applied in the order the follower asked.
   */
  private queueApply(work: readonly Entry[] | { seqFrom: number; seqTo: number }): void {
    this.applyQueue.push(work);
    if (Array.isArray(work)) this.applyQueuedEntries += work.length;
    if (!this.applying) this.drainApply();
  }

  /** An append failed after its entries were applied: what waits to be applied is void too, and the machine goes back to the log. */
  private rewind(): void {
    this.applyQueue.length = 0;
    this.applyQueuedEntries = 0;
    this.applyHeadOffset = 0;
    this.localTicks = [];
    this.host.rewindToDurable();
  }

  private drainApply(): void {
    this.applying = true;
    // Far behind, the durable log goes first, as long as what waits to be applied stays within
    // a bound (durable entries are held here until applied).
    let budget =
      this.appendsInFlight === 0 ? APPLY_SLICE : this.applyQueuedEntries < APPLY_QUEUED_ENTRIES_CATCHING_UP_MAX && this.lagEntries() > CATCH_UP_LAG_ENTRIES ? APPLY_SLICE_CATCHING_UP : APPLY_SLICE_RECEIVING;
    while (budget > 0 && this.applyQueue.length > 0 && !this.closed) {
      const work = this.applyQueue[0]!;
      if (Array.isArray(work)) {
        const list = work as readonly Entry[];
        // Applied from an offset into the head list (slicing its rest at every turn would copy a
        // catch-up's tens of thousands of entries again and again).
        const from = this.applyHeadOffset;
        const n = Math.min(budget, list.length - from);
        if (from + n >= list.length) {
          this.applyQueue.shift();
          this.applyHeadOffset = 0;
        } else this.applyHeadOffset = from + n;
        this.applyQueuedEntries -= n;
        this.apply(from === 0 && n === list.length ? list : list.slice(from, from + n));
        budget -= n;
      } else {
        const range = work as { seqFrom: number; seqTo: number };
        const to = Math.min(range.seqTo, range.seqFrom + budget - 1);
        const applied = this.host.applyStored(range.seqFrom, to);
        if (to >= range.seqTo) this.applyQueue.shift();
        else this.applyQueue[0] = { seqFrom: to + 1, seqTo: range.seqTo };
        this.apply(applied, true);
        budget -= Math.max(1, to - range.seqFrom + 1);
      }
    }
    if (this.applyQueue.length > 0 && !this.closed) setImmediate(() => this.drainApply());
    else this.applying = false;
  }

  /**
   * Apply entries (durable, or handed to the store just before: see Follower's header), then
   * tell the detector what closed locally. The log's digests are fed when the entries become
   * durable (append); entries replayed from the store after a restore or bootstrap are fed
   * again, as the detector's window may have moved past them.
   */
  private apply(entries: readonly Entry[], fromStore = false): void {
    if (!fromStore) this.host.applyBatch(entries);
    const now = this.clock.nowMs();
    const ticks = this.localTicks;
    this.localTicks = [];
    for (const d of ticks) this.runDesync(this.detector.onLocalDigest({ tick: d.tick, seq: d.seq, digest: d.digest }, now));
    if (fromStore) this.runDesync(this.detector.onLogEntries(entries, now));
  }

  private requestRange(requestId: number, peer: string, seqFrom: number, seqTo: number, timeoutMs: number): void {
    const client = this.clients.get(peer);
    if (client === undefined) {
      this.run(this.follower.onRangeFailure(requestId, new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `No client for region ${peer}`, { shard: this.host.shard }), null, this.clock.nowMs()));
      return;
    }
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    this.inflight.set(requestId, abort);
    const metrics = this.host.ctx.metrics;
    client.entries(this.host.shard, seqFrom, seqTo, { signal: abort.signal }).then(
      (entries) => {
        clearTimeout(timer);
        this.inflight.delete(requestId);
        if (this.closed) return;
        metrics.repairs.inc({ shard: this.host.shard, peer, outcome: 'ok' });
        metrics.repairEntries.inc({ shard: this.host.shard, peer }, entries.length);
        if (entries.length > 0) this.heard(peer, entries[entries.length - 1]!.seq, null);
        this.run(this.follower.onRangeResponse(requestId, entries, this.clock.nowMs()));
        const accepted = this.follower.acceptedSeq;
        if (!this.closed && accepted > this.sourceSeq + REPOSITION_ENTRIES_MIN) {
          this.sourceSeq = accepted;
          this.source.follow(this.host.shard, accepted + 1);
        }
      },
      (err) => {
        clearTimeout(timer);
        // Gone from `inflight`: the follower cancelled it (a source delivered the range first, or
        // its own deadline passed) and has moved on; counted apart from the peer's failures.
        const cancelled = !this.inflight.delete(requestId);
        if (this.closed) return;
        if (cancelled) {
          metrics.repairs.inc({ shard: this.host.shard, peer, outcome: 'cancelled' });
          return;
        }
        const e = asPlayoutError(err);
        metrics.repairs.inc({ shard: this.host.shard, peer, outcome: e.code });
        this.run(this.follower.onRangeFailure(requestId, e, rangeNotRetainedOf(err), this.clock.nowMs()));
      },
    );
  }

  private bootstrap(requestId: number, peer: string, seqMin: number, timeoutMs: number): void {
    const client = this.clients.get(peer);
    const fail = (err: unknown): void => {
      if (!this.closed) this.run(this.follower.bootstrapFailed(requestId, asPlayoutError(err), this.clock.nowMs()));
    };
    if (client === undefined) {
      fail(new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `No client for region ${peer}`, { shard: this.host.shard }));
      return;
    }
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    this.inflight.set(requestId, abort);
    void (async () => {
      try {
        const snap = await client.snapshot(this.host.shard, null, { signal: abort.signal });
        const r = await this.host.bootstrapFrom(snap.bytes, seqMin);
        if (this.closed) return;
        this.host.ctx.metrics.repairs.inc({ shard: this.host.shard, peer, outcome: 'bootstrap' });
        this.run(this.follower.bootstrapped(requestId, r.seq, r.hash, r.tick, this.clock.nowMs()));
      } catch (err) {
        fail(err);
      } finally {
        clearTimeout(timer);
        this.inflight.delete(requestId);
      }
    })();
  }

  private alert(level: 'warning' | 'critical', error: PlayoutError): void {
    const log = this.host.log;
    const fields = { shard: this.host.shard, code: error.code, seq: error.seq, tick: error.tick };
    if (level === 'critical') log.error(fields, error.message);
    else log.warn(fields, error.message);
    if (error.code === 'PLAYOUT_FORK') this.host.ctx.metrics.forks.inc({ shard: this.host.shard });
  }

  private runDesync(actions: readonly DesyncAction[]): void {
    for (const a of actions) {
      if (this.closed) return;
      const now = this.clock.nowMs();
      switch (a.op) {
        case 'quarantine':
          this.host.enterQuarantine({
            firstDivergingTick: a.tick,
            expected: null,
            actual: null,
            // Wall time, as the host's own quarantines (shown to operators, not compared).
            sinceMs: this.host.ctx.nowMs(),
            records: [],
            reason: a.error.message,
          });
          this.run(this.follower.quarantine(now));
          break;
        case 'alert':
          this.alert(a.level, a.error);
          break;
        case 'captureLocal':
          this.captureLocal(a.compareId, a.tick, a.seq);
          break;
        case 'fetchBuckets':
          this.peerCall(a.peer, a.requestId, a.timeoutMs, (c, signal) => c.buckets(this.host.shard, a.query, { signal }), (ans) => this.detector.onBucketsAnswer(a.requestId, ans, this.clock.nowMs()));
          break;
        case 'fetchRecords':
          this.peerCall(a.peer, a.requestId, a.timeoutMs, (c, signal) => c.records(this.host.shard, a.query, { signal }), (ans) => this.detector.onRecordsAnswer(a.requestId, ans, this.clock.nowMs()));
          break;
        case 'report':
          this.report(a.report);
          break;
        case 'resync':
          this.resyncFrom(a.requestId, a.peer, a.tickMax, a.timeoutMs);
          break;
      }
    }
    this.arm();
  }

  /** Rebuild this region's state at `tick` from its own log (once the log holds `seq`, which closed it here). */
  private captureLocal(compareId: number, tick: number, seq: number): void {
    this.host.rebuildAt(tick, seq).then(
      (m) => {
        if (!this.closed) this.runDesync(this.detector.onLocalState(compareId, tickStateOf(m), this.clock.nowMs()));
      },
      (err: unknown) => {
        if (!this.closed) this.runDesync(this.detector.onLocalStateFailure(compareId, asPlayoutError(err), this.clock.nowMs()));
      },
    );
  }

  private peerCall<T>(peer: string, requestId: number, timeoutMs: number, call: (c: HttpPeerClient, signal: AbortSignal) => Promise<T>, done: (answer: T) => DesyncAction[]): void {
    const client = this.clients.get(peer);
    const fail = (err: unknown): void => {
      if (!this.closed) this.runDesync(this.detector.onRequestFailure(requestId, asPlayoutError(err), this.clock.nowMs()));
    };
    if (client === undefined) {
      fail(new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `No client for region ${peer}`, { shard: this.host.shard }));
      return;
    }
    call(client, AbortSignal.timeout(timeoutMs)).then((answer) => {
      if (!this.closed) this.runDesync(done(answer));
    }, fail);
  }

  private report(r: DesyncReport): void {
    this.lastReport = r;
    const q = this.host.quarantine;
    const records = r.tables.flatMap((t) => t.records.map((d) => `${t.table}["${(d as { key?: string }).key ?? '?'}"]`));
    if (q !== null) {
      q.records = records;
      q.expected = r.expected;
      q.actual = r.actual;
      q.firstDivergingTick = r.tick;
    }
    this.host.log.error(
      { shard: this.host.shard, tick: r.tick, seq: r.seq, peer: r.peer, reproduced: r.reproduced, records, incomplete: r.incomplete, expected: toHex(r.expected), actual: toHex(r.actual) },
      `desync of shard ${this.host.shard} at tick ${r.tick}: ${records.length > 0 ? `records ${records.join(', ')} differ` : 'no differing record named'}${r.incomplete ? ` (${r.incomplete})` : ''}`,
    );
  }

  private resyncFrom(requestId: number, peer: string, tickMax: number | null, timeoutMs: number): void {
    const client = this.clients.get(peer);
    const fail = (err: unknown): void => {
      if (!this.closed) this.runDesync(this.detector.resyncFailed(requestId, asPlayoutError(err), this.clock.nowMs()));
    };
    if (client === undefined) {
      fail(new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `No client for region ${peer}`, { shard: this.host.shard }));
      return;
    }
    void (async () => {
      try {
        const snap = await client.snapshot(this.host.shard, tickMax, { signal: AbortSignal.timeout(timeoutMs) });
        const decoded = decodeSnapshot(snap.bytes);
        const expected = this.detector.expectedDigest(decoded.tick);
        if (expected !== null && !hashEquals(expected, decoded.digest)) {
          throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Region ${peer} sent a snapshot of shard "${this.host.shard}" at tick ${decoded.tick} whose digest ${toHex(decoded.digest)} is not the leader's ${toHex(expected)}`, {
            shard: this.host.shard,
            tick: decoded.tick,
            expected: toHex(expected),
            received: toHex(decoded.digest),
          });
        }
        if (this.closed) return;
        const r = this.host.restoreFrom(snap.bytes);
        const now = this.clock.nowMs();
        // The detector first, so that it judges the digests of the replay that follows (a
        // reducer that diverges again must be caught again, not forgotten).
        this.runDesync(this.detector.resynced(requestId, r.tick, now));
        this.run(this.follower.restored(r.seq, r.hash, r.tick, now));
      } catch (err) {
        fail(err);
      }
    })();
  }

  // --- durable reports to the leader ------------------------------------------------------------

  /** Tell the leader what is durable here (quorum acks, its view of our lag); one request in flight. */
  private reportDurable(): void {
    if (this.reporting) {
      this.reportAgain = true;
      return;
    }
    const leader = this.leader === null ? undefined : this.clients.get(this.leader);
    if (leader === undefined || this.host.durableHash === null) return;
    const now = this.clock.nowMs();
    if (this.host.meta.ack !== 'quorum') {
      const waitMs = this.lastReportMs + REPORT_EVERY_MS_LEADER_ACK - now;
      if (waitMs > 0) {
        this.reportTimer ??= this.clock.after(waitMs, () => {
          this.reportTimer = null;
          if (!this.closed) this.reportDurable();
        });
        return;
      }
    }
    this.lastReportMs = now;
    this.reporting = true;
    this.reportAgain = false;
    const d = this.host.latestDigest;
    leader
      .reportDurable(this.host.shard, {
        region: this.host.ctx.region,
        seq: this.host.durableSeq,
        hash: toHex(this.host.durableHash),
        digestTick: d === null ? null : d.tick,
        digest: d === null ? null : toHex(d.digest),
      })
      .then(
        () => {
          this.reporting = false;
          if (this.reportAgain && !this.closed) this.reportDurable();
        },
        (err) => {
          this.host.log.debug({ shard: this.host.shard, code: (err as PlayoutError).code }, `durable report to ${this.leader} failed`);
          setTimeout(() => {
            this.reporting = false;
            if (!this.closed) this.reportDurable();
          }, this.options.reportRetryMs);
        },
      );
  }

  // --- timers ---------------------------------------------------------------------------------

  private arm(): void {
    if (this.closed) return;
    const a = this.follower.nextWakeMs();
    const b = this.detector.nextWakeMs();
    const at = a === null ? b : b === null ? a : Math.min(a, b);
    if (at === null) {
      this.wake?.cancel();
      this.wake = null;
      this.wakeAtMs = null;
      return;
    }
    if (this.wakeAtMs !== null && this.wakeAtMs <= at && this.wake !== null) return;
    this.wake?.cancel();
    this.wakeAtMs = at;
    this.wake = this.clock.after(Math.max(0, at - this.clock.nowMs()), () => {
      this.wake = null;
      this.wakeAtMs = null;
      if (this.closed) return;
      const now = this.clock.nowMs();
      this.run(this.follower.onTimer(now));
      this.runDesync(this.detector.onTimer(now));
    });
  }

  // --- status -----------------------------------------------------------------------------------

  peerStatus(): PeerStatus[] {
    const now = this.clock.nowMs();
    const out: PeerStatus[] = [];
    for (const [region, v] of this.views) {
      if (v.digestTick !== null && v.oursTick !== v.digestTick) {
        // Unknown until this region applied that tick; a resync replaces the machine, not the
        // stored digests of ticks it agreed on.
        v.ours = this.host.digestAt(v.digestTick);
        v.oursTick = v.ours === null ? null : v.digestTick;
      }
      const ours = v.digestTick === null ? null : v.ours;
      out.push({
        region,
        head: v.head,
        lagEntries: v.head === null ? null : Math.max(0, v.head - this.host.durableSeq),
        lagMs: v.head === null ? null : v.behindSinceMs === null ? 0 : Math.max(0, Math.round(now - v.behindSinceMs)),
        digestTick: v.digestTick,
        digest: v.digest === null ? null : toHex(v.digest),
        agrees: ours === null || v.digest === null ? null : hashEquals(ours, v.digest),
        lastHeardMs: v.lastHeardMs === null ? null : Math.max(0, Math.round(now - v.lastHeardMs)),
      });
    }
    return out;
  }
}

function asPlayoutError(err: unknown): PlayoutError {
  if (isPlayoutError(err)) return err;
  return new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', (err as Error)?.message ?? String(err), { cause: err });
}

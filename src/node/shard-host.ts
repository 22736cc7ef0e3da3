// ShardHost: one shard on one node, whatever its role. It owns the shard's durable log (through
// the LogStore), its ShardMachine, and the things both roles share:
//
// - group commit: entries handed to `enqueue` while an append is in flight are appended
//   together by the next one, so one fsync covers many entries at high rates and a lone entry
//   still goes out at once (no batching delay);
// - applying durable entries in order, recording tick digests, tracking agreement with the
//   leader's digests carried by the log, taking snapshots every N ticks, truncating;
// - serving the log to peers (ShardFeed: ranges, streams, heartbeats).
//
// Leader and follower logic live in leader-role.ts and follower-role.ts; timers live in the roles.
import type { FastifyBaseLogger } from 'fastify';
import { decodeSnapshot, encodeCapturedSnapshotSteps } from '../core/snapshot.js';
import { Entry, type EpochPayload } from '../core/entry.js';
import { PlayoutError, assert, isPlayoutError } from '../core/errors.js';
import { hashEquals, toHex } from '../core/hash.js';
import type { ReducerRegistry } from '../core/reducer.js';
import { ShardMachine, type MachineOptions, type TickDigest } from '../core/shard-machine.js';
import type { LogStore, SnapshotInfo, StoredDigest } from '../ports/log-store.js';
import type { Heartbeat } from '../adapters/http-frames.js';
import type { ShardFeed } from '../adapters/http-server.js';
import type { AckMode } from '../adapters/http-schemas.js';
import type { NodeMetrics } from '../adapters/metrics.js';
import type { EpochRecord, FenceState } from '../ports/failover-client.js';
import { EPOCHS_META_KEY, appendEpochRecord, epochRecordOf, historyFromEntries, parseEpochHistory } from '../replication/epoch-history.js';
import { stateAtTick } from '../replication/state-at-tick.js';
import { FENCE_META_KEY, establish, establishHistory, initialFence, parseFence } from '../replication/fence.js';

export interface HostContext {
  readonly region: string;
  readonly store: LogStore;
  readonly registry: ReducerRegistry;
  readonly metrics: NodeMetrics;
  readonly log: FastifyBaseLogger;
  readonly snapshotEveryTicks: number;
  readonly snapshotsKept: number;
  readonly retainEntriesMin: number;
  /**
   * Under ack mode `leader` (the leader acknowledges on its own durability), a follower starts an
   * append of streamed entries at most this often, so that what arrives in the meantime shares
   * one transaction and one fsync (config `replication.followerCommitHoldMs`). It applies them on
   * receipt: only its durable head trails, by at most this long (what it serves peers, reports to
   * the leader, counts for a promotion, and rebuilds a tick from: see rebuildAt). Under ack mode
   * `quorum` acknowledgements wait for it: no hold there.
   * Why: at 10,000 inputs/s each region fsyncs ~100 times a second; where regions share a disk
   * (the latency benchmark's loopback cluster) the follower's fsyncs delay the leader's, whose
   * durability every acknowledgement and every streamed entry waits for.
   */
  readonly followerCommitHoldMs: number;
  machineOptions(onTick: (d: TickDigest) => void): MachineOptions;
  nowMs(): number;
}

/** What the node remembers about a shard beyond its log (store meta key `shard`). */
export interface ShardMeta {
  leader: string;
  ack: AckMode;
  reducer: string;
  createdBy: 'config' | 'api' | 'peer';
}

export interface Quarantine {
  firstDivergingTick: number;
  expected: Uint8Array | null;
  actual: Uint8Array | null;
  sinceMs: number;
  records: string[];
  reason: string;
}

/** A divergent suffix truncated into a quarantine report file (listed in the shard's status). */
export interface QuarantineReportRef {
  file: string;
  seqFrom: number;
  seqTo: number;
  entries: number;
  inputs: number;
  epoch: number | null;
  leader: string | null;
  atMs: number;
  reason: string;
}

export type AppendSource = 'sequencer' | 'stream' | 'repair';

/** Appends in flight at once per shard (see ShardHost.pump). */
const APPENDS_INFLIGHT_MAX = 4;
/**
 * No hold once this many entries wait: a follower catching up (a backlog streamed after a link
 * heals) stores as fast as its appends go, and its durable head does not trail by the hold.
 * Live at 10,000 inputs/s a hold gathers ~200.
 */
export const FOLLOWER_COMMIT_HOLD_ENTRIES_MAX = 1_024;

interface InflightAppend {
  batch: Entry[];
  source: AppendSource;
  t0: number;
  done: boolean;
  error: unknown;
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const RECENT_DIGESTS = 256;
/** The longest tick digests wait for an append to ride with before they are stored alone. */
const DIGESTS_FLUSH_MS = 100;
/** Snapshot rows encoded per step; steps are separate turns of the event loop (see takeSnapshot). */
const SNAPSHOT_ROWS_PER_STEP = 64;
/**
 * Encoding time per slice of a snapshot, and the pause after each: a fifth of the thread at most.
 * At 10,000 inputs/s a node's loop is already ~45% busy; 4 ms on / 4 ms off took it to ~95% for
 * the ~0.5 s of a snapshot, and ingress → applied in another region rose to 30–40 ms in that
 * window (bench/http-latency.bench.ts, worst per 250 ms); 2 / 8 kept it at 15–24 ms. The snapshot
 * takes longer (copy-on-write keeps more old record versions meanwhile), nothing else does.
 */
const SNAPSHOT_SLICE_MS = 2;
const SNAPSHOT_PAUSE_MS = 8;
/** Open read-your-writes waits per shard (GET /v1/shards/:shard/applied). */
const APPLIED_WAITERS_MAX = 10_000;

interface AppliedWaiter {
  seq: number;
  resolve: (a: { applied: number; reached: boolean; quarantined: boolean }) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout | null;
}

export class ShardHost implements ShardFeed {
  readonly shard: string;
  readonly ctx: HostContext;
  meta: ShardMeta;
  machine: ShardMachine | null = null;
  /** Highest durable seq (mirrors the store, kept here so the hot path does not read it). */
  durableSeq = 0;
  durableHash: Uint8Array | null = null;
  durableTick = 0;
  lastAgreedTick: number | null = null;
  /**
   * Leader: apply entries as soon as they are durable, and stop the shard when an append fails
   * (the sequencer has stamped entries the store does not hold). Follower: the Follower state
   * machine says when to apply, and a failed append is its to retry.
   */
  autoApply = true;
  /** Called for every tick closed by the machine (the follower feeds its desync detector). */
  onLocalTick: ((d: TickDigest) => void) | null = null;
  quarantine: Quarantine | null = null;
  stopped: PlayoutError | null = null;
  /** Epoch of the entry at the head (the sequencer continues it); the established epoch is `fence.epoch`. */
  epoch = 0;
  /** The failover fence (src/replication/fence.ts) and epoch history, persisted in the store's meta. */
  fence: FenceState;
  epochs: EpochRecord[] = [];
  /** Divergent suffixes this region truncated into quarantine report files. */
  quarantineReports: QuarantineReportRef[] = [];
  /**
   * Epoch records learned from the leader (an announce, a peer's epochs) before their entry is
   * durable here: when it is, the record made from the entry takes their time and failover id.
   */
  readonly learnedRecords = new Map<number, EpochRecord>();
  /** Called for every epoch recorded from a durable genesis or epoch entry (the node switches roles). */
  onEpochRecorded: ((record: EpochRecord) => void) | null = null;

  private readonly listeners = new Set<() => void>();
  private pending: Entry[] = [];
  private pendingSource: AppendSource = 'sequencer';
  private scheduled = false;
  private readonly inflight: InflightAppend[] = [];
  private waiters: Waiter[] = [];
  private appliedWaiters: AppliedWaiter[] = [];
  private readonly appliedListeners = new Set<(applied: number) => void>();
  /** The applied head the listeners last heard (they hear each move once). */
  private appliedHeard = -1;
  private tickDigests: StoredDigest[] = [];
  private digestsTimer: NodeJS.Timeout | null = null;
  /** When the last append of streamed entries started (performance.now()). */
  private lastStreamAppendAt = -Infinity;
  /** A follower's commit hold in progress (schedule). */
  private holdTimer: NodeJS.Timeout | null = null;
  private lastTick: TickDigest | null = null;
  /**
   * Digests of the latest RECENT_DIGESTS ticks computed here, by tick: peers' status rows and
   * heartbeats name recent ticks, and reading each from the store was a tenth of a follower's
   * CPU under 200 status polls a second.
   */
  private readonly recentDigests = new Map<number, Uint8Array>();
  private snapshotting: Promise<void> = Promise.resolve();
  private readonly onTickBound = (d: TickDigest): void => {
    this.tickDigests.push({ tick: d.tick, seq: d.seq, digest: d.digest });
    this.lastTick = d;
    this.recentDigests.set(d.tick, d.digest);
    if (this.recentDigests.size > RECENT_DIGESTS) this.recentDigests.delete(this.recentDigests.keys().next().value!);
    if (this.onLocalTick !== null) this.onLocalTick(d);
  };

  constructor(ctx: HostContext, shard: string, meta: ShardMeta) {
    this.ctx = ctx;
    this.shard = shard;
    this.meta = meta;
    this.fence = initialFence(shard, ctx.region, []);
  }

  // --- failover state ------------------------------------------------------------------------

  /**
   * Load the fence and the epoch history from the store's meta (after `resume`). A store without
   * them (older data), or whose last epoch entry's record was lost in a crash, rebuilds the
   * history from the log; `firstLeader` names the genesis's leader.
   */
  loadFailover(firstLeader: string): void {
    const store = this.ctx.store;
    const raw = store.getMeta(this.shard, EPOCHS_META_KEY);
    let epochs = raw === null ? [] : parseEpochHistory(raw, this.shard);
    const headEpoch = store.head(this.shard)?.epoch ?? 0;
    if (headEpoch > (epochs[epochs.length - 1]?.epoch ?? 0)) {
      const first = store.firstSeq(this.shard) ?? 1;
      for (const r of historyFromEntries(store.iterate(this.shard, first), firstLeader)) epochs = appendEpochRecord(epochs, r, this.shard);
    }
    this.epochs = epochs;
    const rawFence = store.getMeta(this.shard, FENCE_META_KEY);
    const fence = rawFence === null ? initialFence(this.shard, this.ctx.region, epochs) : parseFence(rawFence, this.shard, this.ctx.region);
    this.fence = establishHistory(fence, epochs);
    const reports = store.getMeta<QuarantineReportRef[]>(this.shard, 'failover.quarantine');
    this.quarantineReports = Array.isArray(reports) ? reports : [];
    if (this.fence.leader !== null && this.fence.leader !== this.meta.leader) this.meta = { ...this.meta, leader: this.fence.leader };
  }

  /** Persist the fence and the epoch history; resolves once both (and every earlier write) are durable. */
  persistFailover(): Promise<void> {
    const store = this.ctx.store;
    const p = Promise.all([store.putMeta(this.shard, EPOCHS_META_KEY, this.epochs), store.putMeta(this.shard, FENCE_META_KEY, this.fence)]).then(() => undefined);
    // Whoever waits for the latest persist sees its failure; nobody waiting is not an unhandled one.
    p.catch(() => undefined);
    this.failoverPersisted = p;
    return p;
  }

  /** The latest persistFailover (its writes come after every earlier one's): a promotion waits for it. */
  failoverPersisted: Promise<void> = Promise.resolve();

  /** Record the epoch a durable genesis or epoch entry starts, establish it, persist both. */
  private recordEpoch(e: Entry): void {
    let record: EpochRecord;
    try {
      record = epochRecordOf(e, { leader: e.kind === 'genesis' ? this.meta.leader : null, atMs: e.kind === 'genesis' ? Date.now() : null });
      const known = this.learnedRecords.get(record.epoch);
      if (known !== undefined && known.entryHash === record.entryHash) record = { ...record, atMs: known.atMs ?? record.atMs, failoverId: known.failoverId };
      this.epochs = appendEpochRecord(this.epochs, record, this.shard);
    } catch (err) {
      this.stop(err);
      return;
    }
    this.fence = establish(this.fence, record);
    if (this.fence.leader !== null && this.fence.leader !== this.meta.leader) {
      this.meta = { ...this.meta, leader: this.fence.leader };
      void this.ctx.store.putMeta(this.shard, 'shard', this.meta).catch((err) => this.stop(err));
    }
    this.persistFailover().catch((err) => this.stop(err));
    this.log.info({ shard: this.shard, epoch: record.epoch, leader: record.leader, firstSeq: record.firstSeq }, `shard ${this.shard}: epoch ${record.epoch} (leader ${record.leader}) starts at seq ${record.firstSeq}`);
    this.onEpochRecorded?.(record);
  }

  /**
   * Truncate the log above `keep` (the caller wrote the quarantine report first), drop the
   * snapshots and epochs beyond it, and rebuild the machine from what is left. Nothing may be
   * appending: the caller stopped both roles and drained.
   */
  async truncateAbove(keep: number): Promise<Entry[]> {
    await this.drain();
    const store = this.ctx.store;
    const entries = await store.truncateAbove(this.shard, keep);
    for (const s of store.snapshots(this.shard)) if (s.seq > keep) await store.deleteSnapshot(this.shard, s.tick);
    this.epochs = this.epochs.filter((r) => r.firstSeq <= keep);
    this.durableSeq = 0;
    this.durableHash = null;
    this.durableTick = 0;
    this.epoch = 0;
    this.quarantine = null;
    this.recentDigests.clear();
    this.lastTick = null;
    this.lastAgreedTick = null;
    this.tickDigests = [];
    await this.resume();
    return entries;
  }

  get log(): FastifyBaseLogger {
    return this.ctx.log;
  }

  // --- resume --------------------------------------------------------------------------------

  /**
   * Rebuild the machine from the store: the latest snapshot that decodes and restores (older
   * ones if the latest is corrupt), then every entry after it. Digests of replayed ticks are
   * written again, so a digest write lost in a crash comes back.
   */
  async resume(): Promise<void> {
    this.rebuildMachine();
    await this.flushDigests();
  }

  /**
   * A follower applies entries as it hands them to the store (src/replication/follower.ts): when
   * an append fails, the machine holds entries the log does not. Rebuild it from the store
   * (synchronously: nothing may be applied to the machine being replaced meanwhile).
   */
  rewindToDurable(): void {
    const m = this.machine;
    if (m === null || m.head <= this.durableSeq) return;
    this.log.warn({ shard: this.shard, applied: m.head, durable: this.durableSeq }, `shard ${this.shard}: rebuilding the machine from the store after a failed append (it applied up to ${m.head}, the log holds ${this.durableSeq})`);
    this.tickDigests = [];
    this.rebuildMachine();
    this.notifyApplied();
  }

  /** resume's rebuild, without waiting for the replayed ticks' digests to be stored. */
  private rebuildMachine(): void {
    const store = this.ctx.store;
    const head = store.head(this.shard);
    if (head === null) {
      // Nothing yet: a follower applies the genesis when it arrives.
      this.machine = new ShardMachine(this.ctx.registry, this.ctx.machineOptions(this.onTickBound));
      return;
    }
    this.durableSeq = head.seq;
    this.durableHash = head.hash;
    this.durableTick = head.tick;
    this.epoch = head.epoch;
    let machine: ShardMachine | null = null;
    const snaps = store.snapshots(this.shard).sort((a, b) => b.tick - a.tick);
    for (const info of snaps) {
      if (info.seq > head.seq) continue;
      const s = store.snapshot(this.shard, info.tick);
      if (s === null) continue;
      try {
        const snap = decodeSnapshot(s.bytes);
        const at = store.get(this.shard, snap.seq);
        if (at !== null && !hashEquals(at.hash, snap.lastHash)) {
          throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Snapshot at tick ${snap.tick} of shard "${this.shard}" does not end at the stored entry ${snap.seq}`, { seq: snap.seq, tick: snap.tick });
        }
        machine = ShardMachine.fromSnapshot(this.ctx.registry, snap, this.ctx.machineOptions(this.onTickBound));
        break;
      } catch (err) {
        if (!isPlayoutError(err)) throw err;
        this.log.warn({ shard: this.shard, tick: info.tick, code: err.code }, `skipping snapshot at tick ${info.tick}: ${err.message}`);
      }
    }
    const first = store.firstSeq(this.shard);
    if (machine === null) {
      if (first !== null && first > 1) {
        throw new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `Cannot resume shard "${this.shard}": entries start at ${first} and no usable snapshot precedes them`, { shard: this.shard, seq: first });
      }
      machine = new ShardMachine(this.ctx.registry, this.ctx.machineOptions(this.onTickBound));
    }
    this.machine = machine;
    this.recentDigests.clear();
    if (machine.lastDigest !== null) this.lastTick = machine.lastDigest;
    let replayed = 0;
    for (const entry of store.iterate(this.shard, machine.head + 1)) {
      this.applyOne(entry);
      replayed++;
      if (this.tickDigests.length >= 4096) void this.flushDigests().catch((err) => this.stop(err));
    }
    this.log.info({ shard: this.shard, head: this.durableSeq, applied: machine.head, replayed, tick: machine.tick }, `resumed shard ${this.shard} from the store`);
  }

  /** Start from a genesis entry (a new shard at its leader). */
  async genesis(entry: Entry): Promise<void> {
    assert(entry.kind === 'genesis' && entry.seq === 1, 'genesis is entry 1');
    assert(this.durableSeq === 0, 'genesis of an empty shard');
    this.machine ??= new ShardMachine(this.ctx.registry, this.ctx.machineOptions(this.onTickBound));
    this.enqueue([entry], 'sequencer');
    await this.waitDurable(1);
  }

  /**
   * Start over from a peer's snapshot (bootstrap, when no peer retains the entries this node
   * needs): decode it (its digest is recomputed from its records), store it as the new base
   * and drop the local log below it, then restore the machine from it.
   */
  async bootstrapFrom(snapshotBytes: Uint8Array, seqMin: number): Promise<{ seq: number; hash: Uint8Array; tick: number }> {
    const snap = decodeSnapshot(snapshotBytes);
    if (snap.shard !== this.shard) {
      throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot bootstrap shard "${this.shard}" from a snapshot of shard "${snap.shard}"`, { shard: this.shard, expected: this.shard, received: snap.shard });
    }
    if (snap.seq < seqMin - 1) {
      throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot bootstrap shard "${this.shard}" from a snapshot at seq ${snap.seq}: entries from ${seqMin} are needed`, { shard: this.shard, seq: snap.seq, expected: `>= ${seqMin - 1}`, received: String(snap.seq) });
    }
    const machine = ShardMachine.fromSnapshot(this.ctx.registry, snap, this.ctx.machineOptions(this.onTickBound));
    await this.ctx.store.putSnapshot(this.shard, snap.tick, snap.seq, snapshotBytes);
    await this.ctx.store.truncateBelow(this.shard, snap.seq + 1);
    this.machine = machine;
    this.recentDigests.clear();
    this.lastTick = machine.lastDigest;
    this.quarantine = null;
    this.durableSeq = snap.seq;
    this.durableHash = snap.lastHash;
    this.durableTick = snap.tick;
    this.epoch = snap.epoch;
    this.notifyApplied();
    this.log.info({ shard: this.shard, tick: snap.tick, seq: snap.seq }, `bootstrapped shard ${this.shard} from a snapshot at tick ${snap.tick}`);
    return { seq: snap.seq, hash: snap.lastHash, tick: snap.tick };
  }

  // --- group commit ------------------------------------------------------------------------

  /** Queue entries (continuing the queue's last seq) for the next durable append. */
  enqueue(entries: readonly Entry[], source: AppendSource): void {
    if (this.stopped !== null) throw this.stopped;
    if (entries.length === 0) return;
    for (let i = 0; i < entries.length; i++) this.pending.push(entries[i]!);
    this.pendingSource = source;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) {
      // A held append starts now if what waits no longer qualifies for the hold (a backlog).
      if (this.holdTimer !== null && this.commitHoldMs() <= 0) this.releaseHold();
      return;
    }
    this.scheduled = true;
    // Let every input that arrives in this turn of the event loop join the append (and, for a
    // follower's streamed entries, everything that arrives until its next commit is due).
    const holdMs = this.commitHoldMs();
    if (holdMs > 0) this.holdTimer = setTimeout(() => this.releaseHold(), holdMs);
    else setImmediate(() => this.runScheduled());
  }

  private runScheduled(): void {
    this.scheduled = false;
    this.pump();
  }

  /** End a follower's commit hold: its append starts in this turn's setImmediate. */
  private releaseHold(): void {
    if (this.holdTimer === null) return;
    clearTimeout(this.holdTimer);
    this.holdTimer = null;
    setImmediate(() => this.runScheduled());
  }

  /** How long the pending entries wait before their append starts (HostContext.followerCommitHoldMs). */
  private commitHoldMs(): number {
    if (this.pendingSource !== 'stream' || this.meta.ack !== 'leader' || this.pending.length >= FOLLOWER_COMMIT_HOLD_ENTRIES_MAX) return 0;
    return this.lastStreamAppendAt + this.ctx.followerCommitHoldMs - performance.now();
  }

  /**
   * Start appends, up to APPENDS_INFLIGHT_MAX at once. The store applies them in call order
   * and a later one may continue an earlier one still in flight, so an entry waits for its own
   * flush rather than for the flush ahead of it too: under load that halves the queueing
   * behind a slow fsync (bench/http-latency.bench.ts).
   */
  private pump(): void {
    while (this.pending.length > 0 && this.inflight.length < APPENDS_INFLIGHT_MAX && this.stopped === null) {
      // Queued in the same turn as the append: lmdb writes both in one transaction.
      if (this.tickDigests.length > 0) void this.flushDigests().catch((err) => this.stop(err));
      const a: InflightAppend = { batch: this.pending, source: this.pendingSource, t0: performance.now(), done: false, error: null };
      if (a.source === 'stream') this.lastStreamAppendAt = a.t0;
      this.pending = [];
      this.inflight.push(a);
      this.ctx.store.append(this.shard, a.batch).then(
        () => {
          a.done = true;
          this.complete();
        },
        (err: unknown) => {
          a.done = true;
          a.error = err ?? new Error('append failed');
          this.complete();
        },
      );
    }
  }

  /** Finish appends in the order they were issued: an entry is durable only after every one before it. */
  private complete(): void {
    while (this.inflight.length > 0 && this.inflight[0]!.done) {
      const a = this.inflight.shift()!;
      if (a.error !== null) {
        // Appends issued after a failed one continued it: they are not to be believed either.
        this.inflight.length = 0;
        if (this.autoApply) this.stop(a.error);
        else this.failAppends(a.error);
        return;
      }
      this.ctx.metrics.appendSeconds.observe({ shard: this.shard }, (performance.now() - a.t0) / 1000);
      this.ctx.metrics.entriesAppended.inc({ shard: this.shard, source: a.source }, a.batch.length);
      this.onDurable(a.batch);
    }
    if (this.pending.length > 0 && this.stopped === null) this.schedule();
  }

  /** A follower's append failed: everything queued after the durable head is dropped and its waiters fail. */
  private failAppends(err: unknown): void {
    this.pending = [];
    // What the store holds is the truth now (a later append in flight may have landed).
    const head = this.ctx.store.head(this.shard);
    if (head !== null && head.seq > this.durableSeq) {
      this.log.warn({ shard: this.shard, seq: head.seq }, `shard ${this.shard}: the store holds up to ${head.seq} after a failed append`);
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
    // Done here, not only when the follower asks (its `rewind`): a follower closed meanwhile
    // would leave the machine ahead of the log for the next one.
    this.rewindToDurable();
  }

  /** Resolves once `seq` is durable here; rejects if the shard stops first. */
  waitDurable(seq: number): Promise<void> {
    if (seq <= this.durableSeq) return Promise.resolve();
    if (this.stopped !== null) return Promise.reject(this.stopped);
    return new Promise((resolve, reject) => {
      const w: Waiter = { seq, resolve, reject };
      // Almost always the highest seq so far: push; otherwise insert in order.
      let i = this.waiters.length;
      while (i > 0 && this.waiters[i - 1]!.seq > seq) i--;
      this.waiters.splice(i, 0, w);
    });
  }

  /**
   * This region's state at the close of `tick`, rebuilt from its log (nearest snapshot + replay)
   * once the log holds `closedBySeq`, the entry that closed the tick here: entries are applied
   * before they are durable (a follower's commit hold), so a tick just applied may not be in the log yet.
   */
  async rebuildAt(tick: number, closedBySeq: number): Promise<ShardMachine> {
    if (closedBySeq > this.durableSeq) await this.waitDurable(closedBySeq);
    return stateAtTick(this.ctx.store, this.ctx.registry, this.shard, tick);
  }

  private onDurable(batch: Entry[]): void {
    const last = batch[batch.length - 1]!;
    this.durableSeq = last.seq;
    this.durableHash = last.hash;
    this.durableTick = last.tick;
    for (let i = 0; i < batch.length; i++) {
      const k = batch[i]!.kind;
      if (k === 'epoch' || k === 'genesis') this.recordEpoch(batch[i]!);
    }
    // Streams first: peers get the entries before this region applies them (their latency to
    // applied is the sum of both regions' work on the batch).
    for (const l of this.listeners) l();
    if (this.autoApply) this.applyBatch(batch);
    let n = 0;
    while (n < this.waiters.length && this.waiters[n]!.seq <= this.durableSeq) this.waiters[n++]!.resolve();
    if (n > 0) this.waiters.splice(0, n);
    // Tick digests ride with the next append (one transaction and one fsync instead of two per
    // tick); a shard with nothing more to append stores them after DIGESTS_FLUSH_MS.
    if (this.tickDigests.length > 0 && this.digestsTimer === null) {
      this.digestsTimer = setTimeout(() => {
        this.digestsTimer = null;
        void this.flushDigests().catch((err) => this.stop(err));
      }, DIGESTS_FLUSH_MS);
    }
  }

  /** Apply durable entries the machine has not applied yet (no-op while quarantined or stopped). */
  applyBatch(entries: readonly Entry[]): void {
    const m = this.machine;
    if (m === null || this.quarantine !== null || this.stopped !== null) return;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.seq <= m.head) continue;
      if (e.seq !== m.head + 1) break; // applied later, from the store, by catchUpApply
      this.applyOne(e);
      if (this.quarantine !== null || this.stopped !== null) break;
    }
    this.notifyApplied();
  }

  /** Apply durable entries [seqFrom, seqTo] read from the store; returns the entries applied (for the desync detector). */
  applyStored(seqFrom: number, seqTo: number): Entry[] {
    const m = this.machine;
    const out: Entry[] = [];
    if (m === null || this.quarantine !== null || this.stopped !== null) return out;
    for (const e of this.ctx.store.iterate(this.shard, Math.max(seqFrom, m.head + 1), seqTo)) {
      this.applyOne(e);
      out.push(e);
      if (this.quarantine !== null || this.stopped !== null) break;
    }
    this.notifyApplied();
    return out;
  }

  // --- read-your-writes barrier ----------------------------------------------------------------

  /**
   * Resolves once the applied head reaches `seq` (reached: true), or after `timeoutMs` with what
   * is applied then (reached: false). Rejects when the shard stops. At most APPLIED_WAITERS_MAX
   * waits per shard (PLAYOUT_OVERLOADED beyond).
   */
  waitApplied(seq: number, timeoutMs: number): Promise<{ applied: number; reached: boolean; quarantined: boolean }> {
    if (this.stopped !== null) return Promise.reject(this.stopped);
    const applied = this.machine?.head ?? 0;
    if (seq <= applied || timeoutMs === 0) return Promise.resolve({ applied, reached: seq <= applied, quarantined: this.quarantine !== null });
    if (this.appliedWaiters.length >= APPLIED_WAITERS_MAX) {
      return Promise.reject(
        new PlayoutError('PLAYOUT_OVERLOADED', `Cannot wait for seq ${seq} of shard "${this.shard}" to be applied: ${this.appliedWaiters.length} waits are open (limit ${APPLIED_WAITERS_MAX})`, {
          shard: this.shard,
          expected: `at most ${APPLIED_WAITERS_MAX} open waits`,
          received: String(this.appliedWaiters.length + 1),
        }),
      );
    }
    return new Promise((resolve, reject) => {
      const w: AppliedWaiter = { seq, resolve, reject, timer: null };
      w.timer = setTimeout(() => {
        const i = this.appliedWaiters.indexOf(w);
        if (i >= 0) this.appliedWaiters.splice(i, 1);
        resolve({ applied: this.machine?.head ?? 0, reached: false, quarantined: this.quarantine !== null });
      }, timeoutMs);
      // Almost always the highest seq so far: push; otherwise insert in order.
      let i = this.appliedWaiters.length;
      while (i > 0 && this.appliedWaiters[i - 1]!.seq > seq) i--;
      this.appliedWaiters.splice(i, 0, w);
    });
  }

  /**
   * Calls `listener` with the applied head whenever it moves (after the batch that moved it;
   * also when a rebuild or restore moves it back). Returns the unsubscribe function.
   */
  onApplied(listener: (applied: number) => void): () => void {
    this.appliedListeners.add(listener);
    this.appliedHeard = this.machine?.head ?? 0;
    return () => {
      this.appliedListeners.delete(listener);
    };
  }

  /** Waiters and listeners hear the applied head; cheap when there are none (called after every applied batch). */
  private notifyApplied(): void {
    const applied = this.machine?.head ?? 0;
    if (this.appliedListeners.size > 0 && applied !== this.appliedHeard) {
      this.appliedHeard = applied;
      for (const l of this.appliedListeners) l(applied);
    }
    let n = 0;
    while (n < this.appliedWaiters.length && this.appliedWaiters[n]!.seq <= applied) {
      const w = this.appliedWaiters[n++]!;
      clearTimeout(w.timer!);
      w.resolve({ applied, reached: true, quarantined: false });
    }
    if (n > 0) this.appliedWaiters.splice(0, n);
  }

  private failAppliedWaiters(err: unknown): void {
    const waiters = this.appliedWaiters;
    this.appliedWaiters = [];
    for (const w of waiters) {
      clearTimeout(w.timer!);
      w.reject(err);
    }
  }

  private applyOne(e: Entry): void {
    const m = this.machine!;
    const mismatchesBefore = m.mismatches;
    const prev = m.lastDigest;
    try {
      m.apply(e);
    } catch (err) {
      this.stop(err);
      return;
    }
    if (e.kind === 'epoch') {
      const p = e.payload as EpochPayload;
      this.epoch = p.epoch;
      this.meta = { ...this.meta, leader: p.leader };
      void this.ctx.store.putMeta(this.shard, 'shard', this.meta);
    } else if (e.kind === 'genesis') {
      this.epoch = e.epoch;
    }
    if (e.kind !== 'tick') return;
    if (m.mismatches > mismatchesBefore) {
      const mm = m.firstMismatch!;
      this.ctx.metrics.digestMismatches.inc({ shard: this.shard });
      this.enterQuarantine({
        firstDivergingTick: mm.tick,
        expected: mm.expected,
        actual: mm.actual,
        sinceMs: this.ctx.nowMs(),
        records: [],
        reason: `tick ${mm.tick} digests to ${toHex(mm.actual)} here but the leader's is ${toHex(mm.expected)} (carried by entry ${mm.reportedBySeq})`,
      });
    } else if (e.digest !== null && prev !== null && prev.tick === e.tick - 1) {
      this.lastAgreedTick = prev.tick;
    }
    const d = m.lastDigest!;
    if (this.ctx.snapshotEveryTicks > 0 && d.tick > 0 && d.tick % this.ctx.snapshotEveryTicks === 0) this.takeSnapshot();
  }

  enterQuarantine(q: Quarantine): void {
    if (this.quarantine !== null) return;
    this.quarantine = q;
    this.log.error({ shard: this.shard, tick: q.firstDivergingTick, expected: toHex(q.expected), actual: toHex(q.actual) }, `desync: shard ${this.shard} quarantined: ${q.reason}`);
  }

  /**
   * Resync: replace the machine with one restored from a healthy peer's snapshot (which must end
   * at an entry this node holds) and lift the quarantine. The caller applies the rest.
   */
  restoreFrom(snapshotBytes: Uint8Array): { seq: number; hash: Uint8Array; tick: number } {
    const snap = decodeSnapshot(snapshotBytes);
    const local = this.ctx.store.get(this.shard, snap.seq);
    if (local === null || !hashEquals(local.hash, snap.lastHash)) {
      throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot resync shard "${this.shard}" from a snapshot ending at entry ${snap.seq}: ${local === null ? 'that entry is not held here' : 'its last hash differs from the entry held here'}`, {
        shard: this.shard,
        seq: snap.seq,
        expected: local === null ? 'a held entry' : toHex(local.hash),
        received: toHex(snap.lastHash),
      });
    }
    const machine = ShardMachine.fromSnapshot(this.ctx.registry, snap, this.ctx.machineOptions(this.onTickBound));
    this.machine = machine;
    this.recentDigests.clear();
    this.lastTick = machine.lastDigest;
    this.quarantine = null;
    this.lastAgreedTick = snap.tick;
    this.notifyApplied();
    this.log.info({ shard: this.shard, tick: snap.tick, seq: snap.seq }, `resynced shard ${this.shard} from a snapshot at tick ${snap.tick}`);
    return { seq: snap.seq, hash: snap.lastHash, tick: snap.tick };
  }

  stop(err: unknown): void {
    if (this.stopped !== null) return;
    const e = isPlayoutError(err)
      ? err
      : new PlayoutError('PLAYOUT_SHARD_STOPPED', `Shard "${this.shard}" stopped: ${(err as Error)?.message ?? String(err)}`, { shard: this.shard, cause: err });
    this.stopped = new PlayoutError('PLAYOUT_SHARD_STOPPED', `Shard "${this.shard}" stopped: ${e.code}: ${e.message}`, { shard: this.shard, seq: e.seq, cause: e });
    if (e.code === 'PLAYOUT_FORK') this.ctx.metrics.forks.inc({ shard: this.shard });
    this.log.error({ shard: this.shard, code: e.code, err }, `shard ${this.shard} stopped: ${e.message}`);
    for (const w of this.waiters) w.reject(this.stopped);
    this.waiters = [];
    this.pending = [];
    this.failAppliedWaiters(this.stopped);
  }

  // --- digests and snapshots ---------------------------------------------------------------

  private async flushDigests(): Promise<void> {
    if (this.digestsTimer !== null) {
      clearTimeout(this.digestsTimer);
      this.digestsTimer = null;
    }
    if (this.tickDigests.length === 0) return;
    const batch = this.tickDigests;
    this.tickDigests = [];
    await this.ctx.store.putDigests(this.shard, batch);
  }

  private takeSnapshot(): void {
    const m = this.machine!;
    // Captured now (no copy of the state: see ShardMachine.captureSnapshot) and encoded a step per
    // turn of the event loop, after the snapshots before it; the encoder releases the capture when it ends or fails.
    const captured = m.captureSnapshot();
    const snap = captured.header;
    const steps = encodeCapturedSnapshotSteps(captured, SNAPSHOT_ROWS_PER_STEP);
    const prev = this.snapshotting;
    this.snapshotting = prev
      .then(async () => {
        // At most a fifth of this thread's time: after SNAPSHOT_SLICE_MS of encoding, a
        // SNAPSHOT_PAUSE_MS pause. Back to back, the steps took all the CPU the loop left, and the first snapshot
        // of a process (its record writers compiled and not yet optimised) ran for ~100 ms on a
        // leader and a follower at once, on a 2-core machine.
        let sliceFrom = performance.now();
        let step = steps.next();
        while (step.done !== true) {
          if (performance.now() - sliceFrom >= SNAPSHOT_SLICE_MS) {
            await new Promise((r) => setTimeout(r, SNAPSHOT_PAUSE_MS));
            sliceFrom = performance.now();
          } else await new Promise((r) => setImmediate(r));
          step = steps.next();
        }
        const bytes = step.value;
        // Stored once the log holds its entries: a follower applies entries before they are
        // durable here, and a snapshot of entries whose append failed must not outlive them.
        await this.waitDurable(snap.seq);
        // The digests up to the snapshot's tick are stored before it: a restart replays (and
        // recomputes digests) only after it.
        await this.flushDigests();
        await this.ctx.store.putSnapshot(this.shard, snap.tick, snap.seq, bytes, snap);
        await this.retain();
      })
      .catch((err) => this.log.error({ shard: this.shard, err }, `snapshot at tick ${snap.tick} of shard ${this.shard} failed`));
  }

  /**
   * Retention: truncate the log to the newest snapshot that still leaves `retainEntriesMin`
   * entries behind the head (peers catching up read those; older ones need a bootstrap), and
   * keep the newest `snapshotsKept` snapshots plus the base the log replays from — and the oldest
   * snapshot still inside the retention window: it is the next base. Without it, when the kept
   * snapshots span fewer than `retainEntriesMin` entries, every snapshot would be deleted before
   * it fell below the limit and the log would never be truncated. So the log holds between
   * `retainEntriesMin` and about twice that, plus one snapshot interval.
   */
  private async retain(): Promise<void> {
    const store = this.ctx.store;
    const snaps = store.snapshots(this.shard);
    const limit = this.durableSeq - this.ctx.retainEntriesMin;
    let base: SnapshotInfo | null = null;
    for (const s of snaps) if (s.seq + 1 <= limit) base = s;
    const first = store.firstSeq(this.shard);
    if (base !== null && first !== null && base.seq + 1 > first) await store.truncateBelow(this.shard, base.seq + 1);
    const now = store.snapshots(this.shard);
    const baseSeq = (store.firstSeq(this.shard) ?? 1) - 1;
    let nextBaseKept = false;
    for (let i = 0; i < now.length - this.ctx.snapshotsKept; i++) {
      const s = now[i]!;
      if (s.seq === baseSeq) continue;
      if (!nextBaseKept && s.seq + 1 > limit) {
        nextBaseKept = true;
        continue;
      }
      await store.deleteSnapshot(this.shard, s.tick);
    }
  }

  /** Resolves when appends in flight, snapshots and digests taken so far are stored (shutdown, tests). */
  async drain(): Promise<void> {
    await this.drainAppends();
    await this.snapshotting;
    await this.flushDigests();
  }

  /**
   * Resolves when the appends queued or in flight are done: the durable head is final (a
   * promotion starts its epoch there). A snapshot being encoded or stored is not waited for.
   */
  async drainAppends(): Promise<void> {
    // Nobody waits for a commit hold to end here.
    this.releaseHold();
    while (this.scheduled || this.inflight.length > 0) await new Promise((r) => setTimeout(r, 1));
  }

  // --- ShardFeed -------------------------------------------------------------------------

  head(): number {
    return this.durableSeq;
  }

  firstSeq(): number | null {
    return this.ctx.store.firstSeq(this.shard);
  }

  rangeRaw(seqFrom: number, seqTo: number, bytesMax: number): Uint8Array[] {
    return this.ctx.store.rangeRaw(this.shard, seqFrom, Math.min(seqTo, this.durableSeq), bytesMax);
  }

  heartbeat(): Heartbeat {
    const d = this.latestDigest;
    return {
      region: this.ctx.region,
      shard: this.shard,
      head: this.durableSeq,
      headHash: this.durableHash,
      tick: this.durableTick,
      firstSeq: this.firstSeq(),
      // The established epoch: a follower takes a lower head after a truncation as is.
      epoch: this.fence.epoch,
      digest: d === null ? null : { tick: d.tick, digest: d.digest },
      quarantined: this.quarantine !== null,
      nowMs: Date.now(),
    };
  }

  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The latest closed tick and its digest (null before the first tick or while quarantined). */
  get latestDigest(): TickDigest | null {
    return this.quarantine === null ? this.lastTick : null;
  }

  /** Our stored digest at a tick, or null. */
  digestAt(tick: number): Uint8Array | null {
    if (this.lastTick !== null && this.lastTick.tick === tick) return this.lastTick.digest;
    const recent = this.recentDigests.get(tick);
    if (recent !== undefined) return recent;
    const rows = this.ctx.store.digests(this.shard, tick, tick);
    return rows.length > 0 ? rows[0]!.digest : null;
  }
}

// FoRegion: one region of the failover simulation (test/sim/failover-cluster.ts). Unlike SimRegion
// (test/sim/cluster.ts), whose leader is fixed, it changes role: it leads while its FenceState says
// so (src/replication/fence.ts), follows otherwise, and serves the failover routes of
// src/ports/failover-client.ts (status, epochs, entries, fence, release, promote, announce) over
// the simulated network. It is the twin of what a region node does around a failover, and shows
// where the node's hooks go:
//   - every entry from a source or a repair passes `admits(fence, entry)` before the Follower sees
//     it (filterAdmitted), and an epoch entry that starts before the local head is held back
//     until the region has learned that epoch (it would otherwise look like a fork);
//   - a peer's heartbeat naming a newer established epoch triggers learnEpoch: reconcile against the
//     peer's epoch history, truncate a divergent suffix into a quarantine report, step down;
//   - every durable genesis or epoch entry is recorded in the epoch history and the fence, both
//     persisted in the store's meta;
//   - fence answers wait until the promise and the head are durable.
import { decodeEntry, type Entry } from '../../src/core/entry.js';
import { PlayoutError, isPlayoutError } from '../../src/core/errors.js';
import { hashEquals, toHex } from '../../src/core/hash.js';
import { ReducerRegistry, type Reducer } from '../../src/core/reducer.js';
import { Rng } from '../../src/core/rng.js';
import { Sequencer } from '../../src/core/sequencer.js';
import { ShardMachine, type TickDigest } from '../../src/core/shard-machine.js';
import { decodeSnapshot, encodeSnapshot } from '../../src/core/snapshot.js';
import type { PeerShardStatus } from '../../src/ports/entry-source.js';
import type { AnnounceAnswer, AnnounceRequest, EntryRow, EpochRecord, EpochsAnswer, FenceGrant, FenceRequest, FenceState, PromoteAnswer, PromoteRequest, RegionFailoverStatus, ReleaseAnswer, ReleaseRequest } from '../../src/ports/failover-client.js';
import { answerBuckets, answerRecords } from '../../src/replication/bucket-compare.js';
import { DesyncDetector, type DesyncAction } from '../../src/replication/desync-detector.js';
import { EPOCHS_META_KEY, appendEpochRecord, epochRecordOf, parseEpochHistory, truncateHistory } from '../../src/replication/epoch-history.js';
import { entryRowOf, quarantineReport, reconcile, type QuarantineReport } from '../../src/replication/failover-quarantine.js';
import { beginPromotion, epochEntries, promotionReady, stillPromised } from '../../src/replication/failover-promotion.js';
import { routeIngress } from '../../src/replication/failover-redirect.js';
import { FENCE_META_KEY, admits, establish, establishHistory, grantOf, initialFence, leads, parseFence, promise, release, startsBeforeHead } from '../../src/replication/fence.js';
import { Follower, type FollowerAction } from '../../src/replication/follower.js';
import { stateAtTick, tickStateOf } from '../../src/replication/state-at-tick.js';
import { MemoryLogStore } from './log-store.js';
import { machineAtOrBelow } from './rewind.js';
import type { FoCluster, FoMsg } from './failover-cluster.js';

export const SHARD = 'fo-1';

type Role = 'leader' | 'follower' | 'promoting';

interface Waiter {
  readonly clientId: number;
  readonly seq: number;
  readonly results: { ingestId: string; seq: number }[];
  /** The log version it was sequenced under: a truncation voids it. */
  readonly history: number;
}

interface PeerSeen {
  head: number;
  epoch: number;
  atMs: number;
  epochs: readonly EpochRecord[];
}

export class FoRegion {
  readonly cluster: FoCluster;
  readonly name: string;
  readonly store = new MemoryLogStore({ flush: 'manual' });
  registry: ReducerRegistry;
  machine: ShardMachine | null = null;
  follower: Follower | null = null;
  detector: DesyncDetector;
  sequencer: Sequencer | null = null;
  role: Role = 'follower';
  fence: FenceState;
  epochs: EpochRecord[] = [];
  up = false;
  stopped: PlayoutError | null = null;
  /** Every digest this region computed, by tick (hex), minus ticks it truncated or resynced away. */
  readonly digestHistory = new Map<number, string>();
  readonly alerts: { level: string; code: string; message: string }[] = [];
  readonly reports: QuarantineReport[] = [];
  /** Entries refused by `admits` (fenced epochs). */
  fencedRefused = 0;
  lastAgreedTick: number | null = null;

  private incarnation = 0;
  /** Bumped at every role change: callbacks of an older role are ignored. */
  private generation = 0;
  /** Bumped at every truncation: acknowledgements promised under an older history are void. */
  private history = 0;
  private flushTimer = false;
  private timers: { cancel(): void }[] = [];
  private tickTimer: { cancel(): void } | null = null;
  private wakeTimer: { cancel(): void } | null = null;
  private wakeAtMs: number | null = null;
  private nextMsgId = 1;
  private readonly sent = new Map<number, { kind: 'range' | 'buckets' | 'records' | 'snap'; actionId: number }>();
  private readonly peers = new Map<string, PeerSeen>();
  private readonly peerDurable = new Map<string, number>();
  private waiters: Waiter[] = [];
  private learning: Promise<void> = Promise.resolve();
  private promotions = new Map<string, Promise<PromoteAnswer>>();
  private readonly rng: Rng;
  private resyncFloor = Number.POSITIVE_INFINITY;

  constructor(cluster: FoCluster, name: string, reducer: Reducer) {
    this.cluster = cluster;
    this.name = name;
    this.registry = new ReducerRegistry([reducer]);
    this.detector = new DesyncDetector(cluster.desyncConfig(name, cluster.initialLeader));
    this.fence = initialFence(SHARD, name, []);
    this.rng = Rng.fromSeed((cluster.seed * 31 + name.length * 7919 + name.charCodeAt(0) * 131 + name.charCodeAt(3)) >>> 0);
  }

  private get now(): number {
    return this.cluster.clock.nowMs();
  }

  get head(): number {
    return this.store.head(SHARD)?.seq ?? 0;
  }

  /** True when this region sequences now. */
  get isLeader(): boolean {
    return this.up && this.role === 'leader' && leads(this.fence, this.name) && this.sequencer !== null && !this.sequencer.isFenced;
  }

  // --- lifecycle ---------------------------------------------------------------------------

  async createShard(): Promise<void> {
    const reducer = this.registry.list()[0]!;
    const g = Sequencer.genesis({ shard: SHARD, reducer, seed: this.cluster.seed >>> 0, tickMs: this.cluster.options.tickMs });
    const p = this.store.append(SHARD, [g]);
    this.epochs = appendEpochRecord([], epochRecordOf(g, { leader: this.name, atMs: 0 }), SHARD);
    this.fence = establish(initialFence(SHARD, this.name, []), this.epochs[0]!);
    const m1 = this.store.putMeta(SHARD, EPOCHS_META_KEY, this.epochs);
    const m2 = this.store.putMeta(SHARD, FENCE_META_KEY, this.fence);
    this.store.flush();
    await Promise.all([p, m1, m2]);
  }

  /** Start (or restart after a crash) from what the store holds. */
  boot(): void {
    this.up = true;
    this.stopped = null;
    const inc = ++this.incarnation;
    this.cluster.network.listen(this.name, (from, msg) => {
      if (inc === this.incarnation) this.onMessage(from, msg);
    });
    const e = this.store.getMeta(SHARD, EPOCHS_META_KEY);
    this.epochs = e === null ? [] : parseEpochHistory(e, SHARD);
    const f = this.store.getMeta(SHARD, FENCE_META_KEY);
    this.fence = f === null ? { ...initialFence(SHARD, this.name, this.epochs), leader: this.cluster.initialLeader } : parseFence(f, SHARD, this.name);
    this.machine = this.restoreMachine();
    this.peerDurable.clear();
    if (leads(this.fence, this.name)) this.startLeading();
    else this.startFollowing(this.fence.promise?.candidate ?? this.fence.leader, true);
    const offset = this.rng.int(1, this.cluster.options.heartbeatMs);
    this.timers.push(
      this.cluster.clock.after(offset, () => {
        if (inc !== this.incarnation) return;
        this.heartbeat();
        this.timers.push(this.cluster.clock.every(this.cluster.options.heartbeatMs, () => this.heartbeat()));
      }),
    );
  }

  /** kill -9: what is not durable is lost, timers and connections die. */
  crash(): void {
    this.up = false;
    this.incarnation++;
    this.generation++;
    this.cluster.network.unlisten(this.name);
    for (const t of this.timers) t.cancel();
    this.timers = [];
    this.tickTimer?.cancel();
    this.tickTimer = null;
    this.wakeTimer?.cancel();
    this.wakeTimer = null;
    this.wakeAtMs = null;
    this.flushTimer = false;
    this.store.crash();
    this.machine = null;
    this.follower = null;
    this.sequencer = null;
    this.sent.clear();
    this.peers.clear();
    this.waiters = [];
    this.learning = Promise.resolve();
    this.promotions = new Map();
  }

  /** Operator fix: run another build of the reducer from now on (the next resync uses it). */
  setReducer(reducer: Reducer): void {
    this.registry = new ReducerRegistry([reducer]);
  }

  /** The latest local snapshot restored, then every durable entry after it applied. */
  private restoreMachine(): ShardMachine {
    const snap = this.store.snapshot(SHARD);
    const onTick = (d: TickDigest): void => this.onTick(d);
    const m = snap !== null ? ShardMachine.fromSnapshot(this.registry, decodeSnapshot(snap.bytes), { onTick }) : new ShardMachine(this.registry, { onTick });
    this.machine = m;
    for (const e of this.store.iterate(SHARD, m.head + 1)) if (!this.applyOne(e)) break;
    return m;
  }

  private startLeading(): void {
    this.generation++;
    this.role = 'leader';
    this.follower = null;
    const m = this.machine!;
    const head = this.store.head(SHARD)!;
    this.sequencer = new Sequencer(this.registry, { shard: SHARD, seq: head.seq, hash: head.hash, tick: m.tick, epoch: head.epoch, reducer: m.reducer!.name, reducerVersion: m.reducer!.version }, { region: this.name, dedupeWindowTicks: 1_000_000 });
    // The dedupe window rebuilt from the log: a client retrying an input the previous epoch kept
    // must get "duplicate", not a second copy.
    for (const e of this.store.iterate(SHARD, this.store.firstSeq(SHARD) ?? 1)) if (e.kind === 'input' && e.ingestId !== null) this.sequencer.remember(e.ingestId, e.seq, e.tick);
    this.startTicks();
  }

  private startTicks(): void {
    this.tickTimer?.cancel();
    const gen = this.generation;
    this.tickTimer = this.cluster.clock.every(this.cluster.options.tickMs, () => {
      if (gen === this.generation) this.closeTick();
    });
  }

  /**
   * Follow `leader` with a new Follower (from the durable head). The detector is kept across role
   * and fence changes (its quarantine and diagnosis survive them) unless `freshDetector`: at boot,
   * and after a truncation, whose divergent digests it must forget.
   */
  private startFollowing(leader: string | null, freshDetector = false): void {
    this.generation++;
    this.role = 'follower';
    this.tickTimer?.cancel();
    this.tickTimer = null;
    if (this.sequencer !== null) this.sequencer.fence();
    this.sequencer = null;
    const head = this.store.head(SHARD);
    const m = this.machine!;
    // The detector's reference digests are the leader's: while a promise is pending, the
    // candidate's (the old leader's digests past the fence belong to no kept history).
    const reference = leader ?? this.fence.promise?.candidate ?? this.fence.leader ?? this.cluster.initialLeader;
    if (freshDetector) this.detector = new DesyncDetector(this.cluster.desyncConfig(this.name, reference));
    else this.detector.setLeader(reference);
    this.follower = new Follower(this.cluster.followerConfig(this.name, leader), { hashAt: (seq) => this.store.get(SHARD, seq)?.hash ?? null }, Rng.fromSeed(this.rng.int(0, 0x7fffffff)), {
      head: head?.seq ?? 0,
      headHash: head?.hash ?? new Uint8Array(16),
      headTick: head?.tick ?? 0,
      applied: Math.min(m.head, head?.seq ?? 0),
    });
    this.act(this.follower.start(this.now));
    if (this.detector.isQuarantined) this.act(this.follower.quarantine(this.now));
  }

  // --- the leader --------------------------------------------------------------------------

  private closeTick(): void {
    if (!this.isLeader || !this.cluster.ticking) return;
    const s = this.sequencer!;
    const m = this.machine!;
    let prev: Uint8Array | null = null;
    if (s.tick > 0) {
      // The previous tick's digest exists once its tick entry is durable and applied (as in LeaderRole).
      if (m.lastDigest === null || m.lastDigest.tick !== s.tick - 1) return;
      prev = m.lastDigest.digest;
    }
    this.commit([s.closeTick(prev)]);
  }

  /** Ingress: route it (fence.ts redirect rules), sequence, acknowledge once durable (leader) or at a majority (quorum). */
  private onSubmit(from: string, id: number, inputs: readonly { ingestId: string; key: string; by: number }[]): void {
    const route = routeIngress({ region: this.name, fence: this.fence, urlOf: (r) => `sim://${r}`, path: `/v1/shards/${SHARD}/inputs`, retryAfterMs: 50 });
    if (route.kind === 'redirect') return this.send(from, { t: 'redirect', id, leader: route.leader });
    if (route.kind === 'wait' || !this.isLeader) return this.send(from, { t: 'wait', id });
    const s = this.sequencer!;
    const entries: Entry[] = [];
    const results: { ingestId: string; seq: number }[] = [];
    let seqMax = 0;
    for (const input of inputs) {
      const r = s.submit({ type: 'add', version: 1, payload: { key: input.key, by: input.by }, ingestId: input.ingestId });
      const seq = r.status === 'sequenced' ? r.entry.seq : r.seq;
      if (r.status === 'sequenced') entries.push(r.entry);
      results.push({ ingestId: input.ingestId, seq });
      seqMax = Math.max(seqMax, seq);
    }
    this.waiters.push({ clientId: id, seq: seqMax, results, history: this.history });
    this.commit(entries);
    this.checkWaiters();
  }

  /** Append sequenced entries; once durable apply and push them to every region. */
  private commit(entries: readonly Entry[], then?: () => void): void {
    if (entries.length === 0) return;
    for (const e of entries) this.cluster.noteSequenced(this.name, e);
    const inc = this.incarnation;
    const p = this.store.append(SHARD, entries);
    this.scheduleFlush();
    p.then(
      () => {
        if (inc !== this.incarnation) return;
        for (const e of entries) {
          if (this.machine !== null && this.machine.head === e.seq - 1) this.applyOne(e);
          if (e.kind === 'epoch' || e.kind === 'genesis') this.recordEpoch(e, null);
        }
        const bytes = entries.map((e) => e.bytes);
        for (const r of this.cluster.regions) if (r !== this) this.send(r.name, { t: 'entries', entries: bytes });
        this.checkWaiters();
        then?.();
      },
      (err: unknown) => {
        if (inc !== this.incarnation) return;
        this.cluster.violations.push(`${this.name} leader append failed: ${(err as Error).message}`);
      },
    );
  }

  /** Acknowledge what is durable here (ack mode leader) or at a majority (quorum). */
  private checkWaiters(): void {
    if (this.waiters.length === 0) return;
    const durable = this.head;
    let acked = durable;
    if (this.cluster.options.ack === 'quorum') {
      const seqs = [durable];
      for (const r of this.cluster.regions) if (r !== this) seqs.push(this.peerDurable.get(r.name) ?? 0);
      seqs.sort((a, b) => b - a);
      acked = seqs[Math.floor(seqs.length / 2)]!;
    }
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.history !== this.history) this.send('client', { t: 'wait', id: w.clientId });
      else if (w.seq <= acked) this.send('client', { t: 'submitted', id: w.clientId, results: w.results, region: this.name });
      else keep.push(w);
    }
    this.waiters = keep;
  }

  private onDurableReport(from: string, seq: number, hash: Uint8Array): void {
    // A report from another history (a forked follower) counts for nothing.
    const mine = this.store.get(SHARD, seq);
    if (mine === null || !hashEquals(mine.hash, hash)) return;
    if (seq > (this.peerDurable.get(from) ?? 0)) this.peerDurable.set(from, seq);
    this.checkWaiters();
  }

  /**
   * An append failed after the follower applied its entries: the machine is rebuilt from the
   * store, from the latest snapshot at or below the durable head `seq`, up to `seq`, as a node's
   * ShardHost.rewindToDurable does.
   */
  private rewindMachine(seq: number): void {
    const m = machineAtOrBelow(this.store, SHARD, this.registry, seq, { onTick: (d) => this.onTick(d) });
    this.machine = m;
    for (const e of this.store.iterate(SHARD, m.head + 1, seq)) if (!this.applyOne(e)) break;
  }

  // --- applying ----------------------------------------------------------------------------

  private applyOne(e: Entry): boolean {
    const m = this.machine;
    if (m === null || this.stopped !== null) return false;
    const before = m.mismatches;
    const prev = m.lastDigest;
    try {
      m.apply(e);
    } catch (err) {
      const error = isPlayoutError(err) ? err : new PlayoutError('PLAYOUT_REDUCER_FAILED', String(err));
      this.cluster.violations.push(`${this.name} failed to apply entry ${e.seq}: ${error.message}`);
      this.stopped = error;
      if (this.follower !== null) this.act(this.follower.stop(error));
      return false;
    }
    if (e.kind === 'tick' && e.digest !== null && prev !== null && prev.tick === e.tick - 1 && m.mismatches === before) this.lastAgreedTick = prev.tick;
    if (m.atTickBoundary && m.lastDigest !== null && m.lastDigest.tick % this.cluster.options.snapshotEveryTicks === 0 && m.lastDigest.tick > 0) {
      const snap = m.snapshot();
      this.write(this.store.putSnapshot(SHARD, snap.tick, snap.seq, encodeSnapshot(snap)));
    }
    return true;
  }

  private onTick(d: TickDigest): void {
    const hex = toHex(d.digest);
    const had = this.digestHistory.get(d.tick);
    if (had !== undefined && had !== hex && !(d.tick > this.resyncFloor)) this.cluster.violations.push(`${this.name} recomputed tick ${d.tick} to a different digest`);
    this.digestHistory.set(d.tick, hex);
    this.write(this.store.putDigests(SHARD, [{ tick: d.tick, seq: d.seq, digest: d.digest }]));
    if (this.role !== 'leader') this.actDesync(this.detector.onLocalDigest(d, this.now));
  }

  /** A durable genesis or epoch entry: record its epoch, establish it, persist both. */
  private recordEpoch(e: Entry, atMs: number | null, failoverId: string | null = null): EpochRecord | null {
    let record: EpochRecord;
    try {
      record = epochRecordOf(e, { leader: e.kind === 'genesis' ? this.cluster.initialLeader : null, atMs, failoverId });
      this.epochs = appendEpochRecord(this.epochs, record, SHARD);
    } catch (err) {
      this.cluster.violations.push(`${this.name} cannot record the epoch of entry ${e.seq}: ${(err as Error).message}`);
      return null;
    }
    const before = this.fence;
    this.fence = establish(this.fence, record);
    this.write(this.store.putMeta(SHARD, EPOCHS_META_KEY, this.epochs));
    if (this.fence !== before) {
      this.write(this.store.putMeta(SHARD, FENCE_META_KEY, this.fence));
      if (this.follower !== null && record.leader !== this.name) {
        this.follower.setLeader(record.leader);
        this.adoptLeaderDigests(record.leader);
      }
    }
    return record;
  }

  /**
   * A new epoch is established: the digests the previous leader published for ticks from the new
   * epoch's first tick on belong to a history that was not kept, and must not be compared with
   * this region's. The DesyncDetector has no call to forget them (a hook the node needs:
   * setLeader(leader) plus forgetting leader digests from the epoch's first tick); this twin
   * starts a fresh detector instead — unless it is quarantined, whose state must survive.
   */
  private adoptLeaderDigests(leader: string): void {
    if (this.detector.isQuarantined) this.detector.setLeader(leader);
    else this.detector = new DesyncDetector(this.cluster.desyncConfig(this.name, leader));
  }

  // --- the follower ------------------------------------------------------------------------

  /**
   * The node's hook before Follower.onEntries / onRangeResponse: fenced entries are dropped
   * (counted), and an epoch entry starting before the local head waits for learnEpoch. A range
   * keeps its admitted prefix (it must stay contiguous).
   */
  private filterAdmitted(entries: readonly Entry[], contiguous: boolean): Entry[] {
    const out: Entry[] = [];
    const accepted = this.follower?.status().accepted ?? this.head;
    for (const e of entries) {
      const refused = admits(this.fence, e) !== null || startsBeforeHead(this.fence, e, accepted);
      if (refused) {
        this.fencedRefused++;
        if (contiguous) break;
        continue;
      }
      out.push(e);
    }
    return out;
  }

  act(actions: readonly FollowerAction[]): void {
    const f = this.follower;
    if (f === null) return;
    const inc = this.incarnation;
    for (const a of actions) {
      switch (a.op) {
        case 'append': {
          const p = this.store.append(SHARD, a.entries);
          p.then(
            () => {
              if (inc !== this.incarnation || this.follower !== f) return;
              for (const e of a.entries) if (e.kind === 'epoch' || e.kind === 'genesis') this.recordEpoch(e, null);
              this.actDesync(this.detector.onLogEntries(a.entries, this.now));
              this.act(f.appended(a.appendId, this.now));
              const last = a.entries[a.entries.length - 1]!;
              const leader = this.fence.promise === null ? this.fence.leader : null;
              if (leader !== null && leader !== this.name) this.send(leader, { t: 'durable', seq: last.seq, hash: last.hash });
            },
            (err: unknown) => {
              if (inc !== this.incarnation || this.follower !== f) return;
              this.act(f.appendFailed(a.appendId, err as PlayoutError, this.now));
            },
          );
          this.scheduleFlush();
          break;
        }
        case 'apply':
          for (const e of a.entries) if (this.detector.isQuarantined || !this.applyOne(e)) break;
          break;
        case 'applyStored':
          for (const e of this.store.iterate(SHARD, a.seqFrom, a.seqTo)) if (this.detector.isQuarantined || !this.applyOne(e)) break;
          break;
        case 'rewind':
          this.rewindMachine(a.seq);
          break;
        case 'requestRange': {
          const id = this.nextMsgId++;
          this.sent.set(id, { kind: 'range', actionId: a.requestId });
          this.send(a.peer, { t: 'range', id, seqFrom: a.seqFrom, seqTo: a.seqTo });
          break;
        }
        case 'cancel':
          for (const [id, s] of this.sent) if ((s.kind === 'range' || s.kind === 'snap') && s.actionId === a.requestId) this.sent.delete(id);
          break;
        case 'bootstrap':
          // Every region keeps its whole log here: a bootstrap means a bug.
          this.cluster.violations.push(`${this.name} asked to bootstrap from ${a.peer} (seq ${a.seqMin})`);
          this.act(f.bootstrapFailed(a.requestId, new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', 'no bootstrap in this simulation'), this.now));
          break;
        case 'follow':
          break;
        case 'alert':
          this.alerts.push({ level: a.level, code: a.error.code, message: a.error.message });
          break;
        case 'stop':
          this.stopped = a.error;
          this.cluster.violations.push(`${this.name} stopped: ${a.error.code}: ${a.error.message}`);
          break;
      }
    }
    this.armWake();
  }

  actDesync(actions: readonly DesyncAction[]): void {
    for (const a of actions) {
      switch (a.op) {
        case 'quarantine':
          if (this.follower !== null) this.act(this.follower.quarantine(this.now));
          break;
        case 'alert':
          this.alerts.push({ level: a.level, code: a.error.code, message: a.error.message });
          break;
        case 'captureLocal': {
          let state;
          try {
            state = tickStateOf(stateAtTick(this.store, this.registry, SHARD, a.tick));
          } catch (err) {
            this.actDesync(this.detector.onLocalStateFailure(a.compareId, err as PlayoutError, this.now));
            break;
          }
          this.actDesync(this.detector.onLocalState(a.compareId, state, this.now));
          break;
        }
        case 'fetchBuckets': {
          const id = this.nextMsgId++;
          this.sent.set(id, { kind: 'buckets', actionId: a.requestId });
          this.send(a.peer, { t: 'buckets', id, query: a.query });
          break;
        }
        case 'fetchRecords': {
          const id = this.nextMsgId++;
          this.sent.set(id, { kind: 'records', actionId: a.requestId });
          this.send(a.peer, { t: 'records', id, query: a.query });
          break;
        }
        case 'report':
          break;
        case 'resync': {
          const id = this.nextMsgId++;
          this.sent.set(id, { kind: 'snap', actionId: a.requestId });
          this.send(a.peer, { t: 'snap', id, tickMax: a.tickMax });
          break;
        }
      }
    }
    this.armWake();
  }

  private armWake(): void {
    if (!this.up) return;
    const f = this.follower?.nextWakeMs() ?? null;
    const d = this.detector.nextWakeMs();
    const at = f === null ? d : d === null ? f : Math.min(f, d);
    if (at === null || (this.wakeAtMs !== null && this.wakeAtMs <= at && this.wakeAtMs > this.now)) return;
    this.wakeTimer?.cancel();
    this.wakeAtMs = at;
    const inc = this.incarnation;
    this.wakeTimer = this.cluster.clock.after(Math.max(0, at - this.now), () => {
      if (inc !== this.incarnation) return;
      this.wakeTimer = null;
      this.wakeAtMs = null;
      if (this.follower !== null) this.act(this.follower.onTimer(this.now));
      this.actDesync(this.detector.onTimer(this.now));
      this.armWake();
    });
  }

  // --- learning an epoch ---------------------------------------------------------------------

  /**
   * A newer epoch exists (a peer's heartbeat, or the coordinator's announce): reconcile against its
   * history, quarantine a divergent suffix, establish it, follow its leader. Serialised: one at a time.
   */
  learnEpoch(epochs: readonly EpochRecord[], refHead: number): Promise<number> {
    let quarantined = 0;
    const run = async (): Promise<void> => {
      // Records of epochs this region holds too (same first entry) teach it when and by which
      // failover they started.
      let merged = this.epochs;
      for (const r of epochs) {
        const mine = merged.find((m) => m.epoch === r.epoch && m.entryHash === r.entryHash);
        if (mine !== undefined && (mine.atMs === null || mine.failoverId === null)) merged = appendEpochRecord(merged, r, SHARD);
      }
      if (merged !== this.epochs) {
        this.epochs = merged;
        this.write(this.store.putMeta(SHARD, EPOCHS_META_KEY, this.epochs));
      }
      const newest = epochs[epochs.length - 1];
      if (!this.up || this.stopped !== null || newest === undefined || newest.epoch <= this.fence.epoch) return;
      const inc = this.incarnation;
      // Stop sequencing first: a region that learns it no longer leads must not stamp one more entry.
      if (this.role === 'leader') this.sequencer?.fence();
      await this.settle();
      if (inc !== this.incarnation) return;
      const head = this.store.head(SHARD);
      const r = reconcile(SHARD, { head: head?.seq ?? 0, epochs: this.epochs, hashAt: (seq) => { const e = this.store.get(SHARD, seq); return e === null ? null : toHex(e.hash); } }, { head: Math.max(refHead, newest.firstSeq), epochs });
      if (r.action === 'conflict') {
        this.stopped = r.error;
        this.cluster.violations.push(`${this.name} cannot reconcile: ${r.error.message}`);
        return;
      }
      if (r.action === 'truncate') {
        quarantined = await this.truncateTo(r.keep, newest, `epoch ${newest.epoch} (leader ${newest.leader}) kept seq ..${newest.lastSeqPrevEpoch}; this region held entries of an older epoch beyond it`);
        if (inc !== this.incarnation) return;
      }
      this.fence = establishHistory(this.fence, epochs);
      await this.persistFence();
      if (inc !== this.incarnation) return;
      // A candidate still promoting for a later epoch keeps its role; everyone else follows the
      // epoch's leader with a Follower that holds nothing the new fence refuses.
      // (A candidate still promoting keeps promoting: its loop checks its promise at every step.)
      const promoting = this.role === 'promoting';
      this.startFollowing(this.fence.promise === null ? newest.leader : null, r.action === 'truncate' || !this.detector.isQuarantined);
      if (promoting) this.role = 'promoting';
    };
    const inc = this.incarnation;
    const p = this.learning.then(run).catch((err: unknown) => {
      // A crash in the middle voids the attempt (the restarted region learns again from heartbeats).
      if (inc === this.incarnation) this.cluster.violations.push(`${this.name} failed to learn an epoch: ${(err as Error).message}`);
    });
    this.learning = p;
    return p.then(() => quarantined);
  }

  /** Truncate the log above `keep` into a quarantine report; rebuild the machine; the caller picks the role. */
  private async truncateTo(keep: number, epoch: EpochRecord | null, reason: string): Promise<number> {
    const inc = this.incarnation;
    this.generation++;
    this.tickTimer?.cancel();
    this.tickTimer = null;
    this.sequencer?.fence();
    this.sequencer = null;
    this.follower = null;
    this.role = 'follower';
    await this.settle();
    if (inc !== this.incarnation) return 0;
    // The report is built (a node writes its file durably) before the truncation: a crash in
    // between must not lose the entries silently.
    const suffix = this.store.range(SHARD, keep + 1, this.head);
    const kept = this.store.get(SHARD, keep);
    const newLeader = epoch === null ? null : this.cluster.regions.find((r) => r.name === epoch.leader) ?? null;
    const report = quarantineReport({
      shard: SHARD,
      region: this.name,
      entries: suffix,
      keptSeq: keep,
      keptHash: kept === null ? null : toHex(kept.hash),
      epoch,
      reason,
      atMs: this.now,
      resequencedAt: newLeader === null ? undefined : (id) => newLeader.seqOfIngest(id),
    });
    this.reports.push(report);
    this.cluster.reports.push(report);
    const p = this.store.truncateAbove(SHARD, keep);
    this.scheduleFlush();
    const entries = await p;
    if (inc !== this.incarnation) return 0;
    if (entries.length !== suffix.length || entries.some((e, i) => !hashEquals(e.hash, suffix[i]!.hash))) this.cluster.violations.push(`${this.name} truncated other entries than its quarantine report lists`);
    this.history++;
    this.alerts.push({ level: 'critical', code: 'PLAYOUT_DIVERGENT_SUFFIX', message: `${report.entries.length} entries (${report.inputs} inputs) quarantined: ${reason}` });
    this.epochs = truncateHistory(this.epochs, keep);
    this.write(this.store.putMeta(SHARD, EPOCHS_META_KEY, this.epochs));
    this.checkWaiters();
    // The digests of the divergent ticks are not this region's history any more.
    const t0 = entries[0]?.tick ?? Number.POSITIVE_INFINITY;
    for (const t of [...this.digestHistory.keys()]) if (t >= t0) this.digestHistory.delete(t);
    this.peerDurable.clear();
    this.machine = this.restoreMachine();
    return entries.length;
  }

  /** Resolves once every write queued so far is durable. */
  private async settle(): Promise<void> {
    const p = this.store.putMeta(SHARD, FENCE_META_KEY, this.fence);
    this.scheduleFlush();
    await p;
  }

  private async persistFence(): Promise<void> {
    await this.settle();
  }

  /** The seq of an ingestId in this region's log (null: not held). */
  seqOfIngest(ingestId: string): number | null {
    for (const e of this.store.iterate(SHARD, this.store.firstSeq(SHARD) ?? 1)) if (e.ingestId === ingestId) return e.seq;
    return null;
  }

  // --- failover routes -----------------------------------------------------------------------

  private headInfo(): { head: number; headHash: string | null; headEpoch: number; headTick: number; openTick: number } {
    const h = this.store.head(SHARD);
    if (h === null) return { head: 0, headHash: null, headEpoch: 0, headTick: 0, openTick: 0 };
    const e = this.store.get(SHARD, h.seq);
    return { head: h.seq, headHash: toHex(h.hash), headEpoch: h.epoch, headTick: h.tick, openTick: e?.kind === 'tick' ? h.tick + 1 : h.tick };
  }

  status(): RegionFailoverStatus {
    const h = this.headInfo();
    return {
      region: this.name,
      shard: SHARD,
      ack: this.cluster.options.ack,
      ...h,
      firstSeq: this.store.firstSeq(SHARD),
      applied: this.machine?.head ?? 0,
      lastAgreedTick: this.lastAgreedTick,
      quarantined: this.detector.isQuarantined,
      stopped: this.stopped === null ? null : `${this.stopped.code}: ${this.stopped.message}`,
      fence: this.fence,
      epochs: this.epochs,
      peers: this.cluster.regions.filter((r) => r !== this).map((r) => {
        const p = this.peers.get(r.name);
        return { region: r.name, head: p?.head ?? null, epoch: p?.epoch ?? null, lastHeardMsAgo: p === undefined ? null : Math.max(0, this.now - p.atMs) };
      }),
    };
  }

  async fenceRequest(req: FenceRequest): Promise<FenceGrant> {
    if (this.stopped !== null) throw new PlayoutError('PLAYOUT_SHARD_STOPPED', `${this.name}: ${this.stopped.message}`);
    const inc = this.incarnation;
    const wasLeader = this.isLeader;
    // Stop sequencing before reading the head: the head reported is final.
    const limit = wasLeader ? this.sequencer!.seq : Math.max(this.follower?.status().accepted ?? 0, this.head);
    const next = promise(this.fence, req, { ...this.headInfo(), head: limit }, this.now);
    if (wasLeader) {
      this.sequencer!.fence();
      this.tickTimer?.cancel();
      this.tickTimer = null;
    }
    this.fence = next;
    await this.persistFence();
    if (inc !== this.incarnation) throw new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `${this.name} restarted`);
    // The Follower hook on a fence change: entries it buffered or held before the promise must
    // pass the new fence too. This twin restarts the Follower (its appends are durable now); a
    // node calls the Follower's re-check instead (see docs/failover.md, "Hooks").
    const promoting = this.role === 'promoting';
    this.startFollowing(null);
    if (promoting) this.role = 'promoting';
    return grantOf(this.fence, this.headInfo(), wasLeader, this.epochs);
  }

  async releaseRequest(req: ReleaseRequest): Promise<ReleaseAnswer> {
    const r = release(this.fence, req);
    if (!r.released) return r;
    const inc = this.incarnation;
    this.fence = r.fence;
    await this.persistFence();
    if (inc !== this.incarnation) throw new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `${this.name} restarted`);
    // The old leader gets its sequencer back once its follower's appends are durable.
    if (leads(this.fence, this.name) && this.role !== 'leader') this.startLeading();
    return { released: true, fence: this.fence };
  }

  /**
   * Promote is idempotent per failover: a repeated request (a retry, a duplicated delivery) joins
   * the promotion in progress, or gets its answer once done.
   */
  promoteRequest(req: PromoteRequest): Promise<PromoteAnswer> {
    const key = `${req.epoch}/${req.failoverId}`;
    let p = this.promotions.get(key);
    if (p === undefined) {
      p = this.promote(req);
      this.promotions.set(key, p);
      const inc = this.incarnation;
      // A failed promotion may be asked again (it fails again at once unless the promise still holds).
      p.catch(() => {
        if (inc === this.incarnation) this.promotions.delete(key);
      });
    }
    return p;
  }

  private async promote(req: PromoteRequest): Promise<PromoteAnswer> {
    try {
      return await this.promoteSteps(req);
    } finally {
      // A promotion that did not end in leading leaves a follower.
      if (this.role === 'promoting') this.role = 'follower';
    }
  }

  private async promoteSteps(req: PromoteRequest): Promise<PromoteAnswer> {
    if (this.stopped !== null) throw new PlayoutError('PLAYOUT_SHARD_STOPPED', `${this.name}: ${this.stopped.message}`);
    const inc = this.incarnation;
    this.fence = beginPromotion(this.fence, this.name, req);
    await this.persistFence();
    if (inc !== this.incarnation) throw new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `${this.name} restarted`);
    const caughtUpFrom = this.head;
    let quarantined = 0;
    if (req.truncateAbove !== null && req.truncateAbove < this.head) {
      quarantined = await this.truncateTo(req.truncateAbove, null, `promotion to epoch ${req.epoch} (failover ${req.failoverId}): the highest fenced head ${req.catchUpTo.seq} is of epoch ${req.catchUpTo.epoch}`);
      if (inc !== this.incarnation) throw new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `${this.name} restarted`);
    }
    if (this.role === 'leader' || this.follower === null) this.startFollowing(null);
    this.follower!.setLeader(null);
    this.role = 'promoting';
    const deadline = this.now + req.timeoutMs;
    // Catch up: the follower repairs from the peers as usual; the fence admits up to the target.
    for (;;) {
      if (inc !== this.incarnation || this.stopped !== null) throw new PlayoutError('PLAYOUT_FAILOVER_INCOMPLETE', `${this.name} stopped while catching up`);
      stillPromised(this.fence, this.name, req);
      const head = this.head;
      const at = this.store.get(SHARD, req.catchUpTo.seq);
      if (promotionReady(req, head, at === null ? null : toHex(at.hash)) === 'ready' && this.machine!.head === head && !this.detector.isQuarantined) break;
      if (this.now >= deadline) {
        this.role = 'follower';
        throw new PlayoutError('PLAYOUT_FAILOVER_INCOMPLETE', `${this.name} did not catch up to seq ${req.catchUpTo.seq} within ${req.timeoutMs} ms (head ${head}, applied ${this.machine!.head})`);
      }
      await this.cluster.sleep(10);
    }
    // Ready: stop following, seal the epoch's first entries, lead.
    this.generation++;
    this.follower = null;
    await this.settle();
    if (inc !== this.incarnation) throw new PlayoutError('PLAYOUT_FAILOVER_INCOMPLETE', `${this.name} restarted`);
    stillPromised(this.fence, this.name, req);
    const m = this.machine!;
    const head = this.store.head(SHARD)!;
    const s = new Sequencer(this.registry, { shard: SHARD, seq: head.seq, hash: head.hash, tick: m.tick, epoch: head.epoch, reducer: m.reducer!.name, reducerVersion: m.reducer!.version }, { region: this.name, dedupeWindowTicks: 1_000_000 });
    for (const e of this.store.iterate(SHARD, this.store.firstSeq(SHARD) ?? 1)) if (e.kind === 'input' && e.ingestId !== null) s.remember(e.ingestId, e.seq, e.tick);
    const headIsTick = this.store.get(SHARD, head.seq)!.kind === 'tick';
    const digestPrev = m.lastDigest !== null && m.lastDigest.tick === s.tick - 1 ? m.lastDigest.digest : null;
    const first = epochEntries(s, { epoch: req.epoch, leader: this.name, lastSeqPrevEpoch: head.seq }, digestPrev, headIsTick);
    this.sequencer = s;
    this.role = 'leader';
    this.peerDurable.clear();
    const record = await new Promise<EpochRecord | null>((resolve) => {
      this.commit(first, () => resolve(this.epochs.find((r) => r.epoch === req.epoch) ?? null));
    });
    if (record === null || inc !== this.incarnation) throw new PlayoutError('PLAYOUT_FAILOVER_INCOMPLETE', `${this.name} could not record epoch ${req.epoch}`);
    // Stamp the failover on the record (commit recorded it from the entry alone).
    const stamped: EpochRecord = { ...record, atMs: this.now, failoverId: req.failoverId };
    this.epochs = this.epochs.map((r) => (r.epoch === req.epoch ? stamped : r));
    this.write(this.store.putMeta(SHARD, EPOCHS_META_KEY, this.epochs));
    await this.persistFence();
    this.startTicks();
    const last = first[first.length - 1]!;
    return { record: stamped, caughtUpFrom, quarantined, sequencingFrom: last.seq + 1, sequencingTick: s.tick, epochs: this.epochs };
  }

  async announceRequest(req: AnnounceRequest): Promise<AnnounceAnswer> {
    const quarantined = await this.learnEpoch(req.epochs, req.record.firstSeq);
    return { fence: this.fence, quarantined };
  }

  epochsAnswer(): EpochsAnswer {
    return { shard: SHARD, region: this.name, epochs: this.epochs, fence: this.fence };
  }

  entryRows(seqFrom: number, seqTo: number): EntryRow[] {
    return this.store.range(SHARD, seqFrom, Math.min(seqTo, seqFrom + 999)).map(entryRowOf);
  }

  // --- the network -----------------------------------------------------------------------------

  private send(to: string, msg: FoMsg): void {
    this.cluster.network.send(this.name, to, msg);
  }

  private heartbeat(): void {
    if (!this.up) return;
    const head = this.store.head(SHARD);
    const d = this.machine?.lastDigest ?? null;
    const status: PeerShardStatus = {
      region: this.name,
      shard: SHARD,
      head: head?.seq ?? 0,
      headHash: head?.hash ?? null,
      tick: head?.tick ?? 0,
      firstSeq: this.store.firstSeq(SHARD),
      epoch: this.fence.epoch,
      digest: d === null || this.detector.isQuarantined ? null : { tick: d.tick, digest: d.digest },
      quarantined: this.detector.isQuarantined,
    };
    for (const r of this.cluster.regions) if (r !== this) this.send(r.name, { t: 'status', status, epochs: this.epochs });
  }

  private onMessage(from: string, msg: FoMsg): void {
    switch (msg.t) {
      case 'entries': {
        if (this.follower === null) return;
        const entries: Entry[] = [];
        for (const b of msg.entries) {
          try {
            entries.push(decodeEntry(b));
          } catch {
            // torn or corrupt: dropped, repaired later
          }
        }
        this.act(this.follower.onEntries(this.filterAdmitted(entries, false), from, this.now));
        return;
      }
      case 'status': {
        const s = msg.status;
        this.peers.set(from, { head: s.head, epoch: s.epoch, atMs: this.now, epochs: msg.epochs });
        if (s.epoch > this.fence.epoch && msg.epochs.length > 0 && msg.epochs[msg.epochs.length - 1]!.epoch === s.epoch) void this.learnEpoch(msg.epochs, s.head);
        if (this.follower !== null) this.act(this.follower.onPeerStatus(s, this.now));
        if (this.role !== 'leader') this.actDesync(this.detector.onPeerStatus(s, this.now));
        return;
      }
      case 'durable':
        this.onDurableReport(from, msg.seq, msg.hash);
        return;
      case 'submit':
        this.onSubmit(from, msg.id, msg.inputs);
        return;
      case 'fo':
        this.onFailoverRequest(from, msg.id, msg.op, msg.body);
        return;
      case 'range':
        this.serveRange(from, msg.id, msg.seqFrom, msg.seqTo);
        return;
      case 'snap':
        this.serveSnapshot(from, msg.id, msg.tickMax);
        return;
      case 'buckets':
      case 'records':
        this.serveState(from, msg);
        return;
      default:
        this.onAnswer(from, msg);
    }
  }

  private onFailoverRequest(from: string, id: number, op: string, body: unknown): void {
    const answer = async (): Promise<unknown> => {
      switch (op) {
        case 'status':
          return this.status();
        case 'epochs':
          return this.epochsAnswer();
        case 'entries': {
          const b = body as { from: number; to: number };
          return this.entryRows(b.from, b.to);
        }
        case 'fence':
          return this.fenceRequest(body as FenceRequest);
        case 'release':
          return this.releaseRequest(body as ReleaseRequest);
        case 'promote':
          return this.promoteRequest(body as PromoteRequest);
        case 'announce':
          return this.announceRequest(body as AnnounceRequest);
        default:
          throw new PlayoutError('PLAYOUT_ROUTE_NOT_FOUND', `no failover op ${op}`);
      }
    };
    const inc = this.incarnation;
    answer().then(
      (b) => {
        if (inc === this.incarnation) this.send(from, { t: 'foOk', id, body: b });
      },
      (err: unknown) => {
        if (inc !== this.incarnation) return;
        const e = isPlayoutError(err) ? err : new PlayoutError('PLAYOUT_INVALID_ARGUMENT', String((err as Error)?.stack ?? err));
        if (!isPlayoutError(err)) this.cluster.violations.push(`${this.name} failover op ${op} threw ${(err as Error)?.stack ?? String(err)}`);
        this.send(from, { t: 'foErr', id, code: e.code, message: e.message });
      },
    );
  }

  private serveRange(to: string, id: number, seqFrom: number, seqTo: number): void {
    const first = this.store.firstSeq(SHARD);
    const head = this.head;
    if (first === null || seqFrom < first || seqFrom > head) {
      this.send(to, { t: 'rangeErr', id, code: 'PLAYOUT_RANGE_NOT_RETAINED', message: `holds ${first ?? '-'}..${head}`, available: { firstSeq: first, head } });
      return;
    }
    const entries = this.store.range(SHARD, seqFrom, Math.min(seqTo, seqFrom + this.cluster.options.pageEntriesMax - 1));
    this.send(to, { t: 'rangeOk', id, entries: entries.map((e) => e.bytes) });
  }

  private serveSnapshot(to: string, id: number, tickMax: number | null): void {
    if (this.detector.isQuarantined && this.role !== 'leader') {
      this.send(to, { t: 'snapErr', id, code: 'PLAYOUT_SHARD_QUARANTINED', message: `${this.name} is quarantined` });
      return;
    }
    const s = this.store.snapshot(SHARD, tickMax ?? undefined);
    if (s === null) {
      this.send(to, { t: 'snapErr', id, code: 'PLAYOUT_TICK_NOT_RETAINED', message: `${this.name} holds no snapshot at or below ${tickMax ?? 'any tick'}` });
      return;
    }
    this.send(to, { t: 'snapOk', id, tick: s.tick, seq: s.seq, bytes: s.bytes });
  }

  private serveState(to: string, msg: Extract<FoMsg, { t: 'buckets' | 'records' }>): void {
    try {
      if (this.detector.isQuarantined && this.role !== 'leader') throw new PlayoutError('PLAYOUT_SHARD_QUARANTINED', `${this.name} is quarantined`);
      const state = tickStateOf(stateAtTick(this.store, this.registry, SHARD, msg.query.tick));
      if (msg.t === 'buckets') this.send(to, { t: 'bucketsOk', id: msg.id, answer: answerBuckets(state, msg.query) });
      else this.send(to, { t: 'recordsOk', id: msg.id, answer: answerRecords(state, msg.query) });
    } catch (err) {
      const e = err as PlayoutError;
      this.send(to, { t: 'stateErr', id: msg.id, code: e.code ?? 'PLAYOUT_INVALID_ARGUMENT', message: e.message });
    }
  }

  private onAnswer(_from: string, msg: FoMsg): void {
    if (!('id' in msg)) return;
    const s = this.sent.get(msg.id);
    if (s === undefined) return;
    this.sent.delete(msg.id);
    const f = this.follower;
    switch (msg.t) {
      case 'rangeOk': {
        if (f === null) return;
        const entries: Entry[] = [];
        for (const b of msg.entries) {
          try {
            entries.push(decodeEntry(b));
          } catch (err) {
            this.act(f.onRangeFailure(s.actionId, err as PlayoutError, null, this.now));
            return;
          }
        }
        this.act(f.onRangeResponse(s.actionId, this.filterAdmitted(entries, true), this.now));
        return;
      }
      case 'rangeErr':
        if (f !== null) this.act(f.onRangeFailure(s.actionId, new PlayoutError(msg.code, msg.message), msg.available, this.now));
        return;
      case 'snapOk':
        this.resyncFrom(s.actionId, msg.tick, msg.seq, msg.bytes);
        return;
      case 'snapErr':
        this.actDesync(this.detector.resyncFailed(s.actionId, new PlayoutError(msg.code as 'PLAYOUT_TICK_NOT_RETAINED', msg.message), this.now));
        return;
      case 'bucketsOk':
        this.actDesync(this.detector.onBucketsAnswer(s.actionId, msg.answer, this.now));
        return;
      case 'recordsOk':
        this.actDesync(this.detector.onRecordsAnswer(s.actionId, msg.answer, this.now));
        return;
      case 'stateErr':
        this.actDesync(this.detector.onRequestFailure(s.actionId, new PlayoutError(msg.code as 'PLAYOUT_INVALID_ARGUMENT', msg.message), this.now));
        return;
    }
  }

  private resyncFrom(requestId: number, tick: number, seq: number, bytes: Uint8Array): void {
    const f = this.follower;
    let machine: ShardMachine;
    try {
      machine = ShardMachine.fromSnapshot(this.registry, decodeSnapshot(bytes), { onTick: (d) => this.onTick(d) });
      const expected = this.detector.expectedDigest(tick);
      if (expected !== null && !hashEquals(expected, machine.lastDigest!.digest)) throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `snapshot digest at tick ${tick} is not the leader's`);
      const mine = this.store.get(SHARD, seq)?.hash ?? null;
      if (mine !== null && !hashEquals(mine, machine.headHash)) throw new PlayoutError('PLAYOUT_FORK', `snapshot at seq ${seq} is from another history`);
      if (seq > this.head) throw new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `snapshot seq ${seq} is beyond the local head`);
    } catch (err) {
      this.actDesync(this.detector.resyncFailed(requestId, err as PlayoutError, this.now));
      return;
    }
    this.machine = machine;
    this.resyncFloor = Math.min(this.resyncFloor, tick);
    const from = this.detector.status().firstDivergingTick ?? tick;
    for (const t of [...this.digestHistory.keys()]) if (t >= Math.min(from, tick + 1)) this.digestHistory.delete(t);
    this.digestHistory.set(tick, toHex(machine.lastDigest!.digest));
    this.actDesync(this.detector.resynced(requestId, tick, this.now));
    if (f !== null) this.act(f.restored(seq, machine.headHash, tick, this.now));
  }

  // --- the disk ------------------------------------------------------------------------------

  private write(p: Promise<unknown>): void {
    const inc = this.incarnation;
    p.catch((err: unknown) => {
      if (inc === this.incarnation) this.cluster.violations.push(`${this.name} store write failed: ${(err as Error).message}`);
    });
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = true;
    const inc = this.incarnation;
    this.cluster.clock.after(this.cluster.diskDelay(), () => {
      if (inc !== this.incarnation) return;
      this.flushTimer = false;
      this.store.flush();
    });
  }
}

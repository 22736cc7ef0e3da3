// SimCluster: whole regions of one shard in one process, driven by one seed [Yjs
// TestConnector, TigerBeetle VOPR]. The leader runs Sequencer + ShardMachine + store and a
// seeded load generator; every follower runs Follower + DesyncDetector + ShardMachine + store,
// performing their actions exactly as a region node does. Entries, heartbeats, range,
// snapshot and bucket requests all cross the simulated network (loss, duplication,
// reordering, delay, partitions); stores become durable after a simulated disk delay and
// lose what is not durable on a crash. After heal and flush, `check()` asserts the invariants.
import { decodeEntry, type Entry } from '../../src/core/entry.js';
import { PlayoutError } from '../../src/core/errors.js';
import { hashEquals, toHex } from '../../src/core/hash.js';
import { ReducerRegistry, type Reducer } from '../../src/core/reducer.js';
import { Rng } from '../../src/core/rng.js';
import { Sequencer } from '../../src/core/sequencer.js';
import { ShardMachine, type TickDigest } from '../../src/core/shard-machine.js';
import { decodeSnapshot, encodeSnapshot } from '../../src/core/snapshot.js';
import { sealEntry } from '../../src/core/entry.js';
import type { PeerShardStatus } from '../../src/ports/entry-source.js';
import type { BucketsAnswer, BucketsQuery, RecordsAnswer, RecordsQuery, RangeNotRetained } from '../../src/ports/peer-client.js';
import { answerBuckets, answerRecords } from '../../src/replication/bucket-compare.js';
import { DESYNC_DEFAULTS, DesyncDetector, type DesyncAction, type DesyncConfig, type DesyncReport } from '../../src/replication/desync-detector.js';
import { FOLLOWER_DEFAULTS, Follower, type FollowerAction, type FollowerConfig } from '../../src/replication/follower.js';
import { stateAtTick, tickStateOf } from '../../src/replication/state-at-tick.js';
import { ManualClock } from './clock.js';
import { CALM_LINK, SimNetwork, type LinkFaults } from './network.js';
import { tallyReducer, TALLY_KEYS } from './tally-reducer.js';
import { LoadGenerator, type LoadInput } from '../../src/games/treasure-hunt/load.js';
import { treasureHuntV1 } from '../../src/games/treasure-hunt/treasure-hunt.js';
import { worldViewOf } from '../../src/games/treasure-hunt/world-view.js';
import { MemoryLogStore } from './log-store.js';
import { machineAtOrBelow } from './rewind.js';

export const SHARD = 'sim-1';

/** How a region's server misbehaves when asked for a range (the forged/corrupt scenarios). */
export type Forgery = 'corrupt' | 'tamper' | 'rechain' | null;

export type Msg =
  | { t: 'entries'; entries: readonly Uint8Array[] }
  | { t: 'status'; status: PeerShardStatus }
  | { t: 'range'; id: number; seqFrom: number; seqTo: number }
  | { t: 'rangeOk'; id: number; entries: readonly Uint8Array[] }
  | { t: 'rangeErr'; id: number; code: 'PLAYOUT_RANGE_NOT_RETAINED' | 'PLAYOUT_PEER_UNAVAILABLE'; message: string; available: RangeNotRetained | null }
  | { t: 'snap'; id: number; purpose: 'bootstrap' | 'resync'; tickMax: number | null }
  | { t: 'snapOk'; id: number; purpose: 'bootstrap' | 'resync'; tick: number; seq: number; bytes: Uint8Array }
  | { t: 'snapErr'; id: number; purpose: 'bootstrap' | 'resync'; code: string; message: string }
  | { t: 'buckets'; id: number; query: BucketsQuery }
  | { t: 'bucketsOk'; id: number; answer: BucketsAnswer }
  | { t: 'records'; id: number; query: RecordsQuery }
  | { t: 'recordsOk'; id: number; answer: RecordsAnswer }
  | { t: 'stateErr'; id: number; code: string; message: string };

export interface ClusterOptions {
  seed: number;
  /** The first is the leader. */
  regions?: readonly string[];
  tickMs?: number;
  heartbeatMs?: number;
  /**
   * 'tally' (test/sim/tally-reducer.ts, whose state counts every application of every input),
   * or 'treasure-hunt' (the example game with its seeded load generator).
   */
  game?: 'tally' | 'treasure-hunt';
  /** Treasure hunt: inputs per tick from its load generator, and its players. */
  inputsPerTick?: number;
  huntPlayers?: number;
  /** The load generator submits a burst of 0..inputsMax inputs every inputEveryMs. */
  inputEveryMs?: number;
  inputsMax?: number;
  diskDelayMsMin?: number;
  diskDelayMsMax?: number;
  snapshotEveryTicks?: number;
  /** Keep at least this many ticks of log behind the newest snapshot (null: keep everything). */
  retainTicks?: number | null;
  /** Most entries one range answer holds (a page). */
  pageEntriesMax?: number;
  link?: LinkFaults;
  follower?: Partial<Omit<FollowerConfig, 'shard' | 'region' | 'peers' | 'leader'>>;
  desync?: Partial<Omit<DesyncConfig, 'shard' | 'region' | 'leader'>>;
  /** A region running another build of the reducer. */
  reducers?: Readonly<Record<string, Reducer>>;
  forgery?: Readonly<Record<string, Forgery>>;
}

export interface Violation {
  readonly what: string;
}

const DEFAULT_REGIONS = ['eu-fra', 'af-jnb', 'us-sfo'] as const;

export class SimCluster {
  readonly seed: number;
  readonly clock = new ManualClock(0);
  readonly network: SimNetwork<Msg>;
  readonly rng: Rng;
  readonly regions: SimRegion[] = [];
  readonly leader: SimRegion;
  readonly options: Required<Omit<ClusterOptions, 'reducers' | 'forgery' | 'follower' | 'desync' | 'link'>> & Pick<ClusterOptions, 'follower' | 'desync'>;
  /** Inputs the leader acknowledged (durable): ingestId → payload.by. */
  readonly acked = new Map<string, number>();
  /** Problems seen while running (digest recomputed differently, a machine failure …). */
  readonly violations: Violation[] = [];
  private needDrain = false;
  private loadOn = true;

  constructor(options: ClusterOptions) {
    this.seed = options.seed;
    this.rng = Rng.fromSeed(options.seed);
    this.network = new SimNetwork<Msg>(this.clock, (options.seed ^ 0x5eed) >>> 0, options.link ?? CALM_LINK);
    this.options = {
      seed: options.seed,
      regions: options.regions ?? DEFAULT_REGIONS,
      tickMs: options.tickMs ?? 50,
      heartbeatMs: options.heartbeatMs ?? 100,
      inputEveryMs: options.inputEveryMs ?? 10,
      inputsMax: options.inputsMax ?? 3,
      game: options.game ?? 'tally',
      inputsPerTick: options.inputsPerTick ?? 8,
      huntPlayers: options.huntPlayers ?? 24,
      diskDelayMsMin: options.diskDelayMsMin ?? 1,
      diskDelayMsMax: options.diskDelayMsMax ?? 4,
      snapshotEveryTicks: options.snapshotEveryTicks ?? 10,
      retainTicks: options.retainTicks ?? null,
      pageEntriesMax: options.pageEntriesMax ?? 300,
      follower: options.follower,
      desync: options.desync,
    };
    const names = this.options.regions;
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const reducer = options.reducers?.[name] ?? (this.options.game === 'tally' ? tallyReducer() : treasureHuntV1);
      this.regions.push(new SimRegion(this, name, i === 0, reducer, options.forgery?.[name] ?? null));
    }
    this.leader = this.regions[0]!;
  }

  region(name: string): SimRegion {
    const r = this.regions.find((x) => x.name === name);
    if (r === undefined) throw new Error(`no region ${name}`);
    return r;
  }

  /** Create the shard at the leader and start every region. */
  async start(): Promise<void> {
    await this.leader.createShard();
    for (const r of this.regions) r.boot();
    this.clock.every(this.options.inputEveryMs, () => {
      if (this.loadOn) this.leader.loadBurst();
    });
  }

  /** Run the simulation until `untilMs` of simulated time. */
  async runUntil(untilMs: number): Promise<void> {
    while (this.clock.runNext(untilMs)) {
      if (this.needDrain) {
        this.needDrain = false;
        // Store writes resolve on promise callbacks: let them all run before the next timer.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    this.clock.set(untilMs);
  }

  async runFor(ms: number): Promise<void> {
    await this.runUntil(this.clock.nowMs() + ms);
  }

  /** Stop the load generator (ticks keep closing). */
  stopLoad(): void {
    this.loadOn = false;
  }

  /**
   * Heal every link, calm every fault, stop the load and run until every live follower holds
   * and applied the leader's log (or `maxMs` passes).
   */
  async healAndSettle(maxMs = 30_000): Promise<boolean> {
    this.network.healAll();
    this.network.setDefaults(CALM_LINK);
    this.network.clearLinks();
    this.stopLoad();
    this.leader.stopTicks();
    const deadline = this.clock.nowMs() + maxMs;
    // Let the last tick entries become durable at the leader.
    await this.runFor(this.options.tickMs);
    while (this.clock.nowMs() < deadline) {
      if (this.settled()) return true;
      await this.runFor(50);
    }
    return this.settled();
  }

  settled(): boolean {
    const head = this.leader.store.head(SHARD);
    if (head === null) return false;
    for (const r of this.regions) {
      if (!r.up || r.stopped !== null || r.isLeader || r.detector.status().resyncNeedsCommand) continue;
      const h = r.store.head(SHARD);
      if (h === null || h.seq !== head.seq || r.machine === null || r.machine.head !== head.seq || r.detector.isQuarantined) return false;
    }
    return true;
  }

  /** The invariants after heal and flush; an empty list when they hold. */
  check(except: readonly string[] = []): string[] {
    const problems: string[] = this.violations.map((v) => v.what).filter((w) => !except.some((r) => w.startsWith(r)));
    const leaderHead = this.leader.store.head(SHARD);
    if (leaderHead === null) return [...problems, 'the leader holds no log'];
    const live = this.regions.filter((r) => r.up && !except.includes(r.name));
    for (const r of live) {
      if (r.stopped !== null) problems.push(`${r.name} stopped: ${r.stopped.message}`);
      const h = r.store.head(SHARD);
      if (h === null || h.seq !== leaderHead.seq || !hashEquals(h.hash, leaderHead.hash)) {
        problems.push(`${r.name} head ${h?.seq ?? 'none'} ${h ? toHex(h.hash).slice(0, 8) : ''} differs from the leader's ${leaderHead.seq} ${toHex(leaderHead.hash).slice(0, 8)}`);
      }
      if (r.machine === null || r.machine.head !== leaderHead.seq) problems.push(`${r.name} applied ${r.machine?.head ?? 'nothing'}, the leader's head is ${leaderHead.seq}`);
      if (r.detector.isQuarantined) problems.push(`${r.name} is still quarantined`);
    }
    // Identical digests at every common tick (every digest each region ever computed).
    for (let i = 0; i < live.length; i++) {
      for (let j = i + 1; j < live.length; j++) {
        const a = live[i]!;
        const b = live[j]!;
        for (const [tick, d] of a.digestHistory) {
          const e = b.digestHistory.get(tick);
          if (e !== undefined && e !== d) {
            problems.push(`digests differ at tick ${tick}: ${a.name} ${d.slice(0, 8)}, ${b.name} ${e.slice(0, 8)}`);
            break;
          }
        }
      }
    }
    // Every acknowledged input in the log exactly once (the logs are equal: same head hash).
    const seen = new Map<string, number>();
    const first = this.leader.store.firstSeq(SHARD) ?? 1;
    for (const e of this.leader.store.iterate(SHARD, first)) if (e.ingestId !== null) seen.set(e.ingestId, (seen.get(e.ingestId) ?? 0) + 1);
    let twiceInLog = 0;
    let missingInLog = 0;
    for (const [id, n] of seen) if (n > 1 && id !== '') twiceInLog++;
    if (first === 1) for (const id of this.acked.keys()) if (!seen.has(id)) missingInLog++;
    if (twiceInLog > 0) problems.push(`${twiceInLog} ingestId(s) sequenced more than once`);
    if (missingInLog > 0) problems.push(`${missingInLog} acknowledged input(s) missing from the log`);
    // Every acknowledged input applied exactly once everywhere (read from the tally's state).
    for (const r of live) {
      if (r.machine === null || this.options.game !== 'tally') continue;
      const applied = r.machine.tables['applied']!;
      let missing = 0;
      let twice = 0;
      for (const [id, by] of this.acked) {
        const a = applied.peek(id) as { count: number } | undefined;
        if (by === 0) {
          if (a !== undefined) twice++;
        } else if (a === undefined) missing++;
        else if (a.count !== 1) twice++;
      }
      for (const key of applied.keys()) if ((applied.peek(key) as { count: number }).count !== 1) twice++;
      if (missing > 0) problems.push(`${r.name}: ${missing} acknowledged input(s) never applied`);
      if (twice > 0) problems.push(`${r.name}: ${twice} input(s) applied more than once or despite rejection`);
    }
    return problems;
  }

  /** Called by regions when they queue a store write: flush it after a disk delay. */
  diskDelay(): number {
    return this.rng.int(this.options.diskDelayMsMin, this.options.diskDelayMsMax);
  }

  markDrain(): void {
    this.needDrain = true;
  }

  followerConfig(region: string): FollowerConfig {
    return {
      ...FOLLOWER_DEFAULTS,
      repairDelayMs: 300,
      gapDelayMs: 30,
      requestTimeoutMs: 400,
      backoffMsMin: 50,
      backoffMsMax: 2_000,
      penaltyMs: 5_000,
      bootstrapTimeoutMs: 2_000,
      batchMax: 200,
      ...this.options.follower,
      shard: SHARD,
      region,
      peers: this.options.regions.filter((r) => r !== region),
      leader: this.options.regions[0]!,
    };
  }

  desyncConfig(region: string): DesyncConfig {
    return { ...DESYNC_DEFAULTS, requestTimeoutMs: 1_000, ...this.options.desync, shard: SHARD, region, leader: this.options.regions[0]! };
  }
}

export class SimRegion {
  readonly cluster: SimCluster;
  readonly name: string;
  readonly isLeader: boolean;
  readonly store = new MemoryLogStore({ flush: 'manual' });
  registry: ReducerRegistry;
  readonly forgery: Forgery;
  machine: ShardMachine | null = null;
  follower: Follower | null = null;
  detector: DesyncDetector;
  sequencer: Sequencer | null = null;
  up = false;
  stopped: PlayoutError | null = null;
  /** Every digest this region ever computed, by tick (hex); a recomputation must agree. */
  readonly digestHistory = new Map<number, string>();
  readonly alerts: { level: string; code: string; message: string }[] = [];
  readonly reports: DesyncReport[] = [];
  /** Restarts: callbacks of an older incarnation are ignored. */
  private incarnation = 0;
  private flushTimer = false;
  private timers: { cancel(): void }[] = [];
  private wakeTimer: { cancel(): void } | null = null;
  private wakeAtMs: number | null = null;
  private nextMsgId = 1;
  /** Requests this region sent: network id → what to do with the answer. */
  private readonly sent = new Map<number, { kind: 'range' | 'buckets' | 'records' | 'snap'; actionId: number; seqMin: number }>();
  private ticking = true;
  private pendingBatch: Entry[] = [];
  private pendingAcks: [string, number][] = [];
  private nextIngest = 1;
  private readonly rng: Rng;

  constructor(cluster: SimCluster, name: string, isLeader: boolean, reducer: Reducer, forgery: Forgery) {
    this.cluster = cluster;
    this.name = name;
    this.isLeader = isLeader;
    this.registry = new ReducerRegistry([reducer]);
    this.forgery = forgery;
    this.detector = new DesyncDetector(cluster.desyncConfig(name));
    this.rng = Rng.fromSeed((cluster.seed * 31 + name.length * 7919 + name.charCodeAt(0)) >>> 0);
  }

  private get now(): number {
    return this.cluster.clock.nowMs();
  }

  // --- lifecycle ---------------------------------------------------------------------------

  async createShard(): Promise<void> {
    const reducer = this.registry.list()[0]!;
    const g = Sequencer.genesis({ shard: SHARD, reducer, seed: this.cluster.seed >>> 0, tickMs: this.cluster.options.tickMs });
    const p = this.store.append(SHARD, [g]);
    this.store.flush();
    await p;
  }

  /** Start (or restart after a crash) from what the store holds. */
  boot(): void {
    this.up = true;
    this.stopped = null;
    const inc = ++this.incarnation;
    this.cluster.network.listen(this.name, (from, msg) => {
      if (inc === this.incarnation) this.onMessage(from, msg);
    });
    this.detector = new DesyncDetector(this.cluster.desyncConfig(this.name));
    this.machine = this.restoreMachine();
    if (this.isLeader) {
      const head = this.store.head(SHARD)!;
      this.sequencer = new Sequencer(this.registry, { shard: SHARD, seq: head.seq, hash: head.hash, tick: this.machine.tick, epoch: head.epoch, reducer: this.machine.reducer!.name, reducerVersion: this.machine.reducer!.version }, { region: this.name, dedupeWindowTicks: 1_000_000 });
      this.timers.push(this.cluster.clock.every(this.cluster.options.tickMs, () => this.closeTick()));
    } else {
      const head = this.store.head(SHARD);
      this.follower = new Follower(this.cluster.followerConfig(this.name), { hashAt: (seq) => this.store.get(SHARD, seq)?.hash ?? null }, Rng.fromSeed(this.rng.int(0, 0x7fffffff)), {
        head: head?.seq ?? 0,
        headHash: head?.hash ?? new Uint8Array(16),
        headTick: head?.tick ?? 0,
        applied: this.machine.head,
      });
      this.act(this.follower.start(this.now));
    }
    // Heartbeats start at a per-region offset so that regions do not speak in step.
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
    this.cluster.network.unlisten(this.name);
    for (const t of this.timers) t.cancel();
    this.timers = [];
    this.wakeTimer?.cancel();
    this.wakeTimer = null;
    this.wakeAtMs = null;
    this.flushTimer = false;
    this.store.crash();
    this.cluster.markDrain();
    this.machine = null;
    this.follower = null;
    this.sent.clear();
    this.pendingBatch = [];
    this.pendingAcks = [];
  }

  /** A failing disk: each append fails with probability `rate` (0 heals it). */
  failAppends(rate: number, seed: number): void {
    if (rate <= 0) {
      this.store.faults.failWrite = null;
      return;
    }
    const rng = Rng.fromSeed(seed);
    this.store.faults.failWrite = (op) => op.kind === 'append' && rng.chance(rate);
  }

  stopTicks(): void {
    this.ticking = false;
  }

  /** Operator fix: run another build of the reducer from now on (the next resync uses it). */
  setReducer(reducer: Reducer): void {
    this.registry = new ReducerRegistry([reducer]);
  }

  /** The latest local snapshot restored, or a fresh machine to replay from genesis. */
  private restoreMachine(): ShardMachine {
    const snap = this.store.snapshot(SHARD);
    const m = snap !== null ? ShardMachine.fromSnapshot(this.registry, decodeSnapshot(snap.bytes), { onTick: (d) => this.onTick(d) }) : new ShardMachine(this.registry, { onTick: (d) => this.onTick(d) });
    if (this.isLeader) {
      // The leader applies its whole durable log at boot.
      for (const e of this.store.iterate(SHARD, m.head + 1)) m.apply(e);
    }
    return m;
  }

  // --- leader ------------------------------------------------------------------------------

  loadBurst(): void {
    if (!this.up || this.sequencer === null) return;
    if (this.cluster.options.game === 'treasure-hunt') {
      this.huntBurst();
      return;
    }
    const n = this.rng.int(0, this.cluster.options.inputsMax);
    for (let i = 0; i < n; i++) {
      // Now and then a client retries an input already acknowledged: dedupe must hold.
      let ingestId: string;
      if (this.cluster.acked.size > 0 && this.rng.chance(0.05)) ingestId = `i${this.rng.int(1, this.nextIngest - 1)}`;
      else ingestId = `i${this.nextIngest++}`;
      const by = this.rng.chance(0.03) ? 0 : this.rng.int(1, 9);
      const r = this.sequencer.submit({ type: 'add', version: 1, payload: { key: `k${this.rng.int(0, TALLY_KEYS - 1)}`, by }, ingestId });
      if (r.status === 'sequenced') {
        this.pendingBatch.push(r.entry);
        this.pendingAcks.push([ingestId, by]);
      }
    }
    this.commitBatch();
  }

  private hunt: LoadGenerator | null = null;
  private huntQueue: LoadInput[] = [];
  private huntTick = -1;

  /** Treasure hunt: the generator's inputs for the open tick, spread over its load bursts. */
  private huntBurst(): void {
    const seq = this.sequencer!;
    const o = this.cluster.options;
    this.hunt ??= new LoadGenerator({ seed: this.cluster.seed >>> 0, players: o.huntPlayers, inputsPerTick: o.inputsPerTick, invalidRate: 0.02, retryRate: 0.03 });
    if (seq.tick !== this.huntTick) {
      this.huntTick = seq.tick;
      // Players steer by the leader's world (the treasure radar), so guilds meet at chests.
      this.huntQueue.push(...this.hunt.next(seq.tick, worldViewOf(this.machine!.tables)));
    }
    const n = Math.ceil(o.inputsPerTick / Math.max(1, Math.floor(o.tickMs / o.inputEveryMs)));
    for (const input of this.huntQueue.splice(0, n)) {
      let r;
      try {
        r = seq.submit(input);
      } catch (err) {
        if (input.intent !== 'invalid') this.cluster.violations.push({ what: `leader refused a ${input.intent} input: ${(err as Error).message}` });
        continue;
      }
      if (input.intent === 'invalid') this.cluster.violations.push({ what: `leader sequenced an invalid input ${input.type}` });
      if (r.status === 'sequenced') {
        this.pendingBatch.push(r.entry);
        this.pendingAcks.push([input.ingestId!, 1]);
      }
    }
    this.commitBatch();
  }

  private closeTick(): void {
    if (!this.up || this.sequencer === null || !this.ticking) return;
    const m = this.machine!;
    // Group commit may still be in flight; the tick entry closing T carries the digest of
    // T-1, which the leader's machine has by now (tickMs ≫ the disk delay).
    const prev = m.lastDigest !== null && m.lastDigest.tick === this.sequencer.tick - 1 ? m.lastDigest.digest : null;
    if (this.sequencer.tick > 0 && prev === null) this.cluster.violations.push({ what: `leader closed tick ${this.sequencer.tick} without the digest of the previous tick` });
    this.pendingBatch.push(this.sequencer.closeTick(prev));
    this.commitBatch();
  }

  private commitBatch(): void {
    if (this.pendingBatch.length === 0) return;
    const batch = this.pendingBatch;
    const acks = this.pendingAcks;
    this.pendingBatch = [];
    this.pendingAcks = [];
    const inc = this.incarnation;
    this.write(this.store.append(SHARD, batch), () => {
      if (inc !== this.incarnation) return;
      for (const [id, by] of acks) this.cluster.acked.set(id, by);
      for (const e of batch) this.applyOne(e);
      const bytes = batch.map((e) => e.bytes);
      for (const r of this.cluster.regions) if (r !== this) this.send(r.name, { t: 'entries', entries: bytes });
    });
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

  /** Apply one entry; false when the machine refused it (the region stops). */
  private applyOne(e: Entry): boolean {
    const m = this.machine;
    if (m === null || this.stopped !== null) return false;
    try {
      m.apply(e);
    } catch (err) {
      const error = err instanceof PlayoutError ? err : new PlayoutError('PLAYOUT_REDUCER_FAILED', String(err));
      this.cluster.violations.push({ what: `${this.name} failed to apply entry ${e.seq}: ${error.message}` });
      this.stopped = error;
      if (this.follower !== null) this.act(this.follower.stop(error));
      return false;
    }
    if (m.atTickBoundary && m.lastDigest !== null && m.lastDigest.tick % this.cluster.options.snapshotEveryTicks === 0 && m.lastDigest.tick > 0) this.takeSnapshot(m);
    return true;
  }

  private onTick(d: TickDigest): void {
    const hex = toHex(d.digest);
    const had = this.digestHistory.get(d.tick);
    if (had !== undefined && had !== hex && !this.resyncedSince(d.tick)) {
      this.cluster.violations.push({ what: `${this.name} recomputed tick ${d.tick} to a different digest` });
    }
    this.digestHistory.set(d.tick, hex);
    const inc = this.incarnation;
    this.write(this.store.putDigests(SHARD, [{ tick: d.tick, seq: d.seq, digest: d.digest }]), () => undefined);
    if (inc === this.incarnation) this.actDesync(this.detector.onLocalDigest(d, this.now));
  }

  /** After a resync, digests of the diverged ticks are legitimately recomputed. */
  private resyncFloor = Number.POSITIVE_INFINITY;
  private resyncedSince(tick: number): boolean {
    return tick > this.resyncFloor;
  }

  private takeSnapshot(m: ShardMachine): void {
    const snap = m.snapshot();
    const bytes = encodeSnapshot(snap);
    const retain = this.cluster.options.retainTicks;
    this.write(this.store.putSnapshot(SHARD, snap.tick, snap.seq, bytes), () => {
      if (retain === null) return;
      const keep = this.store.snapshots(SHARD).filter((s) => s.tick <= snap.tick - retain);
      const base = keep[keep.length - 1];
      const first = this.store.firstSeq(SHARD);
      if (base !== undefined && first !== null && base.seq + 1 > first) this.write(this.store.truncateBelow(SHARD, base.seq + 1), () => undefined);
    });
  }

  /** Queue a store write; its durability arrives after a simulated disk delay (group commit). */
  private write(p: Promise<unknown>, then: () => void): void {
    const inc = this.incarnation;
    p.then(
      () => {
        if (inc === this.incarnation) then();
      },
      (err: unknown) => {
        if (inc !== this.incarnation) return;
        this.cluster.violations.push({ what: `${this.name} store write failed: ${(err as Error).message}` });
      },
    );
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
      this.cluster.markDrain();
    });
  }

  // --- the follower's and the detector's actions ------------------------------------------

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
              this.actDesync(this.detector.onLogEntries(a.entries, this.now));
              this.act(f.appended(a.appendId, this.now));
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
          for (const e of a.entries) {
            if (this.detector.isQuarantined || !this.applyOne(e)) break;
          }
          break;
        case 'applyStored':
          for (const e of this.store.iterate(SHARD, a.seqFrom, a.seqTo)) {
            if (this.detector.isQuarantined || !this.applyOne(e)) break;
          }
          break;
        case 'rewind':
          this.rewindMachine(a.seq);
          break;
        case 'requestRange': {
          const id = this.nextMsgId++;
          this.sent.set(id, { kind: 'range', actionId: a.requestId, seqMin: a.seqFrom });
          this.send(a.peer, { t: 'range', id, seqFrom: a.seqFrom, seqTo: a.seqTo });
          break;
        }
        case 'cancel':
          for (const [id, s] of this.sent) if ((s.kind === 'range' || s.kind === 'snap') && s.actionId === a.requestId) this.sent.delete(id);
          break;
        case 'bootstrap': {
          const id = this.nextMsgId++;
          this.sent.set(id, { kind: 'snap', actionId: a.requestId, seqMin: a.seqMin });
          this.send(a.peer, { t: 'snap', id, purpose: 'bootstrap', tickMax: null });
          break;
        }
        case 'follow':
          break; // the leader pushes to every follower: nothing to reposition
        case 'alert':
          this.alerts.push({ level: a.level, code: a.error.code, message: a.error.message });
          break;
        case 'stop':
          this.stopped = a.error;
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
          this.sent.set(id, { kind: 'buckets', actionId: a.requestId, seqMin: 0 });
          this.send(a.peer, { t: 'buckets', id, query: a.query });
          break;
        }
        case 'fetchRecords': {
          const id = this.nextMsgId++;
          this.sent.set(id, { kind: 'records', actionId: a.requestId, seqMin: 0 });
          this.send(a.peer, { t: 'records', id, query: a.query });
          break;
        }
        case 'report':
          this.reports.push(a.report);
          break;
        case 'resync': {
          const id = this.nextMsgId++;
          this.sent.set(id, { kind: 'snap', actionId: a.requestId, seqMin: 0 });
          this.send(a.peer, { t: 'snap', id, purpose: 'resync', tickMax: a.tickMax });
          break;
        }
      }
    }
    this.armWake();
  }

  /** One timer at the earliest moment the follower or the detector asked to be woken. */
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

  // --- the network ---------------------------------------------------------------------------

  private send(to: string, msg: Msg): void {
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
      epoch: head?.epoch ?? 0,
      digest: d === null || this.detector.isQuarantined ? null : { tick: d.tick, digest: d.digest },
      quarantined: this.detector.isQuarantined,
    };
    for (const r of this.cluster.regions) if (r !== this) this.send(r.name, { t: 'status', status });
  }

  private onMessage(from: string, msg: Msg): void {
    switch (msg.t) {
      case 'entries': {
        if (this.follower === null) return;
        const entries: Entry[] = [];
        for (const b of msg.entries) {
          try {
            entries.push(decodeEntry(b));
          } catch {
            // A torn or corrupt frame: the source drops it; the follower repairs the gap.
          }
        }
        this.act(this.follower.onEntries(entries, from, this.now));
        return;
      }
      case 'status':
        if (this.follower !== null) this.act(this.follower.onPeerStatus(msg.status, this.now));
        this.actDesync(this.detector.onPeerStatus(msg.status, this.now));
        return;
      case 'range':
        this.serveRange(from, msg.id, msg.seqFrom, msg.seqTo);
        return;
      case 'snap':
        this.serveSnapshot(from, msg.id, msg.purpose, msg.tickMax);
        return;
      case 'buckets':
      case 'records':
        this.serveState(from, msg);
        return;
      default:
        this.onAnswer(from, msg);
    }
  }

  private serveRange(to: string, id: number, seqFrom: number, seqTo: number): void {
    const first = this.store.firstSeq(SHARD);
    const head = this.store.head(SHARD)?.seq ?? 0;
    if (first === null || seqFrom < first || seqFrom > head) {
      this.send(to, { t: 'rangeErr', id, code: 'PLAYOUT_RANGE_NOT_RETAINED', message: `holds ${first ?? '-'}..${head}`, available: { firstSeq: first, head } });
      return;
    }
    const cap = this.forgery === 'rechain' ? seqTo : Math.min(seqTo, seqFrom + this.cluster.options.pageEntriesMax - 1);
    let entries = this.store.range(SHARD, seqFrom, cap);
    let bytes = entries.map((e) => e.bytes);
    if (this.forgery !== null && entries.length > 0) {
      if (this.forgery === 'corrupt') {
        // Bit rot on the wire: one byte flipped in the middle entry.
        const i = entries.length >> 1;
        const copy = entries[i]!.bytes.slice();
        copy[copy.length >> 1]! ^= 0x40;
        bytes = bytes.map((b, j) => (j === i ? copy : b));
      } else {
        // A forged history: inputs rewritten and resealed (tamper: the chain after the first
        // forged entry is left broken; rechain: re-linked so the range is self-consistent).
        const out: Entry[] = [];
        let prev = entries[0]!.prev;
        for (let j = 0; j < entries.length; j++) {
          const e = entries[j]!;
          const forge = this.forgery === 'rechain' || j === 0;
          const fields = { shard: e.shard, seq: e.seq, epoch: e.epoch, tick: e.tick, kind: e.kind, type: e.type, version: e.version, origin: e.origin, ingestId: e.ingestId, payload: e.kind === 'input' ? { key: 'k0', by: 999 } : e.payload, digest: e.digest, prev: this.forgery === 'rechain' ? prev : e.prev };
          const sealed = forge ? sealEntry(fields) : e;
          out.push(sealed);
          prev = sealed.hash;
        }
        entries = out;
        bytes = out.map((e) => e.bytes);
      }
    }
    this.send(to, { t: 'rangeOk', id, entries: bytes });
  }

  private serveSnapshot(to: string, id: number, purpose: 'bootstrap' | 'resync', tickMax: number | null): void {
    if (this.detector.isQuarantined) {
      this.send(to, { t: 'snapErr', id, purpose, code: 'PLAYOUT_SHARD_QUARANTINED', message: `${this.name} is quarantined` });
      return;
    }
    const s = this.store.snapshot(SHARD, tickMax ?? undefined);
    if (s === null) {
      this.send(to, { t: 'snapErr', id, purpose, code: 'PLAYOUT_TICK_NOT_RETAINED', message: `${this.name} holds no snapshot at or below ${tickMax ?? 'any tick'}` });
      return;
    }
    this.send(to, { t: 'snapOk', id, purpose, tick: s.tick, seq: s.seq, bytes: s.bytes });
  }

  private serveState(to: string, msg: Extract<Msg, { t: 'buckets' | 'records' }>): void {
    try {
      if (this.detector.isQuarantined) throw new PlayoutError('PLAYOUT_SHARD_QUARANTINED', `${this.name} is quarantined`);
      const state = tickStateOf(stateAtTick(this.store, this.registry, SHARD, msg.query.tick));
      if (msg.t === 'buckets') this.send(to, { t: 'bucketsOk', id: msg.id, answer: answerBuckets(state, msg.query) });
      else this.send(to, { t: 'recordsOk', id: msg.id, answer: answerRecords(state, msg.query) });
    } catch (err) {
      const e = err as PlayoutError;
      this.send(to, { t: 'stateErr', id: msg.id, code: e.code ?? 'PLAYOUT_INVALID_ARGUMENT', message: e.message });
    }
  }

  private onAnswer(from: string, msg: Msg): void {
    if (!('id' in msg)) return;
    const s = this.sent.get(msg.id);
    if (s === undefined) return; // cancelled, or a duplicate delivery
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
        this.act(f.onRangeResponse(s.actionId, entries, this.now));
        return;
      }
      case 'rangeErr':
        if (f !== null) this.act(f.onRangeFailure(s.actionId, new PlayoutError(msg.code, msg.message), msg.available, this.now));
        return;
      case 'snapOk':
        if (msg.purpose === 'bootstrap') this.bootstrapFrom(s.actionId, s.seqMin, msg.tick, msg.seq, msg.bytes);
        else this.resyncFrom(s.actionId, msg.tick, msg.seq, msg.bytes);
        return;
      case 'snapErr': {
        const err = new PlayoutError(msg.code as 'PLAYOUT_TICK_NOT_RETAINED', `${from}: ${msg.message}`);
        if (msg.purpose === 'bootstrap') {
          if (f !== null) this.act(f.bootstrapFailed(s.actionId, err, this.now));
        } else this.actDesync(this.detector.resyncFailed(s.actionId, err, this.now));
        return;
      }
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

  /** Bootstrap: check the snapshot, make it the store's base, restore the machine from it. */
  private bootstrapFrom(requestId: number, seqMin: number, tick: number, seq: number, bytes: Uint8Array): void {
    const f = this.follower;
    if (f === null) return;
    let machine: ShardMachine;
    try {
      if (seq < seqMin - 1) throw new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `snapshot at seq ${seq} is older than the needed ${seqMin - 1}`);
      machine = ShardMachine.fromSnapshot(this.registry, decodeSnapshot(bytes), { onTick: (d) => this.onTick(d) });
    } catch (err) {
      this.act(f.bootstrapFailed(requestId, err as PlayoutError, this.now));
      return;
    }
    const inc = this.incarnation;
    const put = this.store.putSnapshot(SHARD, tick, seq, bytes);
    const trunc = this.store.truncateBelow(SHARD, seq + 1);
    this.scheduleFlush();
    Promise.all([put, trunc]).then(
      () => {
        if (inc !== this.incarnation || this.follower !== f) return;
        this.machine = machine;
        this.digestHistory.set(tick, toHex(machine.lastDigest!.digest));
        this.act(f.bootstrapped(requestId, seq, machine.headHash, tick, this.now));
      },
      (err: unknown) => {
        if (inc !== this.incarnation || this.follower !== f) return;
        this.act(f.bootstrapFailed(requestId, err as PlayoutError, this.now));
      },
    );
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
      if (seq > (this.store.head(SHARD)?.seq ?? 0)) throw new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `snapshot seq ${seq} is beyond the local head`);
    } catch (err) {
      this.actDesync(this.detector.resyncFailed(requestId, err as PlayoutError, this.now));
      return;
    }
    this.machine = machine;
    this.resyncFloor = Math.min(this.resyncFloor, tick);
    // The diverged ticks' digests are this region's history no more: it adopted the peer's
    // state at `tick` and recomputes every later tick.
    const from = this.detector.status().firstDivergingTick ?? tick;
    for (const t of [...this.digestHistory.keys()]) if (t >= Math.min(from, tick + 1)) this.digestHistory.delete(t);
    this.digestHistory.set(tick, toHex(machine.lastDigest!.digest));
    this.actDesync(this.detector.resynced(requestId, tick, this.now));
    if (f !== null) this.act(f.restored(seq, machine.headHash, tick, this.now));
  }
}

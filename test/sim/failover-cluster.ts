// FoCluster: whole regions of one shard in one process, driven by one seed, where leadership moves
// (DESIGN.md §6). Regions (test/sim/failover-region.ts) change role through fencing and promotion;
// clients submit inputs to the region they believe leads and follow redirects; operators run the
// real failover operator functions (src/cli/ops/failover.ts) over FailoverClients that cross the
// simulated network. The twins are the existing ones: SimNetwork (loss, delay, partitions),
// ManualClock, MemoryLogStore, the tally reducer.
//
// `check()` asserts, after heal and flush:
//   - at most one region sequenced entries in any epoch;
//   - every live region holds the same log and applied all of it, with identical digests at every
//     common tick, none quarantined or stopped;
//   - no ingestId is in the log twice, and every input acknowledged and in the log was applied
//     exactly once in every region;
//   - ack mode quorum: every acknowledged input is in the log;
//     ack mode leader: every acknowledged input missing from the log is listed in a quarantine report.
import { PlayoutError } from '../../src/core/errors.js';
import { hashEquals, toHex } from '../../src/core/hash.js';
import type { Reducer } from '../../src/core/reducer.js';
import { Rng } from '../../src/core/rng.js';
import type { Entry } from '../../src/core/entry.js';
import type { PeerShardStatus } from '../../src/ports/entry-source.js';
import type { AnnounceAnswer, AnnounceRequest, EntryRow, EpochRecord, EpochsAnswer, FailoverClient, FailoverRequestOptions, FenceGrant, FenceRequest, PromoteAnswer, PromoteRequest, RegionFailoverStatus, ReleaseAnswer, ReleaseRequest } from '../../src/ports/failover-client.js';
import type { BucketsAnswer, BucketsQuery, RangeNotRetained, RecordsAnswer, RecordsQuery } from '../../src/ports/peer-client.js';
import { DESYNC_DEFAULTS, type DesyncConfig } from '../../src/replication/desync-detector.js';
import type { QuarantineReport } from '../../src/replication/failover-quarantine.js';
import type { FailoverPlan, FailoverResult } from '../../src/replication/failover-coordinator.js';
import { FOLLOWER_DEFAULTS, type FollowerConfig } from '../../src/replication/follower.js';
import { executeFailoverOp, planFailoverOp, failoverStatusOp, type FailoverOpsOptions, type FailoverStatusReport } from '../../src/cli/ops/failover.js';
import { ManualClock } from './clock.js';
import { CALM_LINK, SimNetwork, type LinkFaults } from './network.js';
import { tallyReducer, TALLY_KEYS } from './tally-reducer.js';
import { FoRegion, SHARD } from './failover-region.js';

export { SHARD } from './failover-region.js';

export interface ClientInput {
  readonly ingestId: string;
  readonly key: string;
  readonly by: number;
}

export type FoMsg =
  | { t: 'entries'; entries: readonly Uint8Array[] }
  | { t: 'status'; status: PeerShardStatus; epochs: readonly EpochRecord[] }
  | { t: 'range'; id: number; seqFrom: number; seqTo: number }
  | { t: 'rangeOk'; id: number; entries: readonly Uint8Array[] }
  | { t: 'rangeErr'; id: number; code: 'PLAYOUT_RANGE_NOT_RETAINED' | 'PLAYOUT_PEER_UNAVAILABLE'; message: string; available: RangeNotRetained | null }
  | { t: 'snap'; id: number; tickMax: number | null }
  | { t: 'snapOk'; id: number; tick: number; seq: number; bytes: Uint8Array }
  | { t: 'snapErr'; id: number; code: string; message: string }
  | { t: 'buckets'; id: number; query: BucketsQuery }
  | { t: 'bucketsOk'; id: number; answer: BucketsAnswer }
  | { t: 'records'; id: number; query: RecordsQuery }
  | { t: 'recordsOk'; id: number; answer: RecordsAnswer }
  | { t: 'stateErr'; id: number; code: string; message: string }
  | { t: 'durable'; seq: number; hash: Uint8Array }
  | { t: 'submit'; id: number; inputs: readonly ClientInput[] }
  | { t: 'submitted'; id: number; results: readonly { ingestId: string; seq: number }[]; region: string }
  | { t: 'redirect'; id: number; leader: string }
  | { t: 'wait'; id: number }
  | { t: 'fo'; id: number; op: string; body: unknown }
  | { t: 'foOk'; id: number; body: unknown }
  | { t: 'foErr'; id: number; code: string; message: string };

export interface FoOptions {
  seed: number;
  /** The first leads epoch 1. */
  regions?: readonly string[];
  tickMs?: number;
  heartbeatMs?: number;
  ack?: 'leader' | 'quorum';
  /** The client submits 0..inputsMax new inputs every inputEveryMs. */
  inputEveryMs?: number;
  inputsMax?: number;
  diskDelayMsMin?: number;
  diskDelayMsMax?: number;
  snapshotEveryTicks?: number;
  pageEntriesMax?: number;
  link?: LinkFaults;
  reducers?: Readonly<Record<string, Reducer>>;
  follower?: Partial<Omit<FollowerConfig, 'shard' | 'region' | 'peers' | 'leader'>>;
  desync?: Partial<Omit<DesyncConfig, 'shard' | 'region' | 'leader'>>;
  /** Operators' request timeouts. */
  requestTimeoutMs?: number;
  promoteTimeoutMs?: number;
}

const DEFAULT_REGIONS = ['eu-fra', 'af-jnb', 'us-sfo'] as const;

/** Network nodes that are not regions. */
const CLIENT = 'client';

export class FoCluster {
  readonly seed: number;
  readonly clock = new ManualClock(0);
  readonly network: SimNetwork<FoMsg>;
  readonly rng: Rng;
  readonly regions: FoRegion[] = [];
  readonly options: Required<Omit<FoOptions, 'reducers' | 'follower' | 'link' | 'desync'>> & Pick<FoOptions, 'follower' | 'desync'>;
  readonly initialLeader: string;
  /** Inputs acknowledged to the client: ingestId → payload.by, the seq and the region that acknowledged it. */
  readonly acked = new Map<string, { by: number; seq: number; region: string }>();
  /** epoch → regions that sequenced entries in it. */
  readonly sequencedBy = new Map<number, Set<string>>();
  readonly reports: QuarantineReport[] = [];
  readonly violations: string[] = [];
  readonly client: SimClient;
  ticking = true;
  private nextRpc = 1;
  private nextFailoverId = 1;
  private readonly rpcs = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void; timer: { cancel(): void } }>();
  private readonly operators = new Set<string>();

  constructor(o: FoOptions) {
    this.seed = o.seed;
    this.rng = Rng.fromSeed(o.seed);
    this.network = new SimNetwork<FoMsg>(this.clock, (o.seed ^ 0x5eed) >>> 0, o.link ?? CALM_LINK);
    this.options = {
      seed: o.seed,
      regions: o.regions ?? DEFAULT_REGIONS,
      tickMs: o.tickMs ?? 50,
      heartbeatMs: o.heartbeatMs ?? 100,
      ack: o.ack ?? 'quorum',
      inputEveryMs: o.inputEveryMs ?? 10,
      inputsMax: o.inputsMax ?? 3,
      diskDelayMsMin: o.diskDelayMsMin ?? 1,
      diskDelayMsMax: o.diskDelayMsMax ?? 4,
      snapshotEveryTicks: o.snapshotEveryTicks ?? 10,
      pageEntriesMax: o.pageEntriesMax ?? 300,
      follower: o.follower,
      desync: o.desync,
      requestTimeoutMs: o.requestTimeoutMs ?? 300,
      promoteTimeoutMs: o.promoteTimeoutMs ?? 3_000,
    };
    this.initialLeader = this.options.regions[0]!;
    for (const name of this.options.regions) this.regions.push(new FoRegion(this, name, o.reducers?.[name] ?? tallyReducer()));
    this.client = new SimClient(this);
  }

  region(name: string): FoRegion {
    const r = this.regions.find((x) => x.name === name);
    if (r === undefined) throw new Error(`no region ${name}`);
    return r;
  }

  /** Live regions that sequence now (at most one once the cluster is healed). */
  leaders(): FoRegion[] {
    return this.regions.filter((r) => r.isLeader);
  }

  async start(): Promise<void> {
    await this.region(this.initialLeader).createShard();
    for (const r of this.regions) r.boot();
    this.client.start();
  }

  /** Run the simulation until `untilMs`; promises (store writes, operators) settle between timers. */
  async runUntil(untilMs: number): Promise<void> {
    while (this.clock.runNext(untilMs)) await new Promise<void>((resolve) => setImmediate(resolve));
    this.clock.set(untilMs);
  }

  async runFor(ms: number): Promise<void> {
    await this.runUntil(this.clock.nowMs() + ms);
  }

  /** Run the clock until `p` settles (at most maxMs of simulated time), and return it. */
  async until<T>(p: Promise<T>, maxMs = 30_000): Promise<T> {
    let done = false;
    p.then(
      () => (done = true),
      () => (done = true),
    );
    const deadline = this.clock.nowMs() + maxMs;
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (!done && this.clock.nowMs() < deadline) {
      if (!this.clock.runNext(deadline)) this.clock.set(deadline);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (!done) throw new Error(`reproduce with seed=${this.seed}: an operation did not settle within ${maxMs} ms of simulated time`);
    return p;
  }

  /** A promise resolved after `ms` of simulated time. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.clock.after(ms, resolve));
  }

  diskDelay(): number {
    return this.rng.int(this.options.diskDelayMsMin, this.options.diskDelayMsMax);
  }

  noteSequenced(region: string, e: Entry): void {
    let s = this.sequencedBy.get(e.epoch);
    if (s === undefined) this.sequencedBy.set(e.epoch, (s = new Set()));
    s.add(region);
  }

  followerConfig(region: string, leader: string | null): FollowerConfig {
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
      leader,
    };
  }

  desyncConfig(region: string, leader: string): DesyncConfig {
    return { ...DESYNC_DEFAULTS, requestTimeoutMs: 1_000, ...this.options.desync, shard: SHARD, region, leader };
  }

  // --- operators ---------------------------------------------------------------------------------

  /** A request from an operator node to a region's failover route, over the simulated network. */
  rpc<T>(from: string, region: string, op: string, body: unknown, timeoutMs: number): Promise<T> {
    if (!this.operators.has(from)) {
      this.operators.add(from);
      this.network.listen(from, (_src, msg) => {
        if (msg.t !== 'foOk' && msg.t !== 'foErr') return;
        const r = this.rpcs.get(msg.id);
        if (r === undefined) return;
        this.rpcs.delete(msg.id);
        r.timer.cancel();
        if (msg.t === 'foOk') r.resolve(structuredClone(msg.body));
        else r.reject(new PlayoutError(msg.code as 'PLAYOUT_PEER_UNAVAILABLE', msg.message));
      });
    }
    const id = this.nextRpc++;
    return new Promise<T>((resolve, reject) => {
      // The request is sent again every quarter of the timeout until answered, as TCP would
      // retransmit a lost segment of an HTTP request: every failover route is idempotent.
      const resend = this.clock.every(Math.max(1, Math.floor(timeoutMs / 4)), () => {
        if (this.rpcs.has(id)) this.network.send(from, region, { t: 'fo', id, op, body: structuredClone(body) });
      });
      const timer = this.clock.after(timeoutMs, () => {
        resend.cancel();
        if (!this.rpcs.delete(id)) return;
        reject(new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `Cannot ${op} at region ${region}: no answer within ${timeoutMs} ms`, { expected: 'an answer', received: 'timeout' }));
      });
      this.rpcs.set(id, {
        resolve: (v) => {
          resend.cancel();
          (resolve as (v: unknown) => void)(v);
        },
        reject: (e) => {
          resend.cancel();
          reject(e);
        },
        timer,
      });
      this.network.send(from, region, { t: 'fo', id, op, body: structuredClone(body) });
    });
  }

  /** Operator functions' options for an operator at network node `from`, reaching `regions` (default all). */
  ops(from = 'operator', regions: readonly string[] = this.options.regions): FailoverOpsOptions {
    return {
      shard: SHARD,
      clients: regions.map((r) => new SimFailoverClient(this, r, from)),
      requestTimeoutMs: this.options.requestTimeoutMs,
      promoteTimeoutMs: this.options.promoteTimeoutMs,
      listEntriesMax: 10_000,
      newFailoverId: () => `fo-${this.seed}-${from}-${this.nextFailoverId++}`,
    };
  }

  async plan(target: string, acceptLoss = false, from = 'operator'): Promise<FailoverPlan> {
    return this.until(planFailoverOp(this.ops(from), target, acceptLoss));
  }

  async execute(target: string, acceptLoss = false, from = 'operator'): Promise<FailoverResult> {
    return this.until(executeFailoverOp(this.ops(from), target, acceptLoss));
  }

  async failoverStatus(from = 'operator'): Promise<FailoverStatusReport> {
    return this.until(failoverStatusOp(this.ops(from)));
  }

  // --- heal and check ------------------------------------------------------------------------------

  /**
   * Heal every link, restart crashed regions, stop new load, let the client's pending inputs be
   * acknowledged, stop ticks, and run until every live region holds the leader's log.
   */
  async healAndSettle(maxMs = 30_000): Promise<boolean> {
    this.network.healAll();
    this.network.setDefaults(CALM_LINK);
    this.network.clearLinks();
    for (const r of this.regions) if (!r.up) r.boot();
    this.client.stopLoad();
    const deadline = this.clock.nowMs() + maxMs;
    while (this.clock.nowMs() < deadline && (this.client.pending.size > 0 || this.leaders().length !== 1)) await this.runFor(50);
    this.ticking = false;
    await this.runFor(this.options.tickMs * 2);
    while (this.clock.nowMs() < deadline) {
      if (this.settled()) return true;
      await this.runFor(50);
    }
    return this.settled();
  }

  settled(): boolean {
    const leaders = this.leaders();
    if (leaders.length !== 1 || this.client.pending.size > 0) return false;
    const lead = leaders[0]!;
    const head = lead.store.head(SHARD)!;
    for (const r of this.regions) {
      if (!r.up || r === lead || r.stopped !== null) continue;
      const h = r.store.head(SHARD);
      if (h === null || h.seq !== head.seq || r.machine === null || r.machine.head !== head.seq || r.detector.isQuarantined || r.fence.epoch !== lead.fence.epoch) return false;
    }
    return true;
  }

  /** The invariants after heal and flush; an empty list when they hold. */
  check(): string[] {
    const problems = [...this.violations];
    for (const [epoch, set] of this.sequencedBy) if (set.size > 1) problems.push(`epoch ${epoch} was sequenced by ${[...set].join(' and ')}`);
    const leaders = this.leaders();
    if (leaders.length !== 1) return [...problems, `${leaders.length} regions lead after heal (${leaders.map((r) => r.name).join(', ')})`];
    const lead = leaders[0]!;
    const head = lead.store.head(SHARD)!;
    const live = this.regions.filter((r) => r.up);
    for (const r of live) {
      if (r.stopped !== null) problems.push(`${r.name} stopped: ${r.stopped.message}`);
      const h = r.store.head(SHARD);
      if (h === null || h.seq !== head.seq || !hashEquals(h.hash, head.hash)) problems.push(`${r.name} head ${h?.seq ?? 'none'} ${h ? toHex(h.hash).slice(0, 8) : ''} differs from the leader ${lead.name}'s ${head.seq} ${toHex(head.hash).slice(0, 8)}`);
      if (r.machine === null || r.machine.head !== head.seq) problems.push(`${r.name} applied ${r.machine?.head ?? 'nothing'}, the leader's head is ${head.seq}`);
      if (r.detector.isQuarantined && r !== lead) problems.push(`${r.name} is still quarantined`);
      if (r.fence.epoch !== lead.fence.epoch || r.fence.leader !== lead.name) problems.push(`${r.name} knows epoch ${r.fence.epoch} led by ${r.fence.leader}, the leader ${lead.name} leads epoch ${lead.fence.epoch}`);
    }
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
    const inLog = new Map<string, number>();
    for (const e of lead.store.iterate(SHARD, 1)) if (e.ingestId !== null) inLog.set(e.ingestId, (inLog.get(e.ingestId) ?? 0) + 1);
    const twice = [...inLog].filter(([, n]) => n > 1).map(([id]) => id);
    if (twice.length > 0) problems.push(`${twice.length} ingestId(s) sequenced more than once: ${twice.slice(0, 5).join(', ')}`);
    const quarantined = new Set<string>();
    for (const rep of this.reports) for (const e of rep.entries) if (e.ingestId !== null) quarantined.add(e.ingestId);
    const lost = [...this.acked.keys()].filter((id) => !inLog.has(id));
    if (this.options.ack === 'quorum' && lost.length > 0) problems.push(`ack mode quorum: ${lost.length} acknowledged input(s) lost: ${lost.slice(0, 5).join(', ')}`);
    const silent = lost.filter((id) => !quarantined.has(id));
    if (silent.length > 0) problems.push(`${silent.length} acknowledged input(s) lost without a quarantine report: ${silent.slice(0, 5).join(', ')}`);
    for (const r of live) {
      const applied = r.machine?.tables['applied'];
      if (applied === undefined) continue;
      let missing = 0;
      let wrong = 0;
      for (const [id, a] of this.acked) {
        if (!inLog.has(id)) continue;
        const row = applied.peek(id) as { count: number } | undefined;
        if (a.by === 0) {
          if (row !== undefined) wrong++;
        } else if (row === undefined) missing++;
        else if (row.count !== 1) wrong++;
      }
      for (const key of applied.keys()) if ((applied.peek(key) as { count: number }).count !== 1) wrong++;
      if (missing > 0) problems.push(`${r.name}: ${missing} acknowledged input(s) never applied`);
      if (wrong > 0) problems.push(`${r.name}: ${wrong} input(s) applied more than once or despite rejection`);
    }
    return problems;
  }

  /** Acknowledged inputs that are not in the final log (each must be in a quarantine report). */
  lostAcked(): string[] {
    const lead = this.leaders()[0];
    if (lead === undefined) return [];
    const inLog = new Set<string>();
    for (const e of lead.store.iterate(SHARD, 1)) if (e.ingestId !== null) inLog.add(e.ingestId);
    return [...this.acked.keys()].filter((id) => !inLog.has(id));
  }
}

/**
 * Game servers: they submit inputs to the region they believe leads, follow redirects, retry
 * unacknowledged inputs with the same ingestId, and try another region when theirs stays silent.
 */
export class SimClient {
  readonly cluster: FoCluster;
  knownLeader: string;
  /** Inputs not acknowledged yet: ingestId → the input and when it was last sent. */
  readonly pending = new Map<string, { input: ClientInput; sentAtMs: number }>();
  private loadOn = true;
  private nextIngest = 1;
  private nextId = 1;
  private lastAnswerMs = 0;
  private readonly rng: Rng;
  private readonly retryAfterMs = 300;
  private readonly silentMsMax = 1_000;
  redirects = 0;

  constructor(cluster: FoCluster) {
    this.cluster = cluster;
    this.knownLeader = cluster.initialLeader;
    this.rng = Rng.fromSeed((cluster.seed ^ 0xc11e47) >>> 0);
  }

  start(): void {
    const c = this.cluster;
    c.network.listen(CLIENT, (from, msg) => this.onMessage(from, msg));
    c.clock.every(c.options.inputEveryMs, () => {
      if (!this.loadOn) return;
      const n = this.rng.int(0, c.options.inputsMax);
      const batch: ClientInput[] = [];
      for (let i = 0; i < n; i++) {
        const input = { ingestId: `i${this.nextIngest++}`, key: `k${this.rng.int(0, TALLY_KEYS - 1)}`, by: this.rng.chance(0.03) ? 0 : this.rng.int(1, 9) };
        this.pending.set(input.ingestId, { input, sentAtMs: c.clock.nowMs() });
        batch.push(input);
      }
      if (batch.length > 0) this.send(batch);
    });
    c.clock.every(100, () => this.retry());
  }

  stopLoad(): void {
    this.loadOn = false;
  }

  private send(inputs: readonly ClientInput[]): void {
    this.cluster.network.send(CLIENT, this.knownLeader, { t: 'submit', id: this.nextId++, inputs });
  }

  private retry(): void {
    const now = this.cluster.clock.nowMs();
    if (this.pending.size === 0) {
      this.lastAnswerMs = now;
      return;
    }
    if (now - this.lastAnswerMs > this.silentMsMax) {
      // Our region stays silent (crashed, or cut off): ask another one; it redirects us.
      const regions = this.cluster.options.regions;
      this.knownLeader = regions[(regions.indexOf(this.knownLeader) + 1) % regions.length]!;
      this.lastAnswerMs = now;
    }
    const due: ClientInput[] = [];
    for (const p of this.pending.values()) {
      if (now - p.sentAtMs < this.retryAfterMs) continue;
      p.sentAtMs = now;
      due.push(p.input);
      if (due.length >= 200) break;
    }
    if (due.length > 0) this.send(due);
  }

  private onMessage(from: string, msg: FoMsg): void {
    const now = this.cluster.clock.nowMs();
    if (from === this.knownLeader) this.lastAnswerMs = now;
    switch (msg.t) {
      case 'submitted':
        for (const r of msg.results) {
          const p = this.pending.get(r.ingestId);
          if (p === undefined) continue;
          this.pending.delete(r.ingestId);
          this.cluster.acked.set(r.ingestId, { by: p.input.by, seq: r.seq, region: msg.region });
        }
        return;
      case 'redirect':
        if (this.knownLeader !== msg.leader) {
          this.redirects++;
          this.knownLeader = msg.leader;
          this.lastAnswerMs = now;
        }
        // Re-send soon (the redirect keeps method and body: same inputs, same ingestIds).
        for (const p of this.pending.values()) p.sentAtMs = Math.min(p.sentAtMs, now - this.retryAfterMs + 20);
        return;
      case 'wait':
        return;
      default:
        return;
    }
  }
}

/** FailoverClient over the simulated network: the twin of the CLI's HTTP client. */
export class SimFailoverClient implements FailoverClient {
  readonly region: string;
  private readonly cluster: FoCluster;
  private readonly from: string;

  constructor(cluster: FoCluster, region: string, from: string) {
    this.cluster = cluster;
    this.region = region;
    this.from = from;
  }

  private call<T>(op: string, body: unknown, o?: FailoverRequestOptions): Promise<T> {
    return this.cluster.rpc<T>(this.from, this.region, op, body, o?.timeoutMs ?? this.cluster.options.requestTimeoutMs);
  }

  status(_shard: string, o?: FailoverRequestOptions): Promise<RegionFailoverStatus> {
    return this.call('status', null, o);
  }
  epochs(_shard: string, o?: FailoverRequestOptions): Promise<EpochsAnswer> {
    return this.call('epochs', null, o);
  }
  entries(_shard: string, seqFrom: number, seqTo: number, o?: FailoverRequestOptions): Promise<EntryRow[]> {
    return this.call('entries', { from: seqFrom, to: seqTo }, o);
  }
  fence(_shard: string, request: FenceRequest, o?: FailoverRequestOptions): Promise<FenceGrant> {
    return this.call('fence', request, o);
  }
  release(_shard: string, request: ReleaseRequest, o?: FailoverRequestOptions): Promise<ReleaseAnswer> {
    return this.call('release', request, o);
  }
  promote(_shard: string, request: PromoteRequest, o?: FailoverRequestOptions): Promise<PromoteAnswer> {
    return this.call('promote', request, o);
  }
  announce(_shard: string, request: AnnounceRequest, o?: FailoverRequestOptions): Promise<AnnounceAnswer> {
    return this.call('announce', request, o);
  }
}
export function debugRegion(r: FoRegion): unknown {
  const f = r.follower?.status();
  return { name: r.name, role: r.role, head: r.head, fence: r.fence, mode: f?.mode, accepted: f?.accepted, applied: f?.applied, buffered: f?.buffered, gapFrom: f?.gapFrom, counters: f?.counters, peers: f?.peers, stopped: r.stopped?.message, alerts: r.alerts.slice(-5) };
}

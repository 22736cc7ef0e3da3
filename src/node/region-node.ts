// RegionNode: one playout process serving its region's shards (DESIGN §2, §5).
//
// Composition only: a LogStore, per shard a ShardHost with either a LeaderRole (sequencer,
// tick timer, group commit, acks) or a FollowerRole (the replication state machines fed by the
// leader's stream, repairs through peer clients), the fastify server, peer clients, metrics.
// Timers live here and in the roles — never in src/core or src/replication.
//
// Shards come from the config and from the store (shards created over the API, or discovered
// at a peer that leads them). The config's `leader` names the first epoch's leader; after a
// failover the log's epoch entries decide.
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { PlayoutError } from '../core/errors.js';
import { toHex } from '../core/hash.js';
import { ENGINE_VERSION } from '../core/entry.js';
import type { ReducerRegistry } from '../core/reducer.js';
import { Rng } from '../core/rng.js';
import { Sequencer } from '../core/sequencer.js';
import type { MachineOptions, ShardMachine } from '../core/shard-machine.js';
import type { LogStore } from '../ports/log-store.js';
import type { PeerShardStatus } from '../ports/entry-source.js';
import type { BucketsAnswer, RecordsAnswer } from '../ports/peer-client.js';
import { answerBuckets, answerRecords } from '../replication/bucket-compare.js';
import { FOLLOWER_DEFAULTS } from '../replication/follower.js';
import { DESYNC_DEFAULTS } from '../replication/desync-detector.js';
import { tickStateOf } from '../replication/state-at-tick.js';
import { GlobalsGuard } from '../adapters/determinism-guard.js';
import { TokenAuthenticator } from '../adapters/http-auth.js';
import { HttpEntrySource } from '../adapters/http-entry-source.js';
import { HttpPeerClient, peerShardStatusOf } from '../adapters/http-peer-client.js';
import { HttpPlayoutError, buildHttpServer, type NodeService, type ShardFeed } from '../adapters/http-server.js';
import type { AppliedAnswer, AppliedWatchLine, CreateShardRequest, DurableReport, InputRequest, InputResult, NodeStatus, ShardStatus } from '../adapters/http-schemas.js';
import { NodeMetrics } from '../adapters/metrics.js';
import { SystemClock } from '../adapters/system-clock.js';
import type { RegionConfig, ShardConfig } from './region-config.js';
import { FollowerRole } from './follower-role.js';
import { LeaderRole, type DedupeScan } from './leader-role.js';
import { KafkaTransport } from './kafka-transport.js';
import type { EntrySource } from '../ports/entry-source.js';
import { ShardHost, type HostContext, type ShardMeta } from './shard-host.js';
import type { Entry } from '../core/entry.js';
import type { EpochRecord, EpochsAnswer, FailoverClient, FenceState, RegionFailoverStatus } from '../ports/failover-client.js';
import { admitLimit, admits, leads, startsBeforeHead } from '../replication/fence.js';
import { routeIngress } from '../replication/failover-redirect.js';
import { HttpFailoverClient } from '../adapters/http-failover-client.js';
import { ShardFailover, type FailoverNode } from './shard-failover.js';

export interface RegionNodeOptions {
  config: RegionConfig;
  registry: ReducerRegistry;
  /** The node's store; closed with the node. */
  store: LogStore;
  /** fastify/pino logger options (default: the config's level, JSON to stdout). */
  logger?: boolean | Record<string, unknown>;
}

export interface ShardSlot {
  host: ShardHost;
  leader: LeaderRole | null;
  follower: FollowerRole | null;
}

/** How long a client is told to wait while a shard is between two epochs. */
const FAILOVER_RETRY_AFTER_MS = 250;
/** How long a candidate being promoted holds an input request before answering 503 (it usually sequences sooner). */
const FAILOVER_HOLD_MS = 1_000;

const META_KEY = 'shard';

export class RegionNode implements NodeService, FailoverNode {
  readonly region: string;
  readonly version = ENGINE_VERSION;
  readonly config: RegionConfig;
  readonly registry: ReducerRegistry;
  readonly store: LogStore;
  readonly metrics: NodeMetrics;
  readonly app: FastifyInstance;
  readonly clock = new SystemClock();
  readonly clients = new Map<string, HttpPeerClient>();
  readonly sources = new Map<string, HttpEntrySource>();
  readonly shards = new Map<string, ShardSlot>();
  /** The Kafka transport, when the config has a `kafka` section. */
  readonly kafka: KafkaTransport | null;
  /** The URL the node listens on, once started. */
  url = '';
  private readonly startedAtMs = Date.now();
  private readonly ctx: HostContext;
  private readonly guard: GlobalsGuard | null;
  private pollTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly stateCache = new Map<string, { tick: number; machine: ShardMachine }>();
  /** The failover routes and the learning of epochs (src/node/shard-failover.ts). */
  readonly failover: ShardFailover;
  readonly quarantineDir: string;
  /** Failover reads at peers (their epochs), with the peer token. */
  private readonly failoverClients = new Map<string, HttpFailoverClient>();
  /** Per shard, what the last status poll of each peer said (head, established epoch). */
  private readonly peerSeen = new Map<string, Map<string, { head: number; epoch: number; atMs: number }>>();

  private constructor(opts: RegionNodeOptions) {
    const c = opts.config;
    this.config = c;
    this.region = c.region;
    this.registry = opts.registry;
    this.store = opts.store;
    this.metrics = new NodeMetrics(c.region, () => this.status());
    this.guard = c.checked ? new GlobalsGuard() : null;
    const https = c.tls === null ? null : { key: readTlsFile(c, 'keyFile'), cert: readTlsFile(c, 'certFile') };
    const ca = c.tls?.caFile ? readTlsFile(c, 'caFile') : null;
    this.app = buildHttpServer({
      https,
      service: this,
      auth: new TokenAuthenticator(c.secrets),
      limits: c.limits,
      heartbeatMs: c.replication.heartbeatMs,
      logger: opts.logger ?? { level: c.log.level, base: { region: c.region } },
    });
    this.ctx = {
      region: c.region,
      store: opts.store,
      registry: opts.registry,
      metrics: this.metrics,
      log: this.app.log,
      snapshotEveryTicks: c.snapshots.everyTicks,
      snapshotsKept: c.snapshots.kept,
      retainEntriesMin: c.snapshots.retainEntriesMin,
      followerCommitHoldMs: c.replication.followerCommitHoldMs,
      machineOptions: (onTick) => this.machineOptions(onTick),
      nowMs: () => Date.now(),
    };
    this.kafka = c.kafka === undefined ? null : new KafkaTransport(this, c.kafka, this.app.log);
    this.quarantineDir = join(c.store.path, 'quarantine');
    this.failover = new ShardFailover(this);
    const token = c.secrets.peer[0]!;
    for (const p of c.peers) {
      this.failoverClients.set(p.region, new HttpFailoverClient({ region: p.region, url: p.url, token, requestTimeoutMs: c.repair.requestTimeoutMs }));
      const client = new HttpPeerClient({
        region: p.region,
        url: p.url,
        token,
        requestTimeoutMs: c.repair.requestTimeoutMs,
        frameBytesMax: c.limits.frameBytesMax,
        ca,
        stream: { idleMs: c.replication.streamIdleMs, backoffMsMin: Math.min(c.repair.backoffMsMin, c.replication.reconnectMsMax), backoffMsMax: c.replication.reconnectMsMax },
      });
      this.clients.set(p.region, client);
      const source = client.stream() as HttpEntrySource;
      this.sources.set(p.region, source);
      void source.start({
        onEntries: (shard, entries, region) => this.shards.get(shard)?.follower?.onEntries(entries, region),
        onHeartbeat: (status) => this.shards.get(status.shard)?.follower?.onPeerStatus(status),
        onError: (error, shard) => {
          if (shard !== null) {
            this.metrics.streamReconnects.inc({ shard, peer: p.region });
            this.shards.get(shard)?.follower?.onSourceError(error);
          }
        },
      });
    }
  }

  /** Open the shards, resume them from the store, and listen. */
  static async start(opts: RegionNodeOptions): Promise<RegionNode> {
    const node = new RegionNode(opts);
    try {
      for (const sc of opts.config.shards) await node.openConfigured(sc);
      for (const shard of opts.store.shards()) {
        if (node.shards.has(shard)) continue;
        const meta = opts.store.getMeta<ShardMeta>(shard, META_KEY);
        if (meta !== null) await node.openShard(shard, meta, null);
      }
      await node.app.listen({ host: opts.config.listen.host, port: opts.config.listen.port });
      const addr = node.app.server.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : opts.config.listen.port;
      node.url = `${opts.config.tls === null ? 'http' : 'https'}://${opts.config.listen.host.includes(':') ? `[${opts.config.listen.host}]` : opts.config.listen.host}:${port}`;
      node.startPolling();
      node.kafka?.start();
      node.app.log.info({ url: node.url, shards: [...node.shards.keys()] }, `region ${node.region} listening on ${node.url}`);
      return node;
    } catch (err) {
      await node.close().catch(() => undefined);
      throw err;
    }
  }

  private machineOptions(onTick: MachineOptions['onTick']): MachineOptions {
    return { onTick, checked: this.guard === null ? null : { guard: this.guard, fullDigestEveryTicks: 100 } };
  }

  // --- shards -----------------------------------------------------------------------------------

  private async openConfigured(sc: ShardConfig): Promise<void> {
    const reducer = `${sc.reducer.name}@${sc.reducer.version}`;
    this.registry.get(sc.reducer.name, sc.reducer.version);
    const stored = this.store.getMeta<ShardMeta>(sc.id, META_KEY);
    // After a failover the store knows the leader better than the config's first epoch.
    const leader = stored !== null && stored.leader !== sc.leader && (this.store.head(sc.id)?.epoch ?? 1) > 1 ? stored.leader : sc.leader;
    await this.openShard(sc.id, { leader, ack: sc.ack, reducer, createdBy: 'config' }, sc);
  }

  private async openShard(shard: string, meta: ShardMeta, sc: ShardConfig | null): Promise<ShardSlot | null> {
    // Kafka shard groups: a followed shard waits until this node is assigned its partition.
    if (meta.leader !== this.region && this.kafka?.defer(shard, meta, sc) === true) return null;
    const host = new ShardHost(this.ctx, shard, meta);
    await host.resume();
    host.loadFailover(sc?.leader ?? meta.leader);
    if (sc !== null && host.machine?.genesis != null) checkGenesis(this.config.source, shard, host.machine.genesis, sc);
    if (JSON.stringify(this.store.getMeta(shard, META_KEY)) !== JSON.stringify(host.meta)) await this.store.putMeta(shard, META_KEY, host.meta);
    const slot: ShardSlot = { host, leader: null, follower: null };
    this.shards.set(shard, slot);
    host.onEpochRecorded = (record) => this.onEpochRecorded(slot, record);
    // Once epochs exist the fence decides who leads, not the config's first leader.
    const fresh = host.durableSeq === 0 && host.epochs.length === 0;
    // A region that led before it stopped (a kill -9) asks its peers first: if a later epoch was
    // established meanwhile it must not sequence one more entry, it learns that epoch and follows.
    const newer = !fresh && leads(host.fence, this.region) ? await this.newerEpochAtPeers(shard, host.fence.epoch) : null;
    if (newer !== null) {
      this.app.log.warn({ shard, epoch: newer.answer.fence.epoch, peer: newer.region }, `shard ${shard}: region ${newer.region} knows epoch ${newer.answer.fence.epoch}, later than this region's ${host.fence.epoch}; following instead of leading`);
      this.follow(slot, null, newer.region, newer.region);
      const last = newer.answer.epochs[newer.answer.epochs.length - 1]!;
      void this.failover.learn(shard, newer.answer.epochs, last.firstSeq, newer.region).catch((err) => this.app.log.error({ err, shard }, `shard ${shard}: cannot learn epoch ${last.epoch}`));
      return slot;
    }
    if (fresh ? host.meta.leader === this.region : leads(host.fence, this.region)) {
      if (host.durableSeq === 0) {
        if (sc === null) throw new PlayoutError('PLAYOUT_GENESIS_INVALID', `Cannot lead shard "${shard}": it has no genesis and no config`, { shard });
        const [name, version] = [sc.reducer.name, sc.reducer.version];
        await host.genesis(Sequencer.genesis({ shard, reducer: this.registry.get(name, version), seed: sc.seed, tickMs: sc.tickMs, params: sc.params ?? null }));
      }
      this.lead(slot, null);
    } else {
      const f = host.fence;
      // A promise pending at a restart: nobody has authority until the epoch is established.
      const leader = f.promise !== null ? null : (f.leader ?? host.meta.leader);
      const streamFrom = leader ?? f.promise?.candidate ?? f.leader ?? host.meta.leader;
      if (streamFrom !== this.region && !this.sources.has(streamFrom)) {
        throw new PlayoutError('PLAYOUT_CONFIG_INVALID', `Cannot follow shard "${shard}": its leader ${streamFrom} is not a peer of ${this.region}`, { path: 'peers', expected: streamFrom, received: [...this.clients.keys()].join(', ') });
      }
      this.follow(slot, leader, streamFrom === this.region ? null : streamFrom, streamFrom);
    }
    return slot;
  }

  // --- roles (FailoverNode) -----------------------------------------------------------------------

  slotOf(shard: string): ShardSlot {
    return this.slot(shard);
  }

  get dedupeWindowTicks(): number {
    return this.config.replication.dedupeWindowTicks;
  }

  get log(): FastifyInstance['log'] {
    return this.app.log;
  }

  peerRegions(): string[] {
    return [...this.clients.keys()];
  }

  stopLeading(slot: ShardSlot, reason: PlayoutError): void {
    const l = slot.leader;
    if (l === null) return;
    l.sequencer.fence();
    l.close(reason);
    slot.leader = null;
  }

  stopFollowing(slot: ShardSlot): void {
    slot.follower?.close();
    slot.follower = null;
  }

  lead(slot: ShardSlot, startEpoch: { epoch: number; leader: string; lastSeqPrevEpoch: number } | null, dedupe?: DedupeScan): LeaderRole {
    this.stopFollowing(slot);
    slot.host.autoApply = true;
    slot.host.onLocalTick = null;
    const role = this.newLeader(slot.host, startEpoch, dedupe);
    slot.leader = role;
    role.start();
    this.kafka?.lead(slot.host, role);
    return role;
  }

  follow(slot: ShardSlot, leader: string | null, streamFrom: string | null, reference: string): void {
    this.stopFollowing(slot);
    const from = streamFrom ?? [...this.sources.keys()][0]!;
    const source = this.sources.get(from)!;
    slot.follower = this.newFollower(slot.host, leader, this.kafka?.httpSource(source) ?? source, reference);
    slot.follower.start();
  }

  switchSource(slot: ShardSlot, region: string): void {
    const source = this.sources.get(region);
    if (source !== undefined) slot.follower?.switchSource(this.kafka?.httpSource(source) ?? source);
  }

  peerEpochs(region: string, shard: string, timeoutMs?: number): Promise<EpochsAnswer> {
    const c = this.failoverClients.get(region);
    if (c === undefined) return Promise.reject(new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `Region ${region} is not a peer of ${this.region}`, { shard }));
    return c.epochs(shard, timeoutMs === undefined ? undefined : { timeoutMs });
  }

  /** The peer holding the latest established epoch above `epoch`, asked once at boot (peers that do not answer soon are skipped). */
  private async newerEpochAtPeers(shard: string, epoch: number): Promise<{ region: string; answer: EpochsAnswer } | null> {
    const answers = await Promise.all(
      [...this.failoverClients.keys()].map(async (region) => {
        try {
          return { region, answer: await this.peerEpochs(region, shard, Math.min(1_000, this.config.repair.requestTimeoutMs)) };
        } catch {
          return null;
        }
      }),
    );
    let best: { region: string; answer: EpochsAnswer } | null = null;
    for (const a of answers) {
      const last = a?.answer.epochs[a.answer.epochs.length - 1];
      if (a === null || last === undefined || last.epoch !== a.answer.fence.epoch || a.answer.fence.epoch <= epoch) continue;
      if (best === null || a.answer.fence.epoch > best.answer.fence.epoch) best = a;
    }
    return best;
  }

  peerClient(region: string): HttpPeerClient | null {
    return this.clients.get(region) ?? null;
  }

  async refreshPeer(region: string, shard: string): Promise<void> {
    const c = this.clients.get(region);
    if (c === undefined) return;
    const status = await c.status(shard, { signal: AbortSignal.timeout(this.config.repair.requestTimeoutMs) });
    this.shards.get(shard)?.follower?.onPeerStatus(status);
  }

  planClients(): FailoverClient[] {
    const token = this.config.secrets.peer[0]!;
    this.selfFailoverClient ??= new HttpFailoverClient({ region: this.region, url: this.url, token, requestTimeoutMs: this.config.repair.requestTimeoutMs });
    return [this.selfFailoverClient, ...this.failoverClients.values()];
  }
  private selfFailoverClient: HttpFailoverClient | null = null;

  peerHeads(slot: ShardSlot): RegionFailoverStatus['peers'] {
    const seen = this.peerSeen.get(slot.host.shard);
    const now = Date.now();
    return [...this.clients.keys()].map((region) => {
      const p = seen?.get(region);
      return { region, head: p?.head ?? null, epoch: p?.epoch ?? null, lastHeardMsAgo: p === undefined ? null : Math.max(0, now - p.atMs) };
    });
  }

  /** A durable genesis or epoch entry was recorded: the follower takes its leader as the authority. */
  private onEpochRecorded(slot: ShardSlot, record: EpochRecord): void {
    const f = slot.follower;
    if (f === null || record.leader === this.region || slot.host.fence.epoch !== record.epoch) return;
    const leader = slot.host.fence.promise === null ? record.leader : null;
    if (f.leader === leader) return;
    f.setLeader(leader, leader ?? slot.host.fence.promise?.candidate ?? record.leader, record.tick);
    if (leader !== null) this.switchSource(slot, leader);
  }

  private newLeader(host: ShardHost, startEpoch: { epoch: number; leader: string; lastSeqPrevEpoch: number } | null = null, dedupe?: DedupeScan): LeaderRole {
    const c = this.config;
    return LeaderRole.resume(host, {
      ack: host.meta.ack,
      peers: [...this.clients.keys()],
      tickMs: host.machine!.genesis!.tickMs,
      pendingInputsMax: c.limits.pendingInputsMax,
      ackTimeoutMs: c.replication.ackTimeoutMs,
      dedupeWindowTicks: c.replication.dedupeWindowTicks,
    }, startEpoch === null ? {} : dedupe === undefined ? { startEpoch } : { startEpoch, dedupe });
  }

  private newFollower(host: ShardHost, leader: string | null, source: EntrySource, reference: string): FollowerRole {
    const c = this.config;
    // The Follower only counts refusals: one error per fence and epoch describes them (a candidate
    // catching up refuses thousands of its stream's entries, and an error costs ~10 µs to make).
    let refusal: { fence: FenceState; epoch: number; error: PlayoutError } | null = null;
    const admit = (e: Entry): PlayoutError | null => {
      const f = host.fence;
      if (e.seq <= admitLimit(f, e)) return null;
      if (refusal === null || refusal.fence !== f || refusal.epoch !== e.epoch) refusal = { fence: f, epoch: e.epoch, error: admits(f, e)! };
      return refusal.error;
    };
    return new FollowerRole(host, leader, this.clients, source, this.clock, Rng.fromSeed(randomInt(0x7fffffff)), {
      // The fence decides which entries the Follower may even look at (docs/failover.md, "Hooks").
      admit: { admit, diverges: (e: Entry, accepted: number) => startsBeforeHead(host.fence, e, accepted) },
      reference,
      onDiverged: (_entry, region) => {
        const from = region ?? host.fence.leader;
        if (from !== null && from !== this.region) this.failover.learnFrom(host.shard, from);
      },
      follower: {
        ...FOLLOWER_DEFAULTS,
        leader,
        bufferEntriesMax: c.limits.bufferedEntriesMax,
        batchMax: c.repair.batchEntriesMax,
        repairDelayMs: c.repair.delayMs,
        requestTimeoutMs: c.repair.requestTimeoutMs,
        backoffMsMin: c.repair.backoffMsMin,
        backoffMsMax: c.repair.backoffMsMax,
      },
      desync: { ...DESYNC_DEFAULTS, resync: c.repair.autoResync ? 'auto' : 'command', requestTimeoutMs: c.repair.requestTimeoutMs * 2 },
      reportRetryMs: 500,
    });
  }

  private slot(shard: string): ShardSlot {
    const s = this.shards.get(shard);
    if (s === undefined) {
      throw new PlayoutError('PLAYOUT_SHARD_NOT_FOUND', `Region ${this.region} holds no shard "${shard}" (it holds ${[...this.shards.keys()].join(', ') || 'none'})`, {
        shard,
        expected: [...this.shards.keys()].join(', '),
        received: shard,
      });
    }
    return s;
  }

  /** Where inputs for this shard go instead (failover-redirect.ts): 307 to the leader, 421, or 503 while between epochs. */
  private ingressRefusal(slot: ShardSlot): PlayoutError {
    // One answer per fence state (the fence is replaced, never changed in place): during a
    // switchover every client request gets one, and an error costs ~10 µs to make — time the
    // old leader owes its followers' catch-up, not its clients' redirects.
    const fence = slot.host.fence;
    let answer = this.ingressRefusals.get(fence);
    if (answer === undefined) this.ingressRefusals.set(fence, (answer = this.makeIngressRefusal(slot)));
    return answer;
  }
  private readonly ingressRefusals = new WeakMap<FenceState, PlayoutError>();

  private makeIngressRefusal(slot: ShardSlot): PlayoutError {
    const shard = slot.host.shard;
    const route = routeIngress({ region: this.region, fence: slot.host.fence, urlOf: (r) => this.peerUrl(r), path: `/v1/shards/${encodeURIComponent(shard)}/inputs`, retryAfterMs: FAILOVER_RETRY_AFTER_MS });
    if (route.kind === 'redirect') return new HttpPlayoutError(route.error, { leader: { region: route.leader, url: route.url } }, { status: route.status, headers: route.headers });
    if (route.kind === 'wait') return new HttpPlayoutError(route.error, { leader: null }, { status: 503, headers: route.headers });
    // The fence says this region leads but it does not sequence yet (its epoch entry is not durable).
    const error = new PlayoutError('PLAYOUT_FAILOVER_IN_PROGRESS', `Cannot accept inputs for shard "${shard}" at region ${this.region} yet: it is starting to lead; retry in ${FAILOVER_RETRY_AFTER_MS} ms`, { shard, expected: 'a region that sequences the shard', received: this.region });
    return new HttpPlayoutError(error, { leader: null }, { status: 503, headers: { 'retry-after': '1' } });
  }

  private notLeader(slot: ShardSlot, what: string): PlayoutError {
    const leader = slot.host.fence.leader ?? slot.host.meta.leader;
    return new HttpPlayoutError(
      new PlayoutError('PLAYOUT_NOT_LEADER', `Cannot ${what} for shard "${slot.host.shard}" at region ${this.region}: region ${leader} leads it`, { shard: slot.host.shard, expected: leader, received: this.region }),
      { leader: { region: leader, url: this.peerUrl(leader) } },
    );
  }

  /** Open a followed shard whose Kafka partition was assigned to this node (kafka consume shards: assigned). */
  async openAssigned(shard: string, meta: ShardMeta, sc: ShardConfig | null): Promise<void> {
    if (this.closed || this.shards.has(shard)) return;
    await this.openShard(shard, meta, sc);
  }

  /** Close a followed shard whose Kafka partition moved to another node of this region, once its writes are durable. */
  async closeAssigned(shard: string): Promise<void> {
    const slot = this.shards.get(shard);
    if (slot === undefined || slot.follower === null) return;
    slot.follower.close();
    this.shards.delete(shard);
    this.stateCache.delete(shard);
    await slot.host.drain();
  }

  // --- peer status polling ---------------------------------------------------------------------------

  /**
   * Poll every peer's status: followers learn the heads and digests of peers they do not stream
   * from (a repair source when the leader's link is down), and shards created at a peer are
   * discovered and followed.
   */
  private startPolling(): void {
    const every = this.config.replication.statusPollMs;
    const poll = async (): Promise<void> => {
      await Promise.all(
        [...this.clients.values()].map(async (client) => {
          let status: NodeStatus;
          try {
            status = await client.nodeStatus({ signal: AbortSignal.timeout(Math.max(every, 500)) });
          } catch {
            return; // unreachable now; the next poll tries again
          }
          if (this.closed) return;
          for (const row of status.shards) {
            const slot = this.shards.get(row.shard);
            if (slot !== undefined) {
              let seen = this.peerSeen.get(row.shard);
              if (seen === undefined) this.peerSeen.set(row.shard, (seen = new Map()));
              seen.set(client.region, { head: row.head, epoch: row.epoch, atMs: Date.now() });
              // A peer names an established epoch this region does not know: learn it from that peer.
              if (row.epoch > slot.host.fence.epoch) this.failover.learnFrom(row.shard, client.region);
            }
            if (slot === undefined) {
              if (row.role === 'leader' && row.leader === client.region) await this.discover(row).catch((err) => this.app.log.warn({ err, shard: row.shard }, `cannot follow shard ${row.shard} discovered at ${client.region}`));
              continue;
            }
            slot.follower?.onPeerStatus(peerShardStatusOf(client.region, row) as PeerShardStatus);
          }
        }),
      );
    };
    const loop = (): void => {
      if (this.closed) return;
      this.pollTimer = setTimeout(() => {
        void poll().finally(loop);
      }, every);
    };
    loop();
  }

  private async discover(row: ShardStatus): Promise<void> {
    if (this.shards.has(row.shard) || this.closed || this.kafka?.isDeferred(row.shard) === true) return;
    const [name, version] = row.reducer.split('@') as [string, string];
    if (!this.registry.has(name, Number(version))) {
      this.app.log.warn({ shard: row.shard, reducer: row.reducer }, `not following shard ${row.shard}: reducer ${row.reducer} is not registered here`);
      return;
    }
    this.app.log.info({ shard: row.shard, leader: row.leader }, `following shard ${row.shard} discovered at ${row.leader}`);
    await this.openShard(row.shard, { leader: row.leader, ack: row.ack, reducer: row.reducer, createdBy: 'peer' }, null);
  }

  // --- NodeService ----------------------------------------------------------------------------------

  feed(shard: string): ShardFeed {
    return this.slot(shard).host;
  }

  async submit(shard: string, inputs: readonly InputRequest[], pathOf: (index: number) => string): Promise<InputResult[]> {
    const slot = this.slot(shard);
    // A candidate being promoted holds the request until it sequences (then the inputs follow its
    // epoch entry) rather than having the client poll; a region that does not lead redirects.
    if (!this.failover.sequencing(slot) && !((await this.failover.holdIngress(slot, FAILOVER_HOLD_MS)) && this.failover.sequencing(slot))) throw this.ingressRefusal(slot);
    return slot.leader!.submit(inputs, pathOf);
  }

  async createShard(req: CreateShardRequest): Promise<ShardStatus> {
    if (this.shards.has(req.id) || this.store.head(req.id) !== null) {
      throw new PlayoutError('PLAYOUT_SHARD_EXISTS', `Cannot create shard "${req.id}": region ${this.region} already holds it`, { shard: req.id, path: 'body.id', received: req.id });
    }
    this.registry.get(req.reducer.name, req.reducer.version);
    const sc: ShardConfig = { id: req.id, reducer: req.reducer, leader: this.region, seed: req.seed, tickMs: req.tickMs, ack: req.ack, params: req.params };
    await this.openShard(req.id, { leader: this.region, ack: req.ack, reducer: `${req.reducer.name}@${req.reducer.version}`, createdBy: 'api' }, sc);
    return this.shardStatus(req.id);
  }

  digests(shard: string, tickFrom: number, tickTo: number): { tick: number; seq: number; digest: string }[] {
    const slot = this.slot(shard);
    return this.store.digests(slot.host.shard, tickFrom, tickTo).map((d) => ({ tick: d.tick, seq: d.seq, digest: toHex(d.digest) }));
  }

  snapshot(shard: string, tick: number | null): { tick: number; seq: number; bytes: Uint8Array } {
    const slot = this.slot(shard);
    const s = this.store.snapshot(slot.host.shard, tick ?? undefined);
    if (s === null) {
      throw new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `Region ${this.region} holds no snapshot of shard "${shard}"${tick === null ? '' : ` at or below tick ${tick}`}`, { shard, tick });
    }
    return s;
  }

  /** A machine at the close of `tick` (null: the latest closed tick), rebuilt from the store (ShardHost.rebuildAt); cached per shard. */
  private async machineAt(slot: ShardSlot, tick: number | null): Promise<ShardMachine> {
    const host = slot.host;
    const quarantined = (): void => {
      if (host.quarantine === null) return;
      throw new PlayoutError('PLAYOUT_SHARD_QUARANTINED', `Cannot serve the state of shard "${host.shard}": it is quarantined since tick ${host.quarantine.firstDivergingTick} (${host.quarantine.reason})`, { shard: host.shard, tick: host.quarantine.firstDivergingTick });
    };
    quarantined();
    const latest = host.latestDigest;
    const t = tick ?? latest?.tick ?? null;
    if (t === null || latest === null || t > latest.tick) {
      throw new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `Cannot rebuild shard "${host.shard}" at tick ${t ?? '(latest)'}: the latest closed tick here is ${latest?.tick ?? 'none'}`, { shard: host.shard, tick: t });
    }
    const cached = this.stateCache.get(host.shard);
    if (cached !== undefined && cached.tick === t) return cached.machine;
    // Every tick up to the latest was closed at or before the latest's seq.
    const m = await host.rebuildAt(t, latest.seq);
    quarantined();
    this.stateCache.set(host.shard, { tick: t, machine: m });
    return m;
  }

  async buckets(shard: string, tick: number | null, tableSums: Record<string, Uint8Array> | null): Promise<BucketsAnswer> {
    const slot = this.slot(shard);
    const m = await this.machineAt(slot, tick);
    return answerBuckets(tickStateOf(m), { tick: m.lastDigest!.tick, tableSums });
  }

  async records(shard: string, tick: number | null, table: string, buckets: readonly number[]): Promise<RecordsAnswer> {
    const slot = this.slot(shard);
    const m = await this.machineAt(slot, tick);
    return answerRecords(tickStateOf(m), { tick: m.lastDigest!.tick, table, buckets });
  }

  async state(shard: string, tick: number | null, table: string | null): Promise<unknown> {
    const slot = this.slot(shard);
    const m = await this.machineAt(slot, tick);
    const tables = m.exportState();
    if (table !== null && !(table in tables)) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot read state of shard "${shard}": query.table: expected one of ${Object.keys(tables).join(', ')}, received ${table}`, { path: 'query.table', expected: Object.keys(tables).join(', '), received: table });
    }
    const d = m.lastDigest!;
    return {
      shard,
      tick: d.tick,
      seq: d.seq,
      digest: toHex(d.digest),
      tables: table === null ? tables : { [table]: tables[table] },
    };
  }

  reportDurable(shard: string, report: DurableReport): void {
    const slot = this.slot(shard);
    if (slot.leader === null) throw this.notLeader(slot, 'take durable reports');
    slot.leader.reportDurable(report, Date.now());
  }

  async waitApplied(shard: string, seq: number, timeoutMs: number): Promise<AppliedAnswer> {
    const slot = this.slot(shard);
    const a = await slot.host.waitApplied(seq, timeoutMs);
    return { shard, seq, ...a };
  }

  watchApplied(shard: string, listener: (line: AppliedWatchLine) => void): { current: () => AppliedWatchLine; unsubscribe: () => void } {
    const host = this.slot(shard).host;
    const lineOf = (applied: number): AppliedWatchLine => ({ shard, applied, quarantined: host.quarantine !== null });
    const unsubscribe = host.onApplied((applied) => listener(lineOf(applied)));
    return { current: () => lineOf(host.machine?.head ?? 0), unsubscribe };
  }

  async resync(shard: string, from: string | null): Promise<ShardStatus> {
    const slot = this.slot(shard);
    if (slot.follower === null) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot resync shard "${shard}" at region ${this.region}: it leads the shard; a leader's log is the reference`, { shard, path: 'params.shard' });
    }
    if (from !== null && !this.clients.has(from)) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot resync shard "${shard}": body.from: expected a peer region (${[...this.clients.keys()].join(', ')}), received ${from}`, { path: 'body.from', expected: [...this.clients.keys()].join(', '), received: from });
    }
    slot.follower.resync();
    return this.shardStatus(shard);
  }

  async metricsText(): Promise<{ contentType: string; body: string }> {
    return this.metrics.text();
  }

  peerUrl(region: string): string | null {
    return this.clients.get(region)?.url ?? null;
  }

  shardStatus(shard: string): ShardStatus {
    return this.statusOf(this.slot(shard));
  }

  status(): NodeStatus {
    const shards: ShardStatus[] = [];
    for (const slot of this.shards.values()) shards.push(this.statusOf(slot));
    return { region: this.region, version: this.version, nowMs: Date.now(), uptimeMs: Date.now() - this.startedAtMs, shards };
  }

  private statusOf(slot: ShardSlot): ShardStatus {
    const h = slot.host;
    const m = h.machine;
    const d = h.latestDigest;
    const q = h.quarantine;
    const fs = slot.follower?.follower.status?.bind(slot.follower.follower);
    let repairs = { requests: 0, entries: 0, failures: 0, bootstraps: 0 };
    if (fs !== undefined) {
      try {
        const c = fs().counters;
        repairs = { requests: c.repairsRequested, entries: c.entriesRepaired, failures: c.repairsFailed + c.repairTimeouts, bootstraps: c.bootstraps };
      } catch {
        // the follower is not ready to report (no status before start)
      }
    }
    const lead = slot.leader;
    return {
      shard: h.shard,
      role: lead !== null ? 'leader' : 'follower',
      leader: h.fence.leader ?? h.meta.leader,
      // The established epoch (fence.epoch): a follower takes a lower head after a truncation as is.
      epoch: h.fence.epoch,
      ack: h.meta.ack,
      reducer: m?.reducer ? `${m.reducer.name}@${m.reducer.version}` : h.meta.reducer,
      head: h.durableSeq,
      headHash: h.durableHash === null ? null : toHex(h.durableHash),
      headTick: h.durableTick,
      applied: m?.head ?? 0,
      firstSeq: h.firstSeq(),
      tick: m?.tick ?? 0,
      digestTick: d?.tick ?? null,
      digest: d === null ? null : toHex(d.digest),
      lastAgreedTick: lead !== null ? (d?.tick ?? null) : h.lastAgreedTick,
      peers: lead !== null ? lead.peerStatus(Date.now()) : (slot.follower?.peerStatus() ?? []),
      repairs,
      quarantine:
        q === null
          ? null
          : { firstDivergingTick: q.firstDivergingTick, expected: q.expected === null ? null : toHex(q.expected), actual: q.actual === null ? null : toHex(q.actual), sinceMs: q.sinceMs, records: q.records, reason: q.reason },
      stopped: h.stopped === null ? null : { code: h.stopped.code, message: h.stopped.message },
      resyncs: slot.follower?.detector.status().resyncs ?? 0,
      pendingInputs: lead?.pendingInputs ?? 0,
      inputs: { sequenced: lead?.sequenced ?? 0, duplicates: lead?.duplicates ?? 0, rejected: lead?.rejected ?? 0 },
      fence: h.fence,
      quarantineReports: h.quarantineReports,
      ...(this.kafka === null ? {} : { kafka: this.kafka.shardStatus(h.shard, h.durableSeq, lead !== null) }),
    };
  }

  // --- shutdown ----------------------------------------------------------------------------------

  /** Stop timers, streams and the server, wait for writes in flight, close the store. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.pollTimer !== null) clearTimeout(this.pollTimer);
    await this.kafka?.close();
    const closing = new PlayoutError('PLAYOUT_SHARD_STOPPED', `Region ${this.region} is shutting down`, {});
    for (const slot of this.shards.values()) {
      slot.leader?.close(closing);
      slot.follower?.close();
    }
    await this.app.close().catch(() => undefined);
    await Promise.all([...this.clients.values()].map((c) => c.close().catch(() => undefined)));
    await Promise.all([...this.failoverClients.values(), ...(this.selfFailoverClient === null ? [] : [this.selfFailoverClient])].map((c) => c.close().catch(() => undefined)));
    for (const slot of this.shards.values()) await slot.host.drain().catch(() => undefined);
    await this.store.close();
  }
}

function readTlsFile(c: RegionConfig, key: 'certFile' | 'keyFile' | 'caFile'): Buffer {
  const path = c.tls![key]!;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new PlayoutError('PLAYOUT_CONFIG_INVALID', `Cannot load ${c.source}: tls.${key}: cannot read ${path}: ${(err as Error).message}`, { path: `tls.${key}`, expected: 'a readable PEM file', received: path, cause: err });
  }
}

function checkGenesis(source: string, shard: string, g: { reducer: string; reducerVersion: number; seed: number; tickMs: number }, sc: ShardConfig): void {
  const pairs: [string, unknown, unknown][] = [
    ['reducer', `${g.reducer}@${g.reducerVersion}`, `${sc.reducer.name}@${sc.reducer.version}`],
    ['seed', g.seed, sc.seed],
    ['tickMs', g.tickMs, sc.tickMs],
  ];
  for (const [field, stored, configured] of pairs) {
    if (stored !== configured) {
      throw new PlayoutError('PLAYOUT_CONFIG_INVALID', `Cannot open shard "${shard}" from ${source}: shards[${shard}].${field} is ${String(configured)} but the shard's genesis in the store says ${String(stored)}`, {
        path: `shards[${shard}].${field}`,
        expected: String(stored),
        received: String(configured),
      });
    }
  }
}

// KafkaTransport: a region node's Kafka side (DESIGN §5, docs/kafka.md "Region config").
//
// - Publishing: each shard this region leads ships its entries to `playout.log` once they are
//   durable in the local store (ShardHost.onAppend fires after the group commit), in log order,
//   read back from the store. The shipper runs beside the leader: a stalled or unreachable
//   Kafka only makes it lag, it never holds up sequencing or acknowledgement; it retries with
//   backoff and resumes after the last seq Kafka acknowledged.
// - Consuming: KafkaEntrySource hands entries of followed shards to the shard's FollowerRole,
//   exactly as the HTTP stream does. Duplicates (at least once, MirrorMaker 2) are dropped there
//   by seq and hash; gaps and stalls are repaired over HTTP from peers.
// - Ingress: KafkaInputReader's inputs go through RegionNode.submit, the same path as
//   POST …/inputs (validation, dedupe by ingestId, sequencing, acknowledgement). Inputs the
//   sequencer refuses go to `playout.inputs.rejected`; inputs that cannot be sequenced *now*
//   (not the leader yet, overloaded, stopped) are read again after a backoff.
//
// - Shard groups (`consume[].shards: assigned`): the region's nodes share the followed shards as
//   one consumer group, partition = shard group. A followed shard is opened only while its
//   partition is assigned here; a revoked partition's shards are closed (drained, and where
//   Kafka had got to is written to the shard's store meta). A node assigned a partition opens its
//   shards from its own store and, when it held them before, re-reads the partition from where
//   that store ends (below the group's offset: duplicates are dropped); a shard it never held
//   starts at the group's offset and its follower repairs the gap over HTTP, or bootstraps from
//   a peer's snapshot when the gap is no longer retained.
//
// Nothing here may stop a region: the Kafka clients are started in the background and retried
// until the node closes.
import type { FastifyBaseLogger } from 'fastify';
import { Gauge, type Registry } from 'prom-client';
import { PlayoutError, isPlayoutError } from '../core/errors.js';
import type { Entry } from '../core/entry.js';
import type { Reducer, ReducerRegistry } from '../core/reducer.js';
import type { InputRequest, InputResult } from '../adapters/http-schemas.js';
import type { KafkaClientOptions } from '../adapters/kafka-client.js';
import { KafkaEntrySource, type ShardEntries } from '../adapters/kafka-entry-source.js';
import { KafkaInputReader, type InputOutcome, type KafkaInput } from '../adapters/kafka-input-reader.js';
import { KafkaLogPublisher } from '../adapters/kafka-log-publisher.js';
import { INPUTS_TOPIC, REJECTED_TOPIC, ensureTopics } from '../adapters/kafka-topics.js';
import type { EntrySource } from '../ports/entry-source.js';
import type { KafkaNodeConfig } from './kafka-config.js';
import type { FollowerRole } from './follower-role.js';
import type { LeaderRole } from './leader-role.js';
import type { ShardHost, ShardMeta } from './shard-host.js';
import type { ShardConfig } from './region-config.js';
import type { AssignmentChange } from '../adapters/kafka-group-consumer.js';

/** What the transport needs of the RegionNode (kept narrow so the node stays the composer). */
export interface KafkaTransportNode {
  readonly region: string;
  /** The node's metrics registry: the transport adds its gauges (publish and consumer lag). */
  readonly metrics: { readonly registry: Registry };
  readonly registry: ReducerRegistry;
  readonly shards: ReadonlyMap<string, { host: ShardHost; leader: LeaderRole | null; follower: FollowerRole | null }>;
  submit(shard: string, inputs: readonly InputRequest[], pathOf: (index: number) => string): Promise<InputResult[]>;
  /** Open a followed shard whose partition the consumer group assigned to this node. */
  openAssigned(shard: string, meta: ShardMeta, sc: ShardConfig | null): Promise<void>;
  /** Close a followed shard whose partition moved to another node (after its writes are durable). */
  closeAssigned(shard: string): Promise<void>;
}

/** Store meta key of a shard's Kafka position: where to re-read its partition from to resume it. */
export const KAFKA_POSITION_META = 'kafka';

/** A shard's resume point in its partition: re-reading from `offset` delivers entries from `seq` on (or earlier). */
export interface KafkaPosition {
  topic: string;
  partition: number;
  offset: string;
  seq: number;
}

/** Where entries of a shard were read: the first entry of each recent hand-off, oldest first. */
const CHECKPOINTS_MAX = 64;

/** How often the consumers' high watermarks are read from the broker (consumer lag while stalled). */
const LAG_REFRESH_MS = 2_000;

/** The `kafka` part of a shard's status row (GET /v1/status). */
export interface KafkaShardStatus {
  published: number | null;
  publishLagEntries: number | null;
  consumed: { topic: string; partition: number; offset: string | null; highWatermark: string | null; lagOffsets: number | null }[];
}

/** Most entries read from the store for one publish call. */
const PUBLISH_ENTRIES_MAX = 5_000;

class Shipper {
  /** The next seq to publish. */
  next: number;
  running = false;
  closed = false;
  failures = 0;
  readonly unsubscribe: () => void;

  constructor(
    readonly host: ShardHost,
    readonly leader: LeaderRole,
    from: number,
    kick: () => void,
  ) {
    this.next = from;
    this.unsubscribe = host.onAppend(kick);
  }
}

export class KafkaTransport {
  readonly config: KafkaNodeConfig;
  readonly publisher: KafkaLogPublisher | null;
  /** One per `consume` entry, in config order. */
  readonly sources: KafkaEntrySource[] = [];
  readonly inputs: KafkaInputReader | null;
  /** Kafka failures seen (publish, consume, join); each one is logged and retried. */
  errors = 0;
  private readonly node: KafkaTransportNode;
  private readonly log: FastifyBaseLogger;
  private readonly client: KafkaClientOptions;
  private readonly shippers = new Map<string, Shipper>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;
  /** The source whose assignment decides which followed shards this node holds (`shards: assigned`), or null. */
  readonly groupSource: KafkaEntrySource | null = null;
  /** Followed shards waiting for their partition to be assigned here. */
  private readonly deferred = new Map<string, { meta: ShardMeta; sc: ShardConfig | null }>();
  private readonly checkpoints = new Map<string, { topic: string; partition: number; points: { seq: number; offset: string }[] }>();
  /** Partitions' consumer lag, refreshed from the broker every few seconds for the status (stalled consumers see no fetch). */
  private lagTimer: NodeJS.Timeout | null = null;

  constructor(node: KafkaTransportNode, config: KafkaNodeConfig, log: FastifyBaseLogger) {
    this.node = node;
    this.config = config;
    this.log = log;
    this.client = { brokers: config.brokers, clientId: `${config.clientId}-${node.region}` };
    this.publisher = config.publish ? new KafkaLogPublisher({ client: this.client, topic: config.publishTopic }) : null;
    const retry = { retryDelayMs: config.retryDelayMs, retryDelayMsMax: config.retryDelayMsMax };
    for (const c of config.consume) {
      const grouped = c.shards === 'assigned';
      const source: KafkaEntrySource = new KafkaEntrySource(
        { client: { ...this.client, brokers: c.brokers ?? config.brokers }, groupId: c.groupId, topics: [c.topic], sessionTimeoutMs: c.sessionTimeoutMs, heartbeatIntervalMs: c.heartbeatIntervalMs, ...retry },
        {
          onEntries: (batch) => this.onEntries(batch, grouped),
          onAssignment: grouped ? (change) => this.onAssignment(source, change) : undefined,
          onCorrupt: (r) => {
            this.errors++;
            this.log.error({ topic: r.topic, partition: r.partition, offset: r.offset, code: r.error.code }, `skipped a corrupt Kafka record: ${r.error.message}`);
          },
          onError: (err) => this.onError(err, `consume ${c.topic}`),
        },
      );
      this.sources.push(source);
      if (grouped) (this as { groupSource: KafkaEntrySource | null }).groupSource = source;
    }
    this.inputs = config.inputs
      ? new KafkaInputReader(
          { client: this.client, groupId: config.inputsGroupId ?? `playout.inputs.${node.region}`, ...retry },
          {
            sequence: (inputs) => this.sequence(inputs),
            reducerOf: (shard) => this.reducerOf(shard),
            onRejected: (r) => this.log.warn({ key: r.key, code: r.error.code, source: r.source }, `rejected a Kafka input: ${r.error.message}`),
            onError: (err) => this.onError(err, `read ${INPUTS_TOPIC}`),
          },
        )
      : null;
    this.registerMetrics(node.metrics.registry);
  }

  private registerMetrics(registry: Registry): void {
    const transport = this;
    const registers = [registry];
    new Gauge({
      name: 'playout_kafka_published_seq',
      help: 'Highest seq of a shard led here that Kafka acknowledged',
      labelNames: ['shard'],
      registers,
      collect() {
        this.reset();
        for (const [shard, slot] of transport.node.shards) {
          const seq = slot.leader !== null ? transport.lastPublished(shard) : null;
          if (seq !== null) this.set({ shard }, seq);
        }
      },
    });
    new Gauge({
      name: 'playout_kafka_publish_lag_entries',
      help: 'Entries of a shard led here that are durable but not yet acknowledged by Kafka',
      labelNames: ['shard'],
      registers,
      collect() {
        this.reset();
        for (const [shard, slot] of transport.node.shards) {
          if (slot.leader === null || transport.publisher === null) continue;
          const lag = transport.publishLag(shard, slot.host.durableSeq);
          if (lag !== null) this.set({ shard }, lag);
        }
      },
    });
    new Gauge({
      name: 'playout_kafka_consumer_lag_offsets',
      help: 'Records of a consumed partition past the last one handed over (high watermark - offset - 1)',
      labelNames: ['topic', 'partition'],
      registers,
      collect() {
        this.reset();
        for (const s of transport.sources) {
          for (const p of s.partitionProgress()) if (p.lagOffsets !== null) this.set({ topic: p.topic, partition: String(p.partition) }, p.lagOffsets);
        }
      },
    });
    new Gauge({
      name: 'playout_kafka_errors',
      help: 'Kafka failures seen by this node since it started (each one logged and retried)',
      registers,
      collect() {
        this.set(transport.errors);
      },
    });
  }

  /** The shard's `kafka` status: publishing progress where it is led here, consumer progress where followed. */
  shardStatus(shard: string, head: number, leading: boolean): KafkaShardStatus {
    const consumed: KafkaShardStatus['consumed'] = [];
    if (!leading) {
      for (const s of this.sources) {
        let partition: number;
        try {
          partition = s.partitionOfShard(shard);
        } catch {
          continue; // not joined yet: the partition count is unknown
        }
        const p = s.partitionProgress().find((x) => x.partition === partition);
        if (p !== undefined) consumed.push({ topic: p.topic, partition, offset: p.offset, highWatermark: p.highWatermark, lagOffsets: p.lagOffsets });
      }
    }
    const published = leading ? this.lastPublished(shard) : null;
    return { published, publishLagEntries: leading ? this.publishLag(shard, head) : null, consumed };
  }

  private publishLag(shard: string, head: number): number | null {
    if (this.publisher === null) return null;
    const published = this.lastPublished(shard);
    const shipper = this.shippers.get(shard);
    // Nothing acknowledged yet: what the shipper still has to send from where it started.
    const from = published !== null ? published + 1 : (shipper?.next ?? null);
    return from === null ? null : Math.max(0, head - from + 1);
  }

  /** Read the consumed partitions' high watermarks from the broker now and then (a stalled consumer learns none from fetches). */
  private refreshLag(): void {
    if (this.closed || this.sources.length === 0) return;
    this.lagTimer = setTimeout(() => {
      this.lagTimer = null;
      void Promise.all(this.sources.filter((s) => s.isRunning).map((s) => s.refreshHighWatermarks().catch(() => undefined))).finally(() => this.refreshLag());
    }, LAG_REFRESH_MS);
    this.lagTimer.unref?.();
  }

  /** Start the Kafka clients in the background; a Kafka that is down is retried, never waited for. */
  start(): void {
    if (this.config.partitions !== undefined) {
      const partitions = this.config.partitions;
      const topics = [...(this.publisher !== null ? [this.config.publishTopic] : []), ...(this.inputs !== null ? [INPUTS_TOPIC, REJECTED_TOPIC] : [])];
      if (topics.length > 0) this.retry('create topics', () => ensureTopics(this.client, topics.map((topic) => ({ topic, partitions }))).then(() => this.startClients()));
      else this.startClients();
    } else {
      this.startClients();
    }
  }

  private startClients(): void {
    if (this.publisher !== null) this.retry('connect the publisher', () => this.publisher!.connect());
    for (const [i, s] of this.sources.entries()) this.retry(`consume ${this.config.consume[i]!.topic}`, () => s.start());
    if (this.inputs !== null) this.retry(`read ${INPUTS_TOPIC}`, () => this.inputs!.start());
    this.refreshLag();
  }

  /** Run `action` until it succeeds or the transport closes, with doubling backoff. */
  private retry(what: string, action: () => Promise<void>, attempt = 0): void {
    if (this.closed) return;
    action().catch((err: unknown) => {
      this.onError(err, what);
      this.after(this.backoff(attempt), () => this.retry(what, action, attempt + 1));
    });
  }

  private backoff(attempt: number): number {
    return Math.min(this.config.retryDelayMsMax, this.config.retryDelayMs * 2 ** Math.min(attempt, 20));
  }

  private after(ms: number, fn: () => void): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private onError(err: unknown, what: string): void {
    if (this.closed) return;
    this.errors++;
    const e = isPlayoutError(err) ? err : (err as Error);
    this.log.warn({ code: (e as PlayoutError).code ?? null }, `kafka: ${what}: ${e?.message ?? String(err)}`);
  }

  // --- publishing ---------------------------------------------------------------------------

  /** The node leads `host`'s shard from now on: ship its durable entries to Kafka. */
  lead(host: ShardHost, leader: LeaderRole): void {
    if (this.publisher === null || this.closed) return;
    this.shippers.get(host.shard)?.unsubscribe();
    const first = host.firstSeq() ?? 1;
    const from = Math.max(first, host.durableSeq + 1 - this.config.republishEntriesMax);
    const shipper = new Shipper(host, leader, from, () => this.ship(shipper));
    this.shippers.set(host.shard, shipper);
    this.ship(shipper);
  }

  /** Highest seq of `shard` Kafka acknowledged, or null. */
  lastPublished(shard: string): number | null {
    return this.publisher?.lastPublished(shard) ?? null;
  }

  private ship(s: Shipper): void {
    if (s.running || s.closed || this.closed) return;
    s.running = true;
    void this.shipLoop(s).finally(() => {
      s.running = false;
    });
  }

  private async shipLoop(s: Shipper): Promise<void> {
    const { host } = s;
    while (!s.closed && !this.closed && s.next <= host.durableSeq) {
      // Another role took the shard (failover, close): stop shipping its log from here.
      if (this.node.shards.get(host.shard)?.leader !== s.leader) {
        this.stopShipper(s);
        return;
      }
      // After a long outage the store may have truncated what Kafka never got: skip to what
      // is retained (followers repair the hole over HTTP or bootstrap from a snapshot).
      const first = host.firstSeq() ?? 1;
      if (s.next < first) {
        this.log.warn({ shard: host.shard, from: s.next, to: first - 1 }, `kafka: entries ${s.next}..${first - 1} of shard ${host.shard} were truncated before they reached Kafka`);
        s.next = first;
      }
      const to = Math.min(host.durableSeq, s.next + PUBLISH_ENTRIES_MAX - 1);
      const entries: Entry[] = [];
      for (const e of host.ctx.store.iterate(host.shard, s.next, to)) entries.push(e);
      if (entries.length === 0) return;
      try {
        await this.publisher!.publish(entries);
        s.failures = 0;
        s.next = entries[entries.length - 1]!.seq + 1;
      } catch (err) {
        this.onError(err, `publish shard ${host.shard} from seq ${s.next}`);
        // Resume right after what Kafka acknowledged (a failed batch may have landed in part:
        // the duplicates are dropped by followers).
        const last = this.publisher!.lastPublished(host.shard);
        if (last !== null && last + 1 > s.next) s.next = last + 1;
        const delay = this.backoff(s.failures++);
        this.after(delay, () => this.ship(s));
        return;
      }
    }
  }

  private stopShipper(s: Shipper): void {
    s.closed = true;
    s.unsubscribe();
    if (this.shippers.get(s.host.shard) === s) this.shippers.delete(s.host.shard);
  }

  // --- consuming ----------------------------------------------------------------------------

  private onEntries(batch: ShardEntries, grouped: boolean): void {
    // Shards this node leads or does not hold are not fed: a leader's log is the reference.
    const follower = this.node.shards.get(batch.shard)?.follower;
    if (follower == null) return;
    if (grouped) this.checkpoint(batch);
    follower.onEntries(batch.entries, null);
  }

  // --- shard groups (consume[].shards: assigned) ---------------------------------------------

  /**
   * Called by the node before it opens a shard it follows: true when the shard must wait for
   * its partition to be assigned here (it is then opened by the assignment).
   */
  defer(shard: string, meta: ShardMeta, sc: ShardConfig | null): boolean {
    if (this.groupSource === null || this.closed) return false;
    if (this.holds(shard)) return false;
    this.deferred.set(shard, { meta, sc });
    return true;
  }

  /** True when the shard waits for its partition (see defer). */
  isDeferred(shard: string): boolean {
    return this.deferred.has(shard);
  }

  /** True when the group assigned this node the partition holding `shard` (always true without shard groups). */
  holds(shard: string): boolean {
    const g = this.groupSource;
    if (g === null) return true;
    try {
      return g.ownsShard(shard);
    } catch {
      return false; // not joined yet: the partition count is unknown
    }
  }

  private checkpoint(batch: ShardEntries): void {
    let c = this.checkpoints.get(batch.shard);
    if (c === undefined || c.topic !== batch.topic || c.partition !== batch.partition) {
      c = { topic: batch.topic, partition: batch.partition, points: [] };
      this.checkpoints.set(batch.shard, c);
    }
    const seq = batch.entries[0]!.seq;
    const last = c.points[c.points.length - 1];
    if (last !== undefined && seq <= last.seq) c.points.length = 0; // re-read after a seek: start over
    c.points.push({ seq, offset: batch.offsetOf(0) });
    if (c.points.length > CHECKPOINTS_MAX) c.points.shift();
  }

  /**
   * Write where to resume `host`'s shard in Kafka: the latest read point whose first entry is
   * at most one past the durable head, so re-reading from it leaves no hole.
   */
  private async savePosition(host: ShardHost): Promise<void> {
    const c = this.checkpoints.get(host.shard);
    if (c === undefined) return;
    let point: { seq: number; offset: string } | undefined;
    for (const p of c.points) if (p.seq <= host.durableSeq + 1) point = p;
    if (point === undefined) return;
    const position: KafkaPosition = { topic: c.topic, partition: c.partition, offset: point.offset, seq: point.seq };
    await host.ctx.store.putMeta(host.shard, KAFKA_POSITION_META, position);
  }

  private async onAssignment(source: KafkaEntrySource, change: AssignmentChange): Promise<void> {
    if (this.closed) return;
    const topic = source.topics[0]!;
    const revoked = new Set(change.revoked.find((t) => t.topic === topic)?.partitions ?? []);
    const assigned = new Set(change.assigned.find((t) => t.topic === topic)?.partitions ?? []);
    // Partitions that moved away: close their shards once what they received is durable.
    for (const [shard, slot] of [...this.node.shards]) {
      if (slot.follower === null || !revoked.has(source.partitionOfShard(shard))) continue;
      const meta = slot.host.meta;
      await this.node.closeAssigned(shard);
      await this.savePosition(slot.host).catch((err: unknown) => this.onError(err, `save the Kafka position of shard ${shard}`));
      this.checkpoints.delete(shard);
      this.deferred.set(shard, { meta, sc: null });
      this.log.info({ shard, partition: source.partitionOfShard(shard) }, `kafka: shard ${shard} moved to another node of ${this.node.region}`);
    }
    // Partitions assigned here: open their shards, and find where each partition must be
    // re-read from for the shards this node's store holds.
    const resumeAt = new Map<number, bigint>();
    for (const [shard, d] of [...this.deferred]) {
      const partition = source.partitionOfShard(shard);
      if (!source.ownsShard(shard)) continue;
      try {
        await this.node.openAssigned(shard, d.meta, d.sc);
      } catch (err) {
        this.onError(err, `open shard ${shard} assigned to this node`);
        continue; // still deferred: the next assignment tries again
      }
      // Only now: while it opens, the shard stays deferred, so that the node does not open it a
      // second time meanwhile (a peer's status naming it, polled concurrently).
      this.deferred.delete(shard);
      const host = this.node.shards.get(shard)?.host;
      const pos = host?.ctx.store.getMeta<KafkaPosition>(shard, KAFKA_POSITION_META) ?? null;
      if (host === undefined || pos === null || pos.topic !== topic || pos.partition !== partition || pos.seq > host.durableSeq + 1) continue;
      const o = BigInt(pos.offset);
      if (assigned.has(partition) && (resumeAt.get(partition) ?? o + 1n) > o) resumeAt.set(partition, o);
      this.log.info({ shard, partition, head: host.durableSeq, offset: pos.offset }, `kafka: shard ${shard} assigned to this node, resuming from its store at seq ${host.durableSeq}`);
    }
    if (resumeAt.size === 0) return;
    // Seek back only: the group's offset is where the previous holder had got to, and reading
    // from an earlier offset only re-delivers entries (dropped as duplicates by the others).
    let committed: Map<number, string | null>;
    try {
      committed = await source.committedOffsets(topic);
    } catch (err) {
      this.onError(err, `read the committed offsets of ${topic}`);
      return;
    }
    for (const [partition, offset] of resumeAt) {
      const c = committed.get(partition) ?? null;
      if (c === null || offset >= BigInt(c)) continue;
      this.log.info({ topic, partition, from: String(offset), committed: c }, `kafka: re-reading ${topic}/${partition} from ${offset} (the group's offset is ${c})`);
      source.seek(topic, partition, offset);
    }
  }

  /**
   * The entry source a follower uses for its leader's HTTP stream: the stream itself, or — with
   * `httpStream: false` — one that never opens it (entries come from Kafka, repairs over HTTP).
   */
  httpSource(stream: EntrySource): EntrySource {
    return this.config.httpStream ? stream : new UnopenedStream(stream.name);
  }

  // --- ingress ------------------------------------------------------------------------------

  private reducerOf(shard: string): Reducer | null {
    const m = this.node.shards.get(shard)?.host.machine;
    if (m == null || m.reducer === null) return null;
    return this.node.registry.get(m.reducer.name, m.reducer.version);
  }

  private async sequence(inputs: readonly KafkaInput[]): Promise<InputOutcome[]> {
    const out: InputOutcome[] = [];
    // Runs of one shard keep the order of the partition and batch the group commit.
    let i = 0;
    while (i < inputs.length) {
      let j = i + 1;
      while (j < inputs.length && inputs[j]!.shard === inputs[i]!.shard) j++;
      out.push(...(await this.sequenceRun(inputs.slice(i, j))));
      i = j;
    }
    return out;
  }

  private async sequenceRun(run: readonly KafkaInput[]): Promise<InputOutcome[]> {
    const shard = run[0]!.shard;
    const requests: InputRequest[] = run.map((k) => ({ type: k.type, version: k.version, payload: k.payload, ingestId: k.ingestId }));
    try {
      const results = await this.node.submit(shard, requests, (i) => `inputs[${i}].`);
      return results.map((r) => ({ status: r.status, seq: r.seq }));
    } catch (err) {
      if (!refusal(err)) throw err;
      // A batch is refused whole when one input is bad: sequence the others one by one.
      if (run.length === 1) return [{ status: 'rejected', error: err }];
      const out: InputOutcome[] = [];
      for (const k of run) out.push(...(await this.sequenceRun([k])));
      return out;
    }
  }

  // --- shutdown -----------------------------------------------------------------------------

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of [...this.shippers.values()]) this.stopShipper(s);
    if (this.lagTimer !== null) clearTimeout(this.lagTimer);
    for (const slot of this.node.shards.values()) {
      if (slot.follower !== null && this.checkpoints.has(slot.host.shard)) await this.savePosition(slot.host).catch(() => undefined);
    }
    await Promise.all([
      ...this.sources.map((s) => s.stop().catch(() => undefined)),
      this.inputs?.stop().catch(() => undefined),
      this.publisher?.close().catch(() => undefined),
    ]);
  }
}

/** An HTTP stream left closed: the follower's `follow` calls go nowhere (Kafka feeds it). */
class UnopenedStream implements EntrySource {
  readonly name: string;
  constructor(name: string) {
    this.name = `${name} (not opened: kafka.httpStream is false)`;
  }
  async start(): Promise<void> {}
  follow(): void {}
  unfollow(): void {}
  async close(): Promise<void> {}
}

/**
 * True when the sequencer refused the input for good (invalid, unknown shard): it goes to the
 * rejected topic. Anything that may pass later (not the leader yet, overloaded, stopped,
 * unavailable) is not a refusal: the input is read again after a backoff.
 */
function refusal(err: unknown): err is PlayoutError {
  if (!isPlayoutError(err)) return false;
  if (err.retriable) return false;
  return err.code !== 'PLAYOUT_NOT_LEADER' && err.code !== 'PLAYOUT_SHARD_STOPPED' && err.code !== 'PLAYOUT_SEQUENCER_FENCED';
}

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
// Nothing here may stop a region: the Kafka clients are started in the background and retried
// until the node closes.
import type { FastifyBaseLogger } from 'fastify';
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
import type { ShardHost } from './shard-host.js';

/** What the transport needs of the RegionNode (kept narrow so the node stays the composer). */
export interface KafkaTransportNode {
  readonly region: string;
  readonly registry: ReducerRegistry;
  readonly shards: ReadonlyMap<string, { host: ShardHost; leader: LeaderRole | null; follower: FollowerRole | null }>;
  submit(shard: string, inputs: readonly InputRequest[], pathOf: (index: number) => string): Promise<InputResult[]>;
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

  constructor(node: KafkaTransportNode, config: KafkaNodeConfig, log: FastifyBaseLogger) {
    this.node = node;
    this.config = config;
    this.log = log;
    this.client = { brokers: config.brokers, clientId: `${config.clientId}-${node.region}` };
    this.publisher = config.publish ? new KafkaLogPublisher({ client: this.client, topic: config.publishTopic }) : null;
    const retry = { retryDelayMs: config.retryDelayMs, retryDelayMsMax: config.retryDelayMsMax };
    for (const c of config.consume) {
      const source = new KafkaEntrySource(
        { client: { ...this.client, brokers: c.brokers ?? config.brokers }, groupId: c.groupId, topics: [c.topic], ...retry },
        {
          onEntries: (batch) => this.onEntries(batch),
          onCorrupt: (r) => {
            this.errors++;
            this.log.error({ topic: r.topic, partition: r.partition, offset: r.offset, code: r.error.code }, `skipped a corrupt Kafka record: ${r.error.message}`);
          },
          onError: (err) => this.onError(err, `consume ${c.topic}`),
        },
      );
      this.sources.push(source);
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

  private onEntries(batch: ShardEntries): void {
    // Shards this node leads or does not hold are not fed: a leader's log is the reference.
    this.node.shards.get(batch.shard)?.follower?.onEntries(batch.entries, null);
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

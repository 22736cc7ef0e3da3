// KafkaGroupConsumer: what KafkaEntrySource and KafkaInputReader share — one kafkajs consumer in
// a consumer group, the assignment reported to the node (partition = shard group), pauses that
// survive rebalances, a backoff that re-reads a partition after a failed hand-off, seeking, and
// offsets committed only when the subclass says its records are safe.
//
// Why not kafkajs' own autoCommit: it commits what was *fetched and resolved*, on a timer.
// Playout commits an offset only after the records below it were handed to the Follower (log)
// or sequenced durably (inputs); the subclass decides when (commitThrough).
//
// Why pauses are kept here: kafkajs' subscription state forgets a topic-wide pause as soon as a
// single partition is paused, and knows nothing of partitions assigned later. This class keeps
// the intent (all paused, these partitions paused, these backing off) and re-applies it to the
// current assignment after every change.
import type { ConsumerConfig, IMemberAssignment } from 'kafkajs';
import { z } from 'zod';
import { PlayoutError } from '../core/index.js';
import { KafkaClientOptionsSchema, createKafka, isUnknownTopicError, kafkaError, type KafkaClientConfig } from './kafka-client.js';
import { partitionOf } from './kafka-partition.js';
import { kafkajsPort, type AnyBatchPayload, type ConsumerPort } from './kafka-consumer-port.js';

export const GroupConsumerOptionsSchema = z.strictObject({
  client: KafkaClientOptionsSchema,
  /** Consumer group: the nodes of one region that share these topics' partitions. */
  groupId: z.string().min(1).max(255),
  /** Where a group without a committed offset starts: the beginning (true) or the end. */
  fromBeginning: z.boolean().default(true),
  /** A member that sends no heartbeat for this long is presumed dead and its partitions move. */
  sessionTimeoutMs: z.number().int().min(1_000).max(3_600_000).default(30_000),
  heartbeatIntervalMs: z.number().int().min(100).max(60_000).default(3_000),
  rebalanceTimeoutMs: z.number().int().min(1_000).max(3_600_000).default(60_000),
  /** Longest a fetch waits for new records; also bounds how late a seek or resume takes effect. */
  maxWaitMs: z.number().int().min(10).max(60_000).default(500),
  maxBytesPerPartition: z.number().int().min(1024).max(64 << 20).default(1 << 20),
  /** Backoff after a failed hand-off, doubling up to retryDelayMsMax. */
  retryDelayMs: z.number().int().min(1).max(60_000).default(200),
  retryDelayMsMax: z.number().int().min(1).max(600_000).default(10_000),
});
export type GroupConsumerOptions = z.input<typeof GroupConsumerOptionsSchema>;
type GroupConsumerConfig = z.output<typeof GroupConsumerOptionsSchema>;

export interface TopicPartitions {
  topic: string;
  /** Sorted ascending. */
  partitions: number[];
}

export interface AssignmentChange {
  /** Partitions this member now holds, per subscribed topic. */
  current: TopicPartitions[];
  /** Partitions gained in this rebalance (load their shards). */
  assigned: TopicPartitions[];
  /** Partitions lost in this rebalance (unload their shards). */
  revoked: TopicPartitions[];
}

export interface GroupConsumerHandlers {
  /**
   * Called after every rebalance that changes this member's partitions, and once after the
   * first join. Awaited before any record of the new assignment is handed over.
   */
  onAssignment?(change: AssignmentChange): void | Promise<void>;
  /** Failures that do not stop the consumer (a hand-off that will be retried, a failed commit). */
  onError?(err: Error): void;
}

const key = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

function diff(a: Map<string, Set<number>>, b: Map<string, Set<number>>): TopicPartitions[] {
  const out: TopicPartitions[] = [];
  for (const [topic, ps] of a) {
    const other = b.get(topic);
    const partitions = [...ps].filter((p) => !other?.has(p)).sort((x, y) => x - y);
    if (partitions.length > 0) out.push({ topic, partitions });
  }
  return out;
}

/** offset + 1 for a decimal string offset (offsets exceed 2^53 in principle). */
export function nextOffset(offset: string): string {
  return (BigInt(offset) + 1n).toString();
}

export abstract class KafkaGroupConsumer {
  readonly topics: readonly string[];
  readonly groupId: string;
  protected readonly config: GroupConsumerConfig;
  protected readonly client: KafkaClientConfig;
  protected readonly kafka;
  protected consumer: ConsumerPort | null = null;
  private readonly groupHandlers: GroupConsumerHandlers;
  private readonly partitionCounts = new Map<string, number>();
  private assignmentNow = new Map<string, Set<number>>();
  private assignmentSettled: Promise<void> = Promise.resolve();
  private joined = false;
  private pausedAll = false;
  private readonly pausedPartitions = new Set<string>();
  private readonly backingOff = new Map<string, { timer: ReturnType<typeof setTimeout>; topic: string; partition: number }>();
  private readonly failures = new Map<string, number>();
  private running = false;
  private readonly what: string;
  /** Fetch requests answered since start (with or without records): a paused partition stays quiet across them. */
  fetches = 0;

  protected constructor(what: string, config: GroupConsumerConfig, topics: readonly string[], handlers: GroupConsumerHandlers) {
    this.what = what;
    this.config = config;
    this.topics = topics;
    this.groupId = config.groupId;
    this.groupHandlers = handlers;
    const { kafka, config: client } = createKafka(config.client, what);
    this.kafka = kafka;
    this.client = client;
  }

  /** Check the topics exist, join the group and start consuming. Resolves after the first join. */
  async start(): Promise<void> {
    if (this.running) return;
    const admin = this.kafka.admin();
    try {
      await admin.connect();
      const existing = new Set(await admin.listTopics());
      for (const topic of this.topics) {
        if (!existing.has(topic)) {
          throw new PlayoutError('PLAYOUT_SOURCE_NOT_FOUND', `${this.what} cannot consume topic "${topic}" on ${this.client.brokers.join(',')}: it does not exist (create it with ensureTopics)`, {
            path: 'topics',
            expected: 'an existing topic',
            received: topic,
          });
        }
      }
      const meta = await admin.fetchTopicMetadata({ topics: [...this.topics] });
      for (const t of meta.topics) this.partitionCounts.set(t.name, t.partitions.length);
    } catch (err) {
      throw kafkaError(err, `${this.what}: read topic metadata`, this.client.brokers);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }

    const consumer = this.createConsumer({
      groupId: this.groupId,
      sessionTimeout: this.config.sessionTimeoutMs,
      heartbeatInterval: this.config.heartbeatIntervalMs,
      rebalanceTimeout: this.config.rebalanceTimeoutMs,
      maxWaitTimeInMs: this.config.maxWaitMs,
      maxBytesPerPartition: this.config.maxBytesPerPartition,
      allowAutoTopicCreation: false,
      retry: { retries: this.client.retriesMax, initialRetryTime: this.client.retryDelayMsInitial },
    });
    consumer.onJoin((assignment) => this.onJoin(assignment));
    consumer.onFetch(() => {
      this.fetches++;
    });
    // kafkajs' run() resolves without a join when the first join fails (e.g. the coordinator is
    // not available yet on a loaded broker) and retries it in the background: wait for it here,
    // so that start() resolving means joined, as documented.
    let joined!: () => void;
    let failed!: (err: Error) => void;
    const firstJoin = new Promise<void>((resolve, reject) => {
      joined = resolve;
      failed = reject;
    });
    firstJoin.catch(() => undefined); // awaited below unless run() throws first
    const offJoin = consumer.onJoin(() => joined());
    const offStop = consumer.onStop(() => failed(new Error('the consumer stopped before it joined the group')));
    consumer.onCrash((err, restart) => {
      const error = kafkaError(err, `${this.what}: consume (${restart ? 'restarting' : 'stopped'})`, this.client.brokers);
      this.reportError(error);
      if (!restart) failed(error);
    });
    this.consumer = consumer;
    try {
      await consumer.connect();
      await consumer.subscribe([...this.topics], this.config.fromBeginning);
      this.running = true;
      await consumer.run((payload) => this.eachBatch(payload));
      await firstJoin;
      offJoin();
      offStop();
    } catch (err) {
      offJoin();
      offStop();
      this.running = false;
      await consumer.disconnect().catch(() => undefined);
      this.consumer = null;
      if (isUnknownTopicError(err)) {
        throw new PlayoutError('PLAYOUT_SOURCE_NOT_FOUND', `${this.what} cannot consume ${this.topics.join(', ')}: ${(err as Error).message}`, { cause: err });
      }
      throw kafkaError(err, `${this.what}: join group "${this.groupId}"`, this.client.brokers);
    }
    this.applyPauses();
  }

  /** Leave the group (its partitions move to the other members at once) and disconnect. */
  async stop(): Promise<void> {
    for (const b of this.backingOff.values()) clearTimeout(b.timer);
    this.backingOff.clear();
    const consumer = this.consumer;
    this.consumer = null;
    this.running = false;
    if (consumer) await consumer.disconnect().catch(() => undefined);
  }

  get isRunning(): boolean {
    return this.running;
  }

  protected isAssigned(topic: string, partition: number): boolean {
    return this.assignmentNow.get(topic)?.has(partition) ?? false;
  }

  /** Partitions currently assigned to this member. */
  assignment(): TopicPartitions[] {
    return [...this.assignmentNow].map(([topic, ps]) => ({ topic, partitions: [...ps].sort((a, b) => a - b) }));
  }

  /** Partition count of a subscribed topic (known after start). */
  partitionCount(topic: string = this.topics[0]!): number {
    const n = this.partitionCounts.get(topic);
    if (n === undefined) throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `${this.what}: topic "${topic}" is not subscribed (or start() has not run)`, { path: 'topic', expected: this.topics.join(', '), received: topic });
    return n;
  }

  /** The partition of `topic` that holds `shard`. */
  partitionOfShard(shard: string, topic: string = this.topics[0]!): number {
    return partitionOf(shard, this.partitionCount(topic));
  }

  /** True when this member holds the partition of `shard` (in the first topic by default). */
  ownsShard(shard: string, topic: string = this.topics[0]!): boolean {
    return this.assignmentNow.get(topic)?.has(this.partitionOfShard(shard, topic)) ?? false;
  }

  /** Stop fetching every partition, now and after rebalances, until resume(). */
  pause(): void {
    this.pausedAll = true;
    this.applyPauses();
  }

  /** Undo pause() and pausePartition() everywhere. */
  resume(): void {
    this.pausedAll = false;
    this.pausedPartitions.clear();
    this.applyPauses();
  }

  pausePartition(topic: string, partition: number): void {
    this.pausedPartitions.add(key(topic, partition));
    this.applyPauses();
  }

  resumePartition(topic: string, partition: number): void {
    this.pausedPartitions.delete(key(topic, partition));
    this.applyPauses();
  }

  isPaused(topic: string, partition: number): boolean {
    const k = key(topic, partition);
    return this.pausedAll || this.pausedPartitions.has(k) || this.backingOff.has(k);
  }

  /**
   * Read `partition` of `topic` from `offset` on (the next fetch; a batch being handed over
   * stops at once). The partition must be assigned to this member.
   */
  seek(topic: string, partition: number, offset: string | number | bigint): void {
    const o = String(offset);
    if (!/^(0|[1-9][0-9]*)$/.test(o)) throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `${this.what}: cannot seek ${topic}/${partition}: expected a non-negative integer offset, received ${o}`, { path: 'offset', expected: 'non-negative integer', received: o });
    if (!this.consumer || !this.assignmentNow.get(topic)?.has(partition)) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `${this.what}: cannot seek ${topic}/${partition}: it is not assigned to this member (assigned: ${JSON.stringify(this.assignment())})`, {
        path: 'partition',
        expected: 'an assigned partition',
        received: `${topic}/${partition}`,
      });
    }
    this.consumer.seek(topic, partition, o);
  }

  /** Seek the partition holding `shard` (in the first topic by default) to `offset`. */
  seekShard(shard: string, offset: string | number | bigint, topic: string = this.topics[0]!): void {
    this.seek(topic, this.partitionOfShard(shard, topic), offset);
  }

  /** The group's committed offsets (the next offset to read) of `topic`'s partitions; null where none. */
  async committedOffsets(topic: string = this.topics[0]!): Promise<Map<number, string | null>> {
    const admin = this.kafka.admin();
    try {
      await admin.connect();
      const [t] = await admin.fetchOffsets({ groupId: this.groupId, topics: [topic] });
      const out = new Map<number, string | null>();
      for (const p of t?.partitions ?? []) out.set(p.partition, BigInt(p.offset) < 0n ? null : p.offset);
      return out;
    } catch (err) {
      throw kafkaError(err, `${this.what}: read the committed offsets of group "${this.groupId}" on "${topic}"`, this.client.brokers);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  /** Commit `offsetNext` (the next offset to read) for the group. */
  async commit(topic: string, partition: number, offsetNext: string): Promise<void> {
    await this.commitAll([{ topic, partition, offset: offsetNext }]);
  }

  /** Commit several partitions' next offsets in one request. */
  protected async commitAll(offsets: { topic: string; partition: number; offset: string }[]): Promise<void> {
    const consumer = this.consumer;
    if (!consumer || offsets.length === 0) return;
    try {
      await consumer.commitOffsets(offsets);
    } catch (err) {
      // A rebalance in progress refuses commits; the records are redelivered to whoever holds
      // the partition next, which at-least-once delivery allows.
      const what = offsets.map((o) => `${o.topic}/${o.partition}@${o.offset}`).join(', ');
      this.reportError(kafkaError(err, `${this.what}: commit ${what}`, this.client.brokers));
    }
  }

  /** The consumer to run: kafkajs in this thread; a subclass may run it elsewhere (WorkerConsumer). */
  protected createConsumer(config: ConsumerConfig): ConsumerPort {
    return kafkajsPort(this.kafka.consumer(config));
  }

  /** Hand one fetched batch over; resolve offsets through payload.resolveOffset as records become safe. */
  protected abstract handleBatch(payload: AnyBatchPayload): Promise<void>;

  /** A hand-off failed: re-read the partition from its last resolved offset after a backoff. */
  protected backOff(topic: string, partition: number, err: Error): void {
    const k = key(topic, partition);
    const n = (this.failures.get(k) ?? 0) + 1;
    this.failures.set(k, n);
    this.reportError(err);
    const delayMs = Math.min(this.config.retryDelayMs * 2 ** Math.min(n - 1, 20), this.config.retryDelayMsMax);
    const prev = this.backingOff.get(k);
    if (prev) clearTimeout(prev.timer);
    const timer = setTimeout(() => {
      this.backingOff.delete(k);
      this.applyPauses();
    }, delayMs);
    timer.unref?.();
    this.backingOff.set(k, { timer, topic, partition });
    this.applyPauses();
  }

  /** A hand-off succeeded: reset the partition's backoff. */
  protected succeeded(topic: string, partition: number): void {
    if (this.failures.size > 0) this.failures.delete(key(topic, partition));
  }

  protected reportError(err: Error): void {
    if (this.groupHandlers.onError) this.groupHandlers.onError(err);
    else console.error(`${this.what}: ${err.message}`);
  }

  private async eachBatch(payload: AnyBatchPayload): Promise<void> {
    await this.assignmentSettled;
    const { topic, partition } = payload.batch;
    if (!payload.isRunning() || payload.isStale()) return;
    // Paused by us after this batch was fetched, or no longer ours: leave it unresolved, so it
    // is fetched again after resume (or by the partition's new owner).
    if (this.isPaused(topic, partition) || !this.assignmentNow.get(topic)?.has(partition)) return;
    await this.handleBatch(payload);
  }

  private onJoin(memberAssignment: IMemberAssignment): void {
    const next = new Map<string, Set<number>>();
    for (const topic of this.topics) next.set(topic, new Set(memberAssignment[topic] ?? []));
    const assigned = diff(next, this.assignmentNow);
    const revoked = diff(this.assignmentNow, next);
    this.assignmentNow = next;
    for (const [k, b] of this.backingOff) {
      if (!next.get(b.topic)?.has(b.partition)) {
        clearTimeout(b.timer);
        this.backingOff.delete(k);
      }
    }
    this.applyPauses();
    const first = !this.joined;
    this.joined = true;
    if (!first && assigned.length === 0 && revoked.length === 0) return;
    const handler = this.groupHandlers.onAssignment;
    if (!handler) return;
    const change: AssignmentChange = { current: this.assignment(), assigned, revoked };
    // Chained: records of the new assignment wait until the node has loaded its shards.
    this.assignmentSettled = this.assignmentSettled
      .then(() => handler(change))
      .catch((err: unknown) => this.reportError(err instanceof Error ? err : new Error(String(err))));
  }

  private applyPauses(): void {
    const consumer = this.consumer;
    if (!consumer || !this.running) return;
    for (const [topic, ps] of this.assignmentNow) {
      const pause: number[] = [];
      const resume: number[] = [];
      for (const p of ps) (this.isPaused(topic, p) ? pause : resume).push(p);
      try {
        if (pause.length) consumer.pause([{ topic, partitions: pause }]);
        if (resume.length) consumer.resume([{ topic, partitions: resume }]);
      } catch {
        // Not running yet (kafkajs refuses pause before run): start() applies them.
      }
    }
  }
}

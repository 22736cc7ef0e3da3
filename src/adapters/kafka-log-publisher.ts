// KafkaLogPublisher: the leader's sink of entries into its region's `playout.log`.
//
// Record format (one record per entry):
//   key     = the shard id, UTF-8 (so the Java default partitioner puts a shard in one partition)
//   value   = Entry.bytes: canonical msgpack body || 16-byte XXH3-128 hash (src/core/entry.ts)
//   headers = none (everything a follower needs is in the value, and it is hash-checked)
//
// Order: the caller publishes entries after they are durable in its local store, in log order.
// Kafka keeps that order only if one produce request per partition is in flight and retries
// cannot reorder: an idempotent producer (acks=all), maxInFlightRequests=1, and this class
// never sends a batch before the previous one is acknowledged. Calls are coalesced, so
// throughput comes from batching, not from concurrency.
//
// Failure: a batch that fails after kafkajs' retries rejects with PLAYOUT_KAFKA_UNAVAILABLE,
// together with every batch queued behind it (sending those would leave a hole in the topic).
// The producer is then replaced (a fresh producer id, so stale sequence numbers cannot wedge
// it), and `lastPublished(shard)` says where to resume. Followers repair any hole over HTTP.
import { Partitioners, type Message, type Producer } from 'kafkajs';
import { z } from 'zod';
import { PlayoutError, assert, type Entry } from '../core/index.js';
import { KafkaClientOptionsSchema, createKafka, kafkaError, parseOptions, type KafkaClientConfig } from './kafka-client.js';
import { LOG_TOPIC, TopicNameSchema } from './kafka-topics.js';

export const KafkaLogPublisherOptionsSchema = z.strictObject({
  client: KafkaClientOptionsSchema,
  topic: TopicNameSchema.default(LOG_TOPIC),
  /**
   * Bytes of entries coalesced into one produce request (at least one entry per request).
   * Below the broker's message.max.bytes (1 MiB by default), which bounds one partition's
   * record batch: a request this size fits even when all its entries go to one partition.
   */
  batchBytesMax: z.number().int().min(1024).max(64 << 20).default(512 << 10),
  /** How long the broker may wait for the in-sync replicas before failing the request. */
  ackTimeoutMs: z.number().int().positive().default(30_000),
  /**
   * How long close() waits for queued entries when the producer is connected; what is still
   * queued then is failed. A producer that is still connecting (a broker outage) is not waited
   * for at all: close() fails the queue at once and returns.
   */
  closeDrainMs: z.number().int().min(0).max(600_000).default(5_000),
});
export type KafkaLogPublisherOptions = z.input<typeof KafkaLogPublisherOptionsSchema>;

// Kafka's per-record framing (length, attributes, timestamp and offset deltas, key and value
// lengths, header count), at most about 20 bytes: counted so a batch stays under the limit.
const RECORD_OVERHEAD_BYTES = 20;

class PendingBatch {
  readonly messages: Message[];
  readonly bytes: number;
  readonly last: Map<string, number>;
  resolve!: () => void;
  reject!: (err: unknown) => void;
  readonly done: Promise<void>;

  constructor(messages: Message[], bytes: number, last: Map<string, number>) {
    this.messages = messages;
    this.bytes = bytes;
    this.last = last;
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

export class KafkaLogPublisher {
  readonly topic: string;
  private readonly options: z.output<typeof KafkaLogPublisherOptionsSchema>;
  private readonly client: KafkaClientConfig;
  private readonly kafka;
  private producer: Producer | null = null;
  private connecting: Promise<Producer> | null = null;
  private readonly queue: PendingBatch[] = [];
  private sending = false;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly published = new Map<string, number>();
  /** Entries acknowledged by Kafka since construction. */
  entriesPublished = 0;
  /** Produce requests sent. */
  requestsSent = 0;

  constructor(options: KafkaLogPublisherOptions) {
    this.options = parseOptions(KafkaLogPublisherOptionsSchema, options, 'KafkaLogPublisher');
    const { kafka, config } = createKafka(this.options.client, 'KafkaLogPublisher');
    this.kafka = kafka;
    this.client = config;
    this.topic = this.options.topic;
  }

  /** Connect now (optional: the first publish connects). */
  async connect(): Promise<void> {
    await this.getProducer();
  }

  /**
   * Publish entries, in order. Resolves once Kafka acknowledged all of them (acks=all), after
   * every entry published by earlier calls. Entries of one shard must come in log order.
   */
  publish(entries: readonly Entry[]): Promise<void> {
    if (this.closed) return Promise.reject(kafkaError(new Error('the publisher is closed'), `publish to "${this.topic}"`, this.client.brokers));
    if (entries.length === 0) return Promise.resolve();
    // One call may exceed a request: split it into batches of at most batchBytesMax.
    const done: Promise<void>[] = [];
    let messages: Message[] = [];
    let last = new Map<string, number>();
    let bytes = 0;
    const seqs = new Map<string, number>();
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const prevSeq = seqs.get(e.shard);
      assert(prevSeq === undefined || e.seq > prevSeq, 'entries of one shard are published in log order');
      seqs.set(e.shard, e.seq);
      const b = e.bytes;
      const size = b.byteLength + e.shard.length + RECORD_OVERHEAD_BYTES;
      if (bytes + size > this.options.batchBytesMax && messages.length > 0) {
        done.push(this.enqueue(new PendingBatch(messages, bytes, last)));
        messages = [];
        last = new Map();
        bytes = 0;
      }
      // A view, not a copy: kafkajs writes the bytes straight into the request buffer.
      messages.push({ key: e.shard, value: Buffer.from(b.buffer, b.byteOffset, b.byteLength) });
      last.set(e.shard, e.seq);
      bytes += size;
    }
    done.push(this.enqueue(new PendingBatch(messages, bytes, last)));
    return done.length === 1 ? done[0]! : Promise.all(done).then(() => undefined);
  }

  private enqueue(batch: PendingBatch): Promise<void> {
    this.queue.push(batch);
    if (!this.sending) void this.drain();
    return batch.done;
  }

  /** Resolves when everything queued so far is acknowledged (or rejects with the first failure). */
  async flush(): Promise<void> {
    const pending = this.queue.map((b) => b.done);
    await Promise.all(pending);
  }

  /** Highest seq of `shard` acknowledged by Kafka through this publisher, or null. */
  lastPublished(shard: string): number | null {
    return this.published.get(shard) ?? null;
  }

  /**
   * Wait for queued entries (at most `closeDrainMs`, and only while connected), fail what is
   * left, and disconnect. Never waits for a connect in flight: kafkajs cannot cancel one (its
   * retries run on their own timers), so that producer is disconnected as soon as its connect
   * settles, and close() returns now — a node shutting down during a broker outage must not
   * hang for the client's whole retry schedule.
   */
  async close(): Promise<void> {
    if (this.closed && this.closing !== null) return this.closing;
    this.closed = true;
    this.closing = this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.producer !== null && this.queue.length > 0 && this.options.closeDrainMs > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.options.closeDrainMs);
      });
      await Promise.race([this.flush().catch(() => undefined), expired]);
      clearTimeout(timer);
    }
    this.failQueued(kafkaError(new Error('the publisher was closed before Kafka acknowledged them'), `publish to "${this.topic}"`, this.client.brokers));
    const p = this.producer;
    this.producer = null;
    if (p) await p.disconnect().catch(() => undefined);
  }

  private failQueued(error: PlayoutError): void {
    const failed = this.queue.splice(0, this.queue.length);
    for (const b of failed) b.reject(error);
  }

  private getProducer(): Promise<Producer> {
    if (this.closed) return Promise.reject(kafkaError(new Error('the publisher is closed'), `connect a producer for "${this.topic}"`, this.client.brokers));
    if (this.producer) return Promise.resolve(this.producer);
    if (this.connecting) return this.connecting;
    const producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: { retries: this.client.retriesMax, initialRetryTime: this.client.retryDelayMsInitial },
    });
    this.connecting = producer
      .connect()
      .then(() => {
        // Closed while connecting: nobody will use or disconnect this producer but us.
        if (this.closed) {
          void producer.disconnect().catch(() => undefined);
          throw new Error('the publisher was closed while connecting');
        }
        this.producer = producer;
        return producer;
      })
      .catch((err: unknown) => {
        throw kafkaError(err, `connect a producer for "${this.topic}"`, this.client.brokers);
      })
      .finally(() => {
        this.connecting = null;
      });
    return this.connecting;
  }

  private async drain(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0) {
        // Coalesce queued calls up to batchBytesMax (at least one call per request).
        let n = 1;
        let bytes = this.queue[0]!.bytes;
        while (n < this.queue.length && bytes + this.queue[n]!.bytes <= this.options.batchBytesMax) bytes += this.queue[n++]!.bytes;
        const batches = this.queue.slice(0, n);
        const messages = n === 1 ? batches[0]!.messages : batches.flatMap((b) => b.messages);
        try {
          const producer = await this.getProducer();
          this.requestsSent++;
          await producer.send({ topic: this.topic, acks: -1, timeout: this.options.ackTimeoutMs, messages });
        } catch (err) {
          const error = kafkaError(err, `publish ${messages.length} entries to "${this.topic}"`, this.client.brokers);
          // Fail everything queued: a later batch must never land before an earlier one.
          const failed = this.queue.splice(0, this.queue.length);
          for (const b of failed) b.reject(error);
          await this.replaceProducer();
          continue;
        }
        this.queue.splice(0, n);
        this.entriesPublished += messages.length;
        for (const b of batches) {
          for (const [shard, seq] of b.last) {
            const prev = this.published.get(shard);
            if (prev === undefined || seq > prev) this.published.set(shard, seq);
          }
          b.resolve();
        }
      }
    } finally {
      this.sending = false;
    }
  }

  private async replaceProducer(): Promise<void> {
    const p = this.producer;
    this.producer = null;
    if (p) await p.disconnect().catch(() => undefined);
  }
}

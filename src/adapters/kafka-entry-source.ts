// KafkaEntrySource: a follower's stream of entries from `playout.log` — the leader region's
// topic, or its MirrorMaker 2 mirror in this region's cluster (`eu-fra.playout.log`).
//
// Each record is decoded and verified (decodeEntry: format, shape, XXH3-128 hash) and its key
// must be the entry's shard. A record that fails is reported to onCorrupt with its topic,
// partition and offset, and is never handed over as an entry; consumption goes on past it
// (the Follower repairs the seq it would have carried over HTTP).
//
// Delivery is at least once: Kafka redelivers after a rebalance or a restart from the last
// committed offset, MirrorMaker 2 duplicates records when it restarts, a seek re-reads. The
// Follower drops duplicates by seq and hash; this class does not try to.
//
// Entries reach onEntries grouped by shard, one call per shard per chunk (up to 512 records) of
// a fetched batch of a partition, in partition order. onEntries is awaited; with commit 'auto' the offset is
// committed once every group of the batch was handed over. With 'manual' the caller commits
// (commit(topic, partition, offsetNext)) when it has made the entries durable.
//
// Decoding is pipelined with fetching: up to prefetchBatchesMax fetched batches wait while one
// is decoded and handed over, so kafkajs' next fetch is in flight meanwhile. A pause, seek,
// failed hand-off or lost partition drops the partition's waiting batches and seeks it back to
// its first record not handed over.
//
// With fetchThread 'worker' (the default; see kafka-consumer-port.ts), kafkajs fetches in a
// worker thread, which reads plain record batches without kafkajs' per-record decoding
// (kafka-record-batches.ts), checks each entry's XXH3-128 and hands each batch over as one
// transferred buffer; this thread only decodes and hands over the entries. On
// bench/kafka.bench.ts's counter log (shared two-core machine) that is about 1.8 µs of this
// thread's CPU per entry before applying it and about 4 µs for the process with applying
// (kafkajs in this thread: 6.3 and 7). 'main' keeps kafkajs in this thread, decoding every
// record itself, for processes that must not start a thread.
import type { ConsumerConfig, KafkaMessage } from 'kafkajs';
import { z } from 'zod';
import { PlayoutError, decodeEntry, type Entry } from '../core/index.js';
import { GroupConsumerOptionsSchema, KafkaGroupConsumer, nextOffset, type GroupConsumerHandlers } from './kafka-group-consumer.js';
import { PackedBatch, WorkerConsumer, type AnyBatchPayload, type ConsumerPort } from './kafka-consumer-port.js';
import { kafkaError, parseOptions } from './kafka-client.js';
import { LOG_TOPIC, TopicNameSchema } from './kafka-topics.js';

export const KafkaEntrySourceOptionsSchema = GroupConsumerOptionsSchema.extend({
  /** `playout.log`, or mirror topics such as `eu-fra.playout.log`. */
  topics: z.array(TopicNameSchema).min(1).default([LOG_TOPIC]),
  commit: z.enum(['auto', 'manual']).default('auto'),
  /**
   * Fetched batches waiting to be decoded at most; kafkajs fetches ahead until then. A fetch
   * brings a batch per partition (up to maxBytesPerPartition each): 8 lets the next fetch of a
   * member holding a few partitions be in flight while the last one is handed over.
   */
  prefetchBatchesMax: z.number().int().min(1).max(1_000).default(8),
  /**
   * Where kafkajs fetches record batches: a worker thread (the default), which also reads the
   * records and checks their entry hashes, so this thread (which applies entries and serves
   * HTTP) only decodes them; or this thread, with kafkajs' own decoding of every record (see
   * the top of this file).
   */
  fetchThread: z.enum(['worker', 'main']).default('worker'),
});
export type KafkaEntrySourceOptions = z.input<typeof KafkaEntrySourceOptionsSchema>;

/** Entries of one shard from one chunk of a fetched batch of one partition, in partition order. */
export class ShardEntries {
  readonly topic: string;
  readonly partition: number;
  readonly shard: string;
  readonly entries: Entry[] = [];
  /** The partition's high watermark when the batch was fetched (its lag is this minus the last offset, minus one). */
  readonly highWatermark: string;
  // Where each entry was read, as an index into the fetched batch: its offset as a decimal
  // string is built only when asked for (a string per entry cost the hot path for nothing).
  private readonly records: Records;
  /** @internal */
  readonly at: number[] = [];
  private offsetTexts: string[] | null = null;

  constructor(topic: string, partition: number, shard: string, highWatermark: string, records: Records) {
    this.topic = topic;
    this.partition = partition;
    this.shard = shard;
    this.highWatermark = highWatermark;
    this.records = records;
  }

  /** Kafka offset of each entry: offsets[i] is where entries[i] was read. */
  get offsets(): readonly string[] {
    if (this.offsetTexts === null || this.offsetTexts.length !== this.at.length) this.offsetTexts = this.at.map((i) => this.records.offset(i));
    return this.offsetTexts;
  }

  /** Kafka offset of entries[i]. */
  offsetOf(i: number): string {
    return this.records.offset(this.at[i]!);
  }
}

export interface CorruptRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** The record key as text, or null when it had none. */
  readonly key: string | null;
  /** What is wrong: PLAYOUT_ENTRY_HASH_MISMATCH, PLAYOUT_ENTRY_MALFORMED, PLAYOUT_ENTRY_FORMAT_UNKNOWN … */
  readonly error: PlayoutError;
}

/** How far this member has read a partition it holds (or held). */
export interface PartitionProgress {
  readonly topic: string;
  readonly partition: number;
  /** Offset of the last record handed over (or reported corrupt), or null before the first. */
  readonly offset: string | null;
  /** The partition's high watermark (the offset the next produced record gets), as last seen. */
  readonly highWatermark: string | null;
  /** Records in the partition past what was handed over: highWatermark - offset - 1 (null when unknown). */
  readonly lagOffsets: number | null;
}

export interface KafkaEntrySourceHandlers extends GroupConsumerHandlers {
  /** Awaited. Throwing re-reads the partition from the first group not handed over, after a backoff. */
  onEntries(batch: ShardEntries): void | Promise<void>;
  /** A record that is not a valid entry. Default: console.error. */
  onCorrupt?(record: CorruptRecord): void;
}

/** True when the record key's bytes spell `shard` (shard ids are ASCII, so no decoding is needed). */
function keyIs(key: Buffer | null, shard: string): boolean {
  if (key === null || key.length !== shard.length) return false;
  for (let i = 0; i < key.length; i++) if (key[i] !== shard.charCodeAt(i)) return false;
  return true;
}

/** kafkajs' messages of a batch fetched in this thread, read through the methods of PackedBatch. */
class MessageRecords {
  readonly count: number;
  constructor(readonly messages: KafkaMessage[]) {
    this.count = messages.length;
  }

  offset(i: number): string {
    return this.messages[i]!.offset;
  }

  value(i: number): Uint8Array | null {
    return this.messages[i]!.value;
  }

  keyIs(i: number, shard: string): boolean {
    return keyIs(this.messages[i]!.key, shard);
  }

  hashChecked(): boolean {
    return false;
  }

  keyText(i: number): string | null {
    const k = this.messages[i]!.key;
    return k === null ? null : k.toString('utf8');
  }
}

type Records = MessageRecords | PackedBatch;

/** A fetched batch waiting in the pipeline, tagged with its partition's generation. */
class QueuedBatch {
  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly records: Records,
    readonly highWatermark: string,
    readonly generation: number,
  ) {}
}

const tp = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/** Records decoded and handed over at a time (see deliver). */
const CHUNK_RECORDS = 512;

export class KafkaEntrySource extends KafkaGroupConsumer {
  private readonly handlers: KafkaEntrySourceHandlers;
  private readonly autoCommit: boolean;
  private readonly prefetchBatchesMax: number;
  private readonly fetchThread: 'worker' | 'main';
  // The pipeline: kafkajs fetches the next batch while this one is decoded and handed over
  // (which costs more than kafkajs spends per record, bench/kafka.bench.ts). A partition's
  // generation changes when its queued batches must be dropped (seek, pause, failed
  // hand-off, revocation); the partition is then re-read from its first undelivered offset.
  private readonly queue: QueuedBatch[] = [];
  private readonly generations = new Map<string, number>();
  private pumping = false;
  private queueShrunk: (() => void) | null = null;
  private readonly commitsPending = new Map<string, { topic: string; partition: number; offset: string }>();
  private committing: Promise<void> | null = null;
  private readonly progress = new Map<string, { topic: string; partition: number; offset: string | null; highWatermark: string | null }>();
  /** Entries handed over, records reported corrupt, and batches handled, since start. */
  entriesDelivered = 0;
  corruptRecords = 0;
  batchesHandled = 0;

  constructor(options: KafkaEntrySourceOptions, handlers: KafkaEntrySourceHandlers) {
    const { topics, commit, prefetchBatchesMax, fetchThread, ...group } = parseOptions(KafkaEntrySourceOptionsSchema, options, 'KafkaEntrySource');
    super('KafkaEntrySource', group, topics, handlers);
    this.fetchThread = fetchThread;
    this.handlers = handlers;
    this.autoCommit = commit === 'auto';
    this.prefetchBatchesMax = prefetchBatchesMax;
  }

  override seek(topic: string, partition: number, offset: string | number | bigint): void {
    super.seek(topic, partition, offset);
    this.invalidate(topic, partition);
  }

  override async stop(): Promise<void> {
    this.queue.length = 0;
    this.queueShrunk?.();
    await this.flushCommits();
    await super.stop();
  }

  protected override createConsumer(config: ConsumerConfig): ConsumerPort {
    if (this.fetchThread === 'main') return super.createConsumer(config);
    return new WorkerConsumer({ client: this.client, consumer: config }, (err) => this.reportError(err));
  }

  protected async handleBatch(payload: AnyBatchPayload): Promise<void> {
    const { batch } = payload;
    const { topic, partition } = batch;
    const records = 'packed' in payload ? payload.batch : new MessageRecords(payload.batch.messages);
    this.noteHighWatermark(topic, partition, batch.highWatermark);
    if (records.count === 0 || payload.isStale()) return;
    // The next fetch starts after this batch; if it is not handed over after all, the pump
    // seeks the partition back (rewind).
    payload.resolveOffset(records.offset(records.count - 1));
    this.queue.push(new QueuedBatch(topic, partition, records, batch.highWatermark, this.generation(topic, partition)));
    if (!this.pumping) void this.pump();
    // Backpressure: kafkajs fetches again only when this returns.
    while (this.queue.length > this.prefetchBatchesMax && this.isRunning) {
      await new Promise<void>((resolve) => (this.queueShrunk = resolve));
    }
    await payload.heartbeat();
  }

  /**
   * Per assigned partition: the last offset handed over, the high watermark and the lag in
   * offsets. The high watermark comes with every fetch response; a consumer that stalls (paused,
   * backing off) sees none, so call refreshHighWatermarks() to learn it from the broker.
   */
  partitionProgress(): PartitionProgress[] {
    const out: PartitionProgress[] = [];
    for (const { topic, partitions } of this.assignment()) {
      for (const partition of partitions) {
        const p = this.progress.get(tp(topic, partition));
        const offset = p?.offset ?? null;
        const highWatermark = p?.highWatermark ?? null;
        let lagOffsets: number | null = null;
        if (highWatermark !== null) lagOffsets = Math.max(0, Number(BigInt(highWatermark) - (offset === null ? 0n : BigInt(offset) + 1n)));
        out.push({ topic, partition, offset, highWatermark, lagOffsets });
      }
    }
    return out;
  }

  /** Ask the broker for the high watermarks of the subscribed topics (for partitionProgress while stalled). */
  async refreshHighWatermarks(): Promise<void> {
    const admin = this.kafka.admin();
    try {
      await admin.connect();
      for (const topic of this.topics) {
        for (const o of await admin.fetchTopicOffsets(topic)) this.noteHighWatermark(topic, o.partition, o.high);
      }
    } catch (err) {
      throw kafkaError(err, `KafkaEntrySource: read the end offsets of ${this.topics.join(', ')}`, this.client.brokers);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  private noteHighWatermark(topic: string, partition: number, highWatermark: string): void {
    const k = tp(topic, partition);
    const p = this.progress.get(k);
    if (p === undefined) this.progress.set(k, { topic, partition, offset: null, highWatermark });
    else if (p.highWatermark === null || BigInt(highWatermark) > BigInt(p.highWatermark)) p.highWatermark = highWatermark;
  }

  private noteDelivered(topic: string, partition: number, offset: string, highWatermark: string): void {
    this.noteHighWatermark(topic, partition, highWatermark);
    this.progress.get(tp(topic, partition))!.offset = offset;
  }

  private generation(topic: string, partition: number): number {
    return this.generations.get(tp(topic, partition)) ?? 0;
  }

  /** Drop the partition's queued batches (they are re-read from wherever it is sought to). */
  private invalidate(topic: string, partition: number): void {
    const k = tp(topic, partition);
    this.generations.set(k, (this.generations.get(k) ?? 0) + 1);
    this.commitsPending.delete(k);
  }

  /** Re-read the partition from `offset` (the first record not handed over). */
  private rewind(topic: string, partition: number, offset: string): void {
    this.invalidate(topic, partition);
    try {
      super.seek(topic, partition, offset);
    } catch {
      // No longer assigned: its next owner reads it from the committed offset.
    }
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.queue.length > 0 && this.isRunning) {
        const qb = this.queue[0]!;
        if (qb.generation === this.generation(qb.topic, qb.partition) && this.isAssigned(qb.topic, qb.partition)) {
          await this.deliver(qb);
        }
        this.queue.shift();
        this.queueShrunk?.();
        this.queueShrunk = null;
        // Let kafkajs read the next fetch response between batches.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.pumping = false;
    }
  }

  private async deliver(qb: QueuedBatch): Promise<void> {
    const { topic, partition, records } = qb;
    const n = records.count;
    if (this.isPaused(topic, partition)) return this.rewind(topic, partition, records.offset(0));

    // Decode and hand over in chunks of CHUNK_RECORDS: the decoded entries of a chunk are
    // garbage once handed over, so they die in the young generation. Decoding a whole fetched
    // batch (thousands of records) first kept them all alive across scavenges and doubled the
    // garbage collector's share of the follower's CPU (bench/kafka.bench.ts).
    for (let from = 0; from < n; from += CHUNK_RECORDS) {
      const to = Math.min(n, from + CHUNK_RECORDS);
      // Decode and group by shard. `first` remembers the index of each group's first record:
      // if the hand-off stops before group g, every record before first[g] is settled (handed
      // over or reported corrupt) and reading resumes at first[g].
      const groups: ShardEntries[] = [];
      const first: number[] = [];
      let last: ShardEntries | null = null;
      for (let i = from; i < to; i++) {
        const entry = this.decode(topic, partition, records, i);
        if (entry === null) continue;
        let group: ShardEntries | undefined = last !== null && last.shard === entry.shard ? last : undefined;
        if (group === undefined) {
          for (let g = 0; g < groups.length; g++) {
            if (groups[g]!.shard === entry.shard) {
              group = groups[g];
              break;
            }
          }
        }
        if (group === undefined) {
          group = new ShardEntries(topic, partition, entry.shard, qb.highWatermark, records);
          groups.push(group);
          first.push(i);
        }
        group.entries.push(entry);
        group.at.push(i);
        last = group;
      }

      for (let g = 0; g < groups.length; g++) {
        // Sought elsewhere, revoked or stopping meanwhile: drop the rest.
        if (qb.generation !== this.generation(topic, partition) || !this.isAssigned(topic, partition) || !this.isRunning) return;
        // Paused: re-read from here after resume.
        if (this.isPaused(topic, partition)) return this.rewind(topic, partition, records.offset(first[g]!));
        const group = groups[g]!;
        try {
          await this.handlers.onEntries(group);
        } catch (err) {
          this.rewind(topic, partition, records.offset(first[g]!));
          const e = err instanceof Error ? err : new Error(String(err));
          this.backOff(topic, partition, new Error(`KafkaEntrySource: onEntries failed for shard "${group.shard}" at ${topic}/${partition}@${group.offsetOf(0)}; re-reading after a backoff: ${e.message}`, { cause: e }));
          return;
        }
        this.entriesDelivered += group.entries.length;
        this.noteDelivered(topic, partition, group.offsetOf(group.entries.length - 1), qb.highWatermark);
      }
      // Let the event loop run between chunks, not only between batches: the next fetched
      // batch is taken, and kafkajs (or its worker) told so, while this one is handed over.
      // Otherwise the worker waits for each batch's whole hand-off before it hands over the
      // next, and fetches again only after the last one: fetching and handing over alternate
      // instead of overlapping.
      if (to < n) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.batchesHandled++;
    this.succeeded(topic, partition);
    if (this.autoCommit) this.commitSoon(topic, partition, nextOffset(records.offset(n - 1)));
  }

  // Commits run beside the pipeline, one request at a time, the latest offset per partition:
  // waiting for each one would stall delivery for a round trip per batch.
  private commitSoon(topic: string, partition: number, offset: string): void {
    this.commitsPending.set(tp(topic, partition), { topic, partition, offset });
    if (this.committing === null) this.committing = this.commitLoop();
  }

  private async commitLoop(): Promise<void> {
    try {
      while (this.commitsPending.size > 0) {
        const batch = [...this.commitsPending.values()];
        this.commitsPending.clear();
        await this.commitAll(batch);
      }
    } finally {
      this.committing = null;
    }
  }

  private async flushCommits(): Promise<void> {
    while (this.committing !== null) await this.committing;
  }

  private decode(topic: string, partition: number, records: Records, i: number): Entry | null {
    const v = records.value(i);
    let error: PlayoutError;
    if (v === null || v.length === 0) {
      error = new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot decode the record at ${topic}/${partition}@${records.offset(i)}: it has no value (a tombstone?)`, {
        path: 'value',
        expected: 'entry bytes',
        received: v === null ? 'null' : '0 bytes',
      });
    } else {
      try {
        // The entry keeps a view of the fetched batch rather than a copy: entries are written
        // to the store and dropped, and copying every record costs the hot path.
        const entry = decodeEntry(v, 0, v.length, null, records.hashChecked(i));
        if (records.keyIs(i, entry.shard)) return entry;
        const key = records.keyText(i);
        const got = key === null ? 'no key' : `key "${key}"`;
        error = new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot accept entry ${entry.seq} of shard "${entry.shard}" at ${topic}/${partition}@${records.offset(i)}: the record key must be the shard, received ${got}`, {
          path: 'key',
          seq: entry.seq,
          shard: entry.shard,
          expected: entry.shard,
          received: got,
        });
      } catch (err) {
        if (!(err instanceof PlayoutError)) throw err;
        error = err;
      }
    }
    this.corruptRecords++;
    const offset = records.offset(i);
    const record: CorruptRecord = { topic, partition, offset, key: records.keyText(i), error };
    if (this.handlers.onCorrupt) this.handlers.onCorrupt(record);
    else console.error(`KafkaEntrySource: skipped corrupt record ${topic}/${partition}@${offset}: ${error.code} ${error.message}`);
    return null;
  }
}

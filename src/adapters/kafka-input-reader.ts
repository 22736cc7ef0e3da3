// KafkaInputReader: ingress from `playout.inputs` — game servers produce inputs to Kafka instead
// of POSTing them. The leader region's nodes read the topic as one consumer group.
//
// Record format (docs/kafka.md has examples in several clients):
//   key     = the shard id (required), UTF-8; partitioned with murmur2 like the Java client
//   value   = an input envelope, a JSON object or a msgpack map:
//               { "type": "player.move", "version": 1, "payload": { … },
//                 "ingestId": "client-idempotency-key" | null,   (optional)
//                 "origin": "game-server-7" | null,              (optional)
//                 "shard": "<same as the key>" }                 (optional)
//   headers = optional `content-type`: application/json or application/msgpack; without it a
//             value whose first non-blank byte is `{` is JSON, anything else msgpack
//
// Every record is validated before it can be sequenced: the key (a shard id, in the partition
// murmur2 gives it), the envelope (zod), then the payload against the shard's reducer
// (validateInput) when `reducerOf` is given — and the caller's Sequencer.submit validates again.
// An invalid input is written to `playout.inputs.rejected` with its reason and never sequenced.
//
// Commit: offsets advance only after `sequence` resolved (the caller sequenced the inputs and
// made them durable) and every rejected record was acknowledged by Kafka. A failure re-reads the
// records after a backoff, so an input may be offered twice: give inputs an ingestId and the
// Sequencer drops the second (at least once, idempotent by ingestId).
import type { EachBatchPayload, IHeaders, KafkaMessage, Producer } from 'kafkajs';
import { Unpackr } from 'msgpackr';
import { z } from 'zod';
import { PlayoutError, ShardIdSchema, assert, describe, validateInput, type Reducer } from '../core/index.js';
import { kafkaError, parseOptions } from './kafka-client.js';
import { GroupConsumerOptionsSchema, KafkaGroupConsumer, nextOffset, type GroupConsumerHandlers } from './kafka-group-consumer.js';
import { partitionOf } from './kafka-partition.js';
import { INPUTS_TOPIC, REJECTED_TOPIC, TopicNameSchema } from './kafka-topics.js';

export const KafkaInputReaderOptionsSchema = GroupConsumerOptionsSchema.extend({
  topic: TopicNameSchema.default(INPUTS_TOPIC),
  rejectedTopic: TopicNameSchema.default(REJECTED_TOPIC),
  /** Inputs handed to one `sequence` call at most (a fetched batch is split into chunks). */
  inputsPerCallMax: z.number().int().min(1).max(100_000).default(1_000),
  /** Reject an input whose shard does not hash to the partition it arrived on (docs/kafka.md). */
  checkPartition: z.boolean().default(true),
  /** Value size limit; larger records are rejected unread. */
  valueBytesMax: z.number().int().min(64).max(64 << 20).default(1 << 20),
});
export type KafkaInputReaderOptions = z.input<typeof KafkaInputReaderOptionsSchema>;

export const InputEnvelopeSchema = z.strictObject({
  shard: ShardIdSchema.optional(),
  type: z.string().min(1).max(128),
  version: z.number().int().min(1).max(0xffff),
  payload: z.unknown().refine((v) => v !== undefined, 'a payload (null when the input has none)'),
  ingestId: z.string().min(1).max(256).nullable().optional(),
  origin: z.string().min(1).max(64).nullable().optional(),
});
export type InputEnvelope = z.infer<typeof InputEnvelopeSchema>;

/** One validated input read from Kafka; its fields fit Sequencer.submit as they are. */
export class KafkaInput {
  readonly shard: string;
  readonly type: string;
  readonly version: number;
  readonly payload: unknown;
  readonly ingestId: string | null;
  readonly origin: string | null;
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** The record's timestamp (producer or broker clock); informational, never sequenced. */
  readonly timestampMs: number;
  readonly contentType: 'json' | 'msgpack';

  constructor(shard: string, env: InputEnvelope, payload: unknown, topic: string, partition: number, offset: string, timestampMs: number, contentType: 'json' | 'msgpack') {
    this.shard = shard;
    this.type = env.type;
    this.version = env.version;
    this.payload = payload;
    this.ingestId = env.ingestId ?? null;
    this.origin = env.origin ?? null;
    this.topic = topic;
    this.partition = partition;
    this.offset = offset;
    this.timestampMs = timestampMs;
    this.contentType = contentType;
  }
}

export type InputOutcome =
  | { readonly status: 'sequenced'; readonly seq: number }
  | { readonly status: 'duplicate'; readonly seq: number }
  | { readonly status: 'rejected'; readonly error: PlayoutError };

/** What is written to the rejected topic (JSON), key = the input's key. */
export interface RejectedInput {
  error: { code: string; message: string; path: string | null; expected: string | null; received: string | null };
  source: { topic: string; partition: number; offset: string; timestampMs: number };
  key: string | null;
  /** The original value, base64, so the input can be fixed and produced again. */
  value: string | null;
  contentType: 'json' | 'msgpack' | null;
  rejectedBy: string;
}

export interface KafkaInputReaderHandlers extends GroupConsumerHandlers {
  /**
   * Sequence the inputs (in order) and make them durable, then resolve with one outcome per
   * input. An input the sequencer refuses is `{ status: 'rejected', error }` (it goes to the
   * rejected topic). Throwing or rejecting means "try these again later" (store down, not the
   * leader yet …): nothing is committed and the records are read again after a backoff.
   */
  sequence(inputs: readonly KafkaInput[]): Promise<readonly InputOutcome[]>;
  /** The reducer that validates `shard`'s payloads; null rejects the input (no such shard). */
  reducerOf?(shard: string): Reducer | null;
  /** Each rejected input, after it was written to the rejected topic. */
  onRejected?(rejected: RejectedInput): void;
}

// Inputs are not canonical (any client writes them): plain msgpack, maps as objects, 64-bit
// integers as bigint so that an out-of-range integer fails validation instead of losing digits.
const inputUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'bigint', moreTypes: false, structuredClone: false });

function headerText(headers: IHeaders | undefined, name: string): string | null {
  if (!headers) return null;
  for (const k of Object.keys(headers)) {
    if (k.toLowerCase() !== name) continue;
    const v = headers[k];
    const one = Array.isArray(v) ? v[0] : v;
    return one === undefined ? null : one.toString();
  }
  return null;
}

function firstNonBlank(b: Buffer): number {
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return c;
  }
  return -1;
}

class Rejection {
  constructor(
    readonly message: KafkaMessage,
    readonly error: PlayoutError,
    readonly contentType: 'json' | 'msgpack' | null,
  ) {}
}

export class KafkaInputReader extends KafkaGroupConsumer {
  readonly topic: string;
  readonly rejectedTopic: string;
  private readonly handlers: KafkaInputReaderHandlers;
  private readonly options: z.output<typeof KafkaInputReaderOptionsSchema>;
  private producer: Producer | null = null;
  inputsSequenced = 0;
  inputsDuplicate = 0;
  inputsRejected = 0;

  constructor(options: KafkaInputReaderOptions, handlers: KafkaInputReaderHandlers) {
    const parsed = parseOptions(KafkaInputReaderOptionsSchema, options, 'KafkaInputReader');
    const { topic, rejectedTopic, inputsPerCallMax: _i, checkPartition: _c, valueBytesMax: _v, ...group } = parsed;
    super('KafkaInputReader', group, [topic], handlers);
    this.options = parsed;
    this.topic = topic;
    this.rejectedTopic = rejectedTopic;
    this.handlers = handlers;
  }

  override async start(): Promise<void> {
    if (!this.producer) {
      const producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
      try {
        await producer.connect();
      } catch (err) {
        throw kafkaError(err, 'KafkaInputReader: connect the rejected-topic producer', this.client.brokers);
      }
      this.producer = producer;
    }
    await super.start();
  }

  override async stop(): Promise<void> {
    await super.stop();
    const p = this.producer;
    this.producer = null;
    if (p) await p.disconnect().catch(() => undefined);
  }

  /** Validate one record: a KafkaInput, or the reason it is rejected. */
  parse(m: KafkaMessage, topic: string, partition: number): KafkaInput | Rejection {
    const at = `${topic}/${partition}@${m.offset}`;
    const reject = (code: PlayoutError['code'], why: string, path: string, expected: string, received: string, contentType: 'json' | 'msgpack' | null = null) =>
      new Rejection(m, new PlayoutError(code, `Cannot accept the input at ${at}: ${why}`, { path, expected, received }), contentType);

    if (m.key === null || m.key.length === 0) return reject('PLAYOUT_INPUT_INVALID', 'the record key must be the shard id, received no key', 'key', 'a shard id', 'no key');
    const shard = m.key.toString('utf8');
    const shardOk = ShardIdSchema.safeParse(shard);
    if (!shardOk.success) return reject('PLAYOUT_SHARD_ID_INVALID', `the record key must be a shard id [a-z0-9][a-z0-9._-]{0,63}, received ${describe(shard)}`, 'key', '[a-z0-9][a-z0-9._-]{0,63}', describe(shard));
    if (this.options.checkPartition) {
      const want = partitionOf(shard, this.partitionCount(topic));
      if (want !== partition) {
        return reject('PLAYOUT_INPUT_INVALID', `shard "${shard}" belongs in partition ${want} (murmur2 of the key, the Java client's default), received partition ${partition}; librdkafka clients need partitioner=murmur2_random`, 'key', `partition ${want}`, `partition ${partition}`);
      }
    }
    const v = m.value;
    if (v === null || v.length === 0) return reject('PLAYOUT_INPUT_INVALID', 'the record has no value', 'value', 'a JSON object or msgpack map', v === null ? 'null' : '0 bytes');
    if (v.length > this.options.valueBytesMax) return reject('PLAYOUT_INPUT_INVALID', `the value is ${v.length} bytes, more than the limit of ${this.options.valueBytesMax}`, 'value', `<= ${this.options.valueBytesMax} bytes`, `${v.length} bytes`);

    const declared = headerText(m.headers, 'content-type');
    let contentType: 'json' | 'msgpack';
    if (declared !== null) {
      const d = declared.toLowerCase().split(';')[0]!.trim();
      if (d === 'application/json') contentType = 'json';
      else if (d === 'application/msgpack' || d === 'application/x-msgpack' || d === 'application/vnd.msgpack') contentType = 'msgpack';
      else return reject('PLAYOUT_INPUT_INVALID', `unsupported content-type header "${declared}"`, 'headers.content-type', 'application/json or application/msgpack', declared);
    } else {
      contentType = firstNonBlank(v) === 0x7b ? 'json' : 'msgpack';
    }
    let raw: unknown;
    try {
      raw = contentType === 'json' ? JSON.parse(v.toString('utf8')) : inputUnpackr.unpack(v);
    } catch (err) {
      return reject('PLAYOUT_INPUT_INVALID', `the value is not valid ${contentType === 'json' ? 'JSON' : 'msgpack'}: ${(err as Error).message}`, 'value', contentType === 'json' ? 'a JSON object' : 'a msgpack map', `${v.length} bytes of invalid ${contentType}`, contentType);
    }
    const env = InputEnvelopeSchema.safeParse(raw);
    if (!env.success) {
      const issue = env.error.issues[0]!;
      const keys = issue.code === 'unrecognized_keys' ? (issue as { keys: string[] }).keys : [];
      const pathParts = [...issue.path.map(String), ...keys.slice(0, 1)];
      const path = ['value', ...pathParts].join('.');
      let received: unknown = raw;
      for (const k of pathParts) received = (received as Record<string, unknown> | null | undefined)?.[k];
      return reject('PLAYOUT_INPUT_INVALID', `${path}: ${issue.message}, received ${describe(received)}`, path, issue.message, describe(received), contentType);
    }
    const e = env.data;
    if (e.shard !== undefined && e.shard !== shard) return reject('PLAYOUT_INPUT_INVALID', `value.shard "${e.shard}" differs from the record key "${shard}"`, 'value.shard', shard, e.shard, contentType);
    let payload: unknown = e.payload;
    if (this.handlers.reducerOf) {
      const reducer = this.handlers.reducerOf(shard);
      if (reducer === null) return reject('PLAYOUT_SHARD_NOT_FOUND', `no shard "${shard}" is served here`, 'key', 'a shard served by this region', shard, contentType);
      try {
        payload = validateInput(reducer, e.type, e.version, e.payload, 'value.payload');
      } catch (err) {
        if (!(err instanceof PlayoutError)) throw err;
        return new Rejection(m, new PlayoutError(err.code, `Cannot accept the input at ${at}: ${err.message.replace(/^Cannot accept input /, '')}`, { path: err.path, expected: err.expected, received: err.received, shard, cause: err }), contentType);
      }
    }
    return new KafkaInput(shard, e, payload, topic, partition, m.offset, Number(m.timestamp), contentType);
  }

  protected async handleBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const { topic, partition } = batch;
    const messages = batch.messages;
    const chunk = this.options.inputsPerCallMax;
    for (let from = 0; from < messages.length; from += chunk) {
      if (payload.isStale()) return;
      if (!payload.isRunning() || this.isPaused(topic, partition)) {
        if (from > 0) payload.resolveOffset(messages[from - 1]!.offset);
        return;
      }
      const to = Math.min(from + chunk, messages.length);
      const valid: KafkaInput[] = [];
      const validMessages: KafkaMessage[] = [];
      const rejected: Rejection[] = [];
      for (let i = from; i < to; i++) {
        const r = this.parse(messages[i]!, topic, partition);
        if (r instanceof KafkaInput) {
          valid.push(r);
          validMessages.push(messages[i]!);
        } else rejected.push(r);
      }
      try {
        if (valid.length > 0) {
          const outcomes = await this.handlers.sequence(valid);
          assert(outcomes.length === valid.length, 'sequence returns one outcome per input');
          for (let i = 0; i < valid.length; i++) {
            const o = outcomes[i]!;
            if (o.status === 'sequenced') this.inputsSequenced++;
            else if (o.status === 'duplicate') this.inputsDuplicate++;
            else rejected.push(new Rejection(validMessages[i]!, o.error, valid[i]!.contentType));
          }
        }
        if (rejected.length > 0) await this.writeRejected(topic, partition, rejected);
      } catch (err) {
        if (from > 0) payload.resolveOffset(messages[from - 1]!.offset);
        const e = err instanceof Error ? err : new Error(String(err));
        this.backOff(topic, partition, new Error(`KafkaInputReader: inputs at ${topic}/${partition}@${messages[from]!.offset} are not sequenced yet; re-reading after a backoff: ${e.message}`, { cause: e }));
        return;
      }
      const lastOffset = messages[to - 1]!.offset;
      payload.resolveOffset(lastOffset);
      this.succeeded(topic, partition);
      await this.commit(topic, partition, nextOffset(lastOffset));
      await payload.heartbeat();
    }
  }

  private async writeRejected(topic: string, partition: number, rejected: readonly Rejection[]): Promise<void> {
    const producer = this.producer;
    assert(producer !== null, 'the rejected-topic producer is connected in start()');
    rejected = [...rejected].sort((a, b) => (BigInt(a.message.offset) < BigInt(b.message.offset) ? -1 : 1));
    const records: RejectedInput[] = rejected.map((r) => ({
      error: { code: r.error.code, message: r.error.message, path: r.error.path, expected: r.error.expected, received: r.error.received },
      source: { topic, partition, offset: r.message.offset, timestampMs: Number(r.message.timestamp) },
      key: r.message.key === null ? null : r.message.key.toString('utf8'),
      value: r.message.value === null ? null : r.message.value.toString('base64'),
      contentType: r.contentType,
      rejectedBy: this.client.clientId,
    }));
    await producer.send({
      topic: this.rejectedTopic,
      acks: -1,
      messages: records.map((rec) => ({
        key: rec.key,
        value: JSON.stringify(rec),
        headers: { 'content-type': 'application/json', 'playout-error-code': rec.error.code },
      })),
    });
    this.inputsRejected += records.length;
    if (this.handlers.onRejected) for (const rec of records) this.handlers.onRejected(rec);
  }
}

// Reading one shard's log back from a Kafka topic, for `playout replay kafka://…`, `verify`,
// `inspect` and `capture`.
//
//   kafka://host:port[,host:port…]/topic[?partition=N]
//
// The topic is a `playout.log` (or a MirrorMaker 2 mirror of one, `eu-fra.playout.log`). The
// shard's partition is murmur2(shard) % partitions, as KafkaLogPublisher wrote it, unless the
// URL names one. Reading stops at the partition's end offset captured when the read starts,
// so a live topic gives a consistent prefix and the call always ends.
//
// Kafka delivers at least once, so a topic may hold an entry twice: identical copies are
// dropped, two different entries with one seq are a fork (PLAYOUT_FORK), and the entries are
// returned in seq order. A record of the shard that is not a valid entry fails the read with
// its offset: replay never applies corrupt data. Gaps are left for the replayer's chain check.
//
// `openKafkaSource` makes such a topic a replay SOURCE for every tool (registered for
// `kafka:` in replay-source.ts): it reads the shard once when opened, then checks every pass
// link by link, so a gap fails with the first missing seq. Kafka holds no snapshot: the topic
// must still hold the shard's genesis entry (seq 1).
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ENTRY_FORMAT, HASH_NAME, PlayoutError, ShardIdSchema, decodeEntry, hashEquals, toHex, type Entry } from '../core/index.js';
import { createKafka, kafkaError, parseOptions, type KafkaClientOptions } from './kafka-client.js';
import { partitionOf } from './kafka-partition.js';
import { TopicNameSchema } from './kafka-topics.js';
import { pagedSource, startOf, type OpenOptions, type ReplaySource, type SourceInfo } from './replay-source.js';

export interface KafkaUrl {
  brokers: string[];
  topic: string;
  /** The partition named by `?partition=N`, or null (the shard's murmur2 partition). */
  partition: number | null;
}

const URL_RE = /^kafka:\/\/([^/?#]+)\/([^/?#]+)(?:\?([^#]*))?$/;

/** Parse `kafka://host:port[,host:port…]/topic[?partition=N]`; PLAYOUT_INVALID_ARGUMENT otherwise. */
export function parseKafkaUrl(url: string): KafkaUrl {
  const bad = (why: string, expected: string) =>
    new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot read ${JSON.stringify(url)}: ${why}`, { path: 'source', expected, received: url });
  const m = URL_RE.exec(url);
  if (!m) throw bad('expected kafka://host:port[,host:port…]/topic[?partition=N]', 'kafka://host:port/topic');
  const brokers = m[1]!.split(',');
  for (const b of brokers) {
    const hp = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$/.exec(b);
    if (!hp || Number(hp[2]) < 1 || Number(hp[2]) > 65535) throw bad(`broker "${b}" is not host:port`, 'host:port');
  }
  const topic = decodeURIComponent(m[2]!);
  if (!TopicNameSchema.safeParse(topic).success) throw bad(`"${topic}" is not a Kafka topic name`, '[a-zA-Z0-9._-]{1,249}');
  let partition: number | null = null;
  if (m[3] !== undefined && m[3] !== '') {
    for (const part of m[3].split('&')) {
      const [k, v = ''] = part.split('=');
      if (k === 'partition' && /^(0|[1-9][0-9]{0,4})$/.test(v)) partition = Number(v);
      else throw bad(`unknown or invalid query parameter "${part}"`, 'partition=N');
    }
  }
  return { brokers, topic, partition };
}

export const ReadShardFromKafkaOptionsSchema = z.strictObject({
  /** Read this partition instead of the shard's murmur2 partition (overrides the URL's). */
  partition: z.number().int().min(0).optional(),
  /** Fail with PLAYOUT_KAFKA_UNAVAILABLE when no record arrives for this long. */
  stallMsMax: z.number().int().min(100).max(3_600_000).default(30_000),
  clientId: z.string().min(1).max(128).default('playout-replay'),
  logLevel: z.enum(['nothing', 'error', 'warn', 'info', 'debug']).default('nothing'),
  connectionTimeoutMs: z.number().int().positive().default(3_000),
});
export type ReadShardFromKafkaOptions = z.input<typeof ReadShardFromKafkaOptionsSchema> & {
  /** Progress: records of the partition read so far, and how many there are to read. */
  onProgress?: (read: number, total: number) => void;
};

function keyIs(key: Buffer | null, shard: string): boolean {
  if (key === null || key.length !== shard.length) return false;
  for (let i = 0; i < key.length; i++) if (key[i] !== shard.charCodeAt(i)) return false;
  return true;
}

/**
 * Every entry of `shard` in the topic at `url` up to the end offsets captured at the start, in
 * seq order, decoded and verified, duplicates removed.
 */
export async function readShardFromKafka(url: string, shard: string, options: ReadShardFromKafkaOptions = {}): Promise<Entry[]> {
  const { onProgress, ...rest } = options;
  const opts = parseOptions(ReadShardFromKafkaOptionsSchema, rest, 'readShardFromKafka');
  const src = parseKafkaUrl(url);
  if (!ShardIdSchema.safeParse(shard).success) {
    throw new PlayoutError('PLAYOUT_SHARD_ID_INVALID', `Cannot read shard ${JSON.stringify(shard)} from ${url}: expected [a-z0-9][a-z0-9._-]{0,63}`, { path: 'shard', expected: '[a-z0-9][a-z0-9._-]{0,63}', received: shard });
  }
  const clientOptions: KafkaClientOptions = { brokers: src.brokers, clientId: opts.clientId, logLevel: opts.logLevel, connectionTimeoutMs: opts.connectionTimeoutMs, retriesMax: 3 };
  const { kafka } = createKafka(clientOptions, 'readShardFromKafka');
  const { topic } = src;

  // End offsets first: everything below them is the log to replay.
  const admin = kafka.admin();
  let partition: number;
  let low: bigint;
  let high: bigint;
  try {
    await admin.connect();
    const topics = await admin.listTopics();
    if (!topics.includes(topic)) {
      throw new PlayoutError('PLAYOUT_SOURCE_NOT_FOUND', `Cannot read ${url}: topic "${topic}" does not exist on ${src.brokers.join(',')}`, { path: 'source', expected: 'an existing topic', received: topic });
    }
    const offsets = await admin.fetchTopicOffsets(topic);
    const count = offsets.length;
    partition = opts.partition ?? src.partition ?? partitionOf(shard, count);
    if (partition >= count) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot read ${url}: partition ${partition} does not exist (the topic has ${count})`, { path: 'partition', expected: `0..${count - 1}`, received: String(partition) });
    }
    const p = offsets.find((o) => o.partition === partition)!;
    low = BigInt(p.low);
    high = BigInt(p.high);
  } catch (err) {
    throw kafkaError(err, `read the offsets of ${url}`, src.brokers);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  const total = Number(high - low);
  if (total === 0) throw notFound(url, shard, partition);

  // kafkajs reads only through consumer groups: a throwaway group, deleted afterwards.
  const groupId = `playout-replay-${randomUUID()}`;
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200, allowAutoTopicCreation: false, retry: { retries: 3 } });
  const bySeq = new Map<number, Entry>();
  let read = 0;
  let lastProgressAt = Date.now();
  let failure: unknown = null;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const fail = (err: unknown) => {
    if (failure === null) failure = err;
    finish();
  };

  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    consumer.on(consumer.events.CRASH, (e) => fail(kafkaError(e.payload.error, `read ${url}`, src.brokers)));
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      const others = (e.payload.memberAssignment[topic] ?? []).filter((p) => p !== partition);
      if (others.length > 0) consumer.pause([{ topic, partitions: others }]);
    });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        if (batch.partition !== partition || failure !== null) return;
        for (const m of batch.messages) {
          const offset = BigInt(m.offset);
          if (offset >= high) break;
          read++;
          if (!keyIs(m.key, shard)) continue;
          const at = `${topic}/${partition}@${m.offset}`;
          let entry: Entry;
          try {
            if (m.value === null || m.value.length === 0) throw new PlayoutError('PLAYOUT_ENTRY_MALFORMED', 'the record has no value', { path: 'value', expected: 'entry bytes', received: 'no value' });
            entry = decodeEntry(m.value, 0, m.value.length);
          } catch (err) {
            const e = err as PlayoutError;
            return fail(new PlayoutError(e.code ?? 'PLAYOUT_ENTRY_MALFORMED', `Cannot replay shard "${shard}" from ${url}: the record at ${at} is corrupt: ${e.message}`, { seq: e.seq, shard, path: e.path, expected: e.expected, received: e.received, cause: err }));
          }
          if (entry.shard !== shard) {
            return fail(new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot replay shard "${shard}" from ${url}: the record at ${at} has key "${shard}" but holds entry ${entry.seq} of shard "${entry.shard}"`, { seq: entry.seq, shard, path: 'key', expected: shard, received: entry.shard }));
          }
          const seen = bySeq.get(entry.seq);
          if (seen === undefined) bySeq.set(entry.seq, entry);
          else if (!hashEquals(seen.hash, entry.hash)) {
            return fail(new PlayoutError('PLAYOUT_FORK', `Cannot replay shard "${shard}" from ${url}: entry ${entry.seq} appears twice with different hashes (${toHex(seen.hash)}, then ${toHex(entry.hash)} at ${at})`, { seq: entry.seq, shard, expected: toHex(seen.hash), received: toHex(entry.hash) }));
          }
        }
        lastProgressAt = Date.now();
        onProgress?.(read, total);
        if (BigInt(batch.lastOffset()) >= high - 1n) finish();
      },
    });
    const stallTimer = setInterval(() => {
      if (Date.now() - lastProgressAt > opts.stallMsMax) {
        fail(new PlayoutError('PLAYOUT_KAFKA_UNAVAILABLE', `Cannot replay shard "${shard}" from ${url}: no record arrived for ${opts.stallMsMax} ms (read ${read} of ${total})`, { expected: `${total} records`, received: `${read} records` }));
      }
    }, Math.min(1_000, opts.stallMsMax));
    try {
      await done;
    } finally {
      clearInterval(stallTimer);
    }
  } catch (err) {
    fail(kafkaError(err, `read ${url}`, src.brokers));
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await deleteGroup(kafka, groupId);
  }
  if (failure !== null) throw failure;
  if (bySeq.size === 0) throw notFound(url, shard, partition);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

function notFound(url: string, shard: string, partition: number): PlayoutError {
  return new PlayoutError('PLAYOUT_SHARD_NOT_FOUND', `Cannot replay shard "${shard}" from ${url}: partition ${partition} holds no entry of it`, { shard, path: 'shard', expected: `entries of "${shard}"`, received: 'none' });
}

async function deleteGroup(kafka: ReturnType<typeof createKafka>['kafka'], groupId: string): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.deleteGroups([groupId]);
  } catch {
    // Best effort: an empty group without offsets expires on its own.
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** A Kafka topic as a replay SOURCE: `kafka://host:port[,host:port…]/topic[?partition=N]` with `--shard`. */
export async function openKafkaSource(spec: string, _location: string, options: OpenOptions, read: ReadShardFromKafkaOptions = {}): Promise<ReplaySource> {
  const url = parseKafkaUrl(spec);
  const shard = options.shard;
  if (shard == null) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot open source ${spec}: a Kafka topic holds many shards; pass --shard`, { path: '--shard', expected: 'a shard id', received: 'no --shard' });
  }
  const entries = await readShardFromKafka(spec, shard, read);
  const where = `shard "${shard}" of ${spec}`;
  const first = entries[0]!;
  if (first.seq !== 1) {
    throw new PlayoutError('PLAYOUT_RANGE_NOT_RETAINED', `Cannot replay ${where}: the topic holds its entries from seq ${first.seq} on (older ones are past the topic's retention) and Kafka keeps no snapshot; replay from a region's store or capture it over http:// with --from-snapshot`, {
      shard,
      seq: first.seq,
      path: 'SOURCE',
      expected: 'entries from seq 1',
      received: `entries from seq ${first.seq}`,
    });
  }
  const start = startOf(where, shard, first, null);
  const info: SourceInfo = {
    spec,
    kind: 'kafka',
    location: `kafka://${url.brokers.join(',')}/${url.topic}`,
    shard,
    ...start,
    engineVersion: null,
    entryFormat: ENTRY_FORMAT,
    hash: HASH_NAME,
    createdBy: null,
    description: `topic ${url.topic}, ${entries.length} entries of the shard when opened`,
    firstSeq: 1,
    snapshot: null,
    bytes: null,
  };
  return pagedSource(info, null, where, entries.length, () => oneBatch(entries), async () => undefined);
}

async function* oneBatch(entries: Entry[]): AsyncGenerator<Entry[], void, undefined> {
  yield entries;
}

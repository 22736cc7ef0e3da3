// Playout's Kafka topics and their creation (explicit partition counts, never auto-created).
//
//   playout.log              entries, key = shard, value = Entry.bytes (see kafka-log-publisher.ts)
//   playout.inputs           inputs from game servers, key = shard (see kafka-input-reader.ts)
//   playout.inputs.rejected  invalid inputs with the reason, key = the input's key
//   <alias>.playout.log      a MirrorMaker 2 mirror of another region's playout.log
//                            (DefaultReplicationPolicy: source cluster alias + "." + topic)
//
// The partition count is part of the contract: a shard lives in partition
// murmur2(shard) % partitions (kafka-partition.ts), so changing it moves shards between
// partitions and consumer-group members. ensureTopics refuses a topic whose count differs.
import type { ITopicConfig } from 'kafkajs';
import { z } from 'zod';
import { PlayoutError } from '../core/index.js';
import { createKafka, kafkaError, parseOptions, type KafkaClientOptions } from './kafka-client.js';

export const LOG_TOPIC = 'playout.log';
export const INPUTS_TOPIC = 'playout.inputs';
export const REJECTED_TOPIC = 'playout.inputs.rejected';

// Kafka's own rule for topic names (org.apache.kafka.common.internals.Topic).
export const TopicNameSchema = z
  .string()
  .regex(/^[a-zA-Z0-9._-]{1,249}$/, 'a Kafka topic name: [a-zA-Z0-9._-]{1,249}')
  .refine((t) => t !== '.' && t !== '..', 'a Kafka topic name other than "." and ".."');

/** The name MirrorMaker 2's default replication policy gives `topic` mirrored from cluster `sourceAlias`. */
export function mirrorTopic(sourceAlias: string, topic: string = LOG_TOPIC, separator = '.'): string {
  return `${sourceAlias}${separator}${topic}`;
}

export const TopicSpecSchema = z.strictObject({
  topic: TopicNameSchema,
  partitions: z.number().int().min(1).max(10_000),
  replicationFactor: z.number().int().min(1).max(32).default(1),
  /** Topic configs, e.g. { 'retention.ms': '604800000', 'min.insync.replicas': '2' }. */
  configs: z.record(z.string(), z.string()).default({}),
});
export type TopicSpec = z.input<typeof TopicSpecSchema>;

export interface EnsureTopicsResult {
  created: string[];
  existing: string[];
}

/**
 * Create the topics that do not exist, with their partition counts, and check that those that
 * exist have the same partition count (PLAYOUT_KAFKA_TOPIC_MISMATCH otherwise). Waits until
 * every created partition has a leader.
 */
export async function ensureTopics(client: KafkaClientOptions, specs: readonly TopicSpec[]): Promise<EnsureTopicsResult> {
  const parsed = parseOptions(z.array(TopicSpecSchema).min(1), specs, 'ensureTopics');
  const { kafka, config } = createKafka(client, 'ensureTopics');
  const admin = kafka.admin();
  try {
    await admin.connect();
    const names = new Set(await admin.listTopics());
    const missing = parsed.filter((s) => !names.has(s.topic));
    if (missing.length > 0) {
      const topics: ITopicConfig[] = missing.map((s) => ({
        topic: s.topic,
        numPartitions: s.partitions,
        replicationFactor: s.replicationFactor,
        configEntries: Object.entries(s.configs).map(([name, value]) => ({ name, value })),
      }));
      try {
        await admin.createTopics({ topics, waitForLeaders: true });
      } catch (err) {
        // Another node may have created it between listTopics and createTopics: that is fine,
        // the partition check below decides.
        if ((err as { type?: string }).type !== 'TOPIC_ALREADY_EXISTS') throw err;
      }
    }
    const metadata = await admin.fetchTopicMetadata({ topics: parsed.map((s) => s.topic) });
    for (const spec of parsed) {
      const meta = metadata.topics.find((t) => t.name === spec.topic);
      const count = meta?.partitions.length ?? 0;
      if (count !== spec.partitions) {
        throw new PlayoutError(
          'PLAYOUT_KAFKA_TOPIC_MISMATCH',
          `Cannot use topic "${spec.topic}" on ${config.brokers.join(',')}: expected ${spec.partitions} partitions, received ${count}; shards would map to other partitions (change the config or recreate the topic)`,
          { path: `${spec.topic}.partitions`, expected: String(spec.partitions), received: String(count) },
        );
      }
    }
    return { created: missing.map((s) => s.topic), existing: parsed.filter((s) => names.has(s.topic)).map((s) => s.topic) };
  } catch (err) {
    throw kafkaError(err, 'create topics', config.brokers);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** The partition count of a topic, or PLAYOUT_SOURCE_NOT_FOUND when it does not exist. */
export async function topicPartitionCount(client: KafkaClientOptions, topic: string): Promise<number> {
  const { kafka, config } = createKafka(client, 'topicPartitionCount');
  const admin = kafka.admin();
  try {
    await admin.connect();
    const names = await admin.listTopics();
    if (!names.includes(topic)) {
      throw new PlayoutError('PLAYOUT_SOURCE_NOT_FOUND', `Cannot read topic "${topic}" on ${config.brokers.join(',')}: it does not exist`, {
        path: 'topic',
        expected: 'an existing topic',
        received: topic,
      });
    }
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    return meta.topics[0]!.partitions.length;
  } catch (err) {
    throw kafkaError(err, `read the metadata of topic "${topic}"`, config.brokers);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

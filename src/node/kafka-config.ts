// The optional `kafka` section of a region config (docs/kafka.md, "Region config").
//
// Kafka is an extra transport beside HTTP: a region may publish the log of the shards it leads
// to `playout.log` in its own cluster, read other regions' logs from their clusters or from
// MirrorMaker 2 mirrors in its own, and read inputs from `playout.inputs`. Every part is off
// unless configured, and none of them is on the path of sequencing or acknowledgement.
import { z } from 'zod';
import { KafkaClientOptionsSchema } from '../adapters/kafka-client.js';
import { LOG_TOPIC, TopicNameSchema } from '../adapters/kafka-topics.js';

const Brokers = KafkaClientOptionsSchema.shape.brokers;
const GroupId = z.string().min(1).max(255).regex(/^[a-zA-Z0-9._-]+$/, 'a consumer group id: [a-zA-Z0-9._-]');

export const KafkaConsumeConfigSchema = z.strictObject({
  /** The cluster to read from (default: this region's `kafka.brokers`). */
  brokers: Brokers.optional(),
  /** `playout.log` in the leader's cluster, or its MirrorMaker 2 mirror here, e.g. `eu-fra.playout.log`. */
  topic: TopicNameSchema.default(LOG_TOPIC),
  /** The consumer group of this region's nodes for this topic. */
  groupId: GroupId,
  /**
   * `all`: this node follows every shard it holds and feeds it what this topic carries.
   * `assigned`: the region's nodes share the followed shards as one consumer group (partition =
   * shard group): a node holds a followed shard only while the group assigns it the partition
   * holding it. When a node leaves (or dies: after `sessionTimeoutMs`), another is assigned its
   * partitions and opens their shards from its own store, re-reading from where that store
   * ends, or from the group's offset with the gap repaired over HTTP (or from a snapshot).
   */
  shards: z.enum(['all', 'assigned']).default('all'),
  /** A member without a heartbeat for this long is presumed dead and its partitions move (the broker's minimum is 6000). */
  sessionTimeoutMs: z.number().int().min(1_000).max(3_600_000).default(30_000),
  heartbeatIntervalMs: z.number().int().min(100).max(60_000).default(3_000),
});
export type KafkaConsumeConfig = z.output<typeof KafkaConsumeConfigSchema>;

export const KafkaNodeConfigSchema = z.strictObject({
  /** This region's cluster, `host:port` bootstrap brokers. */
  brokers: Brokers,
  clientId: z.string().min(1).max(128).default('playout'),
  /** Publish the log of the shards this region leads to `publishTopic` in this region's cluster. */
  publish: z.boolean().default(false),
  publishTopic: TopicNameSchema.default(LOG_TOPIC),
  /**
   * After a start, entries already in the store are published again from at most this many
   * below the head: the publisher does not know what reached Kafka before the restart, and
   * followers drop duplicates, while anything older they repair over HTTP.
   */
  republishEntriesMax: z.number().int().nonnegative().default(10_000),
  /** Where the log of the shards this region follows is read (none: HTTP only). */
  consume: z.array(KafkaConsumeConfigSchema).default([]),
  /**
   * Also open the leader's HTTP stream for followed shards. With false, entries arrive through
   * Kafka only; HTTP still serves repairs (gaps, and stalls seen in peers' status).
   */
  httpStream: z.boolean().default(true),
  /** Read `playout.inputs` from this region's cluster and sequence inputs of the shards led here. */
  inputs: z.boolean().default(false),
  inputsGroupId: GroupId.optional(),
  /**
   * Create the topics this node uses with this partition count when they do not exist (and
   * refuse ones that exist with another count). Absent: the topics must exist.
   */
  partitions: z.number().int().min(1).max(10_000).optional(),
  /** Backoff between attempts to reach Kafka (connect, publish, join), doubling up to retryDelayMsMax. */
  retryDelayMs: z.number().int().min(1).max(60_000).default(500),
  retryDelayMsMax: z.number().int().min(1).max(600_000).default(10_000),
}).refine((k) => k.consume.filter((c) => c.shards === 'assigned').length <= 1, {
  path: ['consume'],
  message: 'at most one consume entry may have shards: assigned (it decides which followed shards this node holds)',
});
export type KafkaNodeConfig = z.output<typeof KafkaNodeConfigSchema>;

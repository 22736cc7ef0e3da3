// Two region nodes, each with its own real Kafka cluster, replicating one shard through Kafka:
// the leader (eu-fra) publishes its durable entries to playout.log in its cluster and sequences
// inputs read from playout.inputs there; the follower (af-jnb) reads playout.log from eu-fra's
// cluster (a `consume` entry with its own brokers; its own cluster is its `kafka.brokers`);
// the follower has its HTTP stream off (kafka.httpStream: false), so entries reach it
// only through Kafka, and HTTP serves repairs only. Then the follower's Kafka consumer is
// paused: it repairs the missing range over HTTP from the leader, and after the consumer
// resumes, the late Kafka entries are dropped as duplicates. Digests must be identical at every
// common tick, and no input sequenced twice.
import { Kafka, Partitioners, logLevel, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpPeerClient } from '../../src/adapters/http-peer-client.js';
import type { RejectedInput } from '../../src/adapters/kafka-input-reader.js';
import { REJECTED_TOPIC } from '../../src/adapters/kafka-topics.js';
import { LoadGenerator } from '../../src/games/treasure-hunt/index.js';
import { checkShard } from '../../src/node/cluster-check.js';
import type { RegionNode } from '../../src/node/region-node.js';
import { adminClient, startNode, writeClusterConfigs, type ClusterFiles } from '../helpers/cluster.js';
import { kafkaComponent, startKafka, waitFor, type KafkaCluster } from '../helpers/kafka.js';
import { rmSync } from 'node:fs';

const c = kafkaComponent();
const LEADER = 'eu-fra';
const FOLLOWER = 'af-jnb';
const SHARD = 'hunt-1';
const SEED = Number(process.env.PLAYOUT_SEED ?? 20261122);

describe.skipIf(c.skip)('region nodes replicating through Kafka', () => {
  let kafka: KafkaCluster;
  let kafkaJnb: KafkaCluster;
  let files: ClusterFiles;
  let leader: RegionNode;
  let follower: RegionNode;
  let producer: Producer;
  const clients = new Map<string, HttpPeerClient>();
  const gen = new LoadGenerator({ seed: SEED, players: 50, inputsPerTick: 10 });
  let genTick = 0;
  let produced = 0;

  /** Produce `ticks` generated batches to playout.inputs, one batch every 25 ms. */
  async function produceLoad(ticks: number): Promise<void> {
    for (let t = 0; t < ticks; t++) {
      const batch = gen.next(genTick++);
      await producer.send({
        topic: 'playout.inputs',
        acks: -1,
        messages: batch.map((i) => ({ key: SHARD, value: JSON.stringify({ type: i.type, version: i.version, payload: i.payload, ingestId: i.ingestId }) })),
      });
      produced += batch.length;
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  const slot = (n: RegionNode) => n.shards.get(SHARD)!;
  const counters = () => slot(follower).follower!.follower.status().counters;

  beforeAll(async () => {
    c.require();
    console.log(`reproduce with seed=${SEED} (PLAYOUT_SEED)`);
    [kafka, kafkaJnb] = await Promise.all([startKafka({ name: 'kafkanode-fra' }), startKafka({ name: 'kafkanode-jnb' })]);
    files = await writeClusterConfigs({ regions: [LEADER, FOLLOWER], shards: [{ id: SHARD, leader: LEADER, tickMs: 50 }] });
    files.configs[LEADER]!.kafka = { brokers: kafka.brokers, publish: true, inputs: true, partitions: 3, retryDelayMs: 200, retryDelayMsMax: 1_000 };
    // A long repair delay: while Kafka keeps the follower moving, nothing is repaired over HTTP.
    files.configs[FOLLOWER]!.repair = { delayMs: 2_000 };
    files.configs[FOLLOWER]!.kafka = { brokers: kafkaJnb.brokers, consume: [{ brokers: kafka.brokers, topic: 'playout.log', groupId: `playout.log.${FOLLOWER}` }], httpStream: false, retryDelayMs: 200, retryDelayMsMax: 1_000 };
    leader = await startNode(files, LEADER);
    await waitFor('the leader publishing to Kafka', () => (leader.kafka!.lastPublished(SHARD) !== null ? true : undefined), 60_000);
    follower = await startNode(files, FOLLOWER);
    for (const [r, n] of [[LEADER, leader], [FOLLOWER, follower]] as const) clients.set(r, adminClient(r, n.url));
    const k = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING });
    producer = k.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
  }, 150_000);

  afterAll(async () => {
    await producer?.disconnect().catch(() => undefined);
    for (const cl of clients.values()) await cl.close().catch(() => undefined);
    await follower?.close().catch(() => undefined);
    await leader?.close().catch(() => undefined);
    await Promise.all([kafka?.stop().catch(() => undefined), kafkaJnb?.stop().catch(() => undefined)]);
    if (files) rmSync(files.dir, { recursive: true, force: true });
  }, 60_000);

  it('the follower is fed by Kafka alone (no HTTP stream), with identical digests', async () => {
    await waitFor('the follower to catch up from Kafka', () => (slot(follower).host.durableSeq >= leader.kafka!.lastPublished(SHARD)! ? true : undefined), 60_000);
    const repairedBefore = counters().entriesRepaired;
    const deliveredBefore = follower.kafka!.sources[0]!.entriesDelivered;
    await produceLoad(40);
    await waitFor('every produced input sequenced', () => (slot(leader).leader!.sequenced + slot(leader).leader!.duplicates >= produced ? true : undefined), 30_000);
    const head = slot(leader).host.durableSeq;
    await waitFor('the follower at the leader head', () => (slot(follower).host.durableSeq >= head ? true : undefined), 30_000);
    const delivered = follower.kafka!.sources[0]!.entriesDelivered - deliveredBefore;
    // Inputs went through the Kafka ingress into the log; the follower got them from Kafka.
    expect(slot(leader).leader!.sequenced).toBeGreaterThan(0);
    expect(counters().entriesRepaired - repairedBefore).toBe(0);
    expect(delivered).toBeGreaterThanOrEqual(produced / 2);
    const check = await checkShard(SHARD, clients, new Map());
    console.log(check.lines.join('\n'));
    expect(check.ok, check.lines.join('\n')).toBe(true);
    expect(check.commonTicks).toBeGreaterThan(20);

    // Kafka progress in GET /v1/status and /metrics: the leader's last published seq, the
    // follower's partition read to the end.
    await waitFor('the leader\'s status to show its head published', async () => {
      const row = (await clients.get(LEADER)!.nodeStatus()).shards.find((r) => r.shard === SHARD)!;
      return row.kafka?.published === row.head && row.kafka.publishLagEntries === 0 ? row : undefined;
    }, 30_000);
    const fRow = await waitFor('the follower\'s status to show its partition read to the end', async () => {
      const row = (await clients.get(FOLLOWER)!.nodeStatus()).shards.find((r) => r.shard === SHARD)!;
      return row.kafka?.consumed[0]?.lagOffsets === 0 ? row : undefined;
    }, 30_000);
    expect(fRow.kafka!.consumed[0]).toMatchObject({ topic: 'playout.log', partition: follower.kafka!.sources[0]!.partitionOfShard(SHARD) });
    expect(fRow.kafka!.published).toBeNull();
    const metrics = (await follower.metricsText()).body;
    expect(metrics).toMatch(new RegExp(`playout_kafka_consumer_lag_offsets\\{[^}]*topic="playout.log",partition="${fRow.kafka!.consumed[0]!.partition}"[^}]*\\} 0`));
    expect((await leader.metricsText()).body).toMatch(new RegExp(`playout_kafka_published_seq\\{[^}]*shard="${SHARD}"[^}]*\\} [1-9]`));
  }, 90_000);

  it('a paused Kafka consumer: the follower repairs the range over HTTP, then drops the late Kafka duplicates', async () => {
    const source = follower.kafka!.sources[0]!;
    const before = { ...counters() };
    source.pause();
    await produceLoad(40); // about two seconds of load while Kafka delivers nothing
    const head = slot(leader).host.durableSeq;
    // The stalled consumer's lag shows in the status (high watermarks read from the broker).
    const partition = source.partitionOfShard(SHARD);
    const stalled = await waitFor('the paused consumer\'s lag in the status', () => follower.shardStatus(SHARD).kafka!.consumed.find((c) => c.partition === partition && (c.lagOffsets ?? 0) > 0), 20_000);
    expect(stalled.lagOffsets).toBeGreaterThan(0);
    await waitFor('the follower to repair over HTTP up to the leader head', () => (slot(follower).host.durableSeq >= head ? true : undefined), 30_000);
    const repaired = counters().entriesRepaired - before.entriesRepaired;
    expect(repaired).toBeGreaterThan(0);
    const duplicatesBefore = counters().duplicates;
    const deliveredBefore = source.entriesDelivered;
    source.resume();
    await waitFor('the late Kafka entries to arrive', () => (source.entriesDelivered - deliveredBefore >= repaired ? true : undefined), 30_000);
    // Those entries were already repaired: dropped by seq and hash, no fork, no stop.
    expect(counters().duplicates - duplicatesBefore).toBeGreaterThanOrEqual(repaired);
    expect(slot(follower).host.stopped).toBeNull();
    expect(slot(follower).host.quarantine).toBeNull();
    const check = await checkShard(SHARD, clients, new Map());
    console.log(`repaired ${repaired} entries over HTTP, dropped ${counters().duplicates - duplicatesBefore} late Kafka duplicates`);
    console.log(check.lines.join('\n'));
    expect(check.ok, check.lines.join('\n')).toBe(true);
  }, 90_000);

  it('an invalid input from Kafka lands in playout.inputs.rejected with its reason and is never sequenced', async () => {
    const sequencedBefore = slot(leader).leader!.sequenced;
    await producer.send({ topic: 'playout.inputs', acks: -1, messages: [{ key: SHARD, value: JSON.stringify({ type: 'no.such.input', version: 1, payload: {}, ingestId: 'bad-1' }) }] });
    const k = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING });
    const consumer = k.consumer({ groupId: `test-rejected-${SEED}` });
    const seen: RejectedInput[] = [];
    try {
      await consumer.connect();
      await consumer.subscribe({ topic: REJECTED_TOPIC, fromBeginning: true });
      await consumer.run({ eachMessage: async ({ message }) => void seen.push(JSON.parse(message.value!.toString('utf8')) as RejectedInput) });
      const r = await waitFor('the rejected record', () => seen.find((x) => Buffer.from(x.value ?? '', 'base64').toString('utf8').includes('bad-1')), 30_000);
      expect(r.key).toBe(SHARD);
      expect(r.error.code).toMatch(/^PLAYOUT_/);
      expect(r.error.message).toContain('no.such.input');
    } finally {
      await consumer.disconnect().catch(() => undefined);
    }
    expect(slot(leader).leader!.sequenced).toBe(sequencedBefore);
  }, 60_000);
});

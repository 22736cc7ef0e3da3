// Two regions, each with its own Kafka cluster, and MirrorMaker 2 (dedicated mode, from the
// same Maven jars) mirroring eu-fra's playout.log into af-jnb as `eu-fra.playout.log`. The
// follower region reads the mirror; MirrorMaker killed with SIGKILL and restarted re-mirrors
// what it had not committed, and the duplicates reach the source as they are. Then the same
// through region nodes configured for it: the leader node publishes to its cluster, the
// follower node's `kafka.consume` reads `eu-fra.playout.log` from its own cluster (HTTP stream
// off), MirrorMaker is killed and restarted again, and the follower drops the duplicates.
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex, type Entry } from '../../src/core/index.js';
import { KafkaEntrySource } from '../../src/adapters/kafka-entry-source.js';
import { KafkaLogPublisher } from '../../src/adapters/kafka-log-publisher.js';
import { partitionOf } from '../../src/adapters/kafka-partition.js';
import { readShardFromKafka } from '../../src/adapters/kafka-replay-source.js';
import { LOG_TOPIC, ensureTopics, mirrorTopic } from '../../src/adapters/kafka-topics.js';
import { kafkaComponent, removeMirrorMakerDir, startKafka, startMirrorMaker, waitFor, type KafkaCluster, type MirrorMaker } from '../helpers/kafka.js';
import { makeLog, replayDigests } from './fixtures/counter-log.js';
import { rmSync } from 'node:fs';
import type { HttpPeerClient } from '../../src/adapters/http-peer-client.js';
import { LoadGenerator } from '../../src/games/treasure-hunt/index.js';
import { checkShard } from '../../src/node/cluster-check.js';
import type { RegionNode } from '../../src/node/region-node.js';
import { adminClient, startNode, writeClusterConfigs, type ClusterFiles } from '../helpers/cluster.js';

const kafka = kafkaComponent();
const SEED = Number(process.env.SEED ?? Math.floor(Math.random() * 2 ** 31));
const PARTITIONS = 3;

describe.skipIf(kafka.skip)('replication through a MirrorMaker 2 mirror between two clusters', () => {
  let fra: KafkaCluster;
  let jnb: KafkaCluster;
  let mm: MirrorMaker | null = null;
  let source: KafkaEntrySource | null = null;
  let publisher: KafkaLogPublisher | null = null;

  beforeAll(async () => {
    kafka.require();
    console.log(`kafka-mirror.int: reproduce with seed=${SEED}`);
    [fra, jnb] = await Promise.all([startKafka({ name: 'eu-fra' }), startKafka({ name: 'af-jnb' })]);
    await ensureTopics({ brokers: fra.brokers, logLevel: 'nothing' }, [{ topic: LOG_TOPIC, partitions: PARTITIONS }]);
  });

  let files: ClusterFiles | null = null;
  let leader: RegionNode | null = null;
  let follower: RegionNode | null = null;
  const clients = new Map<string, HttpPeerClient>();

  afterAll(async () => {
    for (const cl of clients.values()) await cl.close().catch(() => undefined);
    await follower?.close().catch(() => undefined);
    await leader?.close().catch(() => undefined);
    if (files) rmSync(files.dir, { recursive: true, force: true });
    await source?.stop();
    await publisher?.close();
    if (mm) {
      await mm.stop();
      removeMirrorMakerDir(mm);
    }
    await Promise.all([fra?.stop(), jnb?.stop()]);
  });

  it('a follower region reads the mirror, duplicates from a MirrorMaker restart included, and replays to the leader\'s digests', async () => {
    const logs = ['hunt-1', 'hunt-2', 'hunt-3', 'hunt-4'].map((s, i) => makeLog(s, SEED + i, 20));
    const half = (l: (typeof logs)[number]) => Math.floor(l.entries.length / 2);
    publisher = new KafkaLogPublisher({ client: { brokers: fra.brokers, logLevel: 'nothing' } });
    await Promise.all(logs.map((l) => publisher!.publish(l.entries.slice(0, half(l)))));

    mm = await startMirrorMaker({ source: { alias: 'eu-fra', cluster: fra }, target: { alias: 'af-jnb', cluster: jnb } });
    const mirror = mirrorTopic('eu-fra');
    expect(mirror).toBe('eu-fra.playout.log');
    const admin = new Kafka({ brokers: jnb.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      await waitFor('MirrorMaker 2 to create the mirror topic', async () => ((await admin.listTopics()).includes(mirror) ? true : undefined), 120_000, 250);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${mm.logTail()}`);
    } finally {
      await admin.disconnect();
    }

    const got = new Map<string, { entries: Entry[]; partitions: Set<number> }>();
    source = new KafkaEntrySource(
      { client: { brokers: jnb.brokers, logLevel: 'nothing' }, groupId: 'af-jnb.log', topics: [mirror], maxWaitMs: 100 },
      {
        onEntries: (b) => {
          let g = got.get(b.shard);
          if (!g) got.set(b.shard, (g = { entries: [], partitions: new Set() }));
          g.entries.push(...b.entries);
          g.partitions.add(b.partition);
        },
      },
    );
    await source.start();
    expect(source.partitionCount()).toBe(PARTITIONS);
    await waitFor('the first halves through the mirror', () => (logs.every((l) => (got.get(l.shard)?.entries.length ?? 0) >= half(l)) ? true : undefined), 120_000);

    // Killed without a chance to commit its source offsets, MirrorMaker mirrors again from
    // the last committed position (here: the beginning) when it comes back.
    mm.kill();
    await Promise.all(logs.map((l) => publisher!.publish(l.entries.slice(half(l)))));
    await mm.restart();
    await waitFor('every shard\'s last entry through the restarted mirror', () => (logs.every((l) => got.get(l.shard)?.entries.at(-1)?.seq === l.entries.at(-1)!.seq) ? true : undefined), 120_000);

    let duplicates = 0;
    for (const l of logs) {
      const g = got.get(l.shard)!;
      // The mirror keeps partitions: a shard is still in its murmur2 partition.
      expect([...g.partitions]).toEqual([partitionOf(l.shard, PARTITIONS)]);
      duplicates += g.entries.length - new Set(g.entries.map((e) => e.seq)).size;
      // The Follower's rule — drop a seq already held when its hash is the same — gives back
      // the leader's log exactly.
      const held = new Map<number, Entry>();
      for (const e of g.entries) {
        const h = held.get(e.seq);
        if (h) expect(toHex(h.hash)).toBe(toHex(e.hash));
        else held.set(e.seq, e);
      }
      const log = [...held.values()].sort((a, b) => a.seq - b.seq);
      expect(log.map((e) => toHex(e.hash))).toEqual(l.entries.map((e) => toHex(e.hash)));
      expect(replayDigests(log)).toEqual(l.digests);
      // Replay straight from the mirror topic gives the same log.
      const replayed = await readShardFromKafka(`kafka://${jnb.bootstrap}/${mirror}`, l.shard);
      expect(replayed.map((e) => toHex(e.hash))).toEqual(l.entries.map((e) => toHex(e.hash)));
    }
    expect(duplicates).toBeGreaterThan(0);
  }, 180_000);

  it('region nodes configured for the mirror: the follower reads eu-fra.playout.log in its own cluster, drops MirrorMaker\'s duplicates, identical digests', async () => {
    expect(mm, 'the first test starts MirrorMaker').not.toBeNull();
    const SHARD = 'hunt-mirror';
    files = await writeClusterConfigs({ regions: ['eu-fra', 'af-jnb'], shards: [{ id: SHARD, leader: 'eu-fra', tickMs: 50, seed: SEED }] });
    files.configs['eu-fra']!.kafka = { brokers: fra.brokers, publish: true, partitions: PARTITIONS, retryDelayMs: 200, retryDelayMsMax: 1_000 };
    // Nothing is repaired over HTTP while MirrorMaker restarts: every entry comes through the mirror.
    files.configs['af-jnb']!.repair = { delayMs: 120_000 };
    files.configs['af-jnb']!.kafka = { brokers: jnb.brokers, consume: [{ topic: mirrorTopic('eu-fra'), groupId: 'playout.log.af-jnb' }], httpStream: false, retryDelayMs: 200, retryDelayMsMax: 1_000 };
    leader = await startNode(files, 'eu-fra');
    follower = await startNode(files, 'af-jnb');
    clients.set('eu-fra', adminClient('eu-fra', leader.url));
    clients.set('af-jnb', adminClient('af-jnb', follower.url));
    const lead = leader.shards.get(SHARD)!;
    const fol = () => follower!.shards.get(SHARD)!;
    const counters = () => fol().follower!.follower.status().counters;
    const gen = new LoadGenerator({ seed: SEED, players: 20, inputsPerTick: 5 });
    let loading = true;
    const load = (async () => {
      for (let t = 0; loading; t++) {
        await leader!.submit(SHARD, gen.next(t).map((x) => ({ type: x.type, version: x.version, payload: x.payload, ingestId: x.ingestId })), (k) => `inputs[${k}].`).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      await waitFor('the follower node fed through the mirror', () => (fol().host.durableSeq > 50 ? true : undefined), 120_000);
      const before = { ...counters() };
      mm!.kill();
      await new Promise((r) => setTimeout(r, 1_000));
      await mm!.restart();
      const headAtRestart = lead.host.durableSeq;
      await waitFor('the follower past the restart through the mirror', () => (fol().host.durableSeq >= headAtRestart ? true : undefined), 120_000);
      await waitFor('the re-mirrored duplicates dropped', () => (counters().duplicates > before.duplicates ? true : undefined), 60_000);
    } finally {
      loading = false;
      await load;
    }
    await waitFor('the follower level with the leader', () => (fol().host.durableSeq === lead.host.durableSeq ? true : undefined), 60_000);
    expect(counters().entriesRepaired).toBe(0);
    expect(fol().host.stopped).toBeNull();
    expect(fol().host.quarantine).toBeNull();
    expect(follower.shardStatus(SHARD).kafka!.consumed[0]).toMatchObject({ topic: mirrorTopic('eu-fra'), partition: partitionOf(SHARD, PARTITIONS) });
    const check = await checkShard(SHARD, clients, new Map());
    console.log(`mirror through node config: ${counters().duplicates} duplicates dropped`);
    expect(check.ok, check.lines.join('\n')).toBe(true);
    expect(check.commonTicks).toBeGreaterThan(20);
  }, 300_000);
});

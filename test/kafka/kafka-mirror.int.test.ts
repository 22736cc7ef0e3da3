// Two regions, each with its own Kafka cluster, and MirrorMaker 2 (dedicated mode, from the
// same Maven jars) mirroring eu-fra's playout.log into af-jnb as `eu-fra.playout.log`. The
// follower region reads the mirror; MirrorMaker killed with SIGKILL and restarted re-mirrors
// what it had not committed, and the duplicates reach the source as they are.
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

  afterAll(async () => {
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
});

// The Kafka log transport against a real single-node KRaft broker: KafkaLogPublisher →
// playout.log → KafkaEntrySource, and replay from kafka:// (the library call, and the built
// `playout` binary against a region node publishing to the broker: replay from Kafka equals
// replay from the node's store and from a fixture captured from Kafka).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CompressionTypes, Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PlayoutError, ZERO_HASH, sealEntry, toHex, type Entry } from '../../src/core/index.js';
import { KafkaEntrySource, type CorruptRecord, type ShardEntries } from '../../src/adapters/kafka-entry-source.js';
import { KafkaLogPublisher } from '../../src/adapters/kafka-log-publisher.js';
import { partitionOf } from '../../src/adapters/kafka-partition.js';
import { readShardFromKafka } from '../../src/adapters/kafka-replay-source.js';
import { ensureTopics } from '../../src/adapters/kafka-topics.js';
import { REPO_ROOT, freePort, kafkaComponent, startKafka, waitFor, type KafkaCluster } from '../helpers/kafka.js';
import { adminClient, startNode, writeClusterConfigs } from '../helpers/cluster.js';
import { ensureBuilt } from '../helpers/built-cli.js';
import { makeLog, replayDigests, type ShardLog } from './fixtures/counter-log.js';

const kafka = kafkaComponent();
const SEED = Number(process.env.SEED ?? Math.floor(Math.random() * 2 ** 31));
const PARTITIONS = 4;

/** Everything a source handed over, per shard, in delivery order. */
class Collected {
  readonly byShard = new Map<string, Entry[]>();
  readonly offsets = new Map<string, string[]>();
  readonly partitions = new Map<string, Set<number>>();
  readonly corrupt: CorruptRecord[] = [];
  total = 0;
  onEntries = (b: ShardEntries): void => {
    let list = this.byShard.get(b.shard);
    if (!list) this.byShard.set(b.shard, (list = []));
    let offs = this.offsets.get(b.shard);
    if (!offs) this.offsets.set(b.shard, (offs = []));
    let ps = this.partitions.get(b.shard);
    if (!ps) this.partitions.set(b.shard, (ps = new Set()));
    expect(b.entries.length).toBe(b.offsets.length);
    list.push(...b.entries);
    offs.push(...b.offsets);
    ps.add(b.partition);
    this.total += b.entries.length;
  };
  onCorrupt = (r: CorruptRecord): void => {
    this.corrupt.push(r);
  };
  count(shard: string): number {
    return this.byShard.get(shard)?.length ?? 0;
  }
}

function hexes(entries: readonly Entry[]): string[] {
  return entries.map((e) => `${e.seq}:${toHex(e.hash)}`);
}

describe.skipIf(kafka.skip)('Kafka log transport on a real broker', () => {
  let cluster: KafkaCluster;
  const client = () => ({ brokers: cluster.brokers, logLevel: 'nothing' as const });
  const sources: KafkaEntrySource[] = [];
  const publishers: KafkaLogPublisher[] = [];

  async function topic(name: string, partitions = PARTITIONS): Promise<string> {
    await ensureTopics(client(), [{ topic: name, partitions }]);
    return name;
  }

  async function source(topicName: string, groupId: string, collected: Collected, extra: Partial<ConstructorParameters<typeof KafkaEntrySource>[0]> = {}): Promise<KafkaEntrySource> {
    const s = new KafkaEntrySource({ client: client(), groupId, topics: [topicName], maxWaitMs: 100, ...extra }, { onEntries: collected.onEntries, onCorrupt: collected.onCorrupt });
    sources.push(s);
    await s.start();
    return s;
  }

  async function publish(topicName: string, logs: readonly ShardLog[], chunk = 7): Promise<KafkaLogPublisher> {
    const p = new KafkaLogPublisher({ client: client(), topic: topicName });
    publishers.push(p);
    // Interleave shards in chunks, as a leader serving several shards would; do not await
    // between calls: the publisher must keep the order of calls.
    const pending: Promise<void>[] = [];
    const cursors = logs.map(() => 0);
    for (let more = true; more; ) {
      more = false;
      logs.forEach((log, i) => {
        const part = log.entries.slice(cursors[i], cursors[i]! + chunk);
        cursors[i]! += part.length;
        if (part.length > 0) {
          more = true;
          pending.push(p.publish(part));
        }
      });
    }
    await Promise.all(pending);
    return p;
  }

  beforeAll(async () => {
    kafka.require();
    console.log(`kafka-log.int: reproduce with seed=${SEED}`);
    cluster = await startKafka({ name: 'log' });
  });

  afterAll(async () => {
    for (const s of sources) await s.stop();
    for (const p of publishers) await p.close();
    await cluster?.stop();
  });

  it.each(['worker', 'main'] as const)('publishes every entry and a source (kafkajs in the %s thread) reads back identical entries per shard, in order, with identical digests', async (fetchThread) => {
    const t = await topic(`e2e-${fetchThread}.playout.log`);
    const logs = Array.from({ length: 6 }, (_, i) => makeLog(`hunt-${i}`, SEED + i, 30));
    const p = await publish(t, logs);
    for (const log of logs) expect(p.lastPublished(log.shard)).toBe(log.entries.at(-1)!.seq);

    const got = new Collected();
    const s = await source(t, `e2e-${fetchThread}`, got, { fetchThread });
    expect(s.assignment()).toEqual([{ topic: t, partitions: [0, 1, 2, 3] }]);
    const total = logs.reduce((n, l) => n + l.entries.length, 0);
    await waitFor('every entry', () => (got.total >= total ? true : undefined));
    expect(got.total).toBe(total);
    expect(got.corrupt).toEqual([]);
    for (const log of logs) {
      const entries = got.byShard.get(log.shard)!;
      expect(hexes(entries)).toEqual(hexes(log.entries));
      entries.forEach((e, i) => expect(Buffer.from(e.bytes).equals(Buffer.from(log.entries[i]!.bytes))).toBe(true));
      expect(entries.map((e) => e.toJSON())).toEqual(log.entries.map((e) => e.toJSON()));
      expect(replayDigests(entries)).toEqual(log.digests);
      // A shard lives in one partition, the one murmur2 gives it.
      expect([...got.partitions.get(log.shard)!]).toEqual([partitionOf(log.shard, PARTITIONS)]);
      expect(s.ownsShard(log.shard)).toBe(true);
      // Offsets increase within a partition.
      const offs = got.offsets.get(log.shard)!.map(BigInt);
      for (let i = 1; i < offs.length; i++) expect(offs[i]! > offs[i - 1]!).toBe(true);
    }
  });

  it('hands duplicates over as they come (at least once) and re-reads a shard after a seek', async () => {
    const t = await topic('dup.playout.log');
    const log = makeLog('dup-1', SEED ^ 0x55, 12);
    const p = await publish(t, [log]);
    // A leader that lost an acknowledgement republishes: Kafka now holds entries 5..9 twice.
    await p.publish(log.entries.slice(4, 9));
    const expected = log.entries.length + 5;

    const got = new Collected();
    const s = await source(t, 'dup', got);
    await waitFor('entries and their duplicates', () => (got.count('dup-1') >= expected ? true : undefined));
    const seqs = got.byShard.get('dup-1')!.map((e) => e.seq);
    expect(seqs).toEqual([...log.entries.map((e) => e.seq), 5, 6, 7, 8, 9]);

    // Seek back to the offset of seq 3: everything from there is delivered again.
    const offsetOfSeq3 = got.offsets.get('dup-1')![2]!;
    s.seekShard('dup-1', offsetOfSeq3);
    await waitFor('re-delivery after the seek', () => (got.count('dup-1') >= expected * 2 - 2 ? true : undefined));
    const again = got.byShard.get('dup-1')!.slice(expected).map((e) => e.seq);
    expect(again).toEqual(seqs.slice(2));
  });

  it('a paused source delivers nothing across several fetches, then everything after resume', async () => {
    const t = await topic('pause.playout.log');
    const got = new Collected();
    const s = await source(t, 'pause', got);
    s.pause();
    const log = makeLog('paused-1', SEED ^ 0x77, 10);
    await publish(t, [log]);
    const fetched = s.fetches;
    await waitFor('three fetch rounds while paused', () => (s.fetches >= fetched + 3 ? true : undefined));
    expect(got.total).toBe(0);
    s.resume();
    await waitFor('delivery after resume', () => (got.count('paused-1') >= log.entries.length ? true : undefined));
    expect(hexes(got.byShard.get('paused-1')!)).toEqual(hexes(log.entries));
  });

  it('a pause in the middle of a batch stops the hand-off there; resume re-reads from the first entry not handed over', async () => {
    const t = await topic('midpause.playout.log', 1);
    const logs = [makeLog('mid-a', SEED ^ 0x21, 10), makeLog('mid-b', SEED ^ 0x22, 10)];
    await publish(t, logs, 1); // a, b, a, b …: one batch holds both shards
    const got = new Collected();
    let paused = false;
    let pausedAt = 0;
    const s: KafkaEntrySource = new KafkaEntrySource(
      { client: client(), groupId: 'midpause', topics: [t], maxWaitMs: 100 },
      {
        onEntries: (b) => {
          got.onEntries(b);
          if (!paused) {
            paused = true;
            s.pause();
            pausedAt = s.fetches;
          }
        },
      },
    );
    sources.push(s);
    await s.start();
    await waitFor('the first group and three fetch rounds', () => (paused && s.fetches >= pausedAt + 3 ? true : undefined));
    // Only the first group of the first batch was handed over.
    expect([...got.byShard.keys()]).toEqual(['mid-a']);
    const before = got.total;
    s.resume();
    await waitFor('both shards complete', () => (logs.every((l) => new Set(got.byShard.get(l.shard)?.map((e) => e.seq)).size === l.entries.length) ? true : undefined));
    expect(got.total).toBeGreaterThan(before);
    // mid-b starts at its first entry; mid-a is re-read (duplicates) from the rewind point on.
    expect(got.byShard.get('mid-b')!.map((e) => e.seq)).toEqual(logs[1]!.entries.map((e) => e.seq));
    for (const l of logs) {
      const firstCopies = new Map<number, Entry>();
      for (const e of got.byShard.get(l.shard)!) if (!firstCopies.has(e.seq)) firstCopies.set(e.seq, e);
      expect(hexes([...firstCopies.values()])).toEqual(hexes(l.entries));
    }
  });

  it('a failing hand-off is retried from the first entry not handed over', async () => {
    const t = await topic('retry.playout.log', 1);
    const log = makeLog('retry-1', SEED ^ 0x99, 8);
    await publish(t, [log]);
    const got = new Collected();
    const errors: Error[] = [];
    let failuresLeft = 2;
    const s = new KafkaEntrySource(
      { client: client(), groupId: 'retry', topics: [t], maxWaitMs: 100, retryDelayMs: 20 },
      {
        onEntries: (b) => {
          if (failuresLeft-- > 0) throw new Error('store is full');
          got.onEntries(b);
        },
        onError: (e) => errors.push(e),
      },
    );
    sources.push(s);
    await s.start();
    await waitFor('delivery after two failures', () => (got.count('retry-1') >= log.entries.length ? true : undefined));
    expect(hexes(got.byShard.get('retry-1')!)).toEqual(hexes(log.entries));
    expect(errors).toHaveLength(2);
    expect(errors[0]!.message).toMatch(/onEntries failed for shard "retry-1".*store is full/);
  });

  // With the fetch worker, the records of plain batches are read and their hashes checked there
  // (kafka-record-batches.ts); the gzip batch goes through kafkajs' decoder in either thread.
  it.each(['worker', 'main'] as const)('reports corrupt records with their offset and never hands them over (kafkajs in the %s thread)', async (fetchThread) => {
    const t = await topic(`corrupt-${fetchThread}.playout.log`, 1);
    const log = makeLog('bad-1', SEED ^ 0x33, 6);
    const raw = new Kafka({ brokers: cluster.brokers, logLevel: logLevel.NOTHING }).producer();
    await raw.connect();
    const flipped = Buffer.from(log.entries[3]!.bytes);
    const at = Math.floor(flipped.length / 2);
    flipped[at] = flipped[at]! ^ 0x04;
    const other = makeLog('other-1', 1, 1).entries[0]!;
    await raw.send({
      topic: t,
      messages: [
        ...log.entries.slice(0, 3).map((e) => ({ key: e.shard, value: Buffer.from(e.bytes) })),
        { key: 'bad-1', value: flipped }, // offset 3: a flipped bit
        { key: 'bad-1', value: Buffer.from(other.bytes) }, // offset 4: another shard's entry under this key
        { key: 'bad-1', value: null }, // offset 5: a tombstone
        { key: 'bad-1', value: Buffer.from([0x93, 0x01, 0x02]) }, // offset 6: truncated bytes
        ...log.entries.slice(3, 4).map((e) => ({ key: e.shard, value: Buffer.from(e.bytes) })),
      ],
    });
    const flipped2 = Buffer.from(log.entries[4]!.bytes);
    flipped2[flipped2.length - 1] = flipped2[flipped2.length - 1]! ^ 0x80;
    await raw.send({
      topic: t,
      compression: CompressionTypes.GZIP,
      messages: [
        { key: 'bad-1', value: flipped2 }, // offset 8: a flipped bit in the hash, in a gzip batch
        ...log.entries.slice(4).map((e) => ({ key: e.shard, value: Buffer.from(e.bytes) })),
      ],
    });
    await raw.disconnect();

    const got = new Collected();
    await source(t, `corrupt-${fetchThread}`, got, { fetchThread });
    await waitFor('the valid entries', () => (got.count('bad-1') >= log.entries.length ? true : undefined));
    await waitFor('five corrupt reports', () => (got.corrupt.length >= 5 ? true : undefined));
    expect(hexes(got.byShard.get('bad-1')!)).toEqual(hexes(log.entries));
    expect(got.byShard.has('other-1')).toBe(false);
    expect(got.corrupt.map((c) => [c.offset, c.error.code, c.key])).toEqual([
      ['3', 'PLAYOUT_ENTRY_HASH_MISMATCH', 'bad-1'],
      ['4', 'PLAYOUT_ENTRY_MALFORMED', 'bad-1'],
      ['5', 'PLAYOUT_ENTRY_MALFORMED', 'bad-1'],
      ['6', 'PLAYOUT_ENTRY_MALFORMED', 'bad-1'],
      ['8', 'PLAYOUT_ENTRY_HASH_MISMATCH', 'bad-1'],
    ]);
    expect(got.corrupt[0]!.error.seq).toBe(4);
    expect(got.corrupt[1]!.error.path).toBe('key');
    expect(got.corrupt.every((c) => c.topic === t && c.partition === 0)).toBe(true);

    // Replay refuses the corrupt record, naming its offset.
    const err = await readShardFromKafka(`kafka://${cluster.bootstrap}/${t}`, 'bad-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PlayoutError);
    expect((err as PlayoutError).code).toBe('PLAYOUT_ENTRY_HASH_MISMATCH');
    expect((err as PlayoutError).message).toContain(`${t}/0@3`);
  });

  it('replays a shard from kafka:// equal to the original log, duplicates removed, up to the end offsets at the start', async () => {
    const t = await topic('replay.playout.log');
    const logs = [makeLog('replay-a', SEED ^ 0x11, 25), makeLog('replay-b', SEED ^ 0x12, 25)];
    const p = await publish(t, logs);
    await p.publish(logs[0]!.entries.slice(10, 20)); // duplicates
    const url = `kafka://${cluster.bootstrap}/${t}`;
    for (const log of logs) {
      const entries = await readShardFromKafka(url, log.shard);
      expect(hexes(entries)).toEqual(hexes(log.entries));
      expect(replayDigests(entries)).toEqual(log.digests);
    }
    // An explicit partition that does not hold the shard finds nothing.
    const wrong = (partitionOf('replay-a', PARTITIONS) + 1) % PARTITIONS;
    await expect(readShardFromKafka(`${url}?partition=${wrong}`, 'replay-a')).rejects.toMatchObject({ code: 'PLAYOUT_SHARD_NOT_FOUND' });
  });

  it('names what is wrong: unknown topic, unknown shard, partition count mismatch, unreachable broker', async () => {
    const url = `kafka://${cluster.bootstrap}/no.such.topic`;
    await expect(readShardFromKafka(url, 'x')).rejects.toMatchObject({ code: 'PLAYOUT_SOURCE_NOT_FOUND' });
    const t = await topic('names.playout.log', 2);
    await expect(readShardFromKafka(`kafka://${cluster.bootstrap}/${t}`, 'nobody')).rejects.toMatchObject({ code: 'PLAYOUT_SHARD_NOT_FOUND' });
    await expect(ensureTopics(client(), [{ topic: t, partitions: 3 }])).rejects.toMatchObject({ code: 'PLAYOUT_KAFKA_TOPIC_MISMATCH', expected: '3', received: '2' });
    const src = new KafkaEntrySource({ client: client(), groupId: 'x', topics: ['no.such.topic'] }, { onEntries: () => undefined });
    await expect(src.start()).rejects.toMatchObject({ code: 'PLAYOUT_SOURCE_NOT_FOUND' });

    // An entry larger than the broker's message.max.bytes (1 MiB): refused for good, not retried.
    const big = sealEntry({ shard: 'big-1', seq: 1, epoch: 1, tick: 0, kind: 'genesis', type: null, version: null, origin: null, ingestId: null, payload: { blob: 'x'.repeat(1_200_000) }, digest: null, prev: ZERO_HASH });
    const bigPublisher = new KafkaLogPublisher({ client: client(), topic: t });
    publishers.push(bigPublisher);
    await expect(bigPublisher.publish([big])).rejects.toMatchObject({ code: 'PLAYOUT_KAFKA_REFUSED', retriable: false });
    expect(bigPublisher.lastPublished('big-1')).toBeNull();

    const closed = await freePort();
    const p = new KafkaLogPublisher({ client: { brokers: [`127.0.0.1:${closed}`], retriesMax: 0, connectionTimeoutMs: 500, logLevel: 'nothing' } });
    const err = await p.publish(makeLog('x', 1, 1).entries).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PLAYOUT_KAFKA_UNAVAILABLE', retriable: true });
    await p.close();
  });

  it('playout replay/capture kafka://: equal to replay of the node\'s store and of the captured fixture; duplicates dropped; a gap exits 2 with its seq', async () => {
    const run = promisify(execFile);
    const build = ensureBuilt();
    const tmp = await mkdtemp(join(tmpdir(), 'playout-kafka-replay-'));
    const playout = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
      try {
        // A child that hangs fails the test naming its command (and its output so far), not at the test's timeout.
        const r = await run(process.execPath, [join(REPO_ROOT, 'dist/cli/main.js'), ...args], { cwd: tmp, maxBuffer: 64 << 20, env: { ...process.env, CI: '' }, timeout: 90_000 });
        return { code: 0, ...r };
      } catch (err) {
        const e = err as { code?: number; stdout?: string; stderr?: string; killed?: boolean };
        if (e.killed === true) throw new Error(`playout ${args.join(' ')} did not finish within 90 s; stderr: ${e.stderr ?? ''}`, { cause: err });
        if (typeof e.code !== 'number') throw err;
        return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
      }
    };
    const replayJson = async (...args: string[]): Promise<{ digests: { tick: number; digest: string }[]; final: { tick: number; digest: string }; mismatches: { count: number } }> => {
      const r = await playout('replay', ...args, '--json');
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { digests: { tick: number; digest: string }[]; final: { tick: number; digest: string }; mismatches: { count: number } };
    };
    const SHARD = 'hunt-k';
    const TO_TICK = 40;
    const files = await writeClusterConfigs({ regions: ['eu-fra'], shards: [{ id: SHARD, leader: 'eu-fra', tickMs: 20 }] });
    files.configs['eu-fra']!.kafka = { brokers: cluster.brokers, publish: true, partitions: 3, retryDelayMs: 200, retryDelayMsMax: 1_000 };
    const node = await startNode(files, 'eu-fra');
    const admin = adminClient('eu-fra', node.url);
    try {
      await admin.submit(SHARD, [{ type: 'player.join', version: 1, payload: { player: 'p1', name: 'Ada', x: 5, y: 5 }, ingestId: 'j1' }]);
      for (let i = 0; i < 20; i++) await admin.submit(SHARD, [{ type: 'player.move', version: 1, payload: { player: 'p1', x: 5 + (i % 3), y: 5 }, ingestId: `m${i}` }]);
      const slot = node.shards.get(SHARD)!;
      await waitFor(`tick ${TO_TICK + 5} published`, () => (slot.host.durableSeq > 0 && (node.kafka!.lastPublished(SHARD) ?? 0) > 0 && node.status().shards[0]!.tick > TO_TICK + 5 ? true : undefined), 60_000);
      await waitFor('Kafka to hold the closing entry of the tick', () => {
        const head = node.status().shards[0]!;
        return (node.kafka!.lastPublished(SHARD) ?? 0) >= head.head - 50 && head.headTick > TO_TICK + 2 ? true : undefined;
      }, 60_000);
      // MirrorMaker 2 and republishing leaders duplicate records: add some, raw.
      const url = `kafka://${cluster.bootstrap}/playout.log`;
      const published = await readShardFromKafka(url, SHARD);
      const raw = new Kafka({ brokers: cluster.brokers, logLevel: logLevel.NOTHING }).producer();
      await raw.connect();
      await raw.send({ topic: 'playout.log', messages: published.slice(5, 25).map((e) => ({ key: SHARD, value: Buffer.from(e.bytes) })) });
      // A topic missing one entry of the shard: replay names the first missing seq.
      await ensureTopics(client(), [{ topic: 'gap.playout.log', partitions: 1 }]);
      await raw.send({ topic: 'gap.playout.log', messages: published.slice(0, 60).filter((e) => e.seq !== 31).map((e) => ({ key: SHARD, value: Buffer.from(e.bytes) })) });
      await raw.disconnect();
      await build;

      const fromKafka = await replayJson(url, '--shard', SHARD, '--to-tick', String(TO_TICK));
      const fromStore = await replayJson(files.configs['eu-fra']!.store!.path, '--shard', SHARD, '--to-tick', String(TO_TICK));
      const out = join(tmp, 'from-kafka.plog.gz');
      const cap = await playout('capture', url, '--shard', SHARD, '--out', out);
      expect(cap.code, cap.stderr).toBe(0);
      const fromFixture = await replayJson(out, '--to-tick', String(TO_TICK));
      expect(fromKafka.mismatches.count).toBe(0);
      expect(fromKafka.final.tick).toBe(TO_TICK);
      expect(fromKafka.digests).toHaveLength(TO_TICK + 1);
      expect(fromStore.digests).toEqual(fromKafka.digests);
      expect(fromFixture.digests).toEqual(fromKafka.digests);
      const verified = await playout('verify', url, '--shard', SHARD);
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);

      const gap = await playout('replay', `kafka://${cluster.bootstrap}/gap.playout.log`, '--shard', SHARD);
      expect(gap.code).toBe(2);
      expect(gap.stderr.trim().split('\n')).toHaveLength(1);
      expect(gap.stderr).toMatch(/^playout replay: PLAYOUT_GAP: .*entries 31–31 are missing/);
      const noShard = await playout('replay', url);
      expect(noShard.code).toBe(2);
      expect(noShard.stderr).toMatch(/PLAYOUT_INVALID_ARGUMENT: .*--shard/);
      const badUrl = await playout('replay', 'kafka://nohostport/playout.log', '--shard', SHARD);
      expect(badUrl.code).toBe(2);
      expect(badUrl.stderr).toMatch(/^playout replay: PLAYOUT_INVALID_ARGUMENT: /);
    } finally {
      await admin.close();
      await node.close();
      await rm(files.dir, { recursive: true, force: true });
      await rm(tmp, { recursive: true, force: true });
    }
  }, 300_000);
});

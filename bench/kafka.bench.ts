// Kafka transport throughput against bare kafkajs, on a real single-node KRaft broker started
// here (tools/kafka). Ratios measured in one run, best of RUNS, so machine noise cancels out:
//   - consume: entries/s that KafkaEntrySource decodes, verifies (XXH3-128) and hands over and a
//     follower applies (a ShardMachine per shard), vs a
//     bare kafkajs consumer reading the same topic and doing nothing with the records (>= 0.7).
//     KafkaEntrySource runs as a node runs it, with its defaults (kafkajs fetching in a worker
//     thread that also reads the records and checks their hashes, up to 8 fetched batches queued
//     while one is handed over); KAFKA_BENCH_FETCH_THREAD=main measures its fetchThread 'main'
//     instead (kafkajs fetching and decoding every record in this thread);
//   - produce: entries/s that KafkaLogPublisher gets acknowledged (idempotent, acks=all, one
//     request in flight), vs a bare kafkajs producer with the same settings sending the same
//     bytes in requests of the same size (>= 0.7).
// Without Java or the Kafka jars it prints a skip line and exits 0.
import { readFileSync } from 'node:fs';
import { Kafka, Partitioners, logLevel, type Message } from 'kafkajs';
import { Sequencer, ShardMachine, type Entry } from '../src/core/index.js';
import { KafkaEntrySource } from '../src/adapters/kafka-entry-source.js';
import { KafkaLogPublisher } from '../src/adapters/kafka-log-publisher.js';
import { ensureTopics } from '../src/adapters/kafka-topics.js';
import { kafkaMissing, startKafka, type KafkaCluster } from '../test/helpers/kafka.js';
import { counter, registry } from '../test/kafka/fixtures/counter-log.js';
import { atLeast, info } from './report.js';

const ENTRIES = Number(process.env.KAFKA_BENCH_ENTRIES ?? 100_000);
const SHARDS = 8;
const PARTITIONS = 4;
const RUNS = 2;
/** Consume runs per side: a consume run is short (about a second), so noise is larger. */
const CONSUME_RUNS = 4;
// Fetch settings both consumers use (KafkaEntrySource's defaults, spelled out for the bare one):
// the same fetch sizes and waits, so the ratio compares what is done per record, not how much
// is fetched per round trip.
const FETCH = { maxWaitMs: 100, maxBytesPerPartition: 1 << 20, sessionTimeoutMs: 30_000, heartbeatIntervalMs: 3_000 };
const BATCH_BYTES = 512 << 10;

/** ENTRIES real entries over SHARDS shards (inputs and ticks, sealed by the Sequencer). */
function makeEntries(): Entry[] {
  const out: Entry[] = [];
  const seqs = Array.from({ length: SHARDS }, (_, i) => {
    const g = Sequencer.genesis({ shard: `bench-${i}`, reducer: counter, seed: i, tickMs: 50 });
    out.push(g);
    return Sequencer.afterGenesis(registry, g, { region: 'eu-fra', dedupeWindowTicks: 0 });
  });
  for (let n = 0; out.length < ENTRIES; n++) {
    const s = seqs[n % SHARDS]!;
    const r = n % 5 === 4 ? s.closeTick(null) : s.submit({ type: 'counter.add', version: 1, payload: { key: `k${n % 50}`, by: n % 7 }, ingestId: null });
    out.push('status' in r ? (r as { entry: Entry }).entry : (r as Entry));
  }
  return out;
}

interface ConsumeRun {
  wallMs: number;
  /** CPU time of this process (kafkajs' record decoding plus ours, every thread), from the first record on. */
  cpuMs: number;
  /** CPU time of the main thread alone, or NaN where /proc is missing. */
  mainCpuMs: number;
}

/** CPU time of this process's main thread in ms, from /proc (10 ms resolution), or NaN. */
function mainThreadCpuMs(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

async function timeConsume(cluster: KafkaCluster, topic: string, groupId: string, bare: boolean): Promise<ConsumeRun> {
  let seen = 0;
  let firstAt = 0;
  let cpu0 = process.cpuUsage();
  let main0 = mainThreadCpuMs();
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const onCount = (n: number) => {
    if (seen === 0) {
      firstAt = performance.now();
      cpu0 = process.cpuUsage();
      main0 = mainThreadCpuMs();
    }
    seen += n;
    if (seen >= ENTRIES) done();
  };
  const measure = (): ConsumeRun => {
    const cpu = process.cpuUsage(cpu0);
    return { wallMs: performance.now() - firstAt, cpuMs: (cpu.user + cpu.system) / 1000, mainCpuMs: mainThreadCpuMs() - main0 };
  };
  if (bare) {
    const consumer = new Kafka({ brokers: cluster.brokers, logLevel: logLevel.NOTHING }).consumer({
      groupId,
      maxWaitTimeInMs: FETCH.maxWaitMs,
      maxBytesPerPartition: FETCH.maxBytesPerPartition,
      sessionTimeout: FETCH.sessionTimeoutMs,
      heartbeatInterval: FETCH.heartbeatIntervalMs,
      allowAutoTopicCreation: false,
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    // One partition at a time, as KafkaEntrySource; kafkajs resolves and commits each batch.
    await consumer.run({ partitionsConsumedConcurrently: 1, eachBatch: async ({ batch }) => onCount(batch.messages.length) });
    await finished;
    const run = measure();
    await consumer.disconnect();
    return run;
  }
  // The follower's side: every entry handed over is applied to its shard's machine (the bench
  // log's counter reducer), as a follower applies what it consumes.
  const machines = new Map<string, ShardMachine>();
  const apply = (entries: readonly Entry[]): void => {
    for (const e of entries) {
      let m = machines.get(e.shard);
      if (m === undefined) machines.set(e.shard, (m = new ShardMachine(registry, { keepOutputs: false })));
      m.apply(e);
    }
  };
  const fetchThread = process.env.KAFKA_BENCH_FETCH_THREAD === 'main' ? ('main' as const) : undefined;
  const source = new KafkaEntrySource({ client: { brokers: cluster.brokers, logLevel: 'nothing' }, groupId, topics: [topic], ...FETCH, ...(fetchThread ? { fetchThread } : {}) }, { onEntries: (b) => (apply(b.entries), onCount(b.entries.length)), onCorrupt: (r) => console.error(`corrupt record in the bench topic: ${r.error.message}`) });
  await source.start();
  await finished;
  const run = measure();
  await source.stop();
  return run;
}

async function timePublisher(cluster: KafkaCluster, topic: string, entries: Entry[]): Promise<number> {
  const p = new KafkaLogPublisher({ client: { brokers: cluster.brokers, logLevel: 'nothing' }, topic, batchBytesMax: BATCH_BYTES });
  await p.connect();
  const t0 = performance.now();
  // A leader publishes what each group commit made durable: calls of ~100 entries, not awaited.
  const pending: Promise<void>[] = [];
  for (let i = 0; i < entries.length; i += 100) pending.push(p.publish(entries.slice(i, i + 100)));
  await Promise.all(pending);
  const ms = performance.now() - t0;
  await p.close();
  return ms;
}

async function timeBareProducer(cluster: KafkaCluster, topic: string, entries: Entry[]): Promise<number> {
  const producer = new Kafka({ brokers: cluster.brokers, logLevel: logLevel.NOTHING }).producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  // The same records, prepared up front, in requests of the publisher's size.
  const requests: Message[][] = [];
  let cur: Message[] = [];
  let bytes = 0;
  for (const e of entries) {
    if (bytes + e.bytes.length + e.shard.length + 20 > BATCH_BYTES && cur.length > 0) {
      requests.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push({ key: e.shard, value: Buffer.from(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength) });
    bytes += e.bytes.length + e.shard.length + 20;
  }
  if (cur.length) requests.push(cur);
  const t0 = performance.now();
  for (const messages of requests) await producer.send({ topic, acks: -1, messages });
  const ms = performance.now() - t0;
  await producer.disconnect();
  return ms;
}

async function main(): Promise<void> {
  const missing = kafkaMissing();
  if (missing !== null) {
    console.log(`  SKIPPED kafka bench: ${missing}`);
    return;
  }
  const entries = makeEntries();
  const cluster = await startKafka({ name: 'bench' });
  try {
    const client = { brokers: cluster.brokers, logLevel: 'nothing' as const };
    const topics = Array.from({ length: 2 * RUNS + 1 }, (_, i) => `bench-${i}.playout.log`);
    await ensureTopics(client, topics.map((topic) => ({ topic, partitions: PARTITIONS })));

    // Produce: alternate the two producers over fresh topics, best of RUNS each.
    let pubMs = Infinity;
    let bareProdMs = Infinity;
    for (let r = 0; r < RUNS; r++) {
      bareProdMs = Math.min(bareProdMs, await timeBareProducer(cluster, topics[2 * r]!, entries));
      pubMs = Math.min(pubMs, await timePublisher(cluster, topics[2 * r + 1]!, entries));
    }
    info('kafka produce, bare kafkajs producer', (ENTRIES / bareProdMs) * 1000, 'entries/s');
    info('kafka produce, KafkaLogPublisher', (ENTRIES / pubMs) * 1000, 'entries/s');
    atLeast('kafka produce: KafkaLogPublisher / bare kafkajs producer', bareProdMs / pubMs, 0.7);

    // Consume the last topic with fresh groups, alternating, best of RUNS each.
    const topic = topics[2 * RUNS]!;
    const p = new KafkaLogPublisher({ client, topic });
    await p.publish(entries);
    await p.close();
    let src: ConsumeRun = { wallMs: Infinity, cpuMs: Infinity, mainCpuMs: Infinity };
    let bare: ConsumeRun = { wallMs: Infinity, cpuMs: Infinity, mainCpuMs: Infinity };
    for (let r = 0; r < CONSUME_RUNS; r++) {
      const b = await timeConsume(cluster, topic, `bare-${r}`, true);
      if (b.wallMs < bare.wallMs) bare = b;
      const s = await timeConsume(cluster, topic, `source-${r}`, false);
      if (s.wallMs < src.wallMs) src = s;
    }
    info('kafka consume, bare kafkajs consumer', (ENTRIES / bare.wallMs) * 1000, 'entries/s');
    info('kafka consume, KafkaEntrySource + apply (decode + verify + apply)', (ENTRIES / src.wallMs) * 1000, 'entries/s');
    // Where the time goes. The bare consumer's thread fetches and kafkajs decodes every record;
    // the source's worker fetches, reads records and checks hashes, its main thread decodes and
    // applies entries (with fetchThread 'main' one thread does it all, kafkajs' decoding
    // included). When every core is busy (a loaded two-core machine) the ratio tends to bare
    // CPU / source CPU of the process; on an idle one, to bare wall time / source main thread.
    info('kafka consume, CPU per entry, bare kafkajs consumer', (bare.cpuMs * 1000) / ENTRIES, 'us');
    info('kafka consume, CPU per entry, KafkaEntrySource + apply (every thread)', (src.cpuMs * 1000) / ENTRIES, 'us');
    if (Number.isFinite(bare.mainCpuMs)) info('kafka consume, main-thread CPU per entry, bare kafkajs consumer', (bare.mainCpuMs * 1000) / ENTRIES, 'us');
    if (Number.isFinite(src.mainCpuMs)) info('kafka consume, main-thread CPU per entry, KafkaEntrySource + apply', (src.mainCpuMs * 1000) / ENTRIES, 'us');
    atLeast('kafka consume: KafkaEntrySource + apply / bare kafkajs consumer', bare.wallMs / src.wallMs, 0.7);
  } finally {
    await cluster.stop();
  }
}

await main();

// Ingress through Kafka against a real broker, with kcat (librdkafka, an independent client)
// as the game server: valid inputs are sequenced, invalid ones land in playout.inputs.rejected
// with their reason and are never sequenced, offsets are committed only after sequencing.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PlayoutError, Sequencer, ShardMachine, type Entry } from '../../src/core/index.js';
import { KafkaInputReader, type InputOutcome, type KafkaInput, type RejectedInput } from '../../src/adapters/kafka-input-reader.js';
import { partitionOf } from '../../src/adapters/kafka-partition.js';
import { INPUTS_TOPIC, REJECTED_TOPIC, ensureTopics } from '../../src/adapters/kafka-topics.js';
import { kafkaComponent, kcat, kcatComponent, startKafka, waitFor, type KafkaCluster } from '../helpers/kafka.js';
import { counter, registry } from './fixtures/counter-log.js';

const kafka = kafkaComponent();
const kcatC = kcatComponent();
const PARTITIONS = 4;
const SHARDS = ['hunt-1', 'hunt-2', 'hunt-3'];

/** The leader side of the test: one Sequencer per shard and its "durable" log. */
class Leader {
  readonly sequencers = new Map<string, Sequencer>();
  readonly logs = new Map<string, Entry[]>();
  readonly calls: KafkaInput[][] = [];
  failNextCalls = 0;

  constructor() {
    for (const shard of SHARDS) {
      const g = Sequencer.genesis({ shard, reducer: counter, seed: 7, tickMs: 50 });
      this.sequencers.set(shard, Sequencer.afterGenesis(registry, g, { region: 'eu-fra', dedupeWindowTicks: 100 }));
      this.logs.set(shard, [g]);
    }
  }

  sequence = async (inputs: readonly KafkaInput[]): Promise<InputOutcome[]> => {
    this.calls.push([...inputs]);
    if (this.failNextCalls > 0) {
      this.failNextCalls--;
      throw new PlayoutError('PLAYOUT_STORE_CONFLICT', 'the store refused the batch (test)');
    }
    return inputs.map((input): InputOutcome => {
      if (input.ingestId?.startsWith('refuse-')) return { status: 'rejected', error: new PlayoutError('PLAYOUT_SEQUENCER_FENCED', `Cannot sequence for shard "${input.shard}": fenced (test)`, { shard: input.shard }) };
      const r = this.sequencers.get(input.shard)!.submit(input);
      if (r.status === 'duplicate') return { status: 'duplicate', seq: r.seq };
      this.logs.get(input.shard)!.push(r.entry);
      return { status: 'sequenced', seq: r.entry.seq };
    });
  };

  inputs(shard: string): Entry[] {
    return this.logs.get(shard)!.filter((e) => e.kind === 'input');
  }
}

describe.skipIf(kafka.skip || kcatC.skip)('Kafka ingress with kcat as the producer', () => {
  let cluster: KafkaCluster;
  let dir: string;
  const readers: KafkaInputReader[] = [];
  const client = () => ({ brokers: cluster.brokers, logLevel: 'nothing' as const });
  // librdkafka's default partitioner is crc32-based; playout's is the Java client's murmur2.
  const produceArgs = () => ['-P', '-q', '-b', cluster.bootstrap, '-t', INPUTS_TOPIC, '-X', 'topic.partitioner=murmur2_random'];

  function reader(leader: Leader, groupId: string, rejected: RejectedInput[] = [], errors: Error[] = []): KafkaInputReader {
    const r = new KafkaInputReader(
      { client: client(), groupId, maxWaitMs: 100, retryDelayMs: 20 },
      { sequence: leader.sequence, reducerOf: (s) => (leader.sequencers.has(s) ? counter : null), onRejected: (x) => rejected.push(x), onError: (e) => errors.push(e) },
    );
    readers.push(r);
    return r;
  }

  async function readRejected(): Promise<{ key: string | null; partition: number; payload: RejectedInput; headers: string[] }[]> {
    const out = await kcat(['-C', '-q', '-b', cluster.bootstrap, '-t', REJECTED_TOPIC, '-o', 'beginning', '-e', '-J']);
    return out
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => {
        const j = JSON.parse(l) as { key: string | null; partition: number; payload: string; headers?: string[] };
        return { key: j.key, partition: j.partition, payload: JSON.parse(j.payload) as RejectedInput, headers: j.headers ?? [] };
      });
  }

  beforeAll(async () => {
    kafka.require();
    kcatC.require();
    dir = mkdtempSync(join(tmpdir(), 'playout-kcat-'));
    cluster = await startKafka({ name: 'inputs' });
    await ensureTopics(client(), [
      { topic: INPUTS_TOPIC, partitions: PARTITIONS },
      { topic: REJECTED_TOPIC, partitions: 1 },
    ]);
  });

  afterAll(async () => {
    for (const r of readers) await r.stop();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sequences valid JSON and msgpack inputs from kcat and rejects malformed ones with their reason, never sequencing them', async () => {
    const leader = new Leader();
    const rejected: RejectedInput[] = [];
    const r = reader(leader, 'ingress', rejected);
    await r.start();

    // Valid: JSON lines, key|value.
    const lines = [];
    for (let i = 0; i < 30; i++) {
      const shard = SHARDS[i % 3]!;
      lines.push(`${shard}|${JSON.stringify({ type: 'counter.add', version: 1, payload: { key: i % 2 ? 'a' : 'b', by: i }, ingestId: `json-${i}` })}`);
    }
    // The same ingestId again: acknowledged as a duplicate, not sequenced twice.
    lines.push(`hunt-1|${JSON.stringify({ type: 'counter.add', version: 1, payload: { key: 'a', by: 999 }, ingestId: 'json-0' })}`);
    // Invalid, each for its own reason.
    lines.push(`hunt-1|{"type": "counter.add", "version": 1, "payload": {"key": "a", "by": "ten"}}`);
    lines.push(`hunt-2|{"type": "counter.teleport", "version": 1, "payload": {}}`);
    lines.push(`hunt-3|{"type": "counter.add", "version": 1, "payload": {"key": "a", "by": 1}`);
    lines.push(`nowhere|{"type": "counter.add", "version": 1, "payload": {"key": "a", "by": 1}}`);
    lines.push(`hunt-2|{"type": "counter.add", "version": 1, "payload": {"key": "a", "by": 1}, "ingestId": "refuse-1"}`);
    await kcat([...produceArgs(), '-K', '|'], lines.join('\n') + '\n');

    // msgpack values, one file per message, with and without a content-type header.
    const mp1 = join(dir, 'in1.msgpack');
    writeFileSync(mp1, pack({ type: 'counter.add', version: 1, payload: { key: 'c', by: -3 }, ingestId: 'mp-1', origin: 'game-7' }));
    await kcat([...produceArgs(), '-k', 'hunt-2', '-H', 'content-type=application/msgpack', mp1]);
    const mp2 = join(dir, 'in2.msgpack');
    writeFileSync(mp2, pack({ type: 'counter.add', version: 3, payload: { key: 'c', by: 1 } }));
    await kcat([...produceArgs(), '-k', 'hunt-3', mp2]);
    // A record in the wrong partition for its shard (explicit partition).
    const wrong = (partitionOf('hunt-1', PARTITIONS) + 1) % PARTITIONS;
    await kcat([...produceArgs(), '-p', String(wrong), '-K', '|'], `hunt-1|${JSON.stringify({ type: 'counter.add', version: 1, payload: { key: 'a', by: 1 } })}\n`);

    const valid = 31; // 30 JSON + 1 msgpack
    const invalid = 7;
    await waitFor('every input handled', () => (r.inputsSequenced + r.inputsDuplicate >= valid + 1 && r.inputsRejected >= invalid ? true : undefined));
    expect([r.inputsSequenced, r.inputsDuplicate, r.inputsRejected]).toEqual([valid, 1, invalid]);

    // The sequenced log holds exactly the valid inputs, per shard in production order.
    for (const [i, shard] of SHARDS.entries()) {
      const want = Array.from({ length: 10 }, (_, k) => `json-${i + 3 * k}`);
      if (shard === 'hunt-2') want.push('mp-1');
      expect(leader.inputs(shard).map((e) => e.ingestId)).toEqual(want);
    }
    const mpEntry = leader.inputs('hunt-2').at(-1)!;
    expect([mpEntry.payload, mpEntry.origin]).toEqual([{ key: 'c', by: -3 }, 'game-7']);
    // The sequenced log is a valid log: a fresh machine applies it.
    for (const shard of SHARDS) {
      const m = new ShardMachine(registry);
      for (const e of leader.logs.get(shard)!) m.apply(e);
    }

    // The rejected topic, read back by kcat: every reason, with path, expected and received.
    const back = await waitFor('rejected records', async () => {
      const recs = await readRejected();
      return recs.length >= invalid ? recs : undefined;
    });
    expect(back).toHaveLength(invalid);
    const byReason = back.map((b) => [b.key, b.payload.error.code, b.payload.error.path]).sort((a, b) => String(a).localeCompare(String(b)));
    expect(byReason).toEqual(
      [
        ['hunt-1', 'PLAYOUT_INPUT_INVALID', 'value.payload.by'],
        ['hunt-2', 'PLAYOUT_INPUT_TYPE_UNKNOWN', 'type'],
        ['hunt-3', 'PLAYOUT_INPUT_INVALID', 'value'],
        ['nowhere', 'PLAYOUT_SHARD_NOT_FOUND', 'key'],
        ['hunt-2', 'PLAYOUT_SEQUENCER_FENCED', null],
        ['hunt-3', 'PLAYOUT_INPUT_TYPE_UNKNOWN', 'version'],
        ['hunt-1', 'PLAYOUT_INPUT_INVALID', 'key'],
      ]
        .sort((a, b) => String(a).localeCompare(String(b))),
    );
    for (const b of back) {
      expect(b.payload.error.message).toMatch(/^Cannot /);
      expect(b.payload.source.topic).toBe(INPUTS_TOPIC);
      expect(b.headers).toContain('playout-error-code');
      expect(b.payload.value).not.toBeNull();
    }
    const typed = back.find((b) => b.payload.error.path === 'value.payload.by')!;
    expect(typed.payload.error.received).toBe('string "ten"');
    expect(Buffer.from(typed.payload.value!, 'base64').toString()).toContain('"by": "ten"');
    expect(typed.payload.contentType).toBe('json');
    const mpRejected = back.find((b) => b.payload.error.path === 'version')!;
    expect(mpRejected.payload.contentType).toBe('msgpack');
    expect(rejected).toHaveLength(invalid);
  });

  it('retries a batch the leader could not sequence, and commits only what was sequenced', async () => {
    await ensureTopics(client(), [{ topic: 'retry.inputs', partitions: 1 }]);
    const leader = new Leader();
    leader.failNextCalls = 2;
    const errors: Error[] = [];
    const r = new KafkaInputReader(
      { client: client(), groupId: 'retry', topic: 'retry.inputs', maxWaitMs: 100, retryDelayMs: 20, checkPartition: true },
      { sequence: leader.sequence, onError: (e) => errors.push(e) },
    );
    readers.push(r);
    await r.start();
    const lines = Array.from({ length: 5 }, (_, i) => `hunt-1|${JSON.stringify({ type: 'counter.add', version: 1, payload: { key: 'a', by: i }, ingestId: `r-${i}` })}`);
    await kcat(['-P', '-q', '-b', cluster.bootstrap, '-t', 'retry.inputs', '-K', '|'], lines.join('\n') + '\n');
    await waitFor('sequenced after two failures', () => (r.inputsSequenced >= 5 ? true : undefined));
    expect(errors).toHaveLength(2);
    expect(errors[0]!.message).toMatch(/not sequenced yet.*store refused/);
    expect(leader.inputs('hunt-1').map((e) => e.ingestId)).toEqual(['r-0', 'r-1', 'r-2', 'r-3', 'r-4']);
    await r.stop();

    // A new member of the same group starts after the committed offset: only new inputs.
    const leader2 = new Leader();
    const r2 = new KafkaInputReader({ client: client(), groupId: 'retry', topic: 'retry.inputs', maxWaitMs: 100 }, { sequence: leader2.sequence });
    readers.push(r2);
    await r2.start();
    await kcat(['-P', '-q', '-b', cluster.bootstrap, '-t', 'retry.inputs', '-K', '|'], `hunt-1|${JSON.stringify({ type: 'counter.add', version: 1, payload: { key: 'a', by: 9 }, ingestId: 'r-new' })}\n`);
    await waitFor('the new input', () => (r2.inputsSequenced >= 1 ? true : undefined));
    const fetched = r2.fetches;
    await waitFor('three more fetch rounds', () => (r2.fetches >= fetched + 3 ? true : undefined));
    expect(leader2.calls.flat().map((i) => i.ingestId)).toEqual(['r-new']);
  });
});

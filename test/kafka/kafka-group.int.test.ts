// Several nodes of one region share playout.log as one consumer group (partition = shard
// group). A member killed with SIGKILL: after its session times out, the survivor is assigned
// its partitions, resumes them from the committed offsets, and the shards replay to the
// leader's digests.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeEntry, type Entry } from '../../src/core/index.js';
import { KafkaEntrySource, type ShardEntries } from '../../src/adapters/kafka-entry-source.js';
import type { AssignmentChange } from '../../src/adapters/kafka-group-consumer.js';
import { KafkaLogPublisher } from '../../src/adapters/kafka-log-publisher.js';
import { partitionOf } from '../../src/adapters/kafka-partition.js';
import { ensureTopics } from '../../src/adapters/kafka-topics.js';
import { REPO_ROOT, kafkaComponent, startKafka, waitFor, type KafkaCluster } from '../helpers/kafka.js';
import { makeLog, replayDigests } from './fixtures/counter-log.js';

const kafka = kafkaComponent();
const SEED = Number(process.env.SEED ?? Math.floor(Math.random() * 2 ** 31));
const PARTITIONS = 4;
const TOPIC = 'group.playout.log';
const GROUP = 'eu-fra.log';
// The broker's group.min.session.timeout.ms is 6 s: the shortest a member may ask for.
const SESSION_MS = 6_000;

/** A group member in a child process, observed through its JSON-lines stdout. */
class ChildMember {
  readonly child: ChildProcess;
  readonly assignments: AssignmentChange[] = [];
  readonly entries = new Map<string, Entry[]>();
  started = false;
  private buf = '';

  constructor(brokers: string[]) {
    const args = JSON.stringify({ brokers, topic: TOPIC, groupId: GROUP, sessionTimeoutMs: SESSION_MS, heartbeatIntervalMs: 500 });
    this.child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test/kafka/fixtures/group-member.ts'), args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => {
      this.buf += chunk;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        if (line.trim()) this.onLine(JSON.parse(line) as Record<string, unknown>);
      }
    });
  }

  private onLine(msg: Record<string, unknown>): void {
    if (msg.event === 'started') this.started = true;
    else if (msg.event === 'assignment') this.assignments.push(msg as unknown as AssignmentChange);
    else if (msg.event === 'entries') {
      const shard = msg.shard as string;
      let list = this.entries.get(shard);
      if (!list) this.entries.set(shard, (list = []));
      for (const b64 of msg.bytes as string[]) list.push(decodeEntry(Buffer.from(b64, 'base64')));
    }
  }

  partitions(): number[] {
    return this.assignments.at(-1)?.current[0]?.partitions ?? [];
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

describe.skipIf(kafka.skip)('a region\'s nodes as one consumer group', () => {
  let cluster: KafkaCluster;
  let member: ChildMember | null = null;
  let survivor: KafkaEntrySource | null = null;
  let publisher: KafkaLogPublisher | null = null;

  beforeAll(async () => {
    kafka.require();
    console.log(`kafka-group.int: reproduce with seed=${SEED}`);
    cluster = await startKafka({ name: 'group' });
    await ensureTopics({ brokers: cluster.brokers, logLevel: 'nothing' }, [{ topic: TOPIC, partitions: PARTITIONS }]);
  });

  afterAll(async () => {
    member?.kill();
    await survivor?.stop();
    await publisher?.close();
    await cluster?.stop();
  });

  it('a member killed with SIGKILL: the other is assigned its partitions and its shards replay to the leader\'s digests', async () => {
    // Two shards per partition, so every member holds shards.
    const shards: string[] = [];
    for (let i = 0; shards.length < 2 * PARTITIONS; i++) {
      const s = `hunt-${i}`;
      if (shards.filter((x) => partitionOf(x, PARTITIONS) === partitionOf(s, PARTITIONS)).length < 2) shards.push(s);
    }
    const logs = shards.map((s, i) => makeLog(s, SEED + i, 20));
    const half = (l: (typeof logs)[number]) => Math.floor(l.entries.length / 2);
    publisher = new KafkaLogPublisher({ client: { brokers: cluster.brokers, logLevel: 'nothing' }, topic: TOPIC });

    member = new ChildMember(cluster.brokers);
    await waitFor('the child member to hold every partition', () => (member!.partitions().length === PARTITIONS ? true : undefined));

    const got = new Map<string, Entry[]>();
    const changes: AssignmentChange[] = [];
    survivor = new KafkaEntrySource(
      { client: { brokers: cluster.brokers, logLevel: 'nothing' }, groupId: GROUP, topics: [TOPIC], sessionTimeoutMs: SESSION_MS, heartbeatIntervalMs: 500, maxWaitMs: 100 },
      {
        onAssignment: (c) => {
          changes.push(c);
        },
        onEntries: (b: ShardEntries) => {
          let list = got.get(b.shard);
          if (!list) got.set(b.shard, (list = []));
          list.push(...b.entries);
        },
      },
    );
    await survivor.start();
    await waitFor('the partitions split between the two members', () => {
      const mine = survivor!.assignment()[0]?.partitions ?? [];
      const theirs = member!.partitions();
      return mine.length > 0 && theirs.length > 0 && mine.length + theirs.length === PARTITIONS && mine.every((p) => !theirs.includes(p)) ? true : undefined;
    });
    const childPartitions = member.partitions();
    const mine = survivor.assignment()[0]!.partitions;
    expect(changes.at(-1)!.current).toEqual([{ topic: TOPIC, partitions: mine }]);
    for (const s of shards) expect(survivor.ownsShard(s)).toBe(mine.includes(partitionOf(s, PARTITIONS)));

    // First half of every log: each member receives the shards of its partitions only.
    await Promise.all(logs.map((l) => publisher!.publish(l.entries.slice(0, half(l)))));
    await waitFor('first halves delivered', () =>
      logs.every((l) => ((childPartitions.includes(partitionOf(l.shard, PARTITIONS)) ? member!.entries : got).get(l.shard)?.length ?? 0) >= half(l)) ? true : undefined,
    );
    for (const l of logs) {
      const onChild = childPartitions.includes(partitionOf(l.shard, PARTITIONS));
      expect(onChild ? got.has(l.shard) : member.entries.has(l.shard)).toBe(false);
    }

    member.kill();
    await waitFor('the survivor to be assigned the dead member\'s partitions', () => ((survivor!.assignment()[0]?.partitions.length ?? 0) === PARTITIONS ? true : undefined), 60_000);
    const takeover = changes.at(-1)!;
    expect(takeover.assigned).toEqual([{ topic: TOPIC, partitions: childPartitions }]);
    expect(takeover.revoked).toEqual([]);
    for (const s of shards) expect(survivor.ownsShard(s)).toBe(true);

    // Second half: the survivor now serves every shard, from the committed offsets on.
    await Promise.all(logs.map((l) => publisher!.publish(l.entries.slice(half(l)))));
    await waitFor('every entry of every shard', () => (logs.every((l) => (got.get(l.shard)?.at(-1)?.seq ?? 0) === l.entries.at(-1)!.seq) ? true : undefined), 60_000);
    for (const l of logs) {
      // What the dead member had applied plus what the survivor received, duplicates dropped
      // by seq as the Follower does, is the leader's log, and replays to its digests.
      const bySeq = new Map<number, Entry>();
      for (const e of [...(member.entries.get(l.shard) ?? []), ...(got.get(l.shard) ?? [])]) if (!bySeq.has(e.seq)) bySeq.set(e.seq, e);
      const merged = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
      expect(merged.map((e) => e.seq)).toEqual(l.entries.map((e) => e.seq));
      expect(replayDigests(merged)).toEqual(l.digests);
    }
  }, 120_000);
});

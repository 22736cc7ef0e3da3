// Two nodes of one follower region share its shards as one Kafka consumer group
// (kafka.consume[].shards: assigned; partition = shard group). Node A runs in this process,
// node B is a real `playout start` child process with its own store. A first holds every
// partition and follows every shard; B joins and takes half the partitions (A closes those
// shards and notes in its store where Kafka had got to; B opens them from an empty store: the
// group's offset, the gap repaired over HTTP). B is then killed with SIGKILL: after its session
// times out, A is assigned its partitions again and resumes their shards from its own store,
// re-reading Kafka from where that store ends — no HTTP repair — with digests identical to
// the leader's at every common tick.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpPeerClient } from '../../src/adapters/http-peer-client.js';
import { partitionOf } from '../../src/adapters/kafka-partition.js';
import { LoadGenerator } from '../../src/games/treasure-hunt/index.js';
import { checkShard } from '../../src/node/cluster-check.js';
import type { RegionConfigInput } from '../../src/node/region-config.js';
import type { RegionNode } from '../../src/node/region-node.js';
import { REPO_ROOT, TOKEN_ENV, adminClient, freePorts, startNode, writeClusterConfigs, type ClusterFiles } from '../helpers/cluster.js';
import { kafkaComponent, startKafka, waitFor, type KafkaCluster } from '../helpers/kafka.js';

const c = kafkaComponent();
const LEADER = 'eu-fra';
const FOLLOWER = 'af-jnb';
const PARTITIONS = 4;
const GROUP = `playout.log.${FOLLOWER}`;
const SEED = Number(process.env.PLAYOUT_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** Six shards, at least one in every partition. */
function pickShards(): string[] {
  const out: string[] = [];
  const perPartition = new Map<number, number>();
  for (let i = 0; out.length < 6; i++) {
    const s = `hunt-${i}`;
    const p = partitionOf(s, PARTITIONS);
    if ((perPartition.get(p) ?? 0) >= 2 || (out.length >= PARTITIONS && perPartition.size < PARTITIONS && perPartition.has(p))) continue;
    perPartition.set(p, (perPartition.get(p) ?? 0) + 1);
    out.push(s);
  }
  return out;
}

describe.skipIf(c.skip)('a follower region\'s nodes as one Kafka consumer group', () => {
  const SHARDS = pickShards();
  let kafka: KafkaCluster;
  let files: ClusterFiles;
  let leader: RegionNode;
  let nodeA: RegionNode;
  let childB: ChildProcess | null = null;
  let urlB = '';
  let logB = '';
  const clients = new Map<string, HttpPeerClient>();
  let loading = true;
  let load: Promise<void> = Promise.resolve();

  const head = (n: RegionNode, shard: string) => n.shards.get(shard)?.host.durableSeq ?? 0;

  beforeAll(async () => {
    c.require();
    console.log(`kafka-transport-group.int: reproduce with seed=${SEED} (PLAYOUT_SEED); shards ${SHARDS.map((s) => `${s}→p${partitionOf(s, PARTITIONS)}`).join(' ')}`);
    kafka = await startKafka({ name: 'kafkagroup' });
    files = await writeClusterConfigs({ regions: [LEADER, FOLLOWER], shards: SHARDS.map((id, i) => ({ id, leader: LEADER, tickMs: 50, seed: SEED + i })) });
    files.configs[LEADER]!.kafka = { brokers: kafka.brokers, publish: true, partitions: PARTITIONS, retryDelayMs: 200, retryDelayMsMax: 1_000 };
    // Repairs of stalls wait long: what reaches a follower comes from Kafka, except the gap of a
    // shard a node never held (repaired at once: a gap is not a stall).
    files.configs[FOLLOWER]!.repair = { delayMs: 10_000 };
    files.configs[FOLLOWER]!.kafka = {
      brokers: kafka.brokers,
      consume: [{ topic: 'playout.log', groupId: GROUP, shards: 'assigned', sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500 }],
      httpStream: false,
      retryDelayMs: 200,
      retryDelayMsMax: 1_000,
    };
    leader = await startNode(files, LEADER);
    await waitFor('the leader publishing every shard', () => (SHARDS.every((s) => leader.kafka!.lastPublished(s) !== null) ? true : undefined), 60_000);
    nodeA = await startNode(files, FOLLOWER);
    clients.set(LEADER, adminClient(LEADER, leader.url));
    clients.set(FOLLOWER, adminClient(FOLLOWER, nodeA.url));
    // Inputs on every shard all along, so digests cover real state.
    const gens = SHARDS.map((s, i) => new LoadGenerator({ seed: SEED + i, players: 20, inputsPerTick: 4, ingestPrefix: `g${i}` }));
    load = (async () => {
      for (let t = 0; loading; t++) {
        await Promise.all(SHARDS.map((s, i) => leader.submit(s, gens[i]!.next(t).map((x) => ({ type: x.type, version: x.version, payload: x.payload, ingestId: x.ingestId })), (k) => `inputs[${k}].`).catch(() => undefined)));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
  }, 120_000);

  afterAll(async () => {
    loading = false;
    await load;
    childB?.kill('SIGKILL');
    for (const cl of clients.values()) await cl.close().catch(() => undefined);
    await nodeA?.close().catch(() => undefined);
    await leader?.close().catch(() => undefined);
    await kafka?.stop().catch(() => undefined);
    if (files) rmSync(files.dir, { recursive: true, force: true });
  }, 60_000);

  it('B joins and takes half the shards; B killed with SIGKILL: A takes them back from its own store, identical digests', async () => {
    const source = nodeA.kafka!.groupSource!;
    await waitFor('A to hold every partition and every shard', () => (source.assignment()[0]?.partitions.length === PARTITIONS && SHARDS.every((s) => nodeA.shards.has(s)) ? true : undefined), 60_000);
    await waitFor('A to follow every shard from Kafka', () => (SHARDS.every((s) => head(nodeA, s) > 20) ? true : undefined), 30_000);

    // Node B: the same region and group, its own store and port, a real process.
    const [portB] = await freePorts(1);
    const cfgB: RegionConfigInput = { ...files.configs[FOLLOWER]!, listen: { host: '127.0.0.1', port: portB! }, store: { path: join(files.dir, `${FOLLOWER}-b`) } };
    const fileB = join(files.dir, `${FOLLOWER}-b.yaml`);
    writeFileSync(fileB, stringify(cfgB));
    urlB = `http://127.0.0.1:${portB}`;
    childB = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src/cli/main.ts'), 'start', '--region', fileB, '--log-level', 'warn'], { cwd: REPO_ROOT, env: { ...process.env, ...TOKEN_ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
    childB.stdout!.on('data', (d: Buffer) => (logB = (logB + d.toString('utf8')).slice(-8_000)));
    childB.stderr!.on('data', (d: Buffer) => (logB = (logB + d.toString('utf8')).slice(-8_000)));
    const clientB = adminClient(FOLLOWER, urlB);
    clients.set(`${FOLLOWER}-b`, clientB);

    const mine = await waitFor('the partitions split between A and B', () => {
      const ps = source.assignment()[0]?.partitions ?? [];
      return ps.length > 0 && ps.length < PARTITIONS ? ps : undefined;
    }, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n--- node B log ---\n${logB}`);
    });
    const movedToB = SHARDS.filter((s) => !mine.includes(partitionOf(s, PARTITIONS)));
    const keptByA = SHARDS.filter((s) => mine.includes(partitionOf(s, PARTITIONS)));
    expect(movedToB.length).toBeGreaterThan(0);
    expect(keptByA.length).toBeGreaterThan(0);
    // A closed the shards of the partitions it lost, and noted where Kafka had got to.
    await waitFor('A to close the shards B took and note their Kafka positions', () => (movedToB.every((s) => !nodeA.shards.has(s) && nodeA.store.getMeta(s, 'kafka') !== null) ? true : undefined), 30_000);
    for (const s of keptByA) expect(nodeA.shards.has(s)).toBe(true);
    for (const s of movedToB) expect(nodeA.store.getMeta(s, 'kafka')).toMatchObject({ topic: 'playout.log', partition: partitionOf(s, PARTITIONS) });
    const headsAtMove = new Map(movedToB.map((s) => [s, nodeA.store.head(s)?.seq ?? 0]));

    // B holds exactly the other shards and follows them: past where A stopped.
    await waitFor('B to follow its shards past where A stopped', async () => {
      const st = await clientB.nodeStatus();
      const held = st.shards.map((r) => r.shard).sort();
      return JSON.stringify(held) === JSON.stringify([...movedToB].sort()) && st.shards.every((r) => r.head > headsAtMove.get(r.shard)! + 20) ? true : undefined;
    }, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n--- node B log ---\n${logB}`);
    });
    for (const s of movedToB) {
      const check = await checkShard(s, new Map([[LEADER, clients.get(LEADER)!], [FOLLOWER, clientB]]), new Map());
      expect(check.ok, check.lines.join('\n')).toBe(true);
    }

    // B dies without leaving the group: A gets its partitions after B's session times out.
    childB.kill('SIGKILL');
    await waitFor('A to be assigned every partition again', () => (source.assignment()[0]?.partitions.length === PARTITIONS && SHARDS.every((s) => nodeA.shards.has(s)) ? true : undefined), 60_000);
    const leaderHeads = new Map(SHARDS.map((s) => [s, head(leader, s)]));
    await waitFor('A at the leader\'s heads on every shard', () => (SHARDS.every((s) => head(nodeA, s) >= leaderHeads.get(s)!) ? true : undefined), 60_000);
    loading = false;
    await load;
    await waitFor('A level with the leader', () => (SHARDS.every((s) => head(nodeA, s) === head(leader, s)) ? true : undefined), 30_000);

    for (const s of movedToB) {
      const row = nodeA.shardStatus(s);
      // Resumed from its own store at the right offset: everything since came from Kafka.
      expect(row.repairs.entries, `shard ${s} was repaired over HTTP instead of re-read from Kafka`).toBe(0);
      expect(row.stopped).toBeNull();
      expect(row.quarantine).toBeNull();
    }
    for (const s of SHARDS) {
      const check = await checkShard(s, new Map([[LEADER, clients.get(LEADER)!], [FOLLOWER, clients.get(FOLLOWER)!]]), new Map());
      expect(check.ok, check.lines.join('\n')).toBe(true);
      expect(check.commonTicks).toBeGreaterThan(20);
    }
  }, 240_000);
});

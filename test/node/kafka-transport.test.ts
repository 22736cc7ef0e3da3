// The region config's `kafka` section, and a leader whose Kafka cannot be reached: it starts,
// sequences and acknowledges over HTTP as without Kafka, and keeps retrying the publisher.
// (test/node/kafka-transport.int.test.ts runs the transport against a real broker.)
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPlayoutError } from '../../src/core/errors.js';
import { LoadGenerator } from '../../src/games/treasure-hunt/index.js';
import { parseRegionConfig } from '../../src/node/region-config.js';
import type { RegionNode } from '../../src/node/region-node.js';
import { TOKEN_ENV, adminClient, freePorts, startNode, waitFor, writeClusterConfigs, type ClusterFiles } from '../helpers/cluster.js';

function errorOf(fn: () => unknown): { code: string; path: string | null; message: string } {
  try {
    fn();
  } catch (err) {
    if (isPlayoutError(err)) return { code: err.code, path: err.path, message: err.message };
    throw err;
  }
  throw new Error('expected a PlayoutError');
}

const base = (kafka: unknown): Record<string, unknown> => ({
  region: 'eu-fra',
  listen: { port: 7101 },
  store: { path: 'data/eu-fra' },
  shards: [{ id: 'hunt-1', reducer: 'treasure-hunt@1', leader: 'eu-fra', seed: 1, tickMs: 50 }],
  tokens: { ingest: { env: 'PLAYOUT_INGEST_TOKEN' }, peer: { env: 'PLAYOUT_PEER_TOKEN' }, admin: { env: 'PLAYOUT_ADMIN_TOKEN' } },
  kafka,
});

describe('region config: kafka section', () => {
  it('is optional, and fills defaults when present', () => {
    const none = parseRegionConfig({ ...base(undefined), kafka: undefined }, TOKEN_ENV);
    expect(none.kafka).toBeUndefined();
    const c = parseRegionConfig(base({ brokers: ['127.0.0.1:19092'], consume: [{ topic: 'eu-fra.playout.log', groupId: 'playout.log.af-jnb' }] }), TOKEN_ENV);
    expect(c.kafka).toMatchObject({ publish: false, publishTopic: 'playout.log', inputs: false, httpStream: true, clientId: 'playout' });
    expect(c.kafka!.consume[0]).toEqual({ topic: 'eu-fra.playout.log', groupId: 'playout.log.af-jnb', shards: 'all', sessionTimeoutMs: 30_000, heartbeatIntervalMs: 3_000 });
  });

  it.each([
    [{ brokers: [] }, 'kafka.brokers', 'at least one broker'],
    [{ brokers: ['localhost'] }, 'kafka.brokers[0]', 'host:port'],
    [{ brokers: ['127.0.0.1:9092'], publish: 'yes' }, 'kafka.publish', 'boolean'],
    [{ brokers: ['127.0.0.1:9092'], consume: [{ topic: 'playout.log' }] }, 'kafka.consume[0].groupId', 'string'],
    [{ brokers: ['127.0.0.1:9092'], consume: [{ topic: 'bad topic!', groupId: 'g' }] }, 'kafka.consume[0].topic', 'topic name'],
    [{ brokers: ['127.0.0.1:9092'], partitions: 0 }, 'kafka.partitions', '>=1'],
    [{ brokers: ['127.0.0.1:9092'], mirror: true }, 'kafka', 'mirror'],
    [{ brokers: ['127.0.0.1:9092'], consume: [{ groupId: 'g', shards: 'some' }] }, 'kafka.consume[0].shards', 'assigned'],
    [{ brokers: ['127.0.0.1:9092'], consume: [{ groupId: 'g', shards: 'assigned' }, { topic: 'eu-fra.playout.log', groupId: 'g', shards: 'assigned' }] }, 'kafka.consume', 'at most one consume entry'],
  ])('refuses %j at %s', (kafka, path, words) => {
    const e = errorOf(() => parseRegionConfig(base(kafka), TOKEN_ENV, 'eu-fra.yaml'));
    expect(e.code).toBe('PLAYOUT_CONFIG_INVALID');
    expect(e.path).toBe(path);
    expect(e.message).toContain(words);
  });
});

describe('a leader whose Kafka is unreachable', () => {
  let files: ClusterFiles;
  let node: RegionNode;

  beforeAll(async () => {
    const [deadPort] = await freePorts(1); // nothing listens there
    files = await writeClusterConfigs({ regions: ['eu-fra'], shards: [{ id: 'hunt-1', leader: 'eu-fra', tickMs: 50 }] });
    files.configs['eu-fra']!.kafka = { brokers: [`127.0.0.1:${deadPort}`], publish: true, inputs: true, retryDelayMs: 100, retryDelayMsMax: 500 };
    node = await startNode(files, 'eu-fra');
  }, 30_000);

  afterAll(async () => {
    await node?.close();
    if (files) rmSync(files.dir, { recursive: true, force: true });
  }, 30_000);

  it('starts, sequences and acknowledges inputs, and keeps retrying Kafka', async () => {
    const client = adminClient('eu-fra', node.url);
    try {
      const gen = new LoadGenerator({ seed: 5, players: 10, inputsPerTick: 5 });
      for (let t = 0; t < 5; t++) {
        const batch = gen.next(t).map((i) => ({ type: i.type, version: i.version, payload: i.payload, ingestId: i.ingestId }));
        const results = await client.submit('hunt-1', batch);
        expect(results.every((r) => r.status === 'sequenced')).toBe(true);
      }
      await waitFor('a Kafka failure reported', () => node.kafka!.errors > 0, 20_000);
      expect(node.kafka!.lastPublished('hunt-1')).toBeNull();
      expect(node.shards.get('hunt-1')!.leader!.sequenced).toBe(25);
    } finally {
      await client.close();
    }
  }, 40_000);
});

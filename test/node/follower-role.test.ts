// FollowerRole glue, on the simulated store and clock: what it tells the desync detector and
// when, and which clock its peer views run on.
import type { FastifyBaseLogger } from 'fastify';
import { describe, expect, it } from 'vitest';
import { ReducerRegistry, Rng, type Entry } from '../../src/core/index.js';
import { NodeMetrics } from '../../src/adapters/metrics.js';
import { HttpPeerClient } from '../../src/adapters/http-peer-client.js';
import type { NodeStatus } from '../../src/adapters/http-schemas.js';
import type { EntrySource, EntrySourceHandler } from '../../src/ports/entry-source.js';
import { DESYNC_DEFAULTS } from '../../src/replication/desync-detector.js';
import { FOLLOWER_DEFAULTS } from '../../src/replication/follower.js';
import { FollowerRole } from '../../src/node/follower-role.js';
import { ShardHost } from '../../src/node/shard-host.js';
import { ManualClock } from '../sim/clock.js';
import { MemoryLogStore } from '../sim/log-store.js';
import { tallyReducer } from '../sim/tally-reducer.js';
import { SHARD, makeLog } from '../replication/chain.js';

const silent = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {}, child: () => silent, level: 'silent', silent() {} } as unknown as FastifyBaseLogger;

/** The port as the node's stream source uses it: it only records where the role asks to read from. */
class RecordingSource implements EntrySource {
  readonly name = 'recording';
  readonly follows: [string, number][] = [];
  async start(_handler: EntrySourceHandler): Promise<void> {}
  follow(shard: string, seqFrom: number): void {
    this.follows.push([shard, seqFrom]);
  }
  unfollow(): void {}
  async close(): Promise<void> {}
}

function follower(clock: ManualClock): { role: FollowerRole; host: ShardHost; leader: HttpPeerClient } {
  const registry = new ReducerRegistry([tallyReducer()]);
  const host = new ShardHost(
    {
      region: 'af-jnb',
      store: new MemoryLogStore(),
      registry,
      metrics: new NodeMetrics('af-jnb', () => ({}) as NodeStatus),
      log: silent,
      snapshotEveryTicks: 0,
      snapshotsKept: 2,
      retainEntriesMin: 1_000_000,
      machineOptions: (onTick) => ({ onTick, checked: null }),
      nowMs: () => 1_700_000_000_000,
    },
    SHARD,
    { leader: 'eu-fra', ack: 'leader', reducer: 'tally@1', createdBy: 'config' },
  );
  // The leader's client points at a closed port: durable reports to it fail (and are retried
  // until the role closes), which these tests do not look at.
  const leader = new HttpPeerClient({ region: 'eu-fra', url: 'http://127.0.0.1:9', token: 't', requestTimeoutMs: 1_000, frameBytesMax: 1 << 20 });
  const clients = new Map<string, HttpPeerClient>([['eu-fra', leader]]);
  const role = new FollowerRole(host, 'eu-fra', clients, new RecordingSource(), clock, Rng.fromSeed(1), {
    follower: { ...FOLLOWER_DEFAULTS, leader: 'eu-fra' },
    desync: { ...DESYNC_DEFAULTS },
    reportRetryMs: 500,
  });
  return { role, host, leader };
}

describe('FollowerRole', () => {
  it('feeds the leader digests carried by the log to the detector once the entries are durable, before they are applied', async () => {
    const { role, host, leader } = follower(new ManualClock());
    await host.resume();
    role.start();
    // More entries than one apply slice: applying them takes several turns of the event loop.
    const log: Entry[] = makeLog(1_500, 3);
    const last = log[log.length - 1]!;
    expect(last.kind).toBe('tick');
    role.onEntries(log, 'eu-fra');
    await host.waitDurable(last.seq);
    // Durable, not yet all applied ...
    expect(host.durableSeq).toBe(last.seq);
    expect(host.machine!.head).toBeLessThan(last.seq);
    // ... and the detector already holds the leader's digest carried by the last tick entry.
    expect(role.detector.expectedDigest(last.tick - 1)).toEqual(last.digest);
    role.close();
    await leader.close();
  });

  it('measures peer views on the injected clock', async () => {
    const clock = new ManualClock(10_000);
    const { role, host, leader } = follower(clock);
    await host.resume();
    role.start();
    const log = makeLog(3, 2);
    role.onEntries(log.slice(0, 4), 'eu-fra');
    await host.waitDurable(4);
    // Heard at 10,000; 7,500 ms later on the injected clock (whatever the wall clock did).
    while (clock.runNext(17_500));
    clock.set(17_500);
    const view = role.peerStatus().find((p) => p.region === 'eu-fra')!;
    expect(view.lastHeardMs).toBe(7_500);
    expect(view.head).toBe(4);
    expect(view.lagEntries).toBe(0);
    role.close();
    await leader.close();
  });
});

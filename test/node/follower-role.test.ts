// FollowerRole glue, on the simulated store and clock: what it tells the desync detector and
// when, and which clock its peer views run on.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import { describe, expect, it } from 'vitest';
import { ReducerRegistry, Rng, type Entry } from '../../src/core/index.js';
import { NodeMetrics } from '../../src/adapters/metrics.js';
import { FRAMES_CONTENT_TYPE, FrameWriter } from '../../src/adapters/http-frames.js';
import { HttpPeerClient } from '../../src/adapters/http-peer-client.js';
import type { NodeStatus } from '../../src/adapters/http-schemas.js';
import type { EntrySource, EntrySourceHandler } from '../../src/ports/entry-source.js';
import { DESYNC_DEFAULTS } from '../../src/replication/desync-detector.js';
import { FOLLOWER_DEFAULTS } from '../../src/replication/follower.js';
import { FollowerRole } from '../../src/node/follower-role.js';
import { FOLLOWER_COMMIT_HOLD_ENTRIES_MAX, ShardHost } from '../../src/node/shard-host.js';
import { ReplicationConfigSchema } from '../../src/node/region-config.js';
import { ManualClock } from '../sim/clock.js';
import { MemoryLogStore, type WriteOp } from '../sim/log-store.js';
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

/** A peer that serves GET …/entries from `log` (and takes durable reports): the range path of a real client. */
async function rangeServer(log: readonly Entry[]): Promise<{ server: Server; url: string; ranges: [number, number][] }> {
  const ranges: [number, number][] = [];
  const server = createServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    if (req.method === 'GET' && u.pathname.endsWith('/entries')) {
      const from = Number(u.searchParams.get('from'));
      const to = Math.min(Number(u.searchParams.get('to')), log.length);
      ranges.push([from, to]);
      const w = new FrameWriter();
      for (let s = from; s <= to; s++) w.entry(log[s - 1]!.bytes);
      res.writeHead(200, { 'content-type': FRAMES_CONTENT_TYPE });
      res.end(w.take());
      return;
    }
    req.resume();
    res.writeHead(204).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, ranges };
}

/** The configured default. */
const HOLD_MS = ReplicationConfigSchema.parse({}).followerCommitHoldMs;

function follower(clock: ManualClock, leaderUrl = 'http://127.0.0.1:9', ack: 'leader' | 'quorum' = 'leader', followerCommitHoldMs = HOLD_MS): { role: FollowerRole; host: ShardHost; leader: HttpPeerClient; source: RecordingSource } {
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
      followerCommitHoldMs,
      machineOptions: (onTick) => ({ onTick, checked: null }),
      nowMs: () => 1_700_000_000_000,
    },
    SHARD,
    { leader: 'eu-fra', ack, reducer: 'tally@1', createdBy: 'config' },
  );
  // The leader's client points at a closed port: durable reports to it fail (and are retried
  // until the role closes), which these tests do not look at.
  const leader = new HttpPeerClient({ region: 'eu-fra', url: leaderUrl, token: 't', requestTimeoutMs: 1_000, frameBytesMax: 1 << 20 });
  const clients = new Map<string, HttpPeerClient>([['eu-fra', leader]]);
  const source = new RecordingSource();
  const role = new FollowerRole(host, 'eu-fra', clients, source, clock, Rng.fromSeed(1), {
    follower: { ...FOLLOWER_DEFAULTS, leader: 'eu-fra' },
    desync: { ...DESYNC_DEFAULTS },
    reportRetryMs: 500,
  });
  return { role, host, leader, source };
}

/** The appends the host's store is asked for, in order (the store still performs them). */
function appendsOf(host: ShardHost): WriteOp[] {
  const appends: WriteOp[] = [];
  (host.ctx.store as MemoryLogStore).faults.failWrite = (op) => {
    if (op.kind === 'append') appends.push(op);
    return false;
  };
  return appends;
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

  it('under ack mode leader, applies streamed entries at once and stores what arrives within the configured hold (followerCommitHoldMs) in one append; under quorum, no hold', async () => {
    const log: Entry[] = makeLog(40, 2); // 121 entries
    const chunks: Entry[][] = [];
    for (let i = 0; i < log.length; i += 4) chunks.push(log.slice(i, i + 4));
    const appendsUnder = async (ack: 'leader' | 'quorum'): Promise<{ appends: WriteOp[]; appliedBeforeDurable: number }> => {
      const { role, host, leader } = follower(new ManualClock(), undefined, ack);
      const appends = appendsOf(host);
      await host.resume();
      role.start();
      // One chunk per turn of the event loop, as a stream delivers them.
      let appliedBeforeDurable = 0;
      for (const c of chunks) {
        role.onEntries(c, 'eu-fra');
        const last = c[c.length - 1]!.seq;
        expect(host.machine!.head).toBe(last);
        if (host.durableSeq < last) appliedBeforeDurable++;
        await new Promise((r) => setImmediate(r));
      }
      await host.waitDurable(log[log.length - 1]!.seq);
      expect(host.durableSeq).toBe(log.length);
      // Stored in order, each append continuing the one before, nothing twice.
      expect(appends.map((a) => [a.seqFrom, a.seqTo])).toEqual(appends.map((a, i) => [i === 0 ? 1 : appends[i - 1]!.seqTo! + 1, a.seqTo]));
      expect(appends[appends.length - 1]!.seqTo).toBe(log.length);
      role.close();
      await leader.close();
      return { appends, appliedBeforeDurable };
    };
    const leaderAck = await appendsUnder('leader');
    const quorumAck = await appendsUnder('quorum');
    console.log(`${chunks.length} chunks, ${HOLD_MS} ms hold: ${leaderAck.appends.length} appends under ack leader, ${quorumAck.appends.length} under quorum`);
    // The 31 turns take a few ms: the first append starts at once, the rest wait for the hold.
    expect(leaderAck.appends.length).toBeLessThanOrEqual(8);
    expect(leaderAck.appliedBeforeDurable).toBeGreaterThan(chunks.length / 2);
    expect(quorumAck.appends.length).toBeGreaterThan(chunks.length / 2);
  });

  it('does not hold a backlog: FOLLOWER_COMMIT_HOLD_ENTRIES_MAX streamed entries or more are stored at once', async () => {
    // A hold far longer than this test takes, so that what it shows does not depend on timing.
    const { role, host, leader } = follower(new ManualClock(), undefined, 'leader', 60_000);
    const appends = appendsOf(host);
    await host.resume();
    role.start();
    const log: Entry[] = makeLog(Math.ceil(FOLLOWER_COMMIT_HOLD_ENTRIES_MAX / 4) + 10, 3);
    // The first append starts the hold's clock; a small chunk right after it waits ...
    role.onEntries(log.slice(0, 1), 'eu-fra');
    await host.waitDurable(1);
    role.onEntries(log.slice(1, 5), 'eu-fra');
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(appends).toHaveLength(1);
    // ... and joins a backlog that arrives meanwhile, which is stored in the next turn.
    const rest = log.slice(5);
    expect(rest.length + 4).toBeGreaterThanOrEqual(FOLLOWER_COMMIT_HOLD_ENTRIES_MAX);
    role.onEntries(rest, 'eu-fra');
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(appends.map((a) => [a.seqFrom, a.seqTo])).toEqual([
      [1, 1],
      [2, log.length],
    ]);
    await host.waitDurable(log.length);
    role.close();
    await leader.close();
  });

  it("rebuilds a desynced tick from its log only once the log holds the entry that closed it: a mismatch can be seen before that (entries are applied first)", async () => {
    // A hold long enough that the entries are surely not durable yet when the mismatch comes.
    const { role, host, leader } = follower(new ManualClock(), undefined, 'leader', 1_000);
    await host.resume();
    role.start();
    const log: Entry[] = makeLog(6, 2);
    const last = log[log.length - 1]!;
    // The first append starts at once; the next one waits for the commit hold (ack mode leader).
    role.onEntries(log.slice(0, 1), 'eu-fra');
    await host.waitDurable(1);
    role.onEntries(log.slice(1), 'eu-fra');
    await new Promise((r) => setImmediate(r));
    // Applied, not yet durable.
    const closed = host.machine!.lastDigest!;
    expect(host.machine!.head).toBe(last.seq);
    expect(closed.seq).toBe(last.seq);
    expect(host.durableSeq).toBeLessThan(closed.seq);
    // The leader's status names another digest for that tick: quarantine, then rebuild the tick.
    const rebuiltAt: { durableSeq: number; tick: number; digest: Uint8Array }[] = [];
    const onLocalState = role.detector.onLocalState.bind(role.detector);
    role.detector.onLocalState = (id, state, now) => {
      rebuiltAt.push({ durableSeq: host.durableSeq, tick: state.tick, digest: state.digest });
      return onLocalState(id, state, now);
    };
    const failures: string[] = [];
    const onLocalStateFailure = role.detector.onLocalStateFailure.bind(role.detector);
    role.detector.onLocalStateFailure = (id, err, now) => {
      failures.push(err.message);
      return onLocalStateFailure(id, err, now);
    };
    const wrong = new Uint8Array(closed.digest.length).fill(7);
    role.onPeerStatus({ region: 'eu-fra', shard: SHARD, head: last.seq, headHash: last.hash, tick: last.tick, firstSeq: 1, epoch: last.epoch, digest: { tick: closed.tick, digest: wrong }, quarantined: false });
    expect(host.quarantine).not.toBeNull();
    expect(rebuiltAt).toEqual([]);
    await host.waitDurable(closed.seq);
    await new Promise((r) => setImmediate(r));
    expect(failures).toEqual([]);
    // Rebuilt from the log once it held the tick, to the digest this region computed.
    expect(rebuiltAt).toEqual([{ durableSeq: last.seq, tick: closed.tick, digest: closed.digest }]);
    role.close();
    await leader.close();
  });

  it('repositions its source past a repair that took the head far beyond what the source delivered', async () => {
    const log: Entry[] = makeLog(1_000, 3); // 4,001 entries
    const peer = await rangeServer(log);
    const clock = new ManualClock(10_000);
    const { role, host, leader, source } = follower(clock, peer.url);
    try {
      await host.resume();
      role.start();
      expect(source.follows).toEqual([[SHARD, 1]]);
      // The stream delivers the first entries, then stalls; the leader reports a head far ahead.
      role.onEntries(log.slice(0, 10), 'eu-fra');
      const last = log[log.length - 1]!;
      role.onPeerStatus({ region: 'eu-fra', shard: SHARD, head: last.seq, headHash: last.hash, tick: last.tick, firstSeq: 1, epoch: last.epoch, digest: null, quarantined: false });
      // No progress for the repair delay: ranges are asked for, answered, appended.
      clock.set(10_600);
      while (clock.runNext(10_600));
      await host.waitDurable(last.seq);
      expect(peer.ranges[0]).toEqual([11, 2_010]);
      // The source is told to go on after the repaired range rather than send it again.
      expect(source.follows.length).toBeGreaterThan(1);
      expect(source.follows[1]).toEqual([SHARD, 2_011]);
    } finally {
      role.close();
      await leader.close();
      await new Promise((r) => peer.server.close(r));
    }
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

import { describe, expect, it } from 'vitest';
import { PlayoutError, ReducerRegistry, ShardMachine, type Entry } from '../../src/core/index.js';
import type { PeerShardStatus } from '../../src/ports/entry-source.js';
import { answerBuckets, answerRecords } from '../../src/replication/bucket-compare.js';
import { DESYNC_DEFAULTS, DesyncDetector, type DesyncAction, type DesyncConfig } from '../../src/replication/desync-detector.js';
import { tickStateOf } from '../../src/replication/state-at-tick.js';
import { tallyReducer } from '../sim/tally-reducer.js';
import { SHARD, makeLog } from './chain.js';

const d = (n: number): Uint8Array => new Uint8Array(16).fill(n);

function detector(config: Partial<DesyncConfig> = {}): DesyncDetector {
  return new DesyncDetector({ ...DESYNC_DEFAULTS, resync: 'command', ...config, shard: SHARD, region: config.region ?? 'us-sfo', leader: config.leader ?? 'eu-fra' });
}

function ops(actions: readonly DesyncAction[]): string[] {
  return actions.map((a) => a.op);
}

function status(region: string, tick: number, digest: Uint8Array | null, quarantined = false): PeerShardStatus {
  return { region, shard: SHARD, head: 100, headHash: null, tick, firstSeq: 1, epoch: 1, digest: digest === null ? null : { tick, digest }, quarantined };
}

/** Run the log through a machine, stopping right after tick `tick` closed. */
function machineAt(log: readonly Entry[], tick: number, registry: ReducerRegistry): ShardMachine {
  const m = new ShardMachine(registry);
  for (const e of log) {
    m.apply(e);
    if (m.atTickBoundary && m.lastDigest!.tick === tick) return m;
  }
  throw new Error(`log ends before tick ${tick}`);
}

describe('DesyncDetector', () => {
  it('agrees tick by tick and records the last agreed tick', () => {
    const det = detector();
    for (let t = 0; t < 5; t++) {
      expect(det.onLocalDigest({ tick: t, seq: t * 4 + 5, digest: d(t) }, 0)).toEqual([]);
      expect(det.onLeaderDigest(t, d(t), 0)).toEqual([]);
    }
    expect(det.status()).toMatchObject({ quarantined: false, lastAgreedTick: 4, mismatches: 0, firstDivergingTick: null });
  });

  it('quarantines at the first tick whose digest differs from the leader’s, whichever arrives first', () => {
    const log = makeLog(6);
    const det = detector();
    // The leader's digests arrive in the log before this region computed them (catch-up).
    expect(det.onLogEntries(log, 0)).toEqual([]);
    const tickEntry = log.find((e) => e.kind === 'tick' && e.tick === 3)!;
    expect(det.expectedDigest(2)).toEqual(tickEntry.digest);
    det.onLocalDigest({ tick: 1, seq: 9, digest: det.expectedDigest(1)! }, 0);
    const out = det.onLocalDigest({ tick: 2, seq: 13, digest: d(9) }, 10);
    expect(ops(out)).toEqual(['quarantine', 'alert', 'captureLocal']);
    const q = out[0] as Extract<DesyncAction, { op: 'quarantine' }>;
    expect(q.tick).toBe(2);
    expect(q.error.code).toBe('PLAYOUT_DIGEST_MISMATCH');
    expect(q.error.tick).toBe(2);
    expect(det.status()).toMatchObject({ quarantined: true, firstDivergingTick: 2, lastAgreedTick: 1, mismatches: 1 });
    // Later mismatches are counted, not re-raised.
    expect(det.onLocalDigest({ tick: 3, seq: 17, digest: d(8) }, 20)).toEqual([]);
    expect(det.status().mismatches).toBe(2);
  });

  it('takes the leader’s published digest from its heartbeat', () => {
    const det = detector();
    det.onLocalDigest({ tick: 4, seq: 20, digest: d(1) }, 0);
    expect(ops(det.onPeerStatus(status('eu-fra', 4, d(2)), 5))).toEqual(['quarantine', 'alert', 'captureLocal']);
  });

  it('never quarantines the leader, and warns about a peer that disagrees with it', () => {
    const det = detector({ region: 'eu-fra' });
    det.onLocalDigest({ tick: 4, seq: 20, digest: d(1) }, 0);
    const out = det.onPeerStatus(status('us-sfo', 4, d(2)), 5);
    expect(ops(out)).toEqual(['alert']);
    expect((out[0] as Extract<DesyncAction, { op: 'alert' }>).level).toBe('warning');
    expect(det.status()).toMatchObject({ quarantined: false, peerMismatches: { 'us-sfo': 4 } });
    // Warned once per episode; agreeing again clears it.
    expect(det.onPeerStatus(status('us-sfo', 4, d(2)), 6)).toEqual([]);
    det.onLocalDigest({ tick: 5, seq: 24, digest: d(5) }, 10);
    det.onPeerStatus(status('us-sfo', 5, d(5)), 11);
    expect(det.status().peerMismatches).toEqual({});
  });

  it('waits for the leader’s digest before judging a peer', () => {
    const det = detector();
    det.onLocalDigest({ tick: 4, seq: 20, digest: d(1) }, 0);
    expect(det.onPeerStatus(status('af-jnb', 4, d(2)), 1)).toEqual([]);
    const out = det.onLeaderDigest(4, d(1), 2);
    expect(ops(out)).toEqual(['alert']);
    expect((out[0] as Extract<DesyncAction, { op: 'alert' }>).error.message).toContain('af-jnb');
  });

  it('names the differing records at the first diverging tick in two round trips', () => {
    const good = new ReducerRegistry([tallyReducer()]);
    const bad = new ReducerRegistry([tallyReducer({ wrongAtTick: 3 })]);
    const log = makeLog(6);
    const leader = tickStateOf(machineAt(log, 3, good));
    const local = tickStateOf(machineAt(log, 3, bad));
    const det = detector();
    det.onLogEntries(log, 0);
    for (let t = 0; t < 3; t++) det.onLocalDigest({ tick: t, seq: 0, digest: det.expectedDigest(t)! }, 0);
    const q = det.onLocalDigest({ tick: 3, seq: local.seq, digest: local.digest }, 0);
    const capture = q.find((a) => a.op === 'captureLocal') as Extract<DesyncAction, { op: 'captureLocal' }>;
    // The entry that closed the tick here: the node rebuilds the tick once its log holds it.
    expect(capture).toMatchObject({ tick: 3, seq: local.seq });
    // Round 1: our table sums; the leader answers bucket sums of the differing tables only.
    const r1 = det.onLocalState(capture.compareId, local, 5);
    const fetch = r1[0] as Extract<DesyncAction, { op: 'fetchBuckets' }>;
    expect(fetch).toMatchObject({ op: 'fetchBuckets', peer: 'eu-fra', query: { tick: 3 } });
    const answer = answerBuckets(leader, fetch.query);
    expect(answer.tables.filter((t) => t.bucketSums !== null).map((t) => t.table)).toEqual(['counters']);
    // Round 2: records of the differing buckets.
    const r2 = det.onBucketsAnswer(fetch.requestId, answer, 10);
    const recs = r2[0] as Extract<DesyncAction, { op: 'fetchRecords' }>;
    expect(recs).toMatchObject({ op: 'fetchRecords', peer: 'eu-fra', query: { tick: 3, table: 'counters' } });
    expect(recs.query.buckets).toHaveLength(1);
    const done = det.onRecordsAnswer(recs.requestId, answerRecords(leader, recs.query), 15);
    expect(ops(done)).toEqual(['report', 'alert']);
    const report = (done[0] as Extract<DesyncAction, { op: 'report' }>).report;
    expect(report).toMatchObject({ tick: 3, peer: 'eu-fra', reproduced: true, incomplete: null });
    expect(report.tables.map((t) => [t.table, t.records.map((r) => r.key)])).toEqual([['counters', ['k3']]]);
    expect((done[1] as Extract<DesyncAction, { op: 'alert' }>).error.message).toContain('counters["k3"]');
    expect(det.status().lastReport).toBe(report);
  });

  it('reports a divergence that does not reproduce when this region rebuilds the tick', () => {
    const det = detector();
    det.onLeaderDigest(3, d(1), 0);
    const capture = det.onLocalDigest({ tick: 3, seq: 13, digest: d(2) }, 0).find((a) => a.op === 'captureLocal') as Extract<DesyncAction, { op: 'captureLocal' }>;
    const out = det.onLocalState(capture.compareId, { tick: 3, seq: 13, digest: d(1), tables: {} }, 1);
    expect(ops(out)).toEqual(['report', 'alert']);
    expect((out[0] as Extract<DesyncAction, { op: 'report' }>).report.reproduced).toBe(false);
  });

  it('reports an incomplete diagnosis when the leader does not answer in time', () => {
    const det = detector({ requestTimeoutMs: 100 });
    det.onLeaderDigest(3, d(1), 0);
    const capture = det.onLocalDigest({ tick: 3, seq: 13, digest: d(2) }, 0).find((a) => a.op === 'captureLocal') as Extract<DesyncAction, { op: 'captureLocal' }>;
    det.onLocalState(capture.compareId, { tick: 3, seq: 13, digest: d(2), tables: {} }, 0);
    expect(det.nextWakeMs()).toBe(100);
    const out = det.onTimer(100);
    const report = (out.find((a) => a.op === 'report') as Extract<DesyncAction, { op: 'report' }>).report;
    expect(report.incomplete).toContain('did not answer');
    expect(det.nextWakeMs()).toBeNull();
  });

  it('resyncs automatically from the leader, then from a healthy peer when the leader fails', () => {
    const det = detector({ resync: 'auto', requestTimeoutMs: 100 });
    det.onPeerStatus(status('af-jnb', 2, d(2)), 0);
    det.onLogEntries([], 0);
    det.onLeaderDigest(2, d(2), 0);
    det.onLeaderDigest(3, d(1), 0);
    const out = det.onLocalDigest({ tick: 3, seq: 13, digest: d(9) }, 0);
    const resync = out.find((a) => a.op === 'resync') as Extract<DesyncAction, { op: 'resync' }>;
    expect(resync.peer).toBe('eu-fra');
    const retry = det.resyncFailed(resync.requestId, new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', 'down'), 10);
    const next = retry.find((a) => a.op === 'resync') as Extract<DesyncAction, { op: 'resync' }>;
    expect(next.peer).toBe('af-jnb');
    // Both failed: pause, then start over with the leader.
    expect(det.onTimer(200).some((a) => a.op === 'resync' && a.peer === 'af-jnb')).toBe(false);
    expect(det.status().resyncsFailed).toBe(2);
    const again = det.onTimer(400).find((a) => a.op === 'resync') as Extract<DesyncAction, { op: 'resync' }> | undefined;
    expect(again?.peer).toBe('eu-fra');
    det.resynced(again!.requestId, 2, 500);
    expect(det.status()).toMatchObject({ quarantined: false, resyncs: 1 });
  });

  it('does not resync from a peer that is quarantined or disagrees with the leader', () => {
    const det = detector({ resync: 'auto' });
    det.onPeerStatus(status('af-jnb', 2, null, true), 0);
    det.onLeaderDigest(3, d(1), 0);
    const out = det.onLocalDigest({ tick: 3, seq: 13, digest: d(9) }, 0);
    const resync = out.find((a) => a.op === 'resync') as Extract<DesyncAction, { op: 'resync' }>;
    const retry = det.resyncFailed(resync.requestId, new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', 'down'), 10);
    expect(retry.some((a) => a.op === 'resync')).toBe(false);
  });

  it('withholds automatic resync after repeated desyncs soon after resyncing, until a command', () => {
    const det = detector({ resync: 'auto', autoResyncMax: 2, autoResyncWindowTicks: 50 });
    let tick = 10;
    const desync = (): DesyncAction[] => {
      det.onLeaderDigest(tick, d(1), 0);
      const out = det.onLocalDigest({ tick, seq: tick * 4, digest: d(2) }, 0);
      return out;
    };
    for (let i = 0; i < 2; i++) {
      const r = desync().find((a) => a.op === 'resync') as Extract<DesyncAction, { op: 'resync' }>;
      expect(r).toBeDefined();
      det.resynced(r.requestId, tick - 5, 0);
      tick += 10;
    }
    const third = desync();
    expect(third.some((a) => a.op === 'resync')).toBe(false);
    expect(det.status().resyncNeedsCommand).toBe(true);
    expect(third.filter((a) => a.op === 'alert').map((a) => (a as Extract<DesyncAction, { op: 'alert' }>).error.message).join(' ')).toContain('/resync');
    const cmd = det.resync(0);
    expect(cmd.find((a) => a.op === 'resync')).toMatchObject({ peer: 'eu-fra' });
    expect(det.status().resyncNeedsCommand).toBe(false);
  });

  it('asks for a snapshot no newer than the last tick its log holds', () => {
    const log = makeLog(6);
    const det = detector({ resync: 'auto' });
    det.onLogEntries(log, 0);
    const t5 = log.find((e) => e.kind === 'tick' && e.tick === 5)!;
    const out = det.onLocalDigest({ tick: 4, seq: 0, digest: d(3) }, 0);
    expect(t5.digest).not.toBeNull();
    expect(out.find((a) => a.op === 'resync')).toMatchObject({ tickMax: 5 });
  });

  it('ignores answers it did not ask for', () => {
    const det = detector();
    expect(det.onBucketsAnswer(99, { tick: 1, seq: 1, digest: d(1), tables: [] }, 0)).toEqual([]);
    expect(det.onRecordsAnswer(99, { tick: 1, table: 't', buckets: [1], records: [] }, 0)).toEqual([]);
    expect(det.resynced(99, 1, 0)).toEqual([]);
    expect(det.status().resyncs).toBe(0);
  });

  describe('setLeader across a failover', () => {
    it.each([
      { name: 'the candidate on a promise: its digests are the reference', leader: 'af-jnb', fromTick: null, leaderDigestOf4: 'old' },
      { name: 'the new epoch from tick 3: the old leader digests of ticks ≥ 3 are forgotten', leader: 'af-jnb', fromTick: 3, leaderDigestOf4: null },
    ])('$name', ({ leader, fromTick, leaderDigestOf4 }) => {
      const det = detector();
      for (let t = 0; t < 5; t++) det.onLeaderDigest(t, d(t), 0);
      det.setLeader(leader, fromTick);
      expect(det.currentLeader).toBe(leader);
      expect(det.expectedDigest(2)).toEqual(d(2));
      expect(det.expectedDigest(4)).toEqual(leaderDigestOf4 === null ? null : d(4));
      // The new leader's heartbeat now feeds the reference; the old one's no longer does.
      det.onPeerStatus(status('eu-fra', 6, d(66)), 0);
      det.onPeerStatus(status(leader, 7, d(77)), 0);
      expect(det.expectedDigest(6)).toBeNull();
      expect(det.expectedDigest(7)).toEqual(d(77));
    });

    it('keeps a quarantine and its first diverging tick when the leader changes', () => {
      const det = detector();
      det.onLeaderDigest(2, d(2), 0);
      expect(ops(det.onLocalDigest({ tick: 2, seq: 13, digest: d(9) }, 0))).toContain('quarantine');
      det.setLeader('af-jnb', 10);
      expect(det.status()).toMatchObject({ quarantined: true, firstDivergingTick: 2 });
      expect(det.isQuarantined).toBe(true);
    });
  });
});

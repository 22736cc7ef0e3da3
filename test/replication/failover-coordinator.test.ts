// FailoverCoordinator and planFailover as a table of region statuses: what a plan says, what
// execute does next after each answer, and why it refuses.
import { describe, expect, it } from 'vitest';
import { PlayoutError } from '../../src/core/errors.js';
import type { EpochRecord, FenceGrant, FenceState, PromoteAnswer, RegionFailoverStatus } from '../../src/ports/failover-client.js';
import { FailoverCoordinator, planFailover, type FailoverAction, type FailoverInput } from '../../src/replication/failover-coordinator.js';

const SHARD = 'fo-1';
const REGIONS = ['eu-fra', 'af-jnb', 'us-sfo'];
const H = (c: string) => c.repeat(32);

const E1: EpochRecord = { epoch: 1, leader: 'eu-fra', firstSeq: 1, lastSeqPrevEpoch: 0, prevHash: H('0'), entryHash: H('1'), tick: 0, atMs: null, failoverId: null };
const E2: EpochRecord = { epoch: 2, leader: 'af-jnb', firstSeq: 101, lastSeqPrevEpoch: 100, prevHash: H('a'), entryHash: H('2'), tick: 12, atMs: 5, failoverId: 'fo-x' };

function status(region: string, o: Partial<RegionFailoverStatus> & { leader?: string; epoch?: number } = {}): RegionFailoverStatus {
  const epochs = o.epochs ?? [E1];
  const last = epochs[epochs.length - 1]!;
  const fence: FenceState = o.fence ?? { shard: SHARD, region, epoch: o.epoch ?? last.epoch, leader: o.leader ?? last.leader, ends: epochs.map((r) => ({ epoch: r.epoch, lastSeqPrevEpoch: r.lastSeqPrevEpoch })), promise: null };
  const head = o.head ?? 100;
  return {
    region,
    shard: SHARD,
    ack: o.ack ?? 'quorum',
    head,
    headHash: o.headHash ?? H('b'),
    headEpoch: o.headEpoch ?? last.epoch,
    headTick: o.headTick ?? 12,
    openTick: o.openTick ?? 13,
    firstSeq: 1,
    applied: head,
    lastAgreedTick: o.lastAgreedTick ?? 11,
    quarantined: o.quarantined ?? false,
    stopped: o.stopped ?? null,
    fence,
    epochs,
    peers: o.peers ?? REGIONS.filter((r) => r !== region).map((r) => ({ region: r, head: r === 'eu-fra' ? 100 : 98, epoch: 1, lastHeardMsAgo: 50 })),
  };
}

function input(statuses: Record<string, RegionFailoverStatus | PlayoutError>, target = 'af-jnb', acceptLoss = false): FailoverInput {
  return { shard: SHARD, regions: REGIONS, target, acceptLoss, statuses: new Map(Object.entries(statuses)) };
}

const down = (r: string) => new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `${r} did not answer`);

function grant(s: RegionFailoverStatus, epoch: number, candidate: string, failoverId = 'fo-1', o: Partial<FenceGrant> = {}): FenceGrant {
  return {
    region: s.region,
    shard: SHARD,
    epoch,
    candidate,
    failoverId,
    head: s.head,
    headHash: s.headHash,
    headEpoch: s.headEpoch,
    headTick: s.headTick,
    openTick: s.openTick,
    wasLeader: s.fence.leader === s.region,
    fence: { ...s.fence, promise: { epoch, candidate, failoverId, seqMax: s.head, atMs: 0 } },
    epochs: s.epochs,
    ...o,
  };
}

function ops(actions: readonly FailoverAction[]): string[] {
  return actions.map((a) => (a.op === 'done' ? `done:${a.result.ok ? 'ok' : a.result.error!.code}` : `${a.op}:${a.region}`));
}

describe('planFailover', () => {
  it('plans a switchover with the old leader reachable: fence all, catch up, no loss', () => {
    const p = planFailover(input({ 'eu-fra': status('eu-fra', { head: 104, headTick: 13, openTick: 13 }), 'af-jnb': status('af-jnb', { head: 98 }), 'us-sfo': status('us-sfo', { head: 97 }) }));
    expect(p.refusal).toBeNull();
    expect(p.noop).toBe(false);
    expect(p.epoch).toEqual({ current: 1, leader: 'eu-fra', leaderReachable: true, next: 2 });
    expect(p.fence).toEqual(REGIONS);
    expect(p.majority).toBe(2);
    expect(p.highest).toMatchObject({ region: 'eu-fra', head: 104 });
    expect(p.catchUp).toEqual({ from: 98, to: 104, entries: 6, sources: ['eu-fra'] });
    expect(p.loss).toBeNull();
    // If the old leader were lost before it is fenced, 99..104 would go (what af-jnb, the best other, lacks).
    expect(p.lossIfLeaderLost).toMatchObject({ seqFrom: 99, seqToKnown: 104, heldBy: 'eu-fra', ack: 'quorum', acknowledgedPossible: false });
    expect(p.epochEntry).toEqual({ tick: 13, atBoundary: false, sequencingTick: 14 });
    expect(p.steps.join('\n')).toMatch(/fence epoch 2 on eu-fra, af-jnb, us-sfo/);
    expect(p.steps.join('\n')).toMatch(/af-jnb catches up from seq 98 to the highest fenced head 104/);
  });

  it('refuses to lose entries silently when the old leader is unreachable', () => {
    const st = { 'eu-fra': down('eu-fra'), 'af-jnb': status('af-jnb', { head: 98, ack: 'leader' }), 'us-sfo': status('us-sfo', { head: 97, ack: 'leader' }) };
    const p = planFailover(input(st));
    expect(p.refusal?.code).toBe('PLAYOUT_FAILOVER_LOSS_UNACCEPTED');
    expect(p.refusal?.message).toMatch(/from seq 99 to 100/);
    expect(p.loss).toMatchObject({ seqFrom: 99, seqToKnown: 100, openEnded: true, heldBy: null, ack: 'leader', acknowledgedPossible: true });
    expect(planFailover(input(st, 'af-jnb', true)).refusal).toBeNull();
  });

  it('refuses without a majority, and refuses an unfit target', () => {
    expect(planFailover(input({ 'eu-fra': down('eu-fra'), 'af-jnb': status('af-jnb'), 'us-sfo': down('us-sfo') }, 'af-jnb', true)).refusal?.code).toBe('PLAYOUT_FAILOVER_NO_MAJORITY');
    const ok = { 'eu-fra': status('eu-fra'), 'us-sfo': status('us-sfo') };
    expect(planFailover(input({ ...ok, 'af-jnb': status('af-jnb', { quarantined: true }) })).refusal?.code).toBe('PLAYOUT_FAILOVER_TARGET_UNFIT');
    expect(planFailover(input({ ...ok, 'af-jnb': status('af-jnb', { stopped: 'PLAYOUT_FORK: …' }) })).refusal?.message).toMatch(/stopped/);
    expect(planFailover(input({ ...ok, 'af-jnb': down('af-jnb') })).refusal?.message).toMatch(/did not answer/);
    expect(planFailover(input({ ...ok, 'af-jnb': status('af-jnb') }, 'ap-sel')).refusal?.message).toMatch(/does not hold the shard/);
  });

  it('continues the log of the latest epoch, not the longest one, and lists divergent suffixes', () => {
    // eu-fra led epoch 1 and went on to 130 cut off; epoch 2 (af-jnb) kept 1..100 and reached 120.
    const p = planFailover(
      input(
        {
          'eu-fra': status('eu-fra', { head: 130, epochs: [E1], leader: 'eu-fra' }),
          'af-jnb': status('af-jnb', { head: 120, epochs: [E1, E2] }),
          'us-sfo': status('us-sfo', { head: 115, epochs: [E1, E2] }),
        },
        'us-sfo',
      ),
    );
    expect(p.epoch).toMatchObject({ current: 2, leader: 'af-jnb', next: 3 });
    expect(p.highest).toMatchObject({ region: 'af-jnb', head: 120, headEpoch: 2 });
    expect(p.truncate).toEqual([{ region: 'eu-fra', keep: 100, entries: 30 }]);
    expect(p.catchUp).toEqual({ from: 115, to: 120, entries: 5, sources: ['af-jnb'] });
    expect(p.steps.join('\n')).toMatch(/eu-fra quarantines its divergent suffix \(seq 101\.\.130\)/);
  });

  it('takes the epoch after a pending promise and says which failover it supersedes', () => {
    const promised = (r: string): RegionFailoverStatus => {
      const s = status(r);
      return { ...s, fence: { ...s.fence, promise: { epoch: 2, candidate: 'us-sfo', failoverId: 'fo-old', seqMax: 100, atMs: 0 } } };
    };
    const p = planFailover(input({ 'eu-fra': promised('eu-fra'), 'af-jnb': promised('af-jnb'), 'us-sfo': status('us-sfo') }));
    expect(p.epoch.next).toBe(3);
    expect(p.supersedes).toEqual({ epoch: 2, candidate: 'us-sfo', failoverId: 'fo-old', regions: ['eu-fra', 'af-jnb'] });
    expect(p.regions.find((r) => r.region === 'eu-fra')!.role).toBe('fenced');
  });

  it('has nothing to do when the target already leads and nothing is pending', () => {
    const p = planFailover(input({ 'eu-fra': status('eu-fra'), 'af-jnb': status('af-jnb'), 'us-sfo': status('us-sfo') }, 'eu-fra'));
    expect(p.noop).toBe(true);
    const c = new FailoverCoordinator(input({ 'eu-fra': status('eu-fra'), 'af-jnb': status('af-jnb'), 'us-sfo': status('us-sfo') }, 'eu-fra'), { failoverId: 'fo-1', promoteTimeoutMs: 1_000 });
    const [done] = c.start();
    expect(done).toMatchObject({ op: 'done', result: { ok: true, noop: true, epoch: 1 } });
  });
});

describe('FailoverCoordinator', () => {
  const fra = status('eu-fra', { head: 104 });
  const jnb = status('af-jnb', { head: 98 });
  const sfo = status('us-sfo', { head: 97 });
  const all = { 'eu-fra': fra, 'af-jnb': jnb, 'us-sfo': sfo };
  const coordinator = (st: Record<string, RegionFailoverStatus | PlayoutError> = all, acceptLoss = false) => new FailoverCoordinator(input(st, 'af-jnb', acceptLoss), { failoverId: 'fo-1', promoteTimeoutMs: 5_000 });

  it('fences every reachable region, promotes the target to the highest fenced head, then announces', () => {
    const c = coordinator();
    const fences = c.start();
    expect(ops(fences)).toEqual(['fence:eu-fra', 'fence:af-jnb', 'fence:us-sfo']);
    expect(fences[0]).toMatchObject({ request: { epoch: 2, candidate: 'af-jnb', failoverId: 'fo-1' } });
    expect(c.onFenceGranted(grant(jnb, 2, 'af-jnb'))).toEqual([]);
    expect(c.onFenceGranted(grant(sfo, 2, 'af-jnb'))).toEqual([]);
    // The old leader went on to 106 before it stopped: its final head is the highest.
    const promote = c.onFenceGranted(grant(fra, 2, 'af-jnb', 'fo-1', { head: 106, headHash: H('f') }));
    expect(ops(promote)).toEqual(['promote:af-jnb']);
    expect(promote[0]).toMatchObject({ request: { epoch: 2, failoverId: 'fo-1', catchUpTo: { seq: 106, hash: H('f'), epoch: 1 }, sources: ['eu-fra'], truncateAbove: null, timeoutMs: 5_000 } });
    const record: EpochRecord = { ...E2, leader: 'af-jnb', firstSeq: 107, lastSeqPrevEpoch: 106, failoverId: 'fo-1' };
    const answer: PromoteAnswer = { record, caughtUpFrom: 98, quarantined: 0, sequencingFrom: 109, sequencingTick: 14, epochs: [E1, record] };
    const announce = c.onPromoted(answer);
    expect(ops(announce)).toEqual(['announce:eu-fra', 'announce:us-sfo']);
    expect(announce[0]).toMatchObject({ request: { record, epochs: [E1, record] } });
    expect(c.onAnnounced('eu-fra', { fence: fra.fence, quarantined: 0 })).toEqual([]);
    const [done] = c.onAnnounced('us-sfo', down('us-sfo'));
    expect(done).toMatchObject({ op: 'done', result: { ok: true, epoch: 2, loss: null, released: [], highest: { region: 'eu-fra', seq: 106 } } });
    if (done?.op === 'done') expect(done.result.announced).toEqual([
      { region: 'eu-fra', ok: true, quarantined: 0, error: null },
      { region: 'us-sfo', ok: false, quarantined: 0, error: 'PLAYOUT_PEER_UNAVAILABLE: us-sfo did not answer' },
    ]);
  });

  it('releases what it obtained and refuses when the fenced regions are not a majority', () => {
    const c = coordinator();
    c.start();
    c.onFenceGranted(grant(jnb, 2, 'af-jnb'));
    c.onFenceFailed('eu-fra', down('eu-fra'));
    const out = c.onFenceFailed('us-sfo', down('us-sfo'));
    expect(ops(out)).toEqual(['release:af-jnb', 'done:PLAYOUT_FAILOVER_NO_MAJORITY']);
    expect(out[0]).toMatchObject({ request: { epoch: 2, failoverId: 'fo-1' } });
  });

  it('loses a race as a fence conflict: another failover holds the epoch on a majority', () => {
    const c = coordinator();
    c.start();
    c.onFenceGranted(grant(jnb, 2, 'af-jnb'));
    c.onFenceFailed('eu-fra', new PlayoutError('PLAYOUT_FENCE_CONFLICT', 'promised epoch 2 to us-sfo'));
    const out = c.onFenceFailed('us-sfo', new PlayoutError('PLAYOUT_FENCE_CONFLICT', 'promised epoch 2 to us-sfo'));
    expect(ops(out)).toEqual(['release:af-jnb', 'done:PLAYOUT_FENCE_CONFLICT']);
  });

  it('refuses when the target did not fence itself, even with a majority', () => {
    const c = coordinator();
    c.start();
    c.onFenceGranted(grant(fra, 2, 'af-jnb'));
    c.onFenceGranted(grant(sfo, 2, 'af-jnb'));
    const out = c.onFenceFailed('af-jnb', new PlayoutError('PLAYOUT_FENCE_CONFLICT', 'promised epoch 2 to us-sfo'));
    expect(ops(out)).toEqual(['release:eu-fra', 'release:us-sfo', 'done:PLAYOUT_FENCE_CONFLICT']);
  });

  it('treats a grant for another failover as a refusal', () => {
    const c = coordinator();
    c.start();
    c.onFenceGranted(grant(fra, 2, 'us-sfo', 'fo-2'));
    c.onFenceGranted(grant(jnb, 2, 'af-jnb'));
    const out = c.onFenceFailed('us-sfo', down('us-sfo'));
    expect(ops(out)).toEqual(['release:af-jnb', 'done:PLAYOUT_FENCE_CONFLICT']);
  });

  it('refuses when the old leader was not fenced, unless loss is accepted; then reports the window', () => {
    const refused = coordinator();
    refused.start();
    refused.onFenceGranted(grant(jnb, 2, 'af-jnb'));
    refused.onFenceGranted(grant(sfo, 2, 'af-jnb'));
    expect(ops(refused.onFenceFailed('eu-fra', down('eu-fra')))).toEqual(['release:af-jnb', 'release:us-sfo', 'done:PLAYOUT_FAILOVER_LOSS_UNACCEPTED']);

    const accepted = coordinator(all, true);
    accepted.start();
    accepted.onFenceGranted(grant(jnb, 2, 'af-jnb'));
    accepted.onFenceGranted(grant(sfo, 2, 'af-jnb'));
    const out = accepted.onFenceFailed('eu-fra', down('eu-fra'));
    expect(ops(out)).toEqual(['promote:af-jnb']);
    expect(out[0]).toMatchObject({ request: { catchUpTo: { seq: 98 }, sources: [] } });
    accepted.onPromoted({ record: { ...E2, firstSeq: 99, lastSeqPrevEpoch: 98 }, caughtUpFrom: 98, quarantined: 0, sequencingFrom: 101, sequencingTick: 13, epochs: [E1] });
    accepted.onAnnounced('eu-fra', down('eu-fra'));
    const [done] = accepted.onAnnounced('us-sfo', { fence: sfo.fence, quarantined: 0 });
    // The statuses said eu-fra was at 104: 99..104 are lost, and maybe more.
    expect(done).toMatchObject({ op: 'done', result: { ok: true, loss: { seqFrom: 99, seqToKnown: 104, openEnded: true, ack: 'quorum', acknowledgedPossible: false } } });
  });

  it('truncates a divergent target before it catches up', () => {
    const st = {
      'eu-fra': status('eu-fra', { head: 130, epochs: [E1], leader: 'eu-fra' }),
      'af-jnb': status('af-jnb', { head: 120, epochs: [E1, E2] }),
      'us-sfo': status('us-sfo', { head: 115, epochs: [E1, E2] }),
    };
    const c = new FailoverCoordinator(input(st, 'eu-fra'), { failoverId: 'fo-9', promoteTimeoutMs: 1_000 });
    c.start();
    for (const r of ['eu-fra', 'af-jnb', 'us-sfo'] as const) {
      const out = c.onFenceGranted(grant(st[r], 3, 'eu-fra', 'fo-9'));
      if (r === 'us-sfo') expect(out[0]).toMatchObject({ op: 'promote', region: 'eu-fra', request: { epoch: 3, truncateAbove: 100, catchUpTo: { seq: 120, epoch: 2 }, sources: ['af-jnb', 'us-sfo'] } });
    }
  });

  it('reports an incomplete promotion without releasing anything', () => {
    const c = coordinator();
    c.start();
    c.onFenceGranted(grant(fra, 2, 'af-jnb'));
    c.onFenceGranted(grant(jnb, 2, 'af-jnb'));
    c.onFenceGranted(grant(sfo, 2, 'af-jnb'));
    const [done] = c.onPromoteFailed(new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', 'timeout'));
    expect(done).toMatchObject({ op: 'done', result: { ok: false, released: [] } });
    if (done?.op === 'done') {
      expect(done.result.error!.code).toBe('PLAYOUT_FAILOVER_INCOMPLETE');
      expect(done.result.error!.retriable).toBe(true);
      expect(done.result.error!.message).toMatch(/take epoch 3/);
    }
    // Late answers change nothing.
    expect(c.onFenceGranted(grant(fra, 2, 'af-jnb'))).toEqual([]);
    expect(c.onAnnounced('eu-fra', down('eu-fra'))).toEqual([]);
  });

  it('refuses at once, fencing nothing, when the plan refuses', () => {
    const c = new FailoverCoordinator(input({ 'eu-fra': down('eu-fra'), 'af-jnb': status('af-jnb'), 'us-sfo': down('us-sfo') }, 'af-jnb', true), { failoverId: 'fo-1', promoteTimeoutMs: 1 });
    expect(ops(c.start())).toEqual(['done:PLAYOUT_FAILOVER_NO_MAJORITY']);
    expect(c.outcome!.fenced).toEqual([]);
  });
});

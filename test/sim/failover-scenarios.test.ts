// Failover scenarios on the simulated network, store and clock (DESIGN.md §6), each from a fixed
// seed: the operator runs the real `playout failover` operator functions over the simulated
// network while clients keep submitting. After heal and flush every scenario checks the
// invariants of FoCluster.check(): one leader per epoch, the same log and digests everywhere,
// no acknowledged input lost in ack mode quorum, every lost one listed in a quarantine report in
// ack mode leader.
import { describe, expect, it } from 'vitest';
import { tallyReducer } from './tally-reducer.js';
import { FoCluster, SHARD, type FoOptions } from './failover-cluster.js';

const SEED = Number(process.env.SIM_SEED ?? 20261123);
const REGIONS = ['eu-fra', 'af-jnb', 'us-sfo'] as const;

function cluster(o: Partial<FoOptions> = {}): FoCluster {
  return new FoCluster({ seed: SEED, ...o });
}

async function settleAndCheck(c: FoCluster): Promise<void> {
  const settled = await c.healAndSettle();
  const problems = c.check();
  if (!settled || problems.length > 0) console.error(`reproduce with seed=${c.seed}`, { settled, problems, heads: c.regions.map((r) => `${r.name}@${r.head}/${r.machine?.head}:${r.role}:e${r.fence.epoch}`) });
  expect(problems).toEqual([]);
  expect(settled).toBe(true);
}

describe('failover between three regions', () => {
  for (const ack of ['quorum', 'leader'] as const) {
    it(`switches over under load without losing an input (ack ${ack}), redirecting clients to the new leader`, async () => {
      const c = cluster({ ack, link: { delayMsMin: 2, delayMsMax: 20, lossRate: 0.02, duplicateRate: 0.02 } });
      await c.start();
      await c.runUntil(2_000);
      const plan = await c.plan('af-jnb');
      expect(plan.refusal).toBeNull();
      expect(plan.epoch).toMatchObject({ current: 1, leader: 'eu-fra', leaderReachable: true, next: 2 });
      expect(plan.loss).toBeNull();
      expect(plan.fence).toEqual([...REGIONS]);
      const before = c.acked.size;
      const r = await c.execute('af-jnb');
      expect(r.error).toBeNull();
      expect(r.ok).toBe(true);
      expect(r.loss).toBeNull();
      const old = r.fenced.find((g) => g.region === 'eu-fra')!;
      expect(old.wasLeader).toBe(true);
      // The new epoch keeps everything the old leader sequenced: its final head.
      expect(r.promoted!.record.lastSeqPrevEpoch).toBe(old.head);
      expect(r.promoted!.record).toMatchObject({ epoch: 2, leader: 'af-jnb' });
      // It completes at a tick boundary: inputs of the new epoch start a fresh tick.
      const jnb = c.region('af-jnb');
      const first = jnb.store.get(SHARD, r.promoted!.sequencingFrom - 1)!;
      expect(first.kind === 'tick' || first.kind === 'epoch').toBe(true);
      await c.runFor(1_500);
      expect(c.acked.size).toBeGreaterThan(before + 100);
      expect(c.client.redirects).toBeGreaterThan(0);
      expect(c.client.knownLeader).toBe('af-jnb');
      await settleAndCheck(c);
      expect(c.lostAcked()).toEqual([]);
      expect(c.reports).toEqual([]);
      const status = await c.failoverStatus();
      expect(status.epochs.map((e) => [e.epoch, e.leader])).toEqual([
        [1, 'eu-fra'],
        [2, 'af-jnb'],
      ]);
      expect(status.fences.every((f) => f.fence.promise === null && f.fence.epoch === 2)).toBe(true);
    });
  }

  it('takes over from a crashed leader only with --accept-loss, and the restarted old leader quarantines what it held beyond the fence', async () => {
    const c = cluster({ ack: 'leader', diskDelayMsMin: 2, diskDelayMsMax: 6, link: { delayMsMin: 10, delayMsMax: 40, lossRate: 0, duplicateRate: 0 } });
    await c.start();
    await c.runUntil(2_000);
    const fra = c.region('eu-fra');
    fra.crash();
    const plan = await c.plan('us-sfo');
    expect(plan.refusal?.code).toBe('PLAYOUT_FAILOVER_LOSS_UNACCEPTED');
    expect(plan.loss).toMatchObject({ openEnded: true, ack: 'leader', acknowledgedPossible: true, heldBy: null });
    const refused = await c.execute('us-sfo');
    expect(refused.ok).toBe(false);
    expect(refused.error!.code).toBe('PLAYOUT_FAILOVER_LOSS_UNACCEPTED');
    // Refused before fencing anything: no region holds a promise.
    expect(c.regions.filter((r) => r.up).every((r) => r.fence.promise === null)).toBe(true);
    const r = await c.execute('us-sfo', true);
    expect(r.error).toBeNull();
    expect(r.loss).not.toBeNull();
    expect(r.loss!.seqFrom).toBe(r.highest!.seq + 1);
    await c.runFor(1_000);
    fra.boot();
    await settleAndCheck(c);
    // Whatever the old leader held durably beyond the fence is in a quarantine report, listed entry by entry.
    const held = c.reports.filter((q) => q.region === 'eu-fra');
    for (const q of held) {
      expect(q.keptSeq).toBe(r.highest!.seq);
      expect(q.entries.map((e) => e.seq)).toEqual(Array.from({ length: q.seqTo - q.seqFrom + 1 }, (_, i) => q.seqFrom + i));
    }
    expect(fra.role).toBe('follower');
  });

  for (const ack of ['leader', 'quorum'] as const) {
    it(`partitions the leader away while it keeps accepting inputs (ack ${ack}); its divergent suffix is quarantined on return`, async () => {
      const c = cluster({ ack });
      await c.start();
      await c.runUntil(1_500);
      const fra = c.region('eu-fra');
      // The leader keeps its clients but loses the other regions and the operator, except that
      // its own stream still reaches us-sfo (an asymmetric partition): us-sfo must refuse what
      // the old leader sequences beyond the fence.
      c.network.isolate('eu-fra', ['af-jnb', 'operator']);
      c.network.setLink('us-sfo', 'eu-fra', { delayMsMin: 5, delayMsMax: 5, lossRate: 1, duplicateRate: 0 });
      await c.runFor(300);
      const r = await c.execute('af-jnb', true);
      expect(r.error).toBeNull();
      expect(r.fenced.map((g) => g.region).sort()).toEqual(['af-jnb', 'us-sfo']);
      await c.runFor(1_500);
      // Cut off, the old leader went on sequencing epoch 1.
      expect(fra.head).toBeGreaterThan(r.highest!.seq);
      expect(c.sequencedBy.get(1)).toEqual(new Set(['eu-fra']));
      expect(c.sequencedBy.get(2)).toEqual(new Set(['af-jnb']));
      await settleAndCheck(c);
      const reports = c.reports.filter((q) => q.region === 'eu-fra');
      expect(reports).toHaveLength(1);
      const q = reports[0]!;
      expect(q).toMatchObject({ keptSeq: r.highest!.seq, epoch: 2, leader: 'af-jnb' });
      expect(q.inputs).toBeGreaterThan(0);
      expect(fra.alerts.some((a) => a.code === 'PLAYOUT_DIVERGENT_SUFFIX')).toBe(true);
      const lost = c.lostAcked();
      if (ack === 'leader') {
        // It acknowledged inputs nobody else has: each one is listed in the report with its ingestId.
        expect(lost.length).toBeGreaterThan(0);
        const listed = new Set(q.entries.map((e) => e.ingestId));
        for (const id of lost) expect(listed.has(id)).toBe(true);
      } else {
        expect(lost).toEqual([]);
        // Unacknowledged, its clients retried them at the new leader: the report says so.
        expect(q.resequenced).toBeGreaterThan(0);
      }
      // us-sfo refused the old leader's entries beyond its fence instead of forking on them.
      expect(c.region('us-sfo').fencedRefused).toBeGreaterThan(0);
    });
  }

  it('refuses to fail over from a minority partition and changes nothing', async () => {
    const c = cluster();
    await c.start();
    await c.runUntil(1_500);
    // The operator sits with us-sfo, cut off from the two others.
    c.network.isolate('us-sfo', ['eu-fra', 'af-jnb']);
    c.network.cut('operator', 'eu-fra');
    c.network.cut('operator', 'af-jnb');
    const plan = await c.plan('us-sfo', true);
    expect(plan.refusal?.code).toBe('PLAYOUT_FAILOVER_NO_MAJORITY');
    expect(plan.reachable).toBe(1);
    const r = await c.execute('us-sfo', true);
    expect(r.ok).toBe(false);
    expect(r.error!.code).toBe('PLAYOUT_FAILOVER_NO_MAJORITY');
    expect(r.error!.retriable).toBe(true);
    expect(r.fenced).toEqual([]);
    const head = c.region('eu-fra').head;
    await c.runFor(1_000);
    expect(c.region('eu-fra').isLeader).toBe(true);
    expect(c.region('eu-fra').head).toBeGreaterThan(head);
    expect(c.regions.every((x) => x.fence.promise === null && x.fence.epoch === 1)).toBe(true);
    await settleAndCheck(c);
  });

  it('releases its promises when the fenced regions are not a majority, and the old leader sequences again', async () => {
    const c = cluster();
    await c.start();
    await c.runUntil(1_500);
    // Statuses come back from everyone, then two regions vanish before the fence reaches them.
    const r = c.until(
      (async () => {
        const plan = c.execute('us-sfo', true);
        // Statuses take one round trip (10 ms on calm links); the fences leave right after it.
        await c.sleep(11);
        c.network.cut('operator', 'eu-fra');
        c.network.cut('operator', 'af-jnb');
        return plan;
      })(),
    );
    const result = await r;
    if (result.ok) throw new Error(`reproduce with seed=${c.seed}: the fence reached a majority before the cut`);
    expect(result.error!.code).toBe('PLAYOUT_FAILOVER_NO_MAJORITY');
    expect(result.released).toEqual(['us-sfo']);
    expect(c.region('us-sfo').fence.promise).toBeNull();
    c.network.healAll();
    await settleAndCheck(c);
    expect(c.leaders().map((x) => x.name)).toEqual(['eu-fra']);
  });

  it('lets at most one of two racing failovers win, never two leaders in one epoch', async () => {
    const c = cluster({ link: { delayMsMin: 1, delayMsMax: 30, lossRate: 0, duplicateRate: 0 } });
    await c.start();
    await c.runUntil(1_500);
    const [a, b] = await c.until(Promise.all([c.execute('af-jnb', false, 'operator'), c.execute('us-sfo', false, 'operator-2')]));
    // Both read epoch 1 and went for epoch 2: one of them at most won it.
    expect(a.epoch).toBe(2);
    expect(b.epoch).toBe(2);
    expect([a.ok, b.ok].filter(Boolean).length).toBeLessThanOrEqual(1);
    for (const x of [a, b]) if (!x.ok) expect(['PLAYOUT_FENCE_CONFLICT', 'PLAYOUT_FAILOVER_TARGET_UNFIT']).toContain(x.error!.code);
    if (!a.ok && !b.ok) {
      // Split votes: both gave their promises back; a retry wins.
      const again = await c.execute('af-jnb');
      expect(again.ok).toBe(true);
    }
    await c.runFor(1_000);
    await settleAndCheck(c);
    expect([...c.sequencedBy.values()].every((s) => s.size === 1)).toBe(true);
  });

  it('supersedes a failover that stalled after fencing, taking the next epoch', async () => {
    const c = cluster({ promoteTimeoutMs: 500 });
    await c.start();
    await c.runUntil(1_500);
    // The target loses its replication links (not the operator's): it is fenced, but cannot
    // catch up to the highest fenced head, so its promotion cannot complete.
    const jnb = c.region('af-jnb');
    c.network.cut('af-jnb', 'eu-fra');
    c.network.cut('af-jnb', 'us-sfo');
    await c.runFor(200);
    const r = await c.execute('af-jnb');
    expect(r.ok).toBe(false);
    expect(r.error!.code).toBe('PLAYOUT_FAILOVER_INCOMPLETE');
    expect(r.released).toEqual([]);
    // No region sequences: the old leader is fenced.
    expect(c.leaders()).toEqual([]);
    const plan = await c.plan('us-sfo');
    expect(plan.supersedes).toMatchObject({ epoch: 2, candidate: 'af-jnb' });
    expect(plan.epoch.next).toBe(3);
    const again = await c.execute('us-sfo');
    expect(again.error).toBeNull();
    expect(again.epoch).toBe(3);
    // The stalled candidate was reachable by the operator: fenced for epoch 3, then told of it.
    expect(jnb.fence).toMatchObject({ epoch: 3, leader: 'us-sfo', promise: null });
    c.network.healAll();
    await settleAndCheck(c);
    expect(c.sequencedBy.has(2)).toBe(false);
  });

  it('fails over during a desync: refuses the quarantined region as target, promotes a healthy one, and the quarantined one resyncs from it', async () => {
    const c = cluster({ reducers: { 'us-sfo': tallyReducer({ wrongAtTick: 7 }) }, desync: { resync: 'command' } });
    await c.start();
    await c.runUntil(1_500);
    const sfo = c.region('us-sfo');
    expect(sfo.detector.isQuarantined).toBe(true);
    const bad = await c.execute('us-sfo');
    expect(bad.ok).toBe(false);
    expect(bad.error!.code).toBe('PLAYOUT_FAILOVER_TARGET_UNFIT');
    expect(bad.error!.message).toMatch(/quarantined/);
    const plan = await c.plan('af-jnb');
    expect(plan.regions.find((x) => x.region === 'us-sfo')).toMatchObject({ quarantined: true, lastAgreedTick: 6 });
    const r = await c.execute('af-jnb');
    expect(r.error).toBeNull();
    await c.runFor(500);
    // Still quarantined, it kept receiving the new epoch's entries.
    expect(sfo.detector.isQuarantined).toBe(true);
    expect(sfo.fence.epoch).toBe(2);
    sfo.setReducer(tallyReducer());
    sfo.actDesync(sfo.detector.resync(c.clock.nowMs()));
    await c.runFor(1_000);
    expect(sfo.detector.isQuarantined).toBe(false);
    await settleAndCheck(c);
  });
});

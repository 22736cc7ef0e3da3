// Failover between real region nodes in this process (lmdb stores, HTTP on loopback): a planned
// switchover under load through the operator functions and the nodes' failover routes, then a
// switch back; clients are redirected and no acknowledged input is lost. The same with separate
// processes, kill -9 and Toxiproxy is test/node/failover.int.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeFailoverOp, planFailoverOp } from '../../src/cli/ops/failover.js';
import { HttpFailoverClient } from '../../src/adapters/http-failover-client.js';
import { checkShard } from '../../src/node/cluster-check.js';
import { TOKENS, adminClient, startInProcessCluster, startNode, waitFor, type InProcessCluster } from '../helpers/cluster.js';
import { FailoverLoad } from '../helpers/failover-load.js';
import { LoadGenerator } from '../../src/games/treasure-hunt/index.js';

const REGIONS = ['eu-fra', 'af-jnb', 'us-sfo'];
const SHARD = 'hunt-1';
const SEED = Number(process.env.PLAYOUT_SEED ?? 6061);

const st2 = (c: InProcessCluster, r: string) => c.nodes.get(r)!.failover.status(SHARD);

describe('failover between region nodes', () => {
  let cluster: InProcessCluster;
  const url = (r: string): string => cluster.nodes.get(r)!.url;
  const regionOf = (u: string): string => REGIONS.find((r) => url(r) === u) ?? u;
  let n = 0;
  const ops = () => ({
    shard: SHARD,
    clients: REGIONS.map((r) => new HttpFailoverClient({ region: r, url: url(r), token: TOKENS.admin, requestTimeoutMs: 5_000 })),
    requestTimeoutMs: 5_000,
    promoteTimeoutMs: 20_000,
    listEntriesMax: 100,
    newFailoverId: () => `fo-test-${++n}`,
  });

  beforeAll(async () => {
    console.log(`failover test: reproduce with PLAYOUT_SEED=${SEED}`);
    cluster = await startInProcessCluster({
      regions: REGIONS,
      shards: [{ id: SHARD, leader: 'eu-fra', tickMs: 50, ack: 'leader', seed: SEED }],
      overrides: { replication: { statusPollMs: 200, heartbeatMs: 100 }, repair: { delayMs: 100, requestTimeoutMs: 1_000, backoffMsMin: 20, backoffMsMax: 500 } },
    });
  }, 60_000);

  afterAll(async () => {
    await cluster?.close();
  });

  async function converged(): Promise<void> {
    const leaderHead = async () => Math.max(...(await Promise.all(REGIONS.map(async (r) => cluster.nodes.get(r)!.status().shards[0]!.head))));
    const target = await leaderHead();
    await waitFor(`every region to hold and apply seq ${target}`, () => REGIONS.every((r) => {
      const s = cluster.nodes.get(r)!.status().shards[0]!;
      return s.applied >= target && s.head >= target && s.quarantine === null && s.stopped === null;
    }), 20_000);
  }

  async function check(acked: ReadonlyMap<string, number>): Promise<void> {
    const clients = new Map(REGIONS.map((r) => [r, adminClient(r, url(r))]));
    try {
      const c = await checkShard(SHARD, clients, acked);
      expect(c.ok, c.lines.join('\n')).toBe(true);
      expect(c.differingTicks).toBe(0);
    } finally {
      for (const cl of clients.values()) await cl.close();
    }
  }

  it('switches over to af-jnb under load: clients are redirected, nothing acknowledged is lost, digests agree', async () => {
    const load = new FailoverLoad({ shard: SHARD, url: url('eu-fra'), regionOf, seed: SEED, batchInputs: 20, batchesPerSecond: 50 });
    await waitFor('acknowledged inputs', () => load.acked.size > 300, 20_000);
    const o = ops();
    const plan = await planFailoverOp(o, 'af-jnb', false);
    expect(plan.refusal ?? null).toBeNull();
    const t0 = Date.now();
    const result = await executeFailoverOp(o, 'af-jnb', false);
    console.log(`planned switchover: execute took ${Date.now() - t0} ms; the candidate caught up ${(result.highest?.seq ?? 0) - (result.promoted?.caughtUpFrom ?? 0)} entries`);
    expect(result.error?.message ?? null).toBeNull();
    expect(result.ok).toBe(true);
    expect(result.epoch).toBe(2);
    expect(result.loss).toBeNull();
    await waitFor('acknowledgements from af-jnb', () => (load.ackedBy.get('af-jnb') ?? 0) > 200, 20_000);
    await load.stop();
    expect(load.redirects).toBeGreaterThan(0);
    for (const c of o.clients) await c.close();
    await converged();
    await check(load.acked);
    const s = cluster.nodes.get('eu-fra')!.status().shards[0]!;
    expect(s).toMatchObject({ role: 'follower', leader: 'af-jnb', epoch: 2 });
    expect(cluster.nodes.get('af-jnb')!.status().shards[0]!).toMatchObject({ role: 'leader', epoch: 2 });
  }, 60_000);

  it('refuses a failover to a region that leads already, and one to an unknown region, saying why', async () => {
    const o = ops();
    const r = await executeFailoverOp(o, 'xx-none', false);
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('PLAYOUT_FAILOVER_TARGET_UNFIT');
    for (const c of o.clients) await c.close();
  }, 30_000);

  it('answers every failover route with its code: scopes, bad bodies, conflicts, a promote without a promise', async () => {
    const post = async (r: string, path: string, token: string | null, body: unknown) => {
      const res = await fetch(`${url(r)}/v1/shards/${SHARD}${path}`, { method: 'POST', headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as { code?: string; path?: string } };
    };
    const fence = { epoch: 2, candidate: 'us-sfo', failoverId: 'fo-conflict' };
    expect(await post('us-sfo', '/fence', null, fence)).toMatchObject({ status: 401, body: { code: 'PLAYOUT_UNAUTHENTICATED' } });
    expect(await post('us-sfo', '/fence', TOKENS.peer, fence)).toMatchObject({ status: 403, body: { code: 'PLAYOUT_FORBIDDEN' } });
    expect(await post('us-sfo', '/fence', TOKENS.admin, { ...fence, epoch: 1 })).toMatchObject({ status: 400, body: { code: 'PLAYOUT_INVALID_ARGUMENT', path: 'body.epoch' } });
    // Epoch 2 is established: a promise for it is refused, and nothing changes.
    const before = cluster.nodes.get('us-sfo')!.failover.status(SHARD).fence;
    expect(await post('us-sfo', '/fence', TOKENS.admin, fence)).toMatchObject({ status: 409, body: { code: 'PLAYOUT_FENCE_CONFLICT' } });
    const promote = { epoch: 3, failoverId: 'fo-nopromise', catchUpTo: { seq: 1, hash: '0'.repeat(32), epoch: 1 }, sources: [], truncateAbove: null, timeoutMs: 1_000 };
    expect(await post('us-sfo', '/promote', TOKENS.admin, promote)).toMatchObject({ status: 409, body: { code: 'PLAYOUT_FENCE_CONFLICT' } });
    expect(await post('us-sfo', '/fence/release', TOKENS.admin, { epoch: 3, failoverId: 'fo-none' })).toMatchObject({ status: 200, body: { released: false } });
    expect(cluster.nodes.get('us-sfo')!.failover.status(SHARD).fence).toEqual(before);
    const nope = await fetch(`${url('us-sfo')}/v1/shards/nope/epochs`, { headers: { authorization: `Bearer ${TOKENS.peer}` } });
    expect(nope.status).toBe(404);
    const plan = await fetch(`${url('us-sfo')}/v1/shards/${SHARD}/failover-plan?to=eu-fra`, { headers: { authorization: `Bearer ${TOKENS.admin}` } });
    expect(plan.status).toBe(200);
    expect(await plan.json()).toMatchObject({ target: 'eu-fra' });
  }, 30_000);

  it('switches back to eu-fra (epoch 3) with the state intact after a restart of every node', async () => {
    const load = new FailoverLoad({ shard: SHARD, url: url('eu-fra'), regionOf, seed: SEED + 1, batchInputs: 20, batchesPerSecond: 50 });
    await waitFor('acknowledged inputs', () => load.acked.size > 200, 20_000);
    const o = ops();
    const result = await executeFailoverOp(o, 'eu-fra', false);
    expect(result.error?.message ?? null).toBeNull();
    expect(result.epoch).toBe(3);
    await waitFor('acknowledgements from eu-fra', () => (load.ackedBy.get('eu-fra') ?? 0) > 200, 20_000);
    await load.stop();
    for (const c of o.clients) await c.close();
    await converged();
    await check(load.acked);
    // Every node restarts from its store: the fence and the epoch history decide who leads.
    for (const r of REGIONS) {
      await cluster.nodes.get(r)!.close();
      cluster.nodes.set(r, await startNode(cluster.files, r));
    }
    for (const r of REGIONS) {
      const st = cluster.nodes.get(r)!.failover.status(SHARD);
      expect(st.epochs.map((e) => [e.epoch, e.leader])).toEqual([[1, 'eu-fra'], [2, 'af-jnb'], [3, 'eu-fra']]);
      expect(st.fence).toMatchObject({ epoch: 3, leader: 'eu-fra', promise: null });
      expect(cluster.nodes.get(r)!.status().shards[0]!.role).toBe(r === 'eu-fra' ? 'leader' : 'follower');
    }
    expect(st2(cluster, 'us-sfo').epochs[1]).toMatchObject({ failoverId: expect.stringMatching(/^fo-test-/), atMs: expect.any(Number) });
  }, 60_000);

  // The candidate holds inputs sent to it while it is being promoted (instead of answering 503 and
  // having every client poll): they are sequenced right after its epoch entry once it leads, and
  // answered with a redirect when its promise is given back instead.
  it('holds inputs at the candidate until it sequences them after its epoch entry, or redirects them when its promise is released', async () => {
    const i = new LoadGenerator({ seed: SEED + 2, players: 10, inputsPerTick: 1 }).next(0)[0]!;
    const sample = { type: i.type, version: i.version, payload: i.payload };
    const post = async (r: string, ingestId: string): Promise<{ status: number; body: { results?: { seq: number }[]; leader?: { region: string } } }> => {
      const res = await fetch(`${url(r)}/v1/shards/${SHARD}/inputs`, {
        method: 'POST',
        redirect: 'manual',
        headers: { authorization: `Bearer ${TOKENS.ingest}`, 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: [{ ...sample, ingestId }] }),
      });
      return { status: res.status, body: (await res.json()) as never };
    };
    const settled = <T,>(p: Promise<T>): { done: () => boolean } => {
      let done = false;
      void p.finally(() => (done = true));
      return { done: () => done };
    };
    const clients = REGIONS.map((r) => new HttpFailoverClient({ region: r, url: url(r), token: TOKENS.admin, requestTimeoutMs: 5_000 }));
    const client = (r: string) => clients.find((c) => c.region === r)!;
    try {
      // A promise that is released: the held request is redirected to the leader.
      await client('af-jnb').fence(SHARD, { epoch: 4, candidate: 'af-jnb', failoverId: 'hold-released' });
      const held = post('af-jnb', 'hold-1');
      const heldState = settled(held);
      await new Promise((r) => setTimeout(r, 100));
      expect(heldState.done()).toBe(false);
      expect((await client('af-jnb').release(SHARD, { epoch: 4, failoverId: 'hold-released' })).released).toBe(true);
      const redirected = await held;
      expect(redirected.status).toBe(307);
      expect(redirected.body.leader?.region).toBe('eu-fra');

      // A promotion, step by step: inputs sent to the candidate after the fences are sequenced after its epoch entry.
      const request = { epoch: 4, candidate: 'af-jnb', failoverId: 'hold-promoted' };
      const grants = await Promise.all(clients.map((c) => c.fence(SHARD, request)));
      const best = grants.reduce((a, b) => (b.head > a.head ? b : a));
      const pending = [post('af-jnb', 'hold-2'), post('af-jnb', 'hold-3')];
      const pendingState = settled(Promise.all(pending));
      await new Promise((r) => setTimeout(r, 100));
      expect(pendingState.done()).toBe(false);
      const promoted = await client('af-jnb').promote(SHARD, {
        epoch: 4,
        failoverId: request.failoverId,
        catchUpTo: { seq: best.head, hash: best.headHash!, epoch: best.headEpoch },
        sources: [best.region].filter((r) => r !== 'af-jnb'),
        truncateAbove: null,
        timeoutMs: 10_000,
      });
      for (const r of await Promise.all(pending)) {
        expect(r.status).toBe(200);
        expect(r.body.results![0]!.seq).toBeGreaterThan(promoted.record.firstSeq);
      }
      expect(promoted.record).toMatchObject({ epoch: 4, leader: 'af-jnb', failoverId: 'hold-promoted', atMs: expect.any(Number) });
      for (const r of ['eu-fra', 'us-sfo']) await client(r).announce(SHARD, { record: promoted.record, epochs: promoted.epochs });
      await converged();
      // Retried at the new leader, an input it holds is a duplicate (its dedupe window covers the catch-up).
      const again = await post('af-jnb', 'hold-2');
      expect(again.status).toBe(200);
      expect(again.body.results![0]).toMatchObject({ status: 'duplicate' });
    } finally {
      for (const c of clients) await c.close();
    }
  }, 60_000);
});

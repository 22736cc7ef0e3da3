// Three region nodes as separate processes on loopback, with Toxiproxy on every directed link
// between them, under a steady seeded load: latency with jitter, a bandwidth limit, a link cut
// for 5 s, a stream that hangs (timeout) or is reset (reset_peer) while another peer serves the
// repair, a follower and then the leader killed with SIGKILL and restarted. At the end every link heals and the
// invariants of the simulation must hold, read from the regions' own logs: identical digests at
// every common tick, every acknowledged input once at its seq everywhere, none sequenced twice.
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpPeerClient } from '../../src/adapters/http-peer-client.js';
import type { InputRequest } from '../../src/adapters/http-schemas.js';
import { LoadGenerator } from '../../src/games/treasure-hunt/index.js';
import { checkShard } from '../../src/node/cluster-check.js';
import { TOKENS, adminClient, freePorts, killNode, spawnNode, statusOf, waitFor, writeClusterConfigs, type ClusterFiles, type NodeProcess } from '../helpers/cluster.js';
import { Toxiproxy, toxiproxyComponent } from '../helpers/toxiproxy.js';

const REGIONS = ['eu-fra', 'af-jnb', 'us-sfo'] as const;
const LEADER = 'eu-fra';
const SHARD = 'hunt-1';
const SEED = Number(process.env.PLAYOUT_SEED ?? 20240611);

class Loader {
  readonly acked = new Map<string, number>();
  failures = 0;
  private running = true;
  private readonly done: Promise<void>;

  constructor(url: string) {
    const client = new HttpPeerClient({ region: LEADER, url, token: TOKENS.ingest, requestTimeoutMs: 15_000, frameBytesMax: 1 << 20 });
    const gen = new LoadGenerator({ seed: SEED, players: 100, inputsPerTick: 10 });
    this.done = (async () => {
      let tick = 0;
      let retry: InputRequest[] = [];
      while (this.running) {
        const batch = retry.length > 0 ? retry : gen.next(tick++).map((i) => ({ type: i.type, version: i.version, payload: i.payload, ingestId: i.ingestId }));
        retry = [];
        try {
          const results = await client.submit(SHARD, batch);
          results.forEach((r, k) => this.acked.set(batch[k]!.ingestId!, r.seq));
        } catch {
          // Not acknowledged (no quorum during a fault): retried with the same ingestIds.
          this.failures++;
          retry = batch;
        }
        await new Promise((r) => setTimeout(r, 25));
      }
      await client.close();
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

const c = toxiproxyComponent;

describe.skipIf(c.skip)('three node processes with Toxiproxy between every pair', () => {
  let toxi: Toxiproxy;
  let files: ClusterFiles;
  const procs = new Map<string, NodeProcess>();
  const proxyPorts = new Map<string, number>();
  let loader: Loader | null = null;

  const link = (from: string, to: string): string => `${from}_${to}`.replace(/-/g, '');
  const url = (r: string): string => `http://127.0.0.1:${files.ports[r]}`;

  async function status(r: string) {
    return (await statusOf(url(r))).shards.find((s) => s.shard === SHARD)!;
  }

  /** Every region holds and applied the leader's head as of now. */
  async function converge(what: string, timeoutMs = 30_000): Promise<void> {
    const target = (await status(LEADER)).head;
    await waitFor(
      `every region to reach seq ${target} (${what})`,
      async () => {
        for (const r of REGIONS) {
          const s = await status(r);
          if (s.applied < target || s.head < target || s.quarantine !== null || s.stopped !== null) return false;
        }
        return true;
      },
      timeoutMs,
      200,
    );
  }

  async function repairEntriesFrom(region: string, peer: string): Promise<number> {
    const text = await (await fetch(`${url(region)}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('playout_repair_entries_total{') && l.includes(`shard="${SHARD}"`) && l.includes(`peer="${peer}"`));
    return line === undefined ? 0 : Number(line.split(' ').pop());
  }

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  beforeAll(async () => {
    c.require();
    console.log(`cluster integration: reproduce with PLAYOUT_SEED=${SEED}`);
    toxi = await Toxiproxy.start();
    const ports = await freePorts(3 + 6);
    const nodePorts = Object.fromEntries(REGIONS.map((r, i) => [r, ports[i]!]));
    let k = 3;
    for (const from of REGIONS) for (const to of REGIONS) if (from !== to) proxyPorts.set(link(from, to), ports[k++]!);
    files = await writeClusterConfigs({
      regions: [...REGIONS],
      ports: nodePorts,
      shards: [{ id: SHARD, leader: LEADER, tickMs: 50, ack: 'quorum', seed: SEED }],
      peerUrl: (from, to) => `http://127.0.0.1:${proxyPorts.get(link(from, to))}`,
      overrides: {
        replication: { heartbeatMs: 200, streamIdleMs: 1_000, statusPollMs: 500, ackTimeoutMs: 4_000 },
        repair: { delayMs: 300, requestTimeoutMs: 1_500, backoffMsMin: 50, backoffMsMax: 1_000 },
        snapshots: { everyTicks: 100, kept: 3, retainEntriesMin: 1_000_000 },
        log: { level: 'info' },
      },
    });
    for (const from of REGIONS) for (const to of REGIONS) if (from !== to) await toxi.createProxy(link(from, to), proxyPorts.get(link(from, to))!, nodePorts[to]!);
    for (const r of REGIONS) procs.set(r, await spawnNode(files, r));
    loader = new Loader(url(LEADER));
    await waitFor('the first acknowledged inputs', () => loader!.acked.size > 50, 30_000);
  }, 120_000);

  afterAll(async () => {
    await loader?.stop();
    for (const p of procs.values()) await killNode(p);
    await toxi?.close();
    if (files) rmSync(files.dir, { recursive: true, force: true });
  });

  it('replicates under latency with jitter on every link and a bandwidth limit on one', async () => {
    const toxics: [string, string][] = [];
    for (const from of REGIONS) {
      for (const to of REGIONS) {
        if (from === to) continue;
        toxics.push([link(from, to), await toxi.addToxic(link(from, to), { type: 'latency', attributes: { latency: 40, jitter: 30 } })]);
      }
    }
    toxics.push([link('us-sfo', LEADER), await toxi.addToxic(link('us-sfo', LEADER), { type: 'bandwidth', attributes: { rate: 64 } })]);
    const before = (await status('us-sfo')).applied;
    await sleep(4_000);
    expect((await status('us-sfo')).applied).toBeGreaterThan(before);
    for (const [p, t] of toxics) await toxi.removeToxic(p, t);
    await converge('after latency and bandwidth');
  });

  it('repairs a link cut for 5 s under load', async () => {
    const ackedBefore = loader!.acked.size;
    await toxi.setEnabled(link(LEADER, 'us-sfo'), false);
    await toxi.setEnabled(link('us-sfo', LEADER), false);
    await sleep(5_000);
    // A quorum (eu-fra and af-jnb) keeps acknowledging while us-sfo is cut off from the leader.
    expect(loader!.acked.size).toBeGreaterThan(ackedBefore);
    await toxi.setEnabled(link(LEADER, 'us-sfo'), true);
    await toxi.setEnabled(link('us-sfo', LEADER), true);
    await converge('after a 5 s cut');
  });

  it('repairs from another peer while the stream from the leader hangs, then while it is reset', async () => {
    const before = await repairEntriesFrom('af-jnb', 'us-sfo');
    const hang = await toxi.addToxic(link('af-jnb', LEADER), { type: 'timeout', attributes: { timeout: 0 } });
    await sleep(5_000);
    await toxi.removeToxic(link('af-jnb', LEADER), hang);
    const during = await repairEntriesFrom('af-jnb', 'us-sfo');
    expect(during, 'af-jnb repaired from us-sfo while its link to the leader hung').toBeGreaterThan(before);
    const reset = await toxi.addToxic(link('af-jnb', LEADER), { type: 'reset_peer', attributes: { timeout: 300 } });
    await sleep(3_000);
    await toxi.removeToxic(link('af-jnb', LEADER), reset);
    await converge('after a hang and resets');
  });

  it('resumes a follower killed with SIGKILL from its store and repairs what it missed', async () => {
    const victim = procs.get('us-sfo')!;
    const headAtKill = (await status('us-sfo')).head;
    await killNode(victim, 'SIGKILL');
    await sleep(3_000);
    procs.set('us-sfo', await spawnNode(files, 'us-sfo'));
    const resumed = await status('us-sfo');
    expect(resumed.head).toBeGreaterThanOrEqual(headAtKill);
    await converge('after kill -9 and restart');
  });

  it('loses no acknowledged input when the leader is killed with SIGKILL and restarted', async () => {
    const ackedBefore = loader!.acked.size;
    await killNode(procs.get(LEADER)!, 'SIGKILL');
    await sleep(1_000);
    procs.set(LEADER, await spawnNode(files, LEADER));
    // The loader retries what was not acknowledged with the same ingestIds; the restarted
    // leader's dedupe window (rebuilt from its log) answers those it had already sequenced.
    await waitFor('acknowledgements to resume', () => loader!.acked.size > ackedBefore + 100, 30_000);
    await converge('after the leader restarted');
  });

  it('keeps the invariants after every link heals', async () => {
    await loader!.stop();
    await toxi.reset();
    await converge('final');
    const clients = new Map(REGIONS.map((r) => [r as string, adminClient(r, url(r))]));
    try {
      const check = await checkShard(SHARD, clients, loader!.acked);
      console.log(check.lines.join('\n'));
      expect(check.ok, check.lines.join('\n')).toBe(true);
      expect(check.acknowledged).toBeGreaterThan(500);
      expect(check.commonTicks).toBeGreaterThan(100);
    } finally {
      for (const cl of clients.values()) await cl.close();
    }
  });

  it('refuses unauthenticated, wrong-scope, oversized and malformed requests at a real process', async () => {
    const leader = url(LEADER);
    const headBefore = (await status(LEADER)).inputs.sequenced;
    const post = (token: string | null, body: string, type = 'application/json') =>
      fetch(`${leader}/v1/shards/${SHARD}/inputs`, { method: 'POST', headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': type }, body });
    const move = JSON.stringify({ type: 'player.move', version: 1, payload: { player: 'p000001', x: 1, y: 1 } });
    const cases: [Response, number, string][] = [
      [await post(null, move), 401, 'PLAYOUT_UNAUTHENTICATED'],
      [await post(TOKENS.peer, move), 403, 'PLAYOUT_FORBIDDEN'],
      [await post(TOKENS.ingest, JSON.stringify({ ...JSON.parse(move), pad: 'x'.repeat(2 << 20) })), 413, 'PLAYOUT_BODY_TOO_LARGE'],
      [await post(TOKENS.ingest, '{"type":'), 400, 'PLAYOUT_BODY_MALFORMED'],
      [await fetch(`${leader}/v1/status`, { headers: { authorization: `Bearer ${TOKENS.ingest}` } }), 403, 'PLAYOUT_FORBIDDEN'],
    ];
    for (const [res, code, name] of cases) {
      expect(res.status).toBe(code);
      expect(((await res.json()) as { code: string }).code).toBe(name);
    }
    await sleep(200);
    expect((await status(LEADER)).inputs.sequenced).toBe(headBefore);
  });
});

// Failover with three region nodes as separate processes on loopback, Toxiproxy on every directed
// replication link, and the built `playout failover` binary as the operator runs it:
//   (a) a planned switchover to af-jnb under a steady load: clients are redirected (307), no
//       acknowledged input is lost, identical digests after;
//   (b) the leader's replication links cut while it keeps acknowledging (ack mode `leader`), then
//       kill -9; takeover with --accept-loss; the old leader restarted finds its divergent suffix,
//       writes it to a quarantine file listing every input (seq, tick, ingestId, payload), rejoins
//       as a follower and converges;
//   (c) an operator who reaches only a minority is refused, and nothing changes.
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkShard } from '../../src/node/cluster-check.js';
import { REPO_ROOT, TOKENS, adminClient, freePorts, killNode, spawnNode, statusOf, waitFor, writeClusterConfigs, type ClusterFiles, type NodeProcess } from '../helpers/cluster.js';
import { CLI_MAIN, ensureBuilt } from '../helpers/built-cli.js';
import { FailoverLoad } from '../helpers/failover-load.js';
import { Toxiproxy, toxiproxyComponent } from '../helpers/toxiproxy.js';

const run = promisify(execFile);
const REGIONS = ['eu-fra', 'af-jnb', 'us-sfo'] as const;
const SHARD = 'hunt-1';
const SEED = Number(process.env.PLAYOUT_SEED ?? 20261122);
const c = toxiproxyComponent;

describe.skipIf(c.skip)('failover between node processes with Toxiproxy', () => {
  let toxi: Toxiproxy;
  let files: ClusterFiles;
  let cli: string;
  const procs = new Map<string, NodeProcess>();
  const url = (r: string): string => `http://127.0.0.1:${files.ports[r]}`;
  const proxyPorts = new Map<string, number>();
  /** The region behind a base URL: its own, or a proxy's (redirects name the peer URLs of the config, which are proxies). */
  const regionOf = (u: string): string => {
    const direct = REGIONS.find((r) => url(r) === u);
    if (direct !== undefined) return direct;
    const port = Number(new URL(u).port);
    for (const [name, p] of proxyPorts) if (p === port) return REGIONS.find((r) => name.endsWith(`_${r.replace(/-/g, '')}`)) ?? u;
    return u;
  };
  const link = (from: string, to: string): string => `${from}_${to}`.replace(/-/g, '');
  const regionsArg = (rs: readonly string[]): string => rs.map((r) => `${r}=${url(r)}`).join(',');

  async function playout(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run(process.execPath, [cli, ...args], { cwd: REPO_ROOT, env: { ...process.env, PLAYOUT_ADMIN_TOKEN: TOKENS.admin, CI: '' }, maxBuffer: 16 << 20 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  async function shardOf(r: string) {
    return (await statusOf(url(r))).shards.find((s) => s.shard === SHARD)!;
  }

  async function converge(what: string): Promise<void> {
    await waitFor(`every region to hold and apply the leader's head (${what})`, async () => {
      const rows = await Promise.all(REGIONS.map((r) => shardOf(r)));
      const target = Math.max(...rows.map((s) => s.head));
      return rows.every((s) => s.applied >= target && s.head >= target && s.quarantine === null && s.stopped === null && s.epoch === rows[0]!.epoch);
    }, 30_000, 200);
  }

  async function check(acked: ReadonlyMap<string, number>): Promise<void> {
    const clients = new Map(REGIONS.map((r) => [r as string, adminClient(r, url(r))]));
    try {
      const res = await checkShard(SHARD, clients, acked);
      console.log(res.lines.join('\n'));
      expect(res.ok, res.lines.join('\n')).toBe(true);
      expect(res.differingTicks).toBe(0);
    } finally {
      for (const cl of clients.values()) await cl.close();
    }
  }

  beforeAll(async () => {
    c.require();
    console.log(`failover integration: reproduce with PLAYOUT_SEED=${SEED}`);
    await ensureBuilt();
    cli = CLI_MAIN;
    toxi = await Toxiproxy.start();
    const ports = await freePorts(3 + 6);
    const nodePorts = Object.fromEntries(REGIONS.map((r, i) => [r, ports[i]!]));
    let k = 3;
    for (const from of REGIONS) for (const to of REGIONS) if (from !== to) proxyPorts.set(link(from, to), ports[k++]!);
    files = await writeClusterConfigs({
      regions: [...REGIONS],
      ports: nodePorts,
      shards: [{ id: SHARD, leader: 'eu-fra', tickMs: 50, ack: 'leader', seed: SEED }],
      peerUrl: (from, to) => `http://127.0.0.1:${proxyPorts.get(link(from, to))}`,
      overrides: {
        replication: { heartbeatMs: 100, streamIdleMs: 1_000, statusPollMs: 250, ackTimeoutMs: 4_000 },
        repair: { delayMs: 150, requestTimeoutMs: 1_000, backoffMsMin: 20, backoffMsMax: 500 },
        log: { level: 'warn' },
      },
    });
    for (const from of REGIONS) for (const to of REGIONS) if (from !== to) await toxi.createProxy(link(from, to), proxyPorts.get(link(from, to))!, nodePorts[to]!);
    for (const r of REGIONS) procs.set(r, await spawnNode(files, r));
  }, 240_000);

  afterAll(async () => {
    for (const p of procs.values()) await killNode(p);
    await toxi?.close();
    if (files) rmSync(files.dir, { recursive: true, force: true });
  });

  it('(a) switches over to af-jnb under load: redirected clients, no acknowledged input lost, identical digests', async () => {
    // 10,000 inputs/s offered (200-input batches, 50 a second), as the planned switchover asks.
    const load = new FailoverLoad({ shard: SHARD, url: url('eu-fra'), regionOf, seed: SEED, batchInputs: 200, batchesPerSecond: 50 });
    try {
      await waitFor('acknowledged inputs at eu-fra', () => load.acked.size > 400, 30_000);
      const plan = await playout('failover', 'plan', '--shard', SHARD, '--to', 'af-jnb', '--regions', regionsArg(REGIONS), '--json');
      expect(plan.code, plan.stderr).toBe(0);
      const t0 = Date.now();
      const r = await playout('failover', 'execute', '--shard', SHARD, '--to', 'af-jnb', '--regions', regionsArg(REGIONS));
      console.log(`execute took ${Date.now() - t0} ms (process start included)\n${r.stdout}`);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      await waitFor('acknowledgements from af-jnb', () => (load.ackedBy.get('af-jnb') ?? 0) > 3_000, 30_000);
    } finally {
      await load.stop();
    }
    const seconds = (Date.now() - load.startedAtMs) / 1000;
    console.log(`switchover load: ${load.acked.size} inputs acknowledged in ${seconds.toFixed(1)} s (${Math.round(load.acked.size / seconds)}/s offered 10,000/s)`);
    expect(load.redirects).toBeGreaterThan(0);
    await converge('after the switchover');
    await check(load.acked);
    expect(await shardOf('af-jnb')).toMatchObject({ role: 'leader', epoch: 2, leader: 'af-jnb' });
    expect(await shardOf('eu-fra')).toMatchObject({ role: 'follower', epoch: 2, leader: 'af-jnb' });
  }, 90_000);

  it('(b) after kill -9 of a cut-off leader: takeover with --accept-loss, the old leader quarantines its divergent suffix, rejoins and converges', async () => {
    const load = new FailoverLoad({ shard: SHARD, url: url('af-jnb'), fallbackUrls: [url('eu-fra'), url('us-sfo')], regionOf, seed: SEED + 1, batchInputs: 10, batchesPerSecond: 40 });
    let lostAcked: Map<string, number>;
    try {
      await waitFor('acknowledged inputs at af-jnb', () => load.acked.size > 200, 30_000);
      // The followers stop hearing from af-jnb (their links to it are cut); it keeps acknowledging.
      await toxi.setEnabled(link('eu-fra', 'af-jnb'), false);
      await toxi.setEnabled(link('us-sfo', 'af-jnb'), false);
      const cutAt = (await shardOf('eu-fra')).head;
      const before = load.ackedBy.get('af-jnb') ?? 0;
      await waitFor('inputs acknowledged by the cut-off leader', () => (load.ackedBy.get('af-jnb') ?? 0) > before + 200, 20_000);
      await killNode(procs.get('af-jnb')!, 'SIGKILL');
      // What af-jnb acknowledged beyond what the others hold can only be in its own log.
      lostAcked = new Map([...load.acked].filter(([, seq]) => seq > cutAt));
      const refused = await playout('failover', 'execute', '--shard', SHARD, '--to', 'eu-fra', '--regions', regionsArg(REGIONS));
      expect(refused.code, refused.stdout + refused.stderr).toBe(1);
      expect(refused.stdout + refused.stderr).toMatch(/accept-loss/);
      const r = await playout('failover', 'execute', '--shard', SHARD, '--to', 'eu-fra', '--regions', regionsArg(REGIONS), '--accept-loss');
      console.log(r.stdout);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      await waitFor('acknowledgements from eu-fra', () => (load.ackedBy.get('eu-fra') ?? 0) > 200, 30_000);
    } finally {
      await load.stop();
    }
    await toxi.setEnabled(link('eu-fra', 'af-jnb'), true);
    await toxi.setEnabled(link('us-sfo', 'af-jnb'), true);
    procs.set('af-jnb', await spawnNode(files, 'af-jnb'));
    await waitFor('af-jnb to learn epoch 3 and follow eu-fra', async () => {
      const s = await shardOf('af-jnb');
      return s.epoch === 3 && s.role === 'follower' && s.quarantineReports.length > 0;
    }, 30_000, 200);
    const s = await shardOf('af-jnb');
    const ref = s.quarantineReports[0]!;
    const report = JSON.parse(readFileSync(ref.file, 'utf8')) as {
      seqFrom: number;
      seqTo: number;
      inputs: number;
      resequenced: number;
      resequencedCheckedTo: number | null;
      entries: { seq: number; tick: number; kind: string; ingestId: string | null; payload: unknown; resequencedAt: number | null }[];
    };
    expect(report.entries.length).toBe(report.seqTo - report.seqFrom + 1);
    // The new history was searched for the quarantined inputs (eu-fra was reachable): an input
    // whose client retried it at eu-fra is marked with the seq eu-fra acknowledged, and no other.
    expect(report.resequencedCheckedTo).not.toBeNull();
    for (const e of report.entries) {
      if (e.kind !== 'input' || e.ingestId === null) continue;
      const ackedSeq = load.acked.get(e.ingestId);
      if (ackedSeq !== undefined && ackedSeq !== e.seq && ackedSeq <= report.resequencedCheckedTo!) expect(e.resequencedAt, `input ${e.ingestId} retried at eu-fra`).toBe(ackedSeq);
      if (e.resequencedAt !== null) expect([undefined, e.resequencedAt]).toContain(ackedSeq);
    }
    expect(report.resequenced).toBe(report.entries.filter((e) => e.resequencedAt !== null).length);
    console.log(`quarantine report: ${report.inputs} inputs, ${report.resequenced} retried at the new leader (searched to seq ${report.resequencedCheckedTo})`);
    const listed = new Map(report.entries.filter((e) => e.kind === 'input').map((e) => [e.ingestId!, e]));
    // Every input af-jnb acknowledged that the new history did not keep is listed with its seq, tick and payload.
    const kept = (await shardOf('eu-fra')).head;
    let lost = 0;
    for (const [id, seq] of lostAcked) {
      if (seq < report.seqFrom) continue;
      lost++;
      const e = listed.get(id);
      expect(e, `acknowledged input ${id} (seq ${seq}) is in the quarantine report`).toBeDefined();
      expect(e!.seq).toBe(seq);
      expect(e!.tick).toEqual(expect.any(Number));
      expect(e!.payload).toBeDefined();
    }
    expect(lost).toBeGreaterThan(0);
    expect(kept).toBeGreaterThan(0);
    await converge('after the old leader rejoined');
    // Nothing is dropped silently: every acknowledged input is in the log or in the quarantine report.
    await check(new Map([...load.acked].filter(([id]) => !listed.has(id))));
  }, 120_000);

  it('(c) refuses a failover from an operator who reaches only a minority, and changes nothing', async () => {
    const before = await shardOf('us-sfo');
    const r = await playout('failover', 'execute', '--shard', SHARD, '--to', 'us-sfo', '--regions', regionsArg(['us-sfo']));
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/PLAYOUT_FAILOVER_NO_MAJORITY|majority/);
    const after = await shardOf('us-sfo');
    expect(after.fence).toEqual(before.fence);
    expect(after).toMatchObject({ role: 'follower', leader: 'eu-fra', epoch: 3 });
  }, 30_000);
});

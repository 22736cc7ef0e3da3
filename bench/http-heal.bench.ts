// Healing after a 5 s link cut at 10,000 inputs/s: the leader (eu-fra) and a follower (af-jnb)
// run as separate node processes; the follower reaches the leader through a FaultProxy in this
// process. Under a fixed-rate load the link is reset for 5 s, then restored; the figure is the
// time from the restore to the follower holding everything the leader held at that moment
// (target < 1 s). The time until the follower is back within one batch (100 entries) of the
// moving head is printed for reference.
import { rmSync } from 'node:fs';
import { FaultProxy } from '../src/adapters/fault-proxy.js';
import { HttpPeerClient } from '../src/adapters/http-peer-client.js';
import { TOKENS, freePorts, killNode, spawnNode, statusOf, writeClusterConfigs, type NodeProcess } from '../test/helpers/cluster.js';
import { loadAverage1m, processCpuMs } from './process-cpu.js';
import { inputBatches, pacedLoad } from './paced-load.js';
import { atMost, info } from './report.js';

const RATE = 10_000;
const BATCH = 100;
const CUT_MS = 5_000;
const SHARD = 'hunt-1';

const [leaderPort, followerPort] = (await freePorts(2)) as [number, number];
const proxy = await FaultProxy.start('af-jnb>eu-fra', '127.0.0.1', leaderPort);
const files = await writeClusterConfigs({
  regions: ['eu-fra', 'af-jnb'],
  ports: { 'eu-fra': leaderPort, 'af-jnb': followerPort },
  shards: [{ id: SHARD, leader: 'eu-fra', tickMs: 50, ack: 'leader' }],
  peerUrl: (from, to, ports) => (from === 'af-jnb' && to === 'eu-fra' ? proxy.url : `http://127.0.0.1:${ports[to]}`),
  overrides: { limits: { pendingInputsMax: 1_000_000 }, log: { level: 'warn' } },
});
const procs: NodeProcess[] = [];
const head = async (url: string): Promise<number> => (await statusOf(url)).shards.find((s) => s.shard === SHARD)?.head ?? 0;
try {
  // One at a time: a node that fails to start must not leave the one before it running.
  procs.push(await spawnNode(files, 'eu-fra'));
  procs.push(await spawnNode(files, 'af-jnb'));
  const [leader, follower] = procs as [NodeProcess, NodeProcess];
  const client = new HttpPeerClient({ region: 'eu-fra', url: leader.url, token: TOKENS.ingest, requestTimeoutMs: 10_000, frameBytesMax: 1 << 20, connections: 32 });
  const batches = inputBatches(9, BATCH, ((3_000 + CUT_MS + 30_000) * RATE) / 1000 / BATCH);
  let failed = 0;
  const load = pacedLoad(batches, RATE, (batch) =>
    client.submit(SHARD, batch).then(
      () => undefined,
      () => void (failed += batch.length),
    ),
  );

  await new Promise((r) => setTimeout(r, 3_000));
  proxy.set('reset');
  const cutAt = performance.now();
  await new Promise((r) => setTimeout(r, CUT_MS));
  const followerAtHeal = await head(follower.url);
  const behindAtHeal = (await head(leader.url)) - followerAtHeal;
  const target = await head(leader.url);
  proxy.set('up');
  const healedAt = performance.now();
  const cpuAtHeal = [processCpuMs(leader.child.pid), processCpuMs(follower.child.pid)];
  let cpuAtCaughtUp: (number | null)[] = [];
  let caughtUpMs: number | null = null;
  let followerAtCaughtUp = 0;
  let liveMs: number | null = null;
  const timeline: string[] = [];
  while (performance.now() - healedAt < 30_000 && liveMs === null) {
    const [f, l] = [await head(follower.url), await head(leader.url)];
    if (process.env.PLAYOUT_BENCH_TRACE) timeline.push(`${Math.round(performance.now() - healedAt)}:${l - f}`);
    if (caughtUpMs === null && f >= target) {
      caughtUpMs = performance.now() - healedAt;
      cpuAtCaughtUp = [processCpuMs(leader.child.pid), processCpuMs(follower.child.pid)];
      followerAtCaughtUp = f;
    }
    if (caughtUpMs !== null && f >= l - BATCH) liveMs = performance.now() - healedAt;
    await new Promise((r) => setTimeout(r, 20));
  }
  const stopped = load.stop();
  if (timeline.length > 0) {
    console.log(`  behind after heal (ms:entries): ${timeline.join(' ')}`);
    for (const p of procs) {
      const m = await (await fetch(`${p.url}/metrics`)).text();
      console.log(`  ${p.region}: ${m.split('\n').filter((l) => /eventloop_lag_(max|p99)_seconds\{|append_seconds_(sum|count)|repairs_total\{|repair_entries_total\{|stream_reconnects_total\{/.test(l)).join(' | ')}`);
    }
  }
  await stopped;
  await client.close();
  info('offered rate', load.sent() / ((performance.now() - load.startMs) / 1000), 'inputs/s');
  info('inputs not acknowledged', failed, 'inputs');
  info('cut length', healedAt - cutAt, 'ms');
  info('entries behind when the link healed', behindAtHeal, 'entries');
  if (caughtUpMs === null) throw new Error(`the follower did not reach seq ${target} within 30 s of the heal`);
  const [l0, f0] = cpuAtHeal;
  const [l1, f1] = cpuAtCaughtUp;
  if (l0 != null && l1 != null) info('leader CPU from heal to caught up (share of one core)', (l1 - l0) / caughtUpMs, 'cores');
  if (f0 != null && f1 != null) info('follower CPU from heal to caught up (share of one core)', (f1 - f0) / caughtUpMs, 'cores');
  // Per entry made durable meanwhile (the backlog and the live entries that came with it): on a
  // shared machine the wall time follows the neighbours' load, this much less.
  const caughtUpEntries = followerAtCaughtUp - followerAtHeal;
  if (l0 != null && l1 != null && caughtUpEntries > 0) info('leader CPU per entry from heal to caught up', ((l1 - l0) * 1000) / caughtUpEntries, 'µs');
  if (f0 != null && f1 != null && caughtUpEntries > 0) info('follower CPU per entry from heal to caught up', ((f1 - f0) * 1000) / caughtUpEntries, 'µs');
  const loadAvg = loadAverage1m();
  if (loadAvg !== null) info('load average (1 min) at the end', loadAvg, '');
  atMost('heal → follower holds the leader head at heal time', caughtUpMs, 1_000, 'ms');
  if (liveMs !== null) info('heal → follower within 100 entries of the moving head', liveMs, 'ms');
} finally {
  for (const p of procs) await killNode(p);
  await proxy.close();
  rmSync(files.dir, { recursive: true, force: true });
}

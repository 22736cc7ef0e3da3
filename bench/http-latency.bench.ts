// Ingress to applied in another region, on loopback, at a fixed 10,000 inputs/s: the leader
// (eu-fra) and a follower (af-jnb) run as separate node processes; this process submits
// batches of 100 inputs every 10 ms (open loop: the next batch does not wait for the last
// acknowledgement).
//
// Applied: this process polls the follower's GET /v1/status every 5 ms; an input counts as
// applied at the first answer whose `applied` reaches its seq, timed when that answer arrives.
// So the figure is an upper bound (it adds up to one poll interval and a loopback round trip).
// Target: p99 < 20 ms.
//
// Durable, for reference: the follower's own replication stream carries an entry once it is
// durable there (applying follows in the next turns); timed at its arrival here, one extra
// loopback hop. Acknowledgement latency (ack mode leader) is printed for reference too.
import { rmSync } from 'node:fs';
import { HttpEntrySource } from '../src/adapters/http-entry-source.js';
import { HttpPeerClient } from '../src/adapters/http-peer-client.js';
import { TOKENS, killNode, spawnNode, statusOf, writeClusterConfigs, type NodeProcess } from '../test/helpers/cluster.js';
import { loadAverage1m, processCpuMs } from './process-cpu.js';
import { inputBatches } from './paced-load.js';
import { atMost, info } from './report.js';

const RATE = 10_000;
const BATCH = 100;
const WARMUP_MS = 3_000;
const MEASURE_MS = 10_000;
const SHARD = 'hunt-1';

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const files = await writeClusterConfigs({
  regions: ['eu-fra', 'af-jnb'],
  shards: [{ id: SHARD, leader: 'eu-fra', tickMs: 50, ack: 'leader' }],
  overrides: { limits: { pendingInputsMax: 1_000_000 }, log: { level: 'warn' } },
});
const procs: NodeProcess[] = [];
try {
  procs.push(await spawnNode(files, 'eu-fra'), await spawnNode(files, 'af-jnb'));
  const [leader, follower] = procs as [NodeProcess, NodeProcess];
  const sentAt = new Map<string, number>();
  /** ingestIds of the inputs sent after the warm-up. */
  const measuredIds = new Set<string>();
  const latencies: number[] = [];
  /** [sent at (ms since start), latency] for PLAYOUT_BENCH_TRACE's timeline. */
  const timeline: [number, number][] = [];
  const acks: number[] = [];
  /** [sent at, seq] of every measured input, from the follower's stream (acks may time out). */
  const measuredSeqs: [number, number][] = [];
  /** [answer arrived at, applied] of the follower's status polls. */
  const appliedSamples: [number, number][] = [];
  let measuring = false;
  const from = ((await statusOf(follower.url)).shards[0]?.head ?? 0) + 1;
  const stream = new HttpEntrySource({ region: 'af-jnb', url: follower.url, token: TOKENS.peer, frameBytesMax: 1 << 20 });
  await stream.start({
    onEntries(_shard, entries) {
      const now = performance.now();
      for (const e of entries) {
        if (e.ingestId === null) continue;
        const t0 = sentAt.get(e.ingestId);
        if (t0 === undefined) continue;
        sentAt.delete(e.ingestId);
        if (measuredIds.has(e.ingestId)) {
          latencies.push(now - t0);
          timeline.push([t0 - start, now - t0]);
          measuredSeqs.push([t0, e.seq]);
        }
      }
    },
    onHeartbeat() {},
    onError() {},
  });
  stream.follow(SHARD, from);
  const statusClient = new HttpPeerClient({ region: 'af-jnb', url: follower.url, token: TOKENS.peer, requestTimeoutMs: 10_000, frameBytesMax: 1 << 20, connections: 1 });
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const s = await statusClient.nodeStatus().catch(() => null);
      const row = s?.shards.find((r) => r.shard === SHARD);
      if (row !== undefined) appliedSamples.push([performance.now(), row.applied]);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const client = new HttpPeerClient({ region: 'eu-fra', url: leader.url, token: TOKENS.ingest, requestTimeoutMs: 10_000, frameBytesMax: 1 << 20, connections: 32 });
  // Batches made up front: the sender's own CPU must not bend the rate.
  const batches = inputBatches(5, BATCH, ((WARMUP_MS + MEASURE_MS) * RATE) / 1000 / BATCH + 1);
  let sent = 0;
  let failed = 0;
  let measuredSent = 0;
  const cpuAtMeasure: (number | null)[] = [];
  const start = performance.now();
  let tick = 0;
  const inflight = new Set<Promise<void>>();
  // Fixed-rate sender: batch k leaves at start + k × 10 ms, whatever happened to batch k-1.
  while (performance.now() - start < WARMUP_MS + MEASURE_MS) {
    const due = start + (tick * BATCH * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (!measuring && performance.now() - start >= WARMUP_MS) {
      measuring = true;
      cpuAtMeasure.push(processCpuMs(leader.child.pid), processCpuMs(follower.child.pid), processCpuMs(process.pid));
    }
    const batch = batches[tick++];
    if (batch === undefined) break;
    const t0 = performance.now();
    for (const i of batch) {
      sentAt.set(i.ingestId!, t0);
      if (measuring) measuredIds.add(i.ingestId!);
    }
    const m = measuring;
    const p = client.submit(SHARD, batch).then(
      () => {
        if (m) acks.push(performance.now() - t0);
      },
      () => {
        failed += batch.length;
      },
    );
    sent += batch.length;
    if (m) measuredSent += batch.length;
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  }
  const elapsedS = (performance.now() - start) / 1000;
  await Promise.all(inflight);
  await new Promise((r) => setTimeout(r, 1_000));
  // CPU from the first measured send to here: the measured inputs, their replication and
  // their backlog, plus one idle second (heartbeats only).
  const cpuAtEnd = [processCpuMs(leader.child.pid), processCpuMs(follower.child.pid), processCpuMs(process.pid)];
  measuring = false;
  const observedUntil = performance.now();
  polling = false;
  await poller;
  await statusClient.close();
  await stream.close();
  await client.close();
  // Applied latency: the first poll answer at or after the send whose `applied` reaches the seq.
  const applied: number[] = [];
  let unapplied = 0;
  for (const [t0, seq] of measuredSeqs) {
    let lo = 0;
    let hi = appliedSamples.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (appliedSamples[mid]![1] >= seq) hi = mid;
      else lo = mid + 1;
    }
    while (lo < appliedSamples.length && appliedSamples[lo]![0] < t0) lo++;
    if (lo < appliedSamples.length) applied.push(appliedSamples[lo]![0] - t0);
    else {
      // Never seen applied: as late as the end of the observation, not left out.
      unapplied++;
      applied.push(observedUntil - t0);
    }
  }
  if (process.env.PLAYOUT_BENCH_TRACE) {
    // Worst latency per 250 ms of sending: stalls show as runs of high values.
    const worst = new Map<number, number>();
    for (const [at, l] of timeline) worst.set(Math.floor(at / 250), Math.max(worst.get(Math.floor(at / 250)) ?? 0, l));
    console.log(`  worst latency per 250 ms (s:ms): ${[...worst].map(([k, v]) => `${(k / 4).toFixed(2)}:${Math.round(v)}`).join(' ')}`);
    for (const p of procs) {
      const m = await (await fetch(`${p.url}/metrics`)).text();
      console.log(`  ${p.region}: ${m.split('\n').filter((l) => /eventloop_lag_(max|p50|p99)_seconds\{|append_seconds_(sum|count)|process_cpu_seconds_total/.test(l)).join(' | ')}`);
    }
  }
  const cpuNames = ['leader process CPU per input', 'follower process CPU per input', 'bench process (load generator, stream reader) CPU per input'];
  // Per input only when every measured input made it through (an overloaded run did part of
  // the work for the inputs it dropped).
  const allThrough = [...measuredIds].every((id) => !sentAt.has(id));
  for (let i = 0; i < 3 && allThrough; i++) {
    const a = cpuAtMeasure[i];
    const b = cpuAtEnd[i];
    if (a !== null && a !== undefined && b !== null && b !== undefined && measuredSent > 0) info(cpuNames[i]!, ((b - a) * 1000) / measuredSent, 'µs');
  }
  const load = loadAverage1m();
  if (load !== null) info('load average (1 min) at the end', load, '');
  // Measured inputs that never came back on the follower's stream count as late as the end of
  // the observation (a lower bound of their latency), not left out.
  let lost = 0;
  for (const id of measuredIds) {
    const t0 = sentAt.get(id);
    if (t0 === undefined) continue;
    lost++;
    latencies.push(observedUntil - t0);
    applied.push(observedUntil - t0);
  }
  latencies.sort((a, b) => a - b);
  acks.sort((a, b) => a - b);
  applied.sort((a, b) => a - b);
  info('offered rate', sent / elapsedS, 'inputs/s');
  info('inputs not acknowledged', failed, 'inputs');
  info('inputs measured', measuredIds.size, 'inputs');
  if (lost > 0) info('measured inputs not seen durable at the follower 1 s after the last send (counted as late as the end of the run)', lost, 'inputs');
  info('status polls of the follower', appliedSamples.length, 'polls');
  if (measuredIds.size === 0) throw new Error('no input was measured');
  if (unapplied > 0) info('measured inputs durable but not seen applied at the follower (counted as late as the end of the run)', unapplied, 'inputs');
  info('ingress → applied at the follower (status poll, upper bound), p50', pct(applied, 50), 'ms');
  atMost('ingress → applied at the follower (status poll, upper bound), p99', pct(applied, 99), 20, 'ms');
  info('ingress → applied at the follower (status poll, upper bound), p99.9', pct(applied, 99.9), 'ms');
  info('ingress → durable at the follower (its stream), p50', pct(latencies, 50), 'ms');
  info('ingress → durable at the follower (its stream), p99', pct(latencies, 99), 'ms');
  info('ingress → durable at the follower (its stream), p99.9', pct(latencies, 99.9), 'ms');
  if (acks.length > 0) {
    info('ingress → acknowledged (ack leader), p50', pct(acks, 50), 'ms');
    info('ingress → acknowledged (ack leader), p99', pct(acks, 99), 'ms');
  }
} finally {
  for (const p of procs) await killNode(p);
  rmSync(files.dir, { recursive: true, force: true });
}

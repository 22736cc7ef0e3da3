// Ingress to applied in another region, on loopback, at a fixed 10,000 inputs/s: the leader
// (eu-fra) and a follower (af-jnb) run as separate node processes; this process submits
// batches of 100 inputs every 10 ms (open loop: the next batch does not wait for the last
// acknowledgement). Request bodies are serialised up front and entries are not decoded here:
// the load generator stands for game servers on other machines, so its own CPU must not take
// the nodes' share of this 2-core machine.
//
// Applied: each input's seq comes back in its acknowledgement (ack mode leader); this process
// polls the follower's GET /v1/status every 5 ms, and an input counts as applied at the first
// answer whose `applied` reaches its seq, timed when that answer arrives. So the figure is an
// upper bound (it adds up to one poll interval and a loopback round trip). Target: p99 < 20 ms.
// Durable at the follower (its status `head`) and the acknowledgement latency are printed for
// reference.
import { rmSync } from 'node:fs';
import { Pool } from 'undici';
import { HttpPeerClient } from '../src/adapters/http-peer-client.js';
import type { InputResult } from '../src/adapters/http-schemas.js';
import { TOKENS, killNode, spawnNode, writeClusterConfigs, type NodeProcess } from '../test/helpers/cluster.js';
import { loadAverage1m, processCpuMs } from './process-cpu.js';
import { inputBatches } from './paced-load.js';
import { atMost, info } from './report.js';

const RATE = Number(process.env.PLAYOUT_BENCH_RATE ?? 10_000);
const BATCH = 100;
const WARMUP_MS = 3_000;
const MEASURE_MS = 10_000;
const SHARD = 'hunt-1';

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** For each [sent at, seq], the time from sending to the first sample at or after it whose value reaches seq (or `end`). */
function reached(sent: readonly [number, number][], samples: readonly [number, number][], end: number): { latencies: number[]; never: number } {
  const latencies: number[] = [];
  let never = 0;
  for (const [t0, seq] of sent) {
    // Samples are in time order and their values never go down: the first reaching seq, then the first not before t0.
    let lo = 0;
    let hi = samples.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (samples[mid]![1] >= seq) hi = mid;
      else lo = mid + 1;
    }
    while (lo < samples.length && samples[lo]![0] < t0) lo++;
    if (lo < samples.length) latencies.push(samples[lo]![0] - t0);
    else {
      // Never seen: as late as the end of the observation (a lower bound), not left out.
      never++;
      latencies.push(end - t0);
    }
  }
  return { latencies: latencies.sort((a, b) => a - b), never };
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
  /** [sent at, seq] of every measured input, from its acknowledgement. */
  const measured: [number, number][] = [];
  const acks: number[] = [];
  /** [answer arrived at, head (durable)] and [answer arrived at, applied] of the follower's status polls. */
  const headSamples: [number, number][] = [];
  const appliedSamples: [number, number][] = [];
  const statusClient = new HttpPeerClient({ region: 'af-jnb', url: follower.url, token: TOKENS.peer, requestTimeoutMs: 10_000, frameBytesMax: 1 << 20, connections: 1 });
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const s = await statusClient.nodeStatus().catch(() => null);
      const row = s?.shards.find((r) => r.shard === SHARD);
      if (row !== undefined) {
        const now = performance.now();
        headSamples.push([now, row.head]);
        appliedSamples.push([now, row.applied]);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const pool = new Pool(leader.url, { connections: 32, pipelining: 1 });
  const path = `/v1/shards/${SHARD}/inputs`;
  const headers = { authorization: `Bearer ${TOKENS.ingest}`, 'content-type': 'application/json' };
  // Batches made and serialised up front: the sender's own CPU must not bend the rate.
  const bodies = inputBatches(5, BATCH, ((WARMUP_MS + MEASURE_MS) * RATE) / 1000 / BATCH + 1).map((b) => JSON.stringify({ inputs: b }));
  let sent = 0;
  let failed = 0;
  let measuredSent = 0;
  const cpuAtMeasure: (number | null)[] = [];
  let measuring = false;
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
    const body = bodies[tick++];
    if (body === undefined) break;
    const t0 = performance.now();
    const m = measuring;
    const p = pool
      .request({ method: 'POST', path, headers, body, signal: AbortSignal.timeout(10_000) })
      .then(async (res) => {
        const text = await res.body.text();
        if (res.statusCode !== 200) throw new Error(`${res.statusCode}: ${text.slice(0, 200)}`);
        if (!m) return;
        acks.push(performance.now() - t0);
        for (const r of (JSON.parse(text) as { results: InputResult[] }).results) measured.push([t0, r.seq]);
      })
      .catch((err: unknown) => {
        failed += BATCH;
        if (failed === BATCH) console.log(`  first failed batch: ${String(err)}`);
      });
    sent += BATCH;
    if (m) measuredSent += BATCH;
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  }
  const elapsedS = (performance.now() - start) / 1000;
  await Promise.all(inflight);
  // Wait (up to 10 s) for the follower to apply everything acknowledged, then one idle second.
  const lastSeq = measured.reduce((a, [, s]) => Math.max(a, s), 0);
  for (let i = 0; i < 1000 && (appliedSamples.at(-1)?.[1] ?? 0) < lastSeq; i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 1_000));
  // CPU from the first measured send to here: the measured inputs, their replication and
  // their backlog, plus one idle second (heartbeats and status polls only).
  const cpuAtEnd = [processCpuMs(leader.child.pid), processCpuMs(follower.child.pid), processCpuMs(process.pid)];
  const observedUntil = performance.now();
  polling = false;
  await poller;
  await statusClient.close();
  await pool.close();
  const applied = reached(measured, appliedSamples, observedUntil);
  const durable = reached(measured, headSamples, observedUntil);
  acks.sort((a, b) => a - b);
  const cpuNames = ['leader process CPU per input', 'follower process CPU per input', 'bench process (load generator, status poller) CPU per input'];
  // Per input only when every measured input made it through (an overloaded run did part of
  // the work for the inputs it dropped).
  for (let i = 0; i < 3 && failed === 0 && applied.never === 0; i++) {
    const a = cpuAtMeasure[i];
    const b = cpuAtEnd[i];
    if (a !== null && a !== undefined && b !== null && b !== undefined && measuredSent > 0) info(cpuNames[i]!, ((b - a) * 1000) / measuredSent, 'µs');
  }
  const load = loadAverage1m();
  if (load !== null) info('load average (1 min) at the end', load, '');
  info('offered rate', sent / elapsedS, 'inputs/s');
  info('inputs not acknowledged (not measured)', failed, 'inputs');
  info('inputs measured', measured.length, 'inputs');
  info('status polls of the follower', appliedSamples.length, 'polls');
  if (measured.length === 0) throw new Error('no input was measured');
  if (applied.never > 0) info('measured inputs not seen applied at the follower 10 s after the last send (counted as late as the end of the run)', applied.never, 'inputs');
  if (process.env.PLAYOUT_BENCH_TRACE) {
    // Worst latency per 250 ms of sending: stalls show as runs of high values.
    const worst = new Map<number, number>();
    for (const [t0, seq] of measured) {
      const l = reached([[t0, seq]], appliedSamples, observedUntil).latencies[0]!;
      const k = Math.floor((t0 - start) / 250);
      worst.set(k, Math.max(worst.get(k) ?? 0, l));
    }
    console.log(`  worst latency per 250 ms (s:ms): ${[...worst].map(([k, v]) => `${(k / 4).toFixed(2)}:${Math.round(v)}`).join(' ')}`);
  }
  info('ingress → applied at the follower (status poll, upper bound), p50', pct(applied.latencies, 50), 'ms');
  atMost('ingress → applied at the follower (status poll, upper bound), p99', pct(applied.latencies, 99), 20, 'ms');
  info('ingress → applied at the follower (status poll, upper bound), p99.9', pct(applied.latencies, 99.9), 'ms');
  info('ingress → durable at the follower (status poll, upper bound), p50', pct(durable.latencies, 50), 'ms');
  info('ingress → durable at the follower (status poll, upper bound), p99', pct(durable.latencies, 99), 'ms');
  if (acks.length > 0) {
    info('ingress → acknowledged (ack leader), p50', pct(acks, 50), 'ms');
    info('ingress → acknowledged (ack leader), p99', pct(acks, 99), 'ms');
  }
} finally {
  for (const p of procs) await killNode(p);
  rmSync(files.dir, { recursive: true, force: true });
}

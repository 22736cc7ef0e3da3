// Ingress to applied in another region, on loopback, at a fixed 10,000 inputs/s: the leader
// (eu-fra) and a follower (af-jnb) run as separate node processes; this process submits
// batches of 100 inputs every 10 ms (open loop: the next batch does not wait for the last
// acknowledgement). Request bodies are serialised up front and entries are not decoded here:
// the load generator stands for game servers on other machines, so its own CPU must not take
// the nodes' share of this 2-core machine.
//
// Applied: this process watches the follower's applied head (GET
// /v1/shards/:shard/applied/watch, a line each time it moves) and notes when each line arrives.
// Each input's seq comes back in its acknowledgement (ack mode leader); a batch counts as
// applied at the arrival of the first line at or beyond its last seq: an upper bound of when
// the follower applied it (one loopback hop and this process's own wake-up late). Target: p99
// < 20 ms. The acknowledgement latency is printed for reference.
//
// The machine. This is three busy processes on a shared virtual machine, and the hypervisor
// sometimes runs other guests on its CPUs ("steal" in /proc/stat): for tens of milliseconds at a
// time no thread here runs, and every batch in flight waits. The target is for loopback without
// injected latency, so a measurement during which more than STEAL_MAX_PCT of the CPU time was
// stolen is repeated on a fresh cluster, up to ATTEMPTS times. The attempt used is chosen by the
// steal measured alongside it, never by its latency: the first under STEAL_MAX_PCT, else the one
// with the least steal (still judged against the target). Every attempt is printed.
// What a busy host does here (measured 2026-11-22, alternating runs): the same work costs the
// leader 32–39 µs of CPU per input when the host is quiet and 46–55 µs when it is not, and the
// leader's fsyncs get slower and come with steal (with its store on tmpfs, steal stayed ~0% and
// p99 ~12–20 ms in the same busy period; on disk, 2–18% and 29–70 ms). Quiet: p99 8.7–17.9 ms.
import { rmSync } from 'node:fs';
import { Pool } from 'undici';
import { HttpPeerClient } from '../src/adapters/http-peer-client.js';
import type { InputResult } from '../src/adapters/http-schemas.js';
import { TOKENS, killNode, spawnNode, writeClusterConfigs, type NodeProcess } from '../test/helpers/cluster.js';
import { loadAverage1m, machineCpu, processCpuMs, runQueueWaitMs, type MachineCpu } from './process-cpu.js';
import { threadWakeLatencies } from './wake-latency.js';
import { inputBatches } from './paced-load.js';
import { atMost, info } from './report.js';

const RATE = Number(process.env.PLAYOUT_BENCH_RATE ?? 10_000);
const BATCH = 100;
const WARMUP_MS = 3_000;
const MEASURE_MS = 10_000;
const ATTEMPTS = Number(process.env.PLAYOUT_BENCH_LATENCY_ATTEMPTS ?? 3);
const STEAL_MAX_PCT = 1;
const SHARD = 'hunt-1';

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** A figure of one attempt, printed only for the attempt used. */
interface Row {
  name: string;
  value: number;
  unit: string;
  max?: number;
}

interface Attempt {
  rows: Row[];
  /** CPU stolen by the hypervisor during the measurement (%), null where /proc/stat is missing. */
  steal: number | null;
  p50: number;
  p99: number;
}

// Batches made and serialised up front, once: the sender's own CPU must not bend the rate.
const bodies = inputBatches(5, BATCH, ((WARMUP_MS + MEASURE_MS) * RATE) / 1000 / BATCH + 1).map((b) => JSON.stringify({ inputs: b }));

const attempts: Attempt[] = [];
for (let n = 1; n <= ATTEMPTS; n++) {
  const a = await attempt();
  attempts.push(a);
  const steal = a.steal === null ? 'unknown' : `${a.steal.toFixed(1)}%`;
  const usable = a.steal === null || a.steal <= STEAL_MAX_PCT;
  console.log(`  attempt ${n}: CPU stolen ${steal}, p50 ${a.p50.toFixed(1)} ms, p99 ${a.p99.toFixed(1)} ms${usable ? '' : ` (steal over ${STEAL_MAX_PCT}%: repeated)`}`);
  if (usable) break;
}
const used = attempts.find((a) => a.steal === null || a.steal <= STEAL_MAX_PCT) ?? attempts.reduce((x, y) => ((y.steal ?? 0) < (x.steal ?? 0) ? y : x));
console.log(`  figures of attempt ${attempts.indexOf(used) + 1} of ${attempts.length}${used.steal !== null && used.steal > STEAL_MAX_PCT ? ` (no attempt under ${STEAL_MAX_PCT}% steal: the one with the least)` : ''}:`);
for (const r of used.rows) {
  if (r.max === undefined) info(r.name, r.value, r.unit);
  else atMost(r.name, r.value, r.max, r.unit);
}

async function attempt(): Promise<Attempt> {
  const rows: Row[] = [];
  const info = (name: string, value: number, unit: string): void => void rows.push({ name, value, unit });
  const atMost = (name: string, value: number, max: number, unit: string): void => void rows.push({ name, value, unit, max });
  let steal: number | null = null;
  // The machine, before anything runs: how late it wakes a blocked thread (see wake-latency.ts).
  const wake = await threadWakeLatencies(2_000);

  const files = await writeClusterConfigs({
    regions: ['eu-fra', 'af-jnb'],
    shards: [{ id: SHARD, leader: 'eu-fra', tickMs: 50, ack: 'leader' }],
    overrides: { limits: { pendingInputsMax: 1_000_000 }, log: { level: 'warn' } },
  });
  const procs: NodeProcess[] = [];
  try {
    // One at a time: a node that fails to start must not leave the one before it running.
    procs.push(await spawnNode(files, 'eu-fra'));
    procs.push(await spawnNode(files, 'af-jnb'));
    const [leader, follower] = procs as [NodeProcess, NodeProcess];
    /** Ingress → applied at the follower, per measured input. */
    const applied: number[] = [];
    let unapplied = 0;
    // The follower's applied head as this process learns it: (head, arrival) in arrival order,
    // heads non-decreasing; and the batches waiting for a head at or beyond their seq.
    const heads: number[] = [];
    const heardAt: number[] = [];
    let waiting: { seq: number; resolve: (atMs: number) => void }[] = [];
    const watchAbort = new AbortController();
    const acks: number[] = [];
    const late: number[] = [];
    const follow = new HttpPeerClient({ region: 'af-jnb', url: follower.url, token: TOKENS.ingest, requestTimeoutMs: 10_000, frameBytesMax: 1 << 20 });
    const watching = follow.watchApplied(
      SHARD,
      (line) => {
        const at = performance.now();
        heads.push(line.applied);
        heardAt.push(at);
        if (waiting.length === 0) return;
        const still = [];
        for (const w of waiting) {
          if (w.seq <= line.applied) w.resolve(at);
          else still.push(w);
        }
        waiting = still;
      },
      { signal: watchAbort.signal },
    );
    /** When this process learnt that the follower applied `seq` (null: not within timeoutMs). */
    const appliedAt = (seq: number, timeoutMs: number): Promise<number | null> => {
      // The first head at or beyond seq, if one already came (heads never go back here).
      let lo = 0;
      let hi = heads.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (heads[mid]! < seq) lo = mid + 1;
        else hi = mid;
      }
      if (lo < heads.length) return Promise.resolve(heardAt[lo]!);
      return new Promise((resolve) => {
        const w = { seq, resolve: (at: number | null) => resolve(at) };
        waiting.push(w);
        setTimeout(() => {
          if (!waiting.includes(w)) return;
          waiting = waiting.filter((x) => x !== w);
          resolve(null);
        }, timeoutMs).unref();
      });
    };
    const pool = new Pool(leader.url, { connections: 32, pipelining: 1 });
    const path = `/v1/shards/${SHARD}/inputs`;
    const headers = { authorization: `Bearer ${TOKENS.ingest}`, 'content-type': 'application/json' };
    // The last attempt's garbage: collected here, not during the measurement.
    (globalThis as { gc?: () => void }).gc?.();
    let sent = 0;
    let failed = 0;
    let measuredSent = 0;
    const cpuAtMeasure: (number | null)[] = [];
    // Run-queue wait of the three main threads, and the machine's CPU counters, over the measurement.
    let waitAtMeasure: (number | null)[] = [];
    let machineAtMeasure: MachineCpu | null = null;
    let measureStart = 0;
    let measuring = false;
    /** Worst latency per 250 ms of sending (PLAYOUT_BENCH_TRACE): stalls show as runs of high values. */
    const trace = process.env.PLAYOUT_BENCH_TRACE ? new Map<number, number>() : null;
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
        waitAtMeasure = [runQueueWaitMs(leader.child.pid), runQueueWaitMs(follower.child.pid), runQueueWaitMs(process.pid)];
        machineAtMeasure = machineCpu();
        measureStart = performance.now();
      }
      const body = bodies[tick++];
      if (body === undefined) break;
      const t0 = performance.now();
      const m = measuring;
      // Latency runs from the actual send; how late sends left their slot is printed below, so
      // a load generator starved of CPU (which would hide latency) shows.
      if (m) late.push(t0 - due);
      const p = pool
        .request({ method: 'POST', path, headers, body, signal: AbortSignal.timeout(10_000) })
        .then(async (res) => {
          const text = await res.body.text();
          if (res.statusCode !== 200) throw new Error(`${res.statusCode}: ${text.slice(0, 200)}`);
          if (!m) return;
          acks.push(performance.now() - t0);
          const results = (JSON.parse(text) as { results: InputResult[] }).results;
          const last = results.reduce((a, r) => Math.max(a, r.seq), 0);
          const at = await appliedAt(last, 10_000);
          const l = at === null ? 0 : at - t0;
          for (let k = 0; k < results.length; k++) {
            if (at !== null) applied.push(l);
            else unapplied++;
          }
          if (trace !== null && at !== null) {
            const w = Math.floor((t0 - start) / 250);
            trace.set(w, Math.max(trace.get(w) ?? 0, l));
          }
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
    // The sending window only: what the machine did while the measured batches went through.
    const sendingMs = performance.now() - measureStart;
    const waitAtEnd = [runQueueWaitMs(leader.child.pid), runQueueWaitMs(follower.child.pid), runQueueWaitMs(process.pid)];
    const machineAtEnd = machineCpu();
    await Promise.all(inflight);
    // Every batch is applied (or timed out) here; then one idle second.
    await new Promise((r) => setTimeout(r, 1_000));
    // CPU from the first measured send to here: the measured inputs, their replication and
    // the watch lines, plus one idle second (heartbeats only).
    const cpuAtEnd = [processCpuMs(leader.child.pid), processCpuMs(follower.child.pid), processCpuMs(process.pid)];
    watchAbort.abort();
    await watching.catch((err: unknown) => console.log(`  the watch ended with: ${String(err)}`));
    await follow.close();
    await pool.close();
    applied.sort((x, y) => x - y);
    acks.sort((x, y) => x - y);
    const cpuNames = ['leader process CPU per input', 'follower process CPU per input', 'bench process (load generator, applied watch) CPU per input'];
    // Per input only when every measured input made it through (an overloaded run did part of
    // the work for the inputs it dropped).
    for (let i = 0; i < 3 && failed === 0 && unapplied === 0; i++) {
      const a = cpuAtMeasure[i];
      const b = cpuAtEnd[i];
      if (a !== null && a !== undefined && b !== null && b !== undefined && measuredSent > 0) info(cpuNames[i]!, ((b - a) * 1000) / measuredSent, 'µs');
    }
    const load = loadAverage1m();
    if (load !== null) info('load average (1 min) at the end', load, '');
    // What the machine adds (this benchmark is 3 busy processes on however many CPUs there are):
    // time the main threads spent runnable but waiting for a CPU, the CPU time the hypervisor gave
    // other guests (steal), and how late the idle machine woke a blocked thread before the run.
    // When these are high, the p99 below is the machine's as much as the code's.
    const waitNames = ['leader main thread waiting for a CPU (share of the measurement)', 'follower main thread waiting for a CPU (share of the measurement)', 'bench main thread waiting for a CPU (share of the measurement)'];
    for (let i = 0; i < 3; i++) {
      const a = waitAtMeasure[i];
      const b = waitAtEnd[i];
      if (a !== null && a !== undefined && b !== null && b !== undefined && sendingMs > 0) info(waitNames[i]!, (100 * (b - a)) / sendingMs, '%');
    }
    if (machineAtMeasure !== null && machineAtEnd !== null && machineAtEnd.total > machineAtMeasure.total) {
      const total = machineAtEnd.total - machineAtMeasure.total;
      info('machine CPU busy during the measurement (all CPUs)', (100 * (machineAtEnd.busy - machineAtMeasure.busy)) / total, '%');
      steal = (100 * (machineAtEnd.steal - machineAtMeasure.steal)) / total;
      info('machine CPU stolen by the hypervisor during the measurement', steal, '%');
    }
    info('idle machine, thread wake-up latency before the run, p99', pct(wake, 99), 'ms');
    info('idle machine, thread wake-up latency before the run, max', wake[wake.length - 1]!, 'ms');
    info('offered rate', sent / elapsedS, 'inputs/s');
    info('inputs not acknowledged (not measured)', failed, 'inputs');
    info('inputs measured', applied.length, 'inputs');
    if (unapplied > 0) info('measured inputs not applied at the follower within 10 s of their acknowledgement (not in the percentiles)', unapplied, 'inputs');
    if (applied.length === 0) throw new Error('no input was measured');
    if (trace !== null) console.log(`  worst latency per 250 ms (s:ms): ${[...trace].sort((x, y) => x[0] - y[0]).map(([k, v]) => `${(k / 4).toFixed(2)}:${Math.round(v)}`).join(' ')}`);
    late.sort((x, y) => x - y);
    if (late.length > 0) info('sends later than their slot (load generator), p99', pct(late, 99), 'ms');
    info('ingress → applied at the follower (applied-head watch, upper bound), p50', pct(applied, 50), 'ms');
    atMost('ingress → applied at the follower (applied-head watch, upper bound), p99', pct(applied, 99), 20, 'ms');
    info('ingress → applied at the follower (applied-head watch, upper bound), p99.9', pct(applied, 99.9), 'ms');
    if (acks.length > 0) {
      info('ingress → acknowledged (ack leader), p50', pct(acks, 50), 'ms');
      info('ingress → acknowledged (ack leader), p99', pct(acks, 99), 'ms');
    }
    return { rows, steal, p50: pct(applied, 50), p99: pct(applied, 99) };
  } finally {
    for (const p of procs) await killNode(p);
    rmSync(files.dir, { recursive: true, force: true });
  }
}

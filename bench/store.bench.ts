// The lmdb store (src/adapters/lmdb-store.ts): durable append throughput, and read throughput
// (cursor walk + hash check + decode + key/seq/chain checks; raw reads for peers), for reference.
// Replay from the store against replay from memory (issue 3) is bench/replay.bench.ts's figure.
//
// The log is the treasure-hunt game's (generateLog), >= 100,000 entries.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LmdbLogStore } from '../src/adapters/lmdb-store.js';
import { Rng, type Entry } from '../src/core/index.js';
import { generateLogArray } from '../src/games/treasure-hunt/index.js';
import { info, timeMs } from './report.js';

const ENTRIES = 100_000;

const SHARD = 'hunt-1';

const t0 = performance.now();
const { entries } = generateLogArray({ seed: 2, shard: SHARD, entries: ENTRIES });
console.log(`  generated ${entries.length} entries in ${Math.round(performance.now() - t0)} ms`);

const dir = mkdtempSync(join(tmpdir(), 'playout-store-bench-'));
const store = await LmdbLogStore.open(dir);
try {
  // Durable append throughput: big batches (catch-up, fixture import) …
  const bulkMs = await timeMs(async () => {
    for (let i = 0; i < entries.length; i += 1000) await store.append(SHARD, entries.slice(i, i + 1000));
  });
  info('append, batches of 1000, durable', entries.length / (bulkMs / 1000), 'entries/s');

  // … and one entry per append with many in flight (a leader's group commit under load).
  const small = await LmdbLogStore.open(join(dir, 'small'));
  const smallCount = 20_000;
  const smallMs = await timeMs(async () => {
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < smallCount; i++) {
      inFlight.push(small.append(SHARD, [entries[i]!]));
      if (inFlight.length === 256) await inFlight.shift();
    }
    await Promise.all(inFlight);
  });
  info('append, 1 entry per call, 256 in flight, durable', smallCount / (smallMs / 1000), 'entries/s');
  await small.close();

  // Replay from the store against replay from memory is issue 3's figure and is measured in
  // one place, bench/replay.bench.ts (on the 100,000-entry fixture, with one baseline). Here:
  // the store's own read costs, without the reducer.
  let n = 0;
  for (const _e of store.iterate(SHARD, 1)) n++;
  if (n !== entries.length) throw new Error(`read ${n} of ${entries.length} entries from the store`);

  // The store's own cost, without the reducer: read + verify + decode.
  const readMs = await timeMs(() => {
    let n = 0;
    for (const _e of store.iterate(SHARD, 1)) n++;
    return n;
  }, 3);
  info('read + verify + decode from the lmdb store', entries.length / (readMs / 1000), 'entries/s');
  const rawMs = await timeMs(() => {
    let from = 1;
    while (from <= entries.length) from += store.rangeRaw(SHARD, from, entries.length, 1 << 20).length;
  }, 3);
  info('rangeRaw (serving peers: hash-checked, not decoded)', entries.length / (rawMs / 1000), 'entries/s');

  // Append latency under a busy event loop: a region node's main thread parses, validates and
  // applies (~4 ms of every 10 ms) while its leader appends a batch every 10 ms; what a leader's
  // acknowledgement waits for is the time from queuing a batch to its flush. A write path that
  // needs the main thread inside the write transaction waits for the event loop there too.
  const busy = await LmdbLogStore.open(join(dir, 'busy'));
  try {
    const { latencies, cpuMsPerBatch } = await appendUnderBusyLoop(busy, entries, { batch: 100, everyMs: 10, busyMs: 4, durationMs: 10_000 });
    const sorted = [...latencies].sort((a, b) => a - b);
    const pct = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
    const paths = busy.appendPaths();
    console.log(`  busy event loop: ${sorted.length} batches of 100 entries (${paths.queued} queued appends, ${paths.inTransaction} in a transaction)`);
    info('append latency under a busy event loop (100 entries / 10 ms, 4 ms busy / 10 ms), enqueue → durable p50', pct(50), 'ms');
    info('append latency under a busy event loop (100 entries / 10 ms, 4 ms busy / 10 ms), enqueue → durable p99', pct(99), 'ms');
    // Wall times on this shared machine swing with the other processes' load; CPU does less.
    // It includes the spin (up to 4 ms a period: less when the process is descheduled in it).
    info('append under a busy event loop: process CPU per 10 ms period (spin and timers included)', cpuMsPerBatch, 'ms');
  } finally {
    await busy.close();
  }
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Append `batch` entries every `everyMs` for `durationMs` while a timer keeps the main thread
 * busy (a synchronous spin of `busyMs`) once every `everyMs`, at a random point of the period:
 * in a node the busy work comes with requests, not in step with the appends (two timers of one
 * period would lock in phase, an append right after each spin). The enqueue → durable latency
 * of each batch in ms.
 */
async function appendUnderBusyLoop(
  store: LmdbLogStore,
  log: readonly Entry[],
  o: { batch: number; everyMs: number; busyMs: number; durationMs: number },
): Promise<{ latencies: number[]; cpuMsPerBatch: number }> {
  const latencies: number[] = [];
  const cpu0 = process.cpuUsage();
  const pending: Promise<void>[] = [];
  let next = 0;
  let stop = false;
  const spin = (): void => {
    const until = performance.now() + o.busyMs;
    while (performance.now() < until);
  };
  const rng = Rng.fromSeed(1);
  const spinner = setInterval(() => {
    setTimeout(spin, rng.int(0, o.everyMs - o.busyMs));
  }, o.everyMs);
  const appender = setInterval(() => {
    if (stop || next + o.batch > log.length) return;
    const t0 = performance.now();
    const p = store.append(SHARD, log.slice(next, next + o.batch)).then(() => {
      latencies.push(performance.now() - t0);
    });
    next += o.batch;
    pending.push(p);
  }, o.everyMs);
  await new Promise((resolve) => setTimeout(resolve, o.durationMs));
  stop = true;
  clearInterval(appender);
  clearInterval(spinner);
  await Promise.all(pending);
  const cpu = process.cpuUsage(cpu0);
  return { latencies, cpuMsPerBatch: (cpu.user + cpu.system) / 1000 / Math.max(1, latencies.length) };
}

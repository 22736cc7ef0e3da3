// Catch-up over HTTP on loopback: a follower 1,000,000 entries behind reads them from a region
// node (a separate process), against reading the same range from a local store (target: HTTP
// throughput >= 0.5 of the local read).
//
// The target is measured on the path a follower takes: FollowerRole follows the leader's
// replication stream (GET /v1/shards/:shard/stream?from=head+1), which serves a backlog from
// the store in 1 MiB chunks under TCP backpressure; range requests (GET …/entries) are for
// gaps and stalls, one in flight per peer. Range reads are printed too, for reference: pages
// of 50,000 entries, four in flight (more than the Follower asks of one peer).
//
// Both sides pay the same per-entry work: the lmdb cursor walk, the hash check and the msgpack
// decode of every entry. HTTP adds the server's raw range read and framing, the transfer, and
// the client's frame decoding. For reference it also prints a whole follower catch-up over
// range reads: fetched, appended durably to the follower's store, and applied.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { HttpEntrySource } from '../src/adapters/http-entry-source.js';
import { LmdbLogStore } from '../src/adapters/lmdb-store.js';
import { Sequencer, ShardMachine, encodeSnapshot, type Entry } from '../src/core/index.js';
import { LoadGenerator, treasureHuntRegistry } from '../src/games/treasure-hunt/index.js';
import { TOKENS, adminClient, killNode, spawnNode, writeClusterConfigs } from '../test/helpers/cluster.js';
import { loadAverage1m, processCpuMs } from './process-cpu.js';
import { atLeast, info } from './report.js';

// PLAYOUT_BENCH_ENTRIES shortens the log for profiling runs; the figure is for 1,000,000.
const ENTRIES = Number(process.env.PLAYOUT_BENCH_ENTRIES ?? 1_000_000);
const SHARD = 'hunt-1';
const SEED = 11;
const INFLIGHT = 4;

const files = await writeClusterConfigs({
  regions: ['eu-fra'],
  shards: [{ id: SHARD, leader: 'eu-fra', seed: SEED, tickMs: 50 }],
  // Snapshots far apart: the node resumes by replaying the log, and the bench is about reading it.
  overrides: { snapshots: { everyTicks: 1_000_000, kept: 2, retainEntriesMin: 10_000_000 }, log: { level: 'warn' } },
});
const storePath = join(files.dir, 'eu-fra');
try {
  // The leader's log, produced as a leader does (load generator → Sequencer → machine), with a
  // snapshot at its last tick so the node resumes without replaying a million entries.
  let t0 = performance.now();
  const leaderStore = await LmdbLogStore.open(storePath);
  const registry = treasureHuntRegistry();
  const genesis = Sequencer.genesis({ shard: SHARD, reducer: registry.get('treasure-hunt', 1), seed: SEED, tickMs: 50 });
  const sequencer = Sequencer.afterGenesis(registry, genesis, { region: 'eu-fra', dedupeWindowTicks: 100 });
  const leaderMachine = new ShardMachine(registry);
  const load = new LoadGenerator({ seed: SEED, players: 5_000, inputsPerTick: 100 });
  leaderMachine.apply(genesis);
  let batch: Entry[] = [genesis];
  let written = 0;
  for (let tick = 0; written + batch.length < ENTRIES; tick++) {
    for (const input of load.next(tick)) {
      const r = sequencer.submit(input);
      if (r.status !== 'sequenced') continue;
      leaderMachine.apply(r.entry);
      batch.push(r.entry);
    }
    const close = sequencer.closeTick(leaderMachine.lastDigest?.digest ?? null);
    leaderMachine.apply(close);
    batch.push(close);
    if (batch.length >= 10_000) {
      await leaderStore.append(SHARD, batch);
      written += batch.length;
      batch = [];
    }
  }
  await leaderStore.append(SHARD, batch);
  written += batch.length;
  const snap = leaderMachine.snapshot();
  await leaderStore.putSnapshot(SHARD, snap.tick, snap.seq, encodeSnapshot(snap));
  await leaderStore.close();
  console.log(`  wrote ${written} entries in ${Math.round(performance.now() - t0)} ms`);
  if (written < ENTRIES) throw new Error(`wrote ${written} of ${ENTRIES} entries`);

  // The local read: the same range from the same store, in this process.
  const local = await LmdbLogStore.open(storePath, { readOnly: true });
  const cpuLocal0 = process.cpuUsage();
  t0 = performance.now();
  let n = 0;
  let bytes = 0;
  for (const e of local.iterate(SHARD, 1, ENTRIES)) {
    n++;
    bytes += e.bytes.length;
  }
  const localMs = performance.now() - t0;
  const cpuLocal = process.cpuUsage(cpuLocal0);
  if (n !== ENTRIES) throw new Error(`read ${n} of ${ENTRIES} entries locally`);
  await local.close();
  info('local store read (decode + verify)', ENTRIES / (localMs / 1000), 'entries/s');
  info('local store read: CPU per entry', (cpuLocal.user + cpuLocal.system) / ENTRIES, 'µs');

  const node = await spawnNode(files, 'eu-fra', 120_000);
  const client = adminClient('eu-fra', node.url);
  try {
    // Warm the server (its first pages are read cold, JIT not settled) outside the measurement.
    await client.entries(SHARD, 1, 50_000);
    const fetchAll = async (onPage: ((es: Awaited<ReturnType<typeof client.entries>>) => Promise<void>) | null): Promise<number> => {
      const pageEntries = 50_000;
      let next = 1;
      let got = 0;
      const inflight: Promise<Awaited<ReturnType<typeof client.entries>>>[] = [];
      const launch = (): void => {
        if (next > ENTRIES) return;
        const from = next;
        const to = Math.min(ENTRIES, from + pageEntries - 1);
        next = to + 1;
        inflight.push(client.entries(SHARD, from, to));
      };
      for (let i = 0; i < INFLIGHT; i++) launch();
      while (inflight.length > 0) {
        const page = await inflight.shift()!;
        const last = page[page.length - 1]!.seq;
        got += page.length;
        // A page cut short by the byte limit: fetch the rest right after it.
        const expectedTo = Math.min(ENTRIES, page[0]!.seq + pageEntries - 1);
        if (last < expectedTo) inflight.unshift(client.entries(SHARD, last + 1, expectedTo));
        if (onPage !== null) await onPage(page);
        launch();
      }
      return got;
    };
    // The replication stream from seq 1 until the millionth entry arrived, decoded and verified
    // (HttpEntrySource checks every entry's hash; the seqs are checked here).
    const streamAll = async (): Promise<number> => {
      const source = new HttpEntrySource({ region: 'eu-fra', url: node.url, token: TOKENS.peer, frameBytesMax: 1 << 20 });
      let expected = 1;
      let failure: Error | null = null;
      const start = performance.now();
      const done = new Promise<number>((resolve, reject) => {
        void source.start({
          onEntries(_shard, entries) {
            for (const e of entries) {
              if (e.seq !== expected) failure ??= new Error(`the stream sent entry ${e.seq} where ${expected} was due`);
              expected++;
            }
            if (failure !== null) reject(failure);
            else if (expected > ENTRIES) resolve(performance.now() - start);
          },
          onHeartbeat() {},
          onError(err) {
            reject(err);
          },
        });
      });
      source.follow(SHARD, 1);
      try {
        return await done;
      } finally {
        await source.close();
      }
    };
    // CPU per entry on each side: with a core each, the slower side sets the pace, whatever
    // the neighbours on a shared machine do to the wall time.
    const cpuServer0 = processCpuMs(node.child.pid);
    const cpuClient0 = process.cpuUsage();
    t0 = performance.now();
    const streamMs = await streamAll();
    const cpuClient = process.cpuUsage(cpuClient0);
    const cpuServer1 = processCpuMs(node.child.pid);
    info('stream catch-up: reader CPU per entry', (cpuClient.user + cpuClient.system) / ENTRIES, 'µs');
    if (cpuServer0 !== null && cpuServer1 !== null) info('stream catch-up: serving node CPU per entry', ((cpuServer1 - cpuServer0) * 1000) / ENTRIES, 'µs');
    info('HTTP catch-up read (replication stream, decode + verify)', ENTRIES / (streamMs / 1000), 'entries/s');
    info('HTTP catch-up bandwidth (stream)', bytes / (streamMs / 1000) / (1 << 20), 'MiB/s');

    t0 = performance.now();
    const got = await fetchAll(null);
    const httpMs = performance.now() - t0;
    if (got !== ENTRIES) throw new Error(`fetched ${got} of ${ENTRIES} entries over HTTP`);
    info('HTTP range reads (GET entries, 4 in flight, decode + verify)', ENTRIES / (httpMs / 1000), 'entries/s');
    info('HTTP range reads / local store read', localMs / httpMs, 'x');
    const load = loadAverage1m();
    if (load !== null) info('load average (1 min)', load, '');
    atLeast('HTTP catch-up (stream) / local store read', localMs / streamMs, 0.5);

    // A whole follower catch-up: fetch, append durably, apply.
    const followerStore = await LmdbLogStore.open(join(files.dir, 'follower'));
    const machine = new ShardMachine(treasureHuntRegistry());
    t0 = performance.now();
    await fetchAll(async (page) => {
      await followerStore.append(SHARD, page);
      for (const e of page) machine.apply(e);
    });
    const fullMs = performance.now() - t0;
    await followerStore.close();
    info('follower catch-up over HTTP (fetch + durable append + apply)', ENTRIES / (fullMs / 1000), 'entries/s');
  } finally {
    await client.close();
    await killNode(node);
  }
} finally {
  rmSync(files.dir, { recursive: true, force: true });
}

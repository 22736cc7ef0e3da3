// Planned switchover at 10,000 inputs/s (issue 6): three region nodes as separate processes on
// loopback, eu-fra leading in ack mode `leader`, a fixed-rate load of 100-input batches sent to
// whichever region the client was last redirected to (307 followed, 503 retried, same ingestIds).
// After 3 s, `failover execute --to af-jnb` runs (the operator function the CLI runs, in this
// process). Figures: time from execute to the new leader sequencing (its first acknowledged input;
// target < 500 ms), the execute call itself, and the acknowledged inputs lost (target 0), read from
// every region's log once the load stopped.
import { rmSync } from 'node:fs';
import { Pool } from 'undici';
import { executeFailoverOp } from '../src/cli/ops/failover.js';
import { HttpFailoverClient } from '../src/adapters/http-failover-client.js';
import type { InputRequest } from '../src/adapters/http-schemas.js';
import { checkShard } from '../src/node/cluster-check.js';
import { TOKENS, adminClient, killNode, spawnNode, statusOf, waitFor, writeClusterConfigs, type NodeProcess } from '../test/helpers/cluster.js';
import { inputBatches, pacedLoad } from './paced-load.js';
import { atMost, info } from './report.js';

const RATE = Number(process.env.PLAYOUT_BENCH_RATE ?? 10_000);
const BATCH = 100;
const SHARD = 'hunt-1';
const REGIONS = ['eu-fra', 'af-jnb', 'us-sfo'];
const WARM_MS = 3_000;
const AFTER_MS = 3_000;

const files = await writeClusterConfigs({
  regions: REGIONS,
  shards: [{ id: SHARD, leader: 'eu-fra', tickMs: 50, ack: 'leader' }],
  overrides: {
    limits: { pendingInputsMax: 1_000_000 },
    replication: { statusPollMs: 250 },
    repair: { delayMs: 100, requestTimeoutMs: 1_000, backoffMsMin: 20, backoffMsMax: 500 },
    log: { level: 'warn' },
  },
});
const procs: NodeProcess[] = [];
const pools = new Map<string, Pool>();
const pool = (origin: string): Pool => {
  let p = pools.get(origin);
  if (p === undefined) pools.set(origin, (p = new Pool(origin, { connections: 32 })));
  return p;
};
try {
  // A generous start timeout: benchmarks may run while the machine is busy.
  for (const r of REGIONS) procs.push(await spawnNode(files, r, 120_000));
  const urlOf = new Map(procs.map((p) => [p.url, p.region]));
  const batches = inputBatches(11, BATCH, ((WARM_MS + AFTER_MS + 10_000) * RATE) / 1000 / BATCH);
  const acked = new Map<string, number>();
  const firstAckAt = new Map<string, number>();
  let current = procs[0]!.url;
  let redirects = 0;
  let waits = 0;
  const submit = async (batch: InputRequest[]): Promise<void> => {
    const body = JSON.stringify({ inputs: batch });
    for (let attempt = 0; attempt < 1_000; attempt++) {
      const url = current;
      try {
        const res = await pool(url).request({ method: 'POST', path: `/v1/shards/${SHARD}/inputs`, headers: { authorization: `Bearer ${TOKENS.ingest}`, 'content-type': 'application/json' }, body });
        const text = await res.body.text();
        if (res.statusCode === 200) {
          const r = JSON.parse(text) as { results: { seq: number }[] };
          r.results.forEach((x, k) => acked.set(batch[k]!.ingestId!, x.seq));
          const region = urlOf.get(url) ?? url;
          if (!firstAckAt.has(region)) firstAckAt.set(region, performance.now());
          return;
        }
        if (res.statusCode === 307) {
          redirects++;
          current = new URL(String(res.headers.location)).origin;
          continue;
        }
        waits++;
      } catch {
        waits++;
      }
      // 503 while the shard is between two epochs: a client waits a little (the node says 250 ms).
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const load = pacedLoad(batches, RATE, submit);

  await new Promise((r) => setTimeout(r, WARM_MS));
  const http = procs.map((p) => new HttpFailoverClient({ region: p.region, url: p.url, token: TOKENS.admin, requestTimeoutMs: 15_000 }));
  // Each call the operator makes, timed from execute's start: where the switchover's time goes.
  const calls: { op: string; region: string; fromMs: number; toMs: number }[] = [];
  const clients = http.map(
    (c) =>
      new Proxy(c, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if (typeof v !== 'function' || !['status', 'fence', 'promote', 'announce', 'release'].includes(String(prop))) return v;
          return async (...args: unknown[]) => {
            const fromMs = performance.now() - t0;
            try {
              return await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
            } finally {
              calls.push({ op: String(prop), region: target.region, fromMs, toMs: performance.now() - t0 });
            }
          };
        },
      }),
  );
  const t0 = performance.now();
  const result = await executeFailoverOp({ shard: SHARD, clients, requestTimeoutMs: 15_000, promoteTimeoutMs: 30_000, listEntriesMax: 100, newFailoverId: () => `bench-${Date.now()}` }, 'af-jnb', false);
  const executeMs = performance.now() - t0;
  for (const c of http) await c.close();
  if (!result.ok) {
    for (const p of procs) {
      const row = (await statusOf(p.url)).shards.find((x) => x.shard === SHARD)!;
      console.log(`  ${p.region}: head ${row.head} applied ${row.applied} epoch ${row.epoch} role ${row.role} repairs ${JSON.stringify(row.repairs)} peers ${JSON.stringify(row.peers)}`);
      console.log(p.output.slice(-15).join('\n'));
    }
    throw new Error(`the failover was refused: ${result.error?.message}`);
  }
  await new Promise((r) => setTimeout(r, AFTER_MS));
  await load.stop();
  const seconds = (performance.now() - load.startMs) / 1000;
  const newAt = firstAckAt.get('af-jnb');
  if (newAt === undefined) throw new Error('af-jnb never acknowledged an input');
  // Every region holds everything before the invariants are read: applied it, and stored it (a
  // follower applies streamed entries before its commit hold stores them; the logs are read here).
  await waitFor('every region to apply and store the new leader head', async () => {
    const rows = await Promise.all(procs.map(async (p) => (await statusOf(p.url)).shards.find((s) => s.shard === SHARD)!));
    const head = Math.max(...rows.map((s) => s.head));
    return rows.every((s) => s.applied >= head && s.head >= head);
  }, 30_000, 100);
  const readers = new Map(procs.map((p) => [p.region, adminClient(p.region, p.url)]));
  const check = await checkShard(SHARD, readers, acked);
  for (const c of readers.values()) await c.close();
  if (process.env.PLAYOUT_BENCH_TRACE) {
    console.log(check.lines.join('\n'));
    // The candidate's own account of its promotion (phases in ms).
    for (const p of procs) for (const line of p.output) if (line.includes('leads epoch')) console.log(`  ${p.region}: ${line}`);
  }
  info('offered rate', load.sent() / seconds, 'inputs/s');
  info('acknowledged inputs', acked.size, 'inputs');
  info('client redirects (307)', redirects, 'requests');
  info('client retries (503, errors)', waits, 'requests');
  info('execute (fence, catch up, epoch entry, announce)', executeMs, 'ms');
  // What the candidate had to catch up after the fence: on a machine that cannot keep a follower
  // level with the leader at this rate, this (not the protocol) dominates the switchover.
  if (result.promoted !== null && result.highest !== null) info('candidate behind the highest fenced head', result.highest.seq - result.promoted.caughtUpFrom, 'entries');
  for (const op of ['status', 'fence', 'promote', 'announce']) {
    const mine = calls.filter((c) => c.op === op);
    if (mine.length > 0) info(`execute: ${op} calls, first sent → last answered`, Math.max(...mine.map((c) => c.toMs)) - Math.min(...mine.map((c) => c.fromMs)), 'ms');
  }
  info('execute end → new leader sequencing (the client\'s redirect)', newAt - t0 - executeMs, 'ms');
  atMost('execute → new leader sequencing (its first acknowledged input)', newAt - t0, 500, 'ms');
  atMost('acknowledged inputs lost', check.missing + check.moved, 0, 'inputs');
  if (!check.ok) console.log(check.lines.join('\n'));
} finally {
  for (const p of pools.values()) await p.close();
  for (const p of procs) await killNode(p);
  rmSync(files.dir, { recursive: true, force: true });
}

// The seed sweep [TigerBeetle VOPR, FoundationDB simulation]: every seed draws its own faults —
// link delays, loss, duplication, cuts, partitions, follower crashes, failing disk writes,
// aggressive log retention — runs three regions under load, heals, and checks the invariants.
//
//   SIM_SEEDS=500 npx vitest run test/sim/sweep.test.ts     more seeds (default 40, 200 in CI)
//   SIM_SEED=1234 npx vitest run test/sim/sweep.test.ts     one seed, with its fault plan printed
//
// A failing seed prints `reproduce with seed=…`; keep it in REGRESSION_SEEDS below.
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/core/rng.js';
import { SimCluster } from './cluster.js';

/** Seeds that once failed, kept as regression tests (run on every sweep). */
const REGRESSION_SEEDS: readonly number[] = [];

const IN_CI = process.env.CI === 'true';
const ONE = process.env.SIM_SEED === undefined ? null : Number(process.env.SIM_SEED);
const COUNT = Number(process.env.SIM_SEEDS ?? (IN_CI ? 200 : 40));
const BASE = Number(process.env.SIM_SEED_BASE ?? 1);

const FOLLOWERS = ['af-jnb', 'us-sfo'] as const;
const ALL = ['eu-fra', 'af-jnb', 'us-sfo'] as const;

/** What the seeds exercised, summed (printed once, so a sweep that stopped covering a path shows it). */
const totals = { seeds: 0, entries: 0, repairsCompleted: 0, refusedRanges: 0, bootstraps: 0, appendFailures: 0, duplicates: 0, gaps: 0, bufferDropped: 0, repairTimeouts: 0 };

/** Build one seed's run: its faults are drawn from the seed alone. */
export async function runSeed(seed: number, log: (line: string) => void = () => undefined): Promise<string[]> {
  const plan = Rng.fromSeed(seed ^ 0x9e3779b9);
  const delayMsMin = plan.int(1, 10);
  const link = { delayMsMin, delayMsMax: delayMsMin + plan.int(0, 120), lossRate: plan.chance(0.7) ? plan.int(0, 15) / 100 : 0, duplicateRate: plan.chance(0.5) ? plan.int(0, 10) / 100 : 0 };
  const retain = plan.chance(0.3);
  // Follower limits vary too: small pages and buffers exercise paging, pipelining and drops.
  const follower = { batchMax: plan.int(20, 300), repairInflightMax: plan.int(1, 4), bufferEntriesMax: plan.chance(0.3) ? plan.int(10, 200) : 20_000 };
  const c = new SimCluster({ seed, link, retainTicks: retain ? 10 : null, snapshotEveryTicks: retain ? 10 : plan.int(5, 20), follower, pageEntriesMax: plan.int(30, 300) });
  log(`seed=${seed} link=${JSON.stringify(link)} retainTicks=${retain ? 10 : 'all'} follower=${JSON.stringify(follower)}`);
  await c.start();
  const loadMs = plan.int(3_000, 5_000);
  // Fault events at random moments: [atMs, what].
  const events: [number, () => void, string][] = [];
  const n = plan.int(0, 4);
  for (let i = 0; i < n; i++) {
    const at = plan.int(200, loadMs - 200);
    const lenMs = plan.int(200, 2_500);
    const kind = plan.int(0, 3);
    if (kind === 0) {
      const a = plan.pick(ALL);
      const b = plan.pick(ALL.filter((x) => x !== a));
      events.push([at, () => c.network.cut(a, b), `cut ${a}-${b}`], [at + lenMs, () => c.network.heal(a, b), `heal ${a}-${b}`]);
    } else if (kind === 1) {
      const r = plan.pick(ALL);
      events.push([at, () => c.network.isolate(r, ALL), `isolate ${r}`], [at + lenMs, () => ALL.forEach((o) => o !== r && c.network.heal(r, o)), `rejoin ${r}`]);
    } else if (kind === 2) {
      const r = c.region(plan.pick(FOLLOWERS));
      events.push([at, () => r.up && r.crash(), `crash ${r.name}`], [at + Math.min(lenMs, 1_500), () => !r.up && r.boot(), `restart ${r.name}`]);
    } else {
      const r = c.region(plan.pick(FOLLOWERS));
      const rate = plan.int(10, 60) / 100;
      const faults = plan.int(0, 0x7fffffff);
      events.push(
        [at, () => r.failAppends(rate, faults), `appends fail at ${r.name} (${rate})`],
        [at + lenMs, () => r.failAppends(0, 0), `appends heal at ${r.name}`],
      );
    }
  }
  events.sort((x, y) => x[0] - y[0]);
  for (const [at, fire, what] of events) {
    await c.runUntil(at);
    log(`${at} ms: ${what}`);
    fire();
  }
  await c.runUntil(loadMs);
  for (const r of c.regions) if (!r.up) r.boot();
  for (const r of c.regions) r.failAppends(0, 0);
  const settled = await c.healAndSettle(20_000);
  const problems = c.check();
  totals.seeds++;
  totals.entries += c.leader.store.head('sim-1')?.seq ?? 0;
  for (const r of c.regions) {
    const k = r.follower?.status().counters;
    if (k === undefined) continue;
    totals.repairsCompleted += k.repairsCompleted;
    totals.refusedRanges += k.refusedRanges;
    totals.bootstraps += k.bootstraps;
    totals.appendFailures += k.appendFailures;
    totals.duplicates += k.duplicates;
    totals.gaps += k.gaps;
    totals.bufferDropped += k.bufferDropped;
    totals.repairTimeouts += k.repairTimeouts;
  }
  if (!settled) problems.push(`did not settle: ${c.regions.map((r) => `${r.name}@${r.store.head('sim-1')?.seq ?? '-'}/${r.machine?.head ?? '-'}`).join(' ')}`);
  return problems;
}

const seeds = ONE !== null ? [ONE] : [...REGRESSION_SEEDS, ...Array.from({ length: COUNT }, (_, i) => BASE + i)];

describe('seed sweep', () => {
  it(`keeps identical state in every region for ${seeds.length} seeds`, { timeout: 600_000 }, async () => {
    const failures: string[] = [];
    for (const seed of seeds) {
      const lines: string[] = [];
      let problems: string[];
      try {
        problems = await runSeed(seed, ONE !== null ? (l) => console.log(l) : (l) => lines.push(l));
      } catch (err) {
        // A broken invariant (an assert) inside a state machine: this seed fails, the sweep goes on.
        problems = [`threw ${(err as Error).stack ?? String(err)}`];
      }
      if (problems.length > 0) {
        failures.push(`reproduce with seed=${seed}: ${problems.slice(0, 3).join('; ')}`);
        console.error(`reproduce with seed=${seed} (SIM_SEED=${seed} npx vitest run test/sim/sweep.test.ts)\n  ${lines.join('\n  ')}\n  ${problems.join('\n  ')}`);
      }
    }
    console.log(`sweep of ${seeds.length} seeds (base ${BASE}): ${JSON.stringify(totals)}`);
    expect(failures).toEqual([]);
  });
});

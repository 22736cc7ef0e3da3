// The failover seed sweep [TigerBeetle VOPR, FoundationDB simulation]: every seed draws its own ack
// mode, link faults and a sequence of failovers — planned switchovers, a crashed leader taken over
// with --accept-loss, a leader partitioned away (sometimes with its stream still reaching one
// region) while it keeps accepting inputs, two operators racing, a follower crashing mid-way — runs
// three regions under load, heals, runs the runbook (execute again while no region leads), and
// checks the invariants of FoCluster.check().
//
//   FO_SEEDS=200 npx vitest run test/sim/failover-sweep.test.ts     more seeds (default 16, 200 in CI)
//   SIM_SEED=1234 npx vitest run test/sim/failover-sweep.test.ts    one seed, with its plan printed
//
// A failing seed prints `reproduce with seed=…`; keep it in REGRESSION_SEEDS below.
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/core/rng.js';
import { FoCluster, debugRegion } from './failover-cluster.js';

/** Seeds that once failed, kept as regression tests (run on every sweep). */
const REGRESSION_SEEDS: readonly number[] = [6, 18, 24, 34, 71, 76, 128, 183, 245, 372, 1043, 1059, 1110, 1171, 1219, 1280, 1363, 2178];

const IN_CI = process.env.CI === 'true';
const ONE = process.env.SIM_SEED === undefined ? null : Number(process.env.SIM_SEED);
const COUNT = Number(process.env.FO_SEEDS ?? (IN_CI ? 200 : 16));
const BASE = Number(process.env.FO_SEED_BASE ?? 1);

const ALL = ['eu-fra', 'af-jnb', 'us-sfo'] as const;

export async function runFailoverSeed(seed: number, log: (line: string) => void = () => undefined): Promise<string[]> {
  const plan = Rng.fromSeed(seed ^ 0x7a11);
  const ack = plan.chance(0.5) ? 'quorum' : 'leader';
  const delayMsMin = plan.int(1, 10);
  const link = { delayMsMin, delayMsMax: delayMsMin + plan.int(0, 40), lossRate: plan.chance(0.5) ? plan.int(0, 5) / 100 : 0, duplicateRate: plan.chance(0.5) ? plan.int(0, 5) / 100 : 0 };
  const c = new FoCluster({ seed, ack, link, requestTimeoutMs: 400 + delayMsMin * 10 });
  log(`seed=${seed} ack=${ack} link=${JSON.stringify(link)}`);
  await c.start();
  await c.runUntil(plan.int(800, 1_500));
  const failovers = plan.int(1, 3);
  let done = 0;
  for (let i = 0; i < failovers; i++) {
    const leader = c.leaders()[0]?.name ?? null;
    const others = ALL.filter((r) => r !== leader);
    const target = plan.pick(others);
    const kind = plan.int(0, 4);
    const restore: (() => void)[] = [];
    if (kind === 1 && leader !== null) {
      log(`${c.clock.nowMs()} ms: crash ${leader}, take over at ${target} with --accept-loss`);
      c.region(leader).crash();
      restore.push(() => c.region(leader).boot());
    } else if (kind === 2 && leader !== null) {
      const leaky = plan.chance(0.5) ? plan.pick(others) : null;
      log(`${c.clock.nowMs()} ms: partition ${leader} away${leaky === null ? '' : ` (its stream still reaches ${leaky})`}, take over at ${target}`);
      for (const o of [...others, 'operator', 'operator-2']) if (o !== leaky) c.network.cut(leader, o);
      if (leaky !== null) c.network.setLink(leaky, leader, { delayMsMin: 5, delayMsMax: 5, lossRate: 1, duplicateRate: 0 });
      restore.push(() => {
        c.network.healAll();
        c.network.clearLinks();
      });
    } else if (kind === 4) {
      const crash = plan.pick(others.filter((r) => r !== target));
      log(`${c.clock.nowMs()} ms: switch over to ${target} while ${crash} crashes`);
      c.clock.after(plan.int(0, 30), () => c.region(crash).up && c.region(crash).crash());
      restore.push(() => !c.region(crash).up && c.region(crash).boot());
    } else {
      log(`${c.clock.nowMs()} ms: ${kind === 3 ? 'racing failovers' : 'planned switchover'} to ${target}`);
    }
    await c.runFor(plan.int(0, 300));
    const acceptLoss = kind === 1 || kind === 2;
    let results;
    if (kind === 3) {
      const rival = plan.pick(ALL.filter((r) => r !== target));
      results = await c.until(Promise.all([c.execute(target, false, 'operator'), c.execute(rival, false, 'operator-2')]));
    } else {
      results = [await c.execute(target, acceptLoss)];
    }
    for (const r of results) {
      log(`  → ${r.target}: ${r.noop ? 'already leads' : r.ok ? `leads epoch ${r.epoch}` : `${r.error!.code}`}${r.loss === null ? '' : ` (loss from seq ${r.loss.seqFrom})`}`);
      if (r.ok && !r.noop) done++;
      if (!r.ok && !/^PLAYOUT_(FENCE_CONFLICT|FAILOVER_[A-Z_]+)$/.test(r.error!.code)) return [`a failover was refused with ${r.error!.code}: ${r.error!.message}`];
    }
    // Both may succeed one after the other (the later one read the first one's promise and took
    // the next epoch); never in the same epoch.
    const won = results.filter((r) => r.ok && !r.noop);
    if (won.length > 1 && won[0]!.epoch === won[1]!.epoch) return [`two racing failovers both won epoch ${won[0]!.epoch}`];
    await c.runFor(plan.int(300, 1_200));
    for (const f of restore) f();
    await c.runFor(plan.int(0, 500));
  }
  // The runbook: while no region leads after heal, execute again (every region reachable now).
  c.network.healAll();
  c.network.clearLinks();
  for (const r of c.regions) if (!r.up) r.boot();
  await c.runFor(500);
  // A promise whose release was lost (or whose failover stalled) is cleared by a failover to the
  // current leader.
  const stale = (): boolean => c.regions.some((r) => r.up && r.fence.promise !== null);
  for (let attempt = 0; attempt < 3 && (c.leaders().length !== 1 || stale()); attempt++) {
    const r = await c.execute(c.leaders()[0]?.name ?? plan.pick(ALL));
    log(`  runbook → ${r.target}: ${r.ok ? `leads epoch ${r.epoch}` : `${r.error!.code}: ${r.error!.message}`}`);
    await c.runFor(300);
  }
  const settled = await c.healAndSettle(20_000);
  const problems = c.check();
  if (!settled && process.env.FO_DEBUG) for (const r of c.regions) log(JSON.stringify(debugRegion(r)));
  if (!settled) problems.push(`did not settle: ${c.regions.map((r) => `${r.name}@${r.head}/${r.machine?.head ?? '-'}:${r.role}:e${r.fence.epoch}`).join(' ')}`);
  log(`  ${done} failover(s) done, ${c.acked.size} inputs acknowledged, ${c.reports.length} quarantine report(s)`);
  return problems;
}

const seeds = ONE !== null ? [ONE] : [...REGRESSION_SEEDS, ...Array.from({ length: COUNT }, (_, i) => BASE + i)];

describe('failover seed sweep', () => {
  it(`keeps one leader per epoch and loses nothing unreported for ${seeds.length} seeds`, { timeout: 600_000 }, async () => {
    const failures: string[] = [];
    for (const seed of seeds) {
      const lines: string[] = [];
      let problems: string[];
      try {
        problems = await runFailoverSeed(seed, ONE !== null ? (l) => console.log(l) : (l) => lines.push(l));
      } catch (err) {
        problems = [`threw ${(err as Error).stack ?? String(err)}`];
      }
      if (problems.length > 0) {
        failures.push(`reproduce with seed=${seed}: ${problems.slice(0, 3).join('; ')}`);
        console.error(`reproduce with seed=${seed} (SIM_SEED=${seed} npx vitest run test/sim/failover-sweep.test.ts)\n  ${lines.join('\n  ')}\n  ${problems.join('\n  ')}`);
      }
    }
    expect(failures).toEqual([]);
  });
});

// Replay from fixtures and stores against replay from memory (issue 3), and the cost of
// localising a desync against a plain replay. This file owns the figures: file / memory
// and store / memory (bench/store.bench.ts measures only the store's own costs).
//
// The baseline, "replay from memory", is the log held in memory as it is logged: each entry's
// encoded bytes. A replay from memory still verifies every entry's hash, decodes it, checks its
// link to the one before and applies it — what any replay of a log must do, wherever the log
// lies — in the tightest loop there is (no source, no batches, no async iteration). Replay from
// the fixture file and from the lmdb store run as `playout replay` runs them (openSource +
// the replay operator), so the ratios price everything a source adds: file reads, inflating,
// framing, cursor walks and the operator itself. Entries decoded beforehand are not a baseline
// (no source delivers entries without decoding them); that replay is printed for reference.
//
// How it is measured. Each variant runs in a fresh child process of its own (like `playout
// replay` does), which holds only what that variant needs: the memory child holds the encoded
// log, the file and store children hold nothing but their source. Sharing one process let
// every variant pay for the others' heaps (100,000 decoded entries kept for the baselines made
// each major GC slower) and share their JIT feedback, and the memory baseline swung
// 105k–141k entries/s between runs. A child replays once to warm up, then RUNS times, with a
// full GC before each; its figure is its best CPU time (user + system of every thread of the
// process, so the thread pool's inflating and file reads count). ROUNDS rounds run the children
// in turn (memory, file, store, …), so neighbours' load hits every variant alike. A figure is
// the ratio of two variants' best times over all their runs: neighbours' load only ever adds
// time, so the best of many runs is each variant's least disturbed time (the same ratio taken
// within each round is printed, to show the spread). CPU time, not wall time: the machines
// here are shared by several busy processes and wall time measures their load more than our
// work. Wall times are printed for reference.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PlogReader, writePlog } from '../src/adapters/plog.js';
import { openSource } from '../src/adapters/replay-source.js';
import { LmdbLogStore } from '../src/adapters/lmdb-store.js';
import { ShardMachine, decodeEntry, toHex, type Entry } from '../src/core/index.js';
import { bisect } from '../src/cli/ops/bisect.js';
import { defaultBuild, loadBuild } from '../src/cli/ops/builds.js';
import { replay } from '../src/cli/ops/replay.js';
import { verify } from '../src/cli/ops/verify.js';
import { FIXTURE_DIR } from '../tools/gen-fixtures.js';
import { atLeast, atMost, info } from './report.js';

const ROUNDS = Number(process.env.REPLAY_BENCH_ROUNDS ?? 5);
const RUNS = Number(process.env.REPLAY_BENCH_RUNS ?? 3);
const BIG_FIXTURE = join(FIXTURE_DIR, 'hunt-100k.plog.gz');
const DESYNC_A = join(FIXTURE_DIR, 'hunt-desync-a.plog.gz');
const DESYNC_B = join(FIXTURE_DIR, 'hunt-desync-b.plog.gz');

async function readEntries(path: string): Promise<{ entries: Entry[]; header: PlogReader['header'] }> {
  const reader = await PlogReader.open(path);
  const entries: Entry[] = [];
  for await (const b of reader.batches()) for (const e of b) entries.push(e);
  return { entries, header: reader.header };
}

/** What a child reports: its runs' CPU and wall times (ms) and the replay's final digest. */
interface ChildResult {
  cpu: number[];
  wall: number[];
  final: string;
}

type Variant = () => Promise<string>;

/** The replays one child can run; each returns its final digest. Set up (loaded) before timing. */
async function variant(name: string, tmp: string): Promise<Variant> {
  const build = await defaultBuild();
  const fromSource = (spec: string): Variant => async () => {
    const src = await openSource(spec);
    try {
      const r = await replay(src, { build, digestEveryTicks: 0 });
      return r.final?.digest ?? 'none';
    } finally {
      await src.close();
    }
  };
  switch (name) {
    case 'memory': {
      // The log as it is logged: the entries' encoded bytes, nothing decoded kept.
      const encoded = (await readEntries(BIG_FIXTURE)).entries.map((e) => e.bytes);
      return async () => {
        const m = new ShardMachine(build.registry, { keepOutputs: false });
        for (let i = 0; i < encoded.length; i++) m.apply(decodeEntry(encoded[i]!, 0, encoded[i]!.length, i + 1));
        return toHex(m.lastDigest!.digest);
      };
    }
    case 'decoded': {
      const { entries } = await readEntries(BIG_FIXTURE);
      return async () => {
        const m = new ShardMachine(build.registry, { keepOutputs: false });
        for (let i = 0; i < entries.length; i++) m.apply(entries[i]!);
        return toHex(m.lastDigest!.digest);
      };
    }
    case 'gz':
      return fromSource(BIG_FIXTURE);
    case 'plain':
      return fromSource(join(tmp, 'hunt-100k.plog'));
    case 'store':
      return fromSource(join(tmp, 'store'));
    case 'desync-replay': {
      const b = await openSource(DESYNC_B);
      return async () => (await replay(b, { build, digestEveryTicks: 0 })).final?.digest ?? 'none';
    }
    case 'desync-verify': {
      const nondeterministic = await loadBuild('treasure-hunt-nondeterministic', process.cwd());
      const b = await openSource(DESYNC_B);
      return async () => {
        const r = await verify(b, { build, recorders: [nondeterministic] });
        if (r.mismatch?.localised?.culprit == null) throw new Error('verify did not localise the desync');
        return 'localised';
      };
    }
    case 'desync-bisect': {
      const nondeterministic = await loadBuild('treasure-hunt-nondeterministic', process.cwd());
      const a = await openSource(DESYNC_A);
      return async () => {
        const r = await bisect({ source: a, build }, { source: a, build: nondeterministic });
        if (r.divergence?.culprit == null) throw new Error('bisect did not localise the desync');
        return 'localised';
      };
    }
    case 'desync-captures': {
      const nondeterministic = await loadBuild('treasure-hunt-nondeterministic', process.cwd());
      const a = await openSource(DESYNC_A);
      const b = await openSource(DESYNC_B);
      return async () => {
        await bisect({ source: a, build }, { source: b, build }, { recorders: [nondeterministic] });
        return 'done';
      };
    }
    default:
      throw new Error(`unknown variant ${name}`);
  }
}

/** Child: set up one variant, replay once to warm up, then RUNS timed replays after a full GC each. */
async function child(name: string, tmp: string, runs: number): Promise<void> {
  const fn = await variant(name, tmp);
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run the replay bench child with --expose-gc');
  let final = await fn();
  const out: ChildResult = { cpu: [], wall: [], final };
  for (let i = 0; i < runs; i++) {
    gc();
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    final = await fn();
    const w = performance.now() - w0;
    const c = process.cpuUsage(c0);
    out.cpu.push((c.user + c.system) / 1000);
    out.wall.push(w);
    if (final !== out.final) throw new Error(`${name}: run ${i} ended at ${final}, the warm-up at ${out.final}`);
  }
  console.log(`##child ${JSON.stringify(out)}`);
}

function runChild(name: string, tmp: string): ChildResult {
  const r = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=4096', '--import', 'tsx', fileURLToPath(import.meta.url), '--child', name, tmp, String(RUNS)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 16 << 20,
  });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('##child '));
  if (r.status !== 0 || line === undefined) throw new Error(`the ${name} child exited with ${r.status ?? r.signal}: ${r.stdout}`);
  return JSON.parse(line.slice(8)) as ChildResult;
}

const min = (xs: readonly number[]): number => Math.min(...xs);
function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Rounds {
  /** Per variant, per round: every timed run's CPU and wall time (ms). */
  cpu: Record<string, number[][]>;
  wall: Record<string, number[][]>;
  finals: Record<string, Set<string>>;
}

/** ROUNDS rounds, each running every variant's child in turn. */
function rounds(names: readonly string[], tmp: string): Rounds {
  const out: Rounds = { cpu: {}, wall: {}, finals: {} };
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of names) {
      const r = runChild(name, tmp);
      (out.cpu[name] ??= []).push(r.cpu);
      (out.wall[name] ??= []).push(r.wall);
      (out.finals[name] ??= new Set()).add(r.final);
    }
  }
  return out;
}

/** A variant's best time over every run of every round. */
const best = (m: Record<string, number[][]>, name: string): number => min(m[name]!.flat());

/**
 * a / b of a measure: the ratio of their best times over all rounds (neighbours' load only
 * ever adds time, so the best of many runs is the least disturbed estimate of each), and the
 * spread of the same ratio taken within each round.
 */
function ratio(m: Record<string, number[][]>, a: string, b: string): { value: number; rounds: string } {
  const rs = m[a]!.map((x, i) => min(x) / min(m[b]![i]!));
  return { value: best(m, a) / best(m, b), rounds: `per round ${median(rs).toFixed(3)} median, ${min(rs).toFixed(3)}–${Math.max(...rs).toFixed(3)}` };
}

async function parent(): Promise<void> {
  const tmp = await mkdtemp(join(tmpdir(), 'playout-bench-replay-'));
  try {
    console.log(`replay of the 100,000-entry fixture (${ROUNDS} rounds of one child per variant, best of ${RUNS} runs after a warm-up in each)`);
    {
      const { entries, header } = await readEntries(BIG_FIXTURE);
      await writePlog(join(tmp, 'hunt-100k.plog'), header, entries);
      const store = await LmdbLogStore.open(join(tmp, 'store'));
      for (let i = 0; i < entries.length; i += 4096) await store.append(header.shard, entries.slice(i, i + 4096));
      await store.close();
    }
    const n = 100_000;
    const t = rounds(['memory', 'gz', 'store', 'plain', 'decoded'], tmp);
    // Same result everywhere first: a fast wrong replay is no result.
    const finals = new Set(Object.values(t.finals).flatMap((s) => [...s]));
    if (finals.size !== 1) throw new Error(`the replays end at different digests: ${JSON.stringify(Object.fromEntries(Object.entries(t.finals).map(([k, v]) => [k, [...v]])))}`);
    const perSecond = (ms: number): number => (n * 1000) / ms;
    info('replay 100k from memory (encoded entries: verified, decoded, applied), per CPU second', perSecond(best(t.cpu, 'memory')), 'entries/s');
    info('replay 100k from the fixture file (.plog.gz), per CPU second', perSecond(best(t.cpu, 'gz')), 'entries/s');
    info('replay 100k from the lmdb store, per CPU second', perSecond(best(t.cpu, 'store')), 'entries/s');
    const gz = ratio(t.cpu, 'memory', 'gz');
    const store = ratio(t.cpu, 'memory', 'store');
    atLeast('replay 100k: fixture file (.plog.gz) / memory, CPU time', gz.value, 0.7);
    console.log(`    (${gz.rounds})`);
    atLeast('replay 100k: lmdb store directory / memory, CPU time', store.value, 0.7);
    console.log(`    (${store.rounds})`);
    info('replay 100k: uncompressed .plog / memory, CPU time', ratio(t.cpu, 'memory', 'plain').value, 'x');
    info('replay 100k: fixture file (.plog.gz) / memory, wall time', ratio(t.wall, 'memory', 'gz').value, 'x');
    info('replay 100k: lmdb store directory / memory, wall time', ratio(t.wall, 'memory', 'store').value, 'x');
    // Reference: entries decoded and verified beforehand (the machine alone).
    info('replay 100k from entries decoded beforehand (machine only), per CPU second', perSecond(best(t.cpu, 'decoded')), 'entries/s');
    info('replay 100k: fixture file (.plog.gz) / entries decoded beforehand, CPU time', ratio(t.cpu, 'decoded', 'gz').value, 'x');
    info('replay 100k: lmdb store directory / entries decoded beforehand, CPU time', ratio(t.cpu, 'decoded', 'store').value, 'x');

    console.log('localising the desync pair');
    const d = rounds(['desync-replay', 'desync-verify', 'desync-bisect', 'desync-captures'], tmp);
    info('plain replay of the desync log, CPU time', best(d.cpu, 'desync-replay'), 'ms');
    const v = ratio(d.cpu, 'desync-verify', 'desync-replay');
    atMost('verify finds the culprit entry and records, vs a plain replay', v.value, 2);
    console.log(`    (${v.rounds})`);
    const bi = ratio(d.cpu, 'desync-bisect', 'desync-replay');
    atMost('bisect --reducer-b finds the culprit entry and records, vs a plain replay', bi.value, 2);
    console.log(`    (${bi.rounds})`);
    info('bisect of the two captures (lockstep, then verify of B), vs a plain replay', ratio(d.cpu, 'desync-captures', 'desync-replay').value, 'x');
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') await child(argv[1]!, argv[2]!, Number(argv[3]));
else await parent();

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
// How it is measured. Each variant runs in a child process of its own (as `playout replay`
// does), which holds only what that variant needs: the memory child holds the encoded log, the
// file and store children hold nothing but their source. Sharing one process let every variant
// pay for the others' heaps (100,000 decoded entries kept for the baselines made each major GC
// slower) and share their JIT feedback, and the memory baseline swung 105k–141k entries/s
// between runs. The children start together and replay WARMUP times each; then ROUNDS rounds
// ask each child in turn for one replay (after a full GC), forwards and backwards in turn, so
// the runs compared are seconds apart under the same neighbours' load. A ratio is taken within
// each round and the figure is the median of the rounds' ratios (their spread, and the ratio
// of the best runs, are printed next to it). Times are CPU time of the child (user + system of
// every thread, so the thread pool's inflating and file reads count), not wall time: the
// machines here are shared by several busy processes and wall time measures their load more
// than our work (wall ratios are printed for reference).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
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

const ROUNDS = Number(process.env.REPLAY_BENCH_ROUNDS ?? 9);
const WARMUP = 2;
const DESYNC_REPEATS = 4;
const BIG_FIXTURE = join(FIXTURE_DIR, 'hunt-100k.plog.gz');
const DESYNC_A = join(FIXTURE_DIR, 'hunt-desync-a.plog.gz');
const DESYNC_B = join(FIXTURE_DIR, 'hunt-desync-b.plog.gz');

async function readEntries(path: string): Promise<{ entries: Entry[]; header: PlogReader['header'] }> {
  const reader = await PlogReader.open(path);
  const entries: Entry[] = [];
  for await (const b of reader.batches()) for (const e of b) entries.push(e);
  return { entries, header: reader.header };
}

type Variant = () => Promise<string>;

/** DESYNC_REPEATS passes of `fn` as one run; the last pass's result. */
function repeated(fn: Variant): Variant {
  return async () => {
    let out = '';
    for (let i = 0; i < DESYNC_REPEATS; i++) out = await fn();
    return out;
  };
}

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
    // The desync log is short (a plain replay takes a fifth of the 100k one): each run of these
    // does DESYNC_REPEATS passes, so a run is long enough to time on a busy machine.
    case 'desync-replay': {
      const b = await openSource(DESYNC_B);
      return repeated(async () => (await replay(b, { build, digestEveryTicks: 0 })).final?.digest ?? 'none');
    }
    case 'desync-verify': {
      const nondeterministic = await loadBuild('treasure-hunt-nondeterministic', process.cwd());
      const b = await openSource(DESYNC_B);
      return repeated(async () => {
        const r = await verify(b, { build, recorders: [nondeterministic] });
        if (r.mismatch?.localised?.culprit == null) throw new Error('verify did not localise the desync');
        return 'localised';
      });
    }
    case 'desync-bisect': {
      const nondeterministic = await loadBuild('treasure-hunt-nondeterministic', process.cwd());
      const a = await openSource(DESYNC_A);
      return repeated(async () => {
        const r = await bisect({ source: a, build }, { source: a, build: nondeterministic });
        if (r.divergence?.culprit == null) throw new Error('bisect did not localise the desync');
        return 'localised';
      });
    }
    case 'desync-captures': {
      const nondeterministic = await loadBuild('treasure-hunt-nondeterministic', process.cwd());
      const a = await openSource(DESYNC_A);
      const b = await openSource(DESYNC_B);
      return repeated(async () => {
        await bisect({ source: a, build }, { source: b, build }, { recorders: [nondeterministic] });
        return 'done';
      });
    }
    default:
      throw new Error(`unknown variant ${name}`);
  }
}

/**
 * Child: set up one variant, replay WARMUP times, say `##ready`, then replay once per `run`
 * line on stdin (after a full GC) and answer with that run's CPU and wall time.
 */
async function serve(name: string, tmp: string): Promise<void> {
  const fn = await variant(name, tmp);
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run the replay bench child with --expose-gc');
  const first = await fn();
  for (let i = 1; i < WARMUP; i++) await fn();
  console.log('##ready');
  for await (const line of createInterface({ input: process.stdin })) {
    if (line !== 'run') continue;
    gc();
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    const final = await fn();
    const wall = performance.now() - w0;
    const c = process.cpuUsage(c0);
    if (final !== first) throw new Error(`${name}: a run ended at ${final}, the warm-up at ${first}`);
    const run: Run = { cpu: (c.user + c.system) / 1000, wall, final };
    console.log(`##run ${JSON.stringify(run)}`);
  }
}

/** One timed replay in a child: CPU and wall time (ms) and the final digest. */
interface Run {
  cpu: number;
  wall: number;
  final: string;
}

/** A child process serving one variant's replays. */
class Child {
  private readonly proc: ChildProcess;
  private readonly lines: AsyncIterator<string>;

  private constructor(readonly name: string, proc: ChildProcess) {
    this.proc = proc;
    this.lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  }

  static async start(name: string, tmp: string): Promise<Child> {
    const proc = spawn(process.execPath, ['--expose-gc', '--max-old-space-size=4096', '--import', 'tsx', fileURLToPath(import.meta.url), '--serve', name, tmp], { stdio: ['pipe', 'pipe', 'inherit'] });
    const child = new Child(name, proc);
    await child.expect('##ready');
    return child;
  }

  private async expect(prefix: string): Promise<string> {
    for (;;) {
      const r = await this.lines.next();
      if (r.done === true) throw new Error(`the ${this.name} child ended (exit ${this.proc.exitCode ?? this.proc.signalCode ?? '?'}) before ${prefix}`);
      if (r.value.startsWith(prefix)) return r.value.slice(prefix.length);
      console.log(r.value);
    }
  }

  async run(): Promise<Run> {
    this.proc.stdin!.write('run\n');
    return JSON.parse(await this.expect('##run ')) as Run;
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.proc.stdin!.end();
    if (this.proc.exitCode === null && this.proc.signalCode === null) await exited;
  }
}

const min = (xs: readonly number[]): number => Math.min(...xs);
function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Per variant, per round: that round's run. */
type Rounds = Record<string, Run[]>;

/**
 * ROUNDS rounds over one child per variant, all started (and warmed up) first; each round runs
 * every variant once, in turn, forwards in even rounds and backwards in odd ones, so the runs
 * compared within a round are seconds apart and a drift in the neighbours' load cancels out.
 */
async function rounds(names: readonly string[], tmp: string): Promise<Rounds> {
  const children: Child[] = [];
  try {
    for (const name of names) children.push(await Child.start(name, tmp));
    const out: Rounds = Object.fromEntries(names.map((n) => [n, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? children : [...children].reverse();
      for (const c of order) out[c.name]!.push(await c.run());
    }
    return out;
  } finally {
    for (const c of children) await c.stop();
  }
}

/** A variant's best time over all rounds. */
const best = (r: Rounds, name: string, m: 'cpu' | 'wall' = 'cpu'): number => min(r[name]!.map((x) => x[m]));

/**
 * a / b of a measure: the median over the rounds of the ratio within each round (the two runs
 * seconds apart, under the same load), and the spread of those ratios.
 */
function ratio(r: Rounds, a: string, b: string, m: 'cpu' | 'wall' = 'cpu'): { value: number; note: string } {
  const rs = r[a]!.map((x, i) => x[m] / r[b]![i]![m]);
  return { value: median(rs), note: `rounds ${min(rs).toFixed(3)}–${Math.max(...rs).toFixed(3)}; ratio of the best runs ${(best(r, a, m) / best(r, b, m)).toFixed(3)}` };
}

async function parent(): Promise<void> {
  const tmp = await mkdtemp(join(tmpdir(), 'playout-bench-replay-'));
  try {
    console.log(`replay of the 100,000-entry fixture (one child process per variant, ${WARMUP} warm-up replays, then ${ROUNDS} rounds)`);
    {
      const { entries, header } = await readEntries(BIG_FIXTURE);
      await writePlog(join(tmp, 'hunt-100k.plog'), header, entries);
      const store = await LmdbLogStore.open(join(tmp, 'store'));
      for (let i = 0; i < entries.length; i += 4096) await store.append(header.shard, entries.slice(i, i + 4096));
      await store.close();
    }
    const n = 100_000;
    const t = await rounds(['memory', 'gz', 'store', 'plain', 'decoded'], tmp);
    // Same result everywhere first: a fast wrong replay is no result.
    const finals = new Set(Object.values(t).flatMap((runs) => runs.map((x) => x.final)));
    if (finals.size !== 1) throw new Error(`the replays end at different digests: ${[...finals].join(', ')}`);
    const perSecond = (ms: number): number => (n * 1000) / ms;
    const perCpuSecond = (name: string): number => perSecond(median(t[name]!.map((x) => x.cpu)));
    info('replay 100k from memory (encoded entries: verified, decoded, applied), per CPU second', perCpuSecond('memory'), 'entries/s');
    info('replay 100k from the fixture file (.plog.gz), per CPU second', perCpuSecond('gz'), 'entries/s');
    info('replay 100k from the lmdb store, per CPU second', perCpuSecond('store'), 'entries/s');
    const gz = ratio(t, 'memory', 'gz');
    atLeast('replay 100k: fixture file (.plog.gz) / memory, CPU time', gz.value, 0.7);
    console.log(`    (${gz.note})`);
    const store = ratio(t, 'memory', 'store');
    atLeast('replay 100k: lmdb store directory / memory, CPU time', store.value, 0.7);
    console.log(`    (${store.note})`);
    info('replay 100k: uncompressed .plog / memory, CPU time', ratio(t, 'memory', 'plain').value, 'x');
    info('replay 100k: fixture file (.plog.gz) / memory, wall time', ratio(t, 'memory', 'gz', 'wall').value, 'x');
    info('replay 100k: lmdb store directory / memory, wall time', ratio(t, 'memory', 'store', 'wall').value, 'x');
    // Reference: entries decoded and verified beforehand (the machine alone).
    info('replay 100k from entries decoded beforehand (machine only), per CPU second', perCpuSecond('decoded'), 'entries/s');
    info('replay 100k: fixture file (.plog.gz) / entries decoded beforehand, CPU time', ratio(t, 'decoded', 'gz').value, 'x');
    info('replay 100k: lmdb store directory / entries decoded beforehand, CPU time', ratio(t, 'decoded', 'store').value, 'x');

    console.log('localising the desync pair');
    const d = await rounds(['desync-replay', 'desync-verify', 'desync-bisect', 'desync-captures'], tmp);
    info('plain replay of the desync log, CPU time', median(d['desync-replay']!.map((x) => x.cpu)) / DESYNC_REPEATS, 'ms');
    const v = ratio(d, 'desync-verify', 'desync-replay');
    atMost('verify finds the culprit entry and records, vs a plain replay', v.value, 2);
    console.log(`    (${v.note})`);
    const bi = ratio(d, 'desync-bisect', 'desync-replay');
    atMost('bisect --reducer-b finds the culprit entry and records, vs a plain replay', bi.value, 2);
    console.log(`    (${bi.note})`);
    info('bisect of the two captures (lockstep, then verify of B), vs a plain replay', ratio(d, 'desync-captures', 'desync-replay').value, 'x');
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

const argv = process.argv.slice(2);
if (argv[0] === '--serve') await serve(argv[1]!, argv[2]!);
else await parent();

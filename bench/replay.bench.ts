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
// Times are CPU time of this process (user + system of every thread, so the thread pool's
// inflating and file reads count), best of RUNS (7) with the runs interleaved: the machines here are
// shared by several busy processes and wall time measures their load more than our work. Wall
// times are printed for reference.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

const RUNS = 7;
const build = await defaultBuild();
const nondeterministic = await loadBuild('treasure-hunt-nondeterministic', process.cwd());
const tmp = await mkdtemp(join(tmpdir(), 'playout-bench-replay-'));

async function readEntries(path: string): Promise<{ entries: Entry[]; header: PlogReader['header'] }> {
  const reader = await PlogReader.open(path);
  const entries: Entry[] = [];
  for await (const b of reader.batches()) for (const e of b) entries.push(e);
  return { entries, header: reader.header };
}

interface Times {
  cpu: Record<string, number>;
  wall: Record<string, number>;
}

/** Best CPU and wall time of RUNS runs of each, the runs of all of them interleaved. */
async function race(fns: Record<string, () => Promise<unknown>>): Promise<Times> {
  const cpu: Record<string, number> = {};
  const wall: Record<string, number> = {};
  for (let i = 0; i < RUNS; i++) {
    for (const [k, fn] of Object.entries(fns)) {
      (globalThis as { gc?: () => void }).gc?.();
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      await fn();
      const w = performance.now() - w0;
      const c = process.cpuUsage(c0);
      cpu[k] = Math.min(cpu[k] ?? Infinity, (c.user + c.system) / 1000);
      wall[k] = Math.min(wall[k] ?? Infinity, w);
    }
  }
  return { cpu, wall };
}

try {
  console.log('replay of the 100,000-entry fixture');
  const bigFile = join(FIXTURE_DIR, 'hunt-100k.plog.gz');
  const { entries, header } = await readEntries(bigFile);
  const plain = join(tmp, 'hunt-100k.plog');
  await writePlog(plain, header, entries);
  const storeDir = join(tmp, 'store');
  const store = await LmdbLogStore.open(storeDir);
  for (let i = 0; i < entries.length; i += 4096) await store.append(header.shard, entries.slice(i, i + 4096));
  await store.close();
  const encoded = entries.map((e) => e.bytes);
  const finals: Record<string, string> = {};
  const fromSource = async (name: string, spec: string): Promise<void> => {
    const src = await openSource(spec);
    try {
      const r = await replay(src, { build, digestEveryTicks: 0 });
      finals[name] = r.final?.digest ?? 'none';
    } finally {
      await src.close();
    }
  };
  const t = await race({
    memory: async () => {
      const m = new ShardMachine(build.registry, { keepOutputs: false });
      for (let i = 0; i < encoded.length; i++) m.apply(decodeEntry(encoded[i]!, 0, encoded[i]!.length, i + 1));
      finals.memory = toHex(m.lastDigest!.digest);
    },
    decoded: async () => {
      const m = new ShardMachine(build.registry, { keepOutputs: false });
      for (let i = 0; i < entries.length; i++) m.apply(entries[i]!);
      finals.decoded = toHex(m.lastDigest!.digest);
    },
    gz: () => fromSource('gz', bigFile),
    plain: () => fromSource('plain', plain),
    store: () => fromSource('store', storeDir),
  });
  // Same result everywhere first: a fast wrong replay is no result.
  if (new Set(Object.values(finals)).size !== 1) throw new Error(`the replays end at different digests: ${JSON.stringify(finals)}`);
  const perSecond = (ms: number): number => (entries.length * 1000) / ms;
  info('replay 100k from memory (encoded entries: verified, decoded, applied), per CPU second', perSecond(t.cpu.memory!), 'entries/s');
  info('replay 100k from the fixture file (.plog.gz), per CPU second', perSecond(t.cpu.gz!), 'entries/s');
  info('replay 100k from the lmdb store, per CPU second', perSecond(t.cpu.store!), 'entries/s');
  atLeast('replay 100k: fixture file (.plog.gz) / memory, CPU time', t.cpu.memory! / t.cpu.gz!, 0.7);
  atLeast('replay 100k: lmdb store directory / memory, CPU time', t.cpu.memory! / t.cpu.store!, 0.7);
  info('replay 100k: uncompressed .plog / memory, CPU time', t.cpu.memory! / t.cpu.plain!, 'x');
  info('replay 100k: fixture file (.plog.gz) / memory, wall time', t.wall.memory! / t.wall.gz!, 'x');
  info('replay 100k: lmdb store directory / memory, wall time', t.wall.memory! / t.wall.store!, 'x');
  // Reference: entries decoded and verified beforehand (the machine alone).
  info('replay 100k from entries decoded beforehand (machine only), per CPU second', perSecond(t.cpu.decoded!), 'entries/s');
  info('replay 100k: fixture file (.plog.gz) / entries decoded beforehand, CPU time', t.cpu.decoded! / t.cpu.gz!, 'x');
  info('replay 100k: lmdb store directory / entries decoded beforehand, CPU time', t.cpu.decoded! / t.cpu.store!, 'x');

  console.log('localising the desync pair');
  const a = await openSource(join(FIXTURE_DIR, 'hunt-desync-a.plog.gz'));
  const b = await openSource(join(FIXTURE_DIR, 'hunt-desync-b.plog.gz'));
  const d = await race({
    replay: () => replay(b, { build, digestEveryTicks: 0 }),
    verify: async () => {
      const r = await verify(b, { build, recorders: [nondeterministic] });
      if (r.mismatch?.localised?.culprit == null) throw new Error('verify did not localise the desync');
    },
    bisect: async () => {
      const r = await bisect({ source: a, build }, { source: a, build: nondeterministic });
      if (r.divergence?.culprit == null) throw new Error('bisect did not localise the desync');
    },
    captures: () => bisect({ source: a, build }, { source: b, build }, { recorders: [nondeterministic] }),
  });
  await a.close();
  await b.close();
  info('plain replay of the desync log, CPU time', d.cpu.replay!, 'ms');
  atMost('verify finds the culprit entry and records, vs a plain replay', d.cpu.verify! / d.cpu.replay!, 2);
  atMost('bisect --reducer-b finds the culprit entry and records, vs a plain replay', d.cpu.bisect! / d.cpu.replay!, 2);
  info('bisect of the two captures (lockstep, then verify of B), vs a plain replay', d.cpu.captures! / d.cpu.replay!, 'x');
} finally {
  await rm(tmp, { recursive: true, force: true });
}

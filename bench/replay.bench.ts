// Replay from fixtures and stores against replay from memory, and the cost of localising a
// desync against a plain replay (issue 3). Ratios are measured in one process, runs interleaved,
// best of several (the machines here are shared and noisy).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PlogReader, writePlog } from '../src/adapters/plog.js';
import { openSource } from '../src/adapters/replay-source.js';
import { LmdbLogStore } from '../src/adapters/lmdb-store.js';
import { ShardMachine, decodeEntry, type Entry } from '../src/core/index.js';
import { bisect } from '../src/cli/ops/bisect.js';
import { defaultBuild, loadBuild } from '../src/cli/ops/builds.js';
import { replay } from '../src/cli/ops/replay.js';
import { verify } from '../src/cli/ops/verify.js';
import { FIXTURE_DIR } from '../tools/gen-fixtures.js';
import { atLeast, atMost, info, timeMs } from './report.js';

const RUNS = 5;
const build = await defaultBuild();
const nondeterministic = await loadBuild('treasure-hunt-nondeterministic', process.cwd());
const tmp = await mkdtemp(join(tmpdir(), 'playout-bench-replay-'));

async function readEntries(path: string): Promise<{ entries: Entry[]; header: PlogReader['header'] }> {
  const reader = await PlogReader.open(path);
  const entries: Entry[] = [];
  for await (const b of reader.batches()) for (const e of b) entries.push(e);
  return { entries, header: reader.header };
}

/** Best of RUNS for each, the runs of all of them interleaved. */
async function race(fns: Record<string, () => Promise<unknown>>): Promise<Record<string, number>> {
  const best: Record<string, number> = {};
  for (let i = 0; i < RUNS; i++) for (const [k, fn] of Object.entries(fns)) best[k] = Math.min(best[k] ?? Infinity, await timeMs(fn));
  return best;
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
  const fromSource = async (spec: string): Promise<void> => {
    const src = await openSource(spec);
    try {
      await replay(src, { build, digestEveryTicks: 0 });
    } finally {
      await src.close();
    }
  };
  const encoded = entries.map((e) => e.bytes);
  const t = await race({
    // The log in memory as every source delivers it: encoded entries, each verified (hash) and
    // decoded as it is applied. The file and the store add only their I/O and framing to this.
    memory: async () => {
      const m = new ShardMachine(build.registry, { keepOutputs: false });
      for (let i = 0; i < encoded.length; i++) m.apply(decodeEntry(encoded[i]!));
    },
    // Entries already decoded and verified: the machine alone (no source can deliver this).
    decoded: async () => {
      const m = new ShardMachine(build.registry, { keepOutputs: false });
      for (let i = 0; i < entries.length; i++) m.apply(entries[i]!);
    },
    gz: () => fromSource(bigFile),
    plain: () => fromSource(plain),
    store: () => fromSource(storeDir),
  });
  info('replay 100k from memory (encoded entries, verified and decoded as applied)', (entries.length * 1000) / t.memory!, 'entries/s');
  info('replay 100k from memory (entries decoded beforehand)', (entries.length * 1000) / t.decoded!, 'entries/s');
  info('replay 100k from the fixture file', (entries.length * 1000) / t.gz!, 'entries/s');
  atLeast('replay 100k: fixture file (.plog.gz) vs memory (encoded)', t.memory! / t.gz!, 0.7);
  info('replay 100k: uncompressed .plog vs memory (encoded)', t.memory! / t.plain!, 'x');
  atLeast('replay 100k: lmdb store directory vs memory (encoded)', t.memory! / t.store!, 0.7);
  // Against entries decoded beforehand the ratio is bounded by decode + verify, which costs a
  // large part of the reducer's own time per entry (see the report): reference only.
  info('replay 100k: fixture file (.plog.gz) vs memory (decoded beforehand)', t.decoded! / t.gz!, 'x');

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
  info('plain replay of the desync log', d.replay!, 'ms');
  atMost('verify finds the culprit entry and records, vs a plain replay', d.verify! / d.replay!, 2);
  atMost('bisect --reducer-b finds the culprit entry and records, vs a plain replay', d.bisect! / d.replay!, 2);
  info('bisect of the two captures (lockstep, then verify of B), vs a plain replay', d.captures! / d.replay!, 'x');
} finally {
  await rm(tmp, { recursive: true, force: true });
}

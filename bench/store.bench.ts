// The lmdb store (src/adapters/lmdb-store.ts): durable append throughput, and read throughput
// (cursor walk + hash check + decode + key/seq/chain checks; raw reads for peers), for reference.
// Replay from the store against replay from memory (issue 3) is bench/replay.bench.ts's figure.
//
// The log is the treasure-hunt game's (generateLog), >= 100,000 entries.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LmdbLogStore } from '../src/adapters/lmdb-store.js';
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
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

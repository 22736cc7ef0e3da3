// A node's periodic snapshot while it goes on applying (issue 4's latency figure, and DESIGN.md
// §8): what the snapshot costs, and what it does to the entries applied meanwhile. A node captures
// the state at a tick boundary (ShardMachine.captureSnapshot) and encodes it a step of 64 rows per
// turn of its event loop (encodeCapturedSnapshotSteps); here a step alternates with applying 100
// entries, as appends and steps alternate in a node.
//
// This runs in its own process (npm run bench starts one per file), so the first snapshot below is
// the process's first, as a node's first periodic snapshot is: the code V8 compiled for the
// entries applied until then meets the snapshot's code for the first time. Before the encoder kept
// off the codec's untaken branches (see snapshotSteps in src/core/snapshot.ts), encoding took
// 19–27 ms for the first snapshot and 12–17 ms for the fourth (3 runs); after, 9–16 and 4–8 ms.
// Applying during a snapshot is slower than before it either way (2–3×, medians): every record's
// first change meanwhile encodes its row for the capture.
//
// State: 2,000 treasure-hunt players, as bench/http-latency.bench.ts loads (~300 KB encoded).
// Times are wall time of this process: the encoding's summed over its steps, the chunks' as medians
// (a collection in one chunk is not the snapshot's doing). They are printed, not judged.
import { ShardMachine, encodeCapturedSnapshotSteps, type Entry } from '../src/core/index.js';
import { generateLogArray, treasureHuntRegistry } from '../src/games/treasure-hunt/index.js';
import { info } from './report.js';

const SNAPSHOTS = 4;
const CHUNK = 100;
const { entries } = generateLogArray({ seed: 5, shard: 'hunt-1', entries: 400_000, players: 2_000, inputsPerTick: 500 });
const m = new ShardMachine(treasureHuntRegistry(), {});
let k = 0;

function applyChunk(): number {
  const t = performance.now();
  for (let j = 0; j < CHUNK && k < entries.length; j++) m.apply(entries[k++]!);
  return performance.now() - t;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

function toTickBoundary(): void {
  while ((entries[k - 1] as Entry).kind !== 'tick') m.apply(entries[k++]!);
}

// Warm: 100,000 entries applied, then 300 timed chunks before each snapshot.
while (k < 100_000) m.apply(entries[k++]!);
for (let s = 1; s <= SNAPSHOTS; s++) {
  const before: number[] = [];
  for (let j = 0; j < 300; j++) before.push(applyChunk());
  toTickBoundary();
  const steps = encodeCapturedSnapshotSteps(m.captureSnapshot(), 64);
  let encodeMs = 0;
  const during: number[] = [];
  let t = performance.now();
  let r = steps.next();
  encodeMs += performance.now() - t;
  while (r.done !== true) {
    during.push(applyChunk());
    t = performance.now();
    r = steps.next();
    encodeMs += performance.now() - t;
  }
  if (s !== 1 && s !== SNAPSHOTS) continue;
  const which = s === 1 ? "the process's first snapshot" : `snapshot ${s}`;
  info(`${which}: encoding (${(r.value.length / 1000).toFixed(0)} KB)`, encodeMs, 'ms');
  info(`${which}: applying ${CHUNK} entries during it / before it (medians)`, median(during) / median(before), '');
}

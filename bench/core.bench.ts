// The deterministic core's figures (issue 2, DESIGN.md §10), on a generated treasure-hunt log:
//
//  1. replay throughput with a digest every tick / the same replay without digests  (>= 0.6)
//  2. incremental per-tick digest vs JSON.stringify of the whole state + SHA-256     (>= 50x)
//  3. per-tick digest time at 1,000,000 records / at 10,000 records, same changes    (<= 1.5)
//  4. replay entries/s with digests (decode + hash verify + apply + digest)          (>= 0.5 M/s)
//
// Run: `npx tsx bench/core.bench.ts` or `node bench/run.mjs core` (add --check to fail on a miss).
// BENCH_ENTRIES (default 1,000,000) and BENCH_ITEMS (default 100,000) shrink it for a quick look.
//
// Times are CPU time of this process (process.cpuUsage), best of several rounds: the machines
// here are shared by several busy processes, and wall time swings with their load far more than
// the work measured. Replays run from memory: the log's bytes are read (or generated and cached
// under .cache/bench/) before timing, and each timed replay decodes and verifies every entry
// from those bytes, as a follower replaying its store would.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CanonicalWriter, ShardMachine, StateTable, decodeEntry, hash128, type TickDigest } from '../src/core/index.js';
import { generateLog, treasureHuntRegistry } from '../src/games/treasure-hunt/index.js';
import { atLeast, atMost, info } from './report.js';

const here = dirname(fileURLToPath(import.meta.url));
const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 1_000_000);
const ITEMS = Number(process.env.BENCH_ITEMS ?? 100_000);
const PLAYERS = 20_000;
const INPUTS_PER_TICK = 1_000;
const SEED = 20_261_122;

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** CPU time of fn in ms. */
function cpuTimeMs(fn: () => void): number {
  gc();
  const t0 = cpuMs();
  fn();
  return cpuMs() - t0;
}

// --- the log -------------------------------------------------------------------------------

/** Entries as views of one buffer: a file of [u32 length][entry bytes] frames. */
function loadLog(): Uint8Array[] {
  const file = join(here, '..', '.cache', 'bench', `treasure-hunt-s${SEED}-e${ENTRIES}-i${ITEMS}-p${PLAYERS}-t${INPUTS_PER_TICK}.bin`);
  if (!existsSync(file)) {
    console.log(`  generating ${ENTRIES} entries (${ITEMS} items, ${PLAYERS} players, ${INPUTS_PER_TICK} inputs per tick) into ${file} …`);
    const t0 = performance.now();
    const parts: Uint8Array[] = [];
    let bytes = 0;
    const it = generateLog({ seed: SEED, entries: ENTRIES, players: PLAYERS, inputsPerTick: INPUTS_PER_TICK, params: { worldSize: 20_000, itemsInitial: ITEMS } });
    for (;;) {
      const r = it.next();
      if (r.done) break;
      const frame = new Uint8Array(4 + r.value.bytes.length);
      new DataView(frame.buffer).setUint32(0, r.value.bytes.length, true);
      frame.set(r.value.bytes, 4);
      parts.push(frame);
      bytes += frame.length;
    }
    const out = new Uint8Array(bytes);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(`${file}.tmp`, out);
    renameSync(`${file}.tmp`, file);
    console.log(`  generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const buf = readFileSync(file);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const entries: Uint8Array[] = [];
  for (let o = 0; o < buf.length; ) {
    const n = view.getUint32(o, true);
    entries.push(new Uint8Array(buf.buffer, buf.byteOffset + o + 4, n));
    o += 4 + n;
  }
  return entries;
}

interface ReplayResult {
  ms: number;
  machine: ShardMachine;
  ticks: number;
  rehashed: number;
  /** Records rehashed by the ticks after tick 0 (which folds the whole world genesis created). */
  rehashedAfterTick0: number;
}

function replay(log: Uint8Array[], digests: boolean): ReplayResult {
  let ticks = 0;
  let rehashed = 0;
  let rehashedAfterTick0 = 0;
  const machine = new ShardMachine(treasureHuntRegistry(), {
    keepOutputs: false,
    digests,
    onTick: (d: TickDigest) => {
      ticks++;
      rehashed += d.recordsRehashed;
      if (d.tick > 0) rehashedAfterTick0 += d.recordsRehashed;
    },
  });
  machine.keepRejections = 1;
  const ms = cpuTimeMs(() => {
    for (let i = 0; i < log.length; i++) {
      const b = log[i]!;
      machine.apply(decodeEntry(b, 0, b.length, i + 1));
    }
  });
  return { ms, machine, ticks, rehashed, rehashedAfterTick0 };
}

// --- per-tick digest on tables -------------------------------------------------------------

/** What closing a tick costs the digest: fold the changes of every table, then hash the table sums. */
function digestTick(tables: readonly StateTable[], writer: CanonicalWriter): Uint8Array {
  for (let i = 0; i < tables.length; i++) tables[i]!.flush(writer);
  writer.reset();
  writer.writeArrayHeader(tables.length);
  for (let i = 0; i < tables.length; i++) {
    writer.writeString(tables[i]!.name);
    writer.writeBin(tables[i]!.digest());
  }
  return hash128(writer.buf, 0, writer.pos);
}

/** The naive baseline: the whole state as JSON (tables and records in key order), SHA-256. */
function naiveDigest(tables: readonly StateTable[]): string {
  const state: Record<string, [string, unknown][]> = {};
  for (const t of tables) state[t.name] = t.keys().map((k) => [k, t.peek(k)]);
  return createHash('sha256').update(JSON.stringify(state)).digest('hex');
}

/** A deterministic stream of indexes (the bench itself may use Math.random, but reruns should match). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}

interface Item {
  kind: string;
  x: number;
  y: number;
  value: number;
  hp: number;
  buried: boolean;
  power: string | null;
  diggers: [string, number][];
  expiresTick: number;
}

const KINDS = ['coin', 'gem', 'chest', 'power', 'loot'];

/** An item-like table of `records` records (the game's item shape), flushed once. */
function itemTable(records: number, writer: CanonicalWriter): { table: StateTable<Item>; keys: string[] } {
  const table = new StateTable<Item>('items');
  const next = lcg(records);
  const keys: string[] = new Array(records);
  for (let i = 0; i < records; i++) {
    const key = 'i' + String(i).padStart(8, '0');
    keys[i] = key;
    table.set(key, { kind: KINDS[i % 5]!, x: next() % 20_000, y: next() % 20_000, value: 1 + (i % 50), hp: i % 4, buried: i % 3 !== 0, power: null, diggers: [], expiresTick: 0 });
  }
  digestTick([table], writer);
  return { table, keys };
}

/**
 * Median time of one tick's digest with `changed` random records changed per tick, in a table
 * of `small` and one of `large` records. The two are measured tick by tick in turn, in one heap,
 * so the machine's load and the garbage collector weigh on both alike.
 */
function digestAtSizes(small: number, large: number, changed: number, ticks: number): [number, number] {
  const writer = new CanonicalWriter(1 << 12);
  const tables = [itemTable(small, writer), itemTable(large, writer)];
  const times: [number[], number[]] = [[], []];
  const next = lcg(99);
  for (let tick = 0; tick < ticks; tick++) {
    for (let which = 0; which < 2; which++) {
      const { table, keys } = tables[which]!;
      for (let j = 0; j < changed; j++) {
        const r = table.mut(keys[next() % keys.length]!)!;
        r.x = (r.x + 1) % 20_000;
        r.hp = (r.hp + 1) & 3;
      }
      const t0 = cpuMs();
      digestTick([table], writer);
      times[which]!.push(cpuMs() - t0);
    }
  }
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[xs.length >> 1]!;
  return [median(times[0]), median(times[1])];
}

// --- run -----------------------------------------------------------------------------------

const log = loadLog();
console.log(`  log: ${log.length} entries, ${(log.reduce((n, b) => n + b.length, 0) / 1e6).toFixed(0)} MB`);

// 1 and 4: replay with and without digests, alternating, best of 3 each.
let withDigests: ReplayResult | null = null;
let withoutMs = Infinity;
for (let round = 0; round < 3; round++) {
  const a = replay(log, true);
  if (withDigests === null || a.ms < withDigests.ms) withDigests = a;
  withoutMs = Math.min(withoutMs, replay(log, false).ms);
}
const w = withDigests!;
const records = Object.values(w.machine.tables).reduce((n, t) => n + t.size, 0);
info('state records after replay', records, 'records');
info('replay without digests', log.length / withoutMs / 1000, 'M entries/s');
info('records rehashed per tick (after tick 0)', w.rehashedAfterTick0 / Math.max(1, w.ticks - 1), 'records');
atLeast('replay with digests / without (throughput ratio)', withoutMs / w.ms, 0.6);
atLeast('replay with a digest every tick (decode + verify + apply + digest)', log.length / w.ms / 1000, 0.5, 'M entries/s');

// 2: incremental vs naive, on the replayed game state, with the log's own changes per tick.
{
  const tables = Object.keys(w.machine.tables)
    .sort()
    .map((n) => w.machine.tables[n]!);
  const writer = new CanonicalWriter(1 << 12);
  const changed = Math.round(w.rehashedAfterTick0 / Math.max(1, w.ticks - 1));
  const next = lcg(7);
  const movable = tables.filter((t) => t.name === 'players' || t.name === 'items');
  const keysOf = movable.map((t) => t.keys());
  const incremental: number[] = [];
  for (let tick = 0; tick < 50; tick++) {
    for (let j = 0; j < changed; j++) {
      const i = next() % movable.length;
      const r = movable[i]!.mut(keysOf[i]![next() % keysOf[i]!.length]!) as { x: number };
      r.x = (r.x + 1) % 20_000;
    }
    const t0 = cpuMs();
    digestTick(tables, writer);
    incremental.push(cpuMs() - t0);
  }
  incremental.sort((a, b) => a - b);
  const incMs = incremental[incremental.length >> 1]!;
  let naiveMs = Infinity;
  for (let r = 0; r < 3; r++) naiveMs = Math.min(naiveMs, cpuTimeMs(() => naiveDigest(tables)));
  info(`incremental digest per tick (${changed} records changed of ${records})`, incMs * 1000, 'us');
  info('naive digest per tick (JSON.stringify + SHA-256 of the state)', naiveMs, 'ms');
  atLeast(`incremental vs naive per-tick digest at ${records} records`, naiveMs / incMs, 50);
}

// 3: per-tick digest at 1,000,000 records / at 10,000 records, 1,000 changed per tick.
{
  const [small, large] = digestAtSizes(10_000, 1_000_000, 1_000, 300);
  info('per-tick digest, 1,000 changed of 10,000 records', small * 1000, 'us');
  info('per-tick digest, 1,000 changed of 1,000,000 records', large * 1000, 'us');
  atMost('per-tick digest at 1,000,000 / at 10,000 records', large / small, 1.5);
}

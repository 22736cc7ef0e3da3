// Regenerates replay-fixtures/ deterministically: `npx tsx tools/gen-fixtures.ts`
// (`--check` regenerates into a temporary directory and exits 1 when any fixture's bytes differ
// from the committed ones, without touching them).
//
// Every fixture is a treasure-hunt log produced the way a leader produces one (generateLog:
// load generator → Sequencer → leader ShardMachine), written as .plog (docs/plog.md). The
// manifest records, per fixture, the SHA-256 of its uncompressed .plog bytes (what
// "regenerating gives the same bytes" is checked against; gzip output may vary with the zlib
// build, the bytes inside do not) and the final digest this engine computes, which the golden
// test (test/golden.test.ts) replays every fixture against.
//
// The desync pair holds the same inputs recorded twice: by treasure-hunt v1, and by the
// known-bad build treasureHuntNondeterministicV1 (loot split in arrival order from a cache kept
// outside the state tables). Its expected verdict is computed here by a deliberately plain
// oracle — whole-state exports compared after every entry of the first tick whose recorded
// digests differ — independent of the bucket-sum localisation the tools use.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { PlogWriter, type PlogHeaderInit } from '../src/adapters/plog.js';
import { ReducerRegistry, Sequencer, ShardMachine, cloneCanonical, encodeCanonical, hashEquals, toHex, type Entry, type EpochPayload, type GenesisPayload, type Snapshot } from '../src/core/index.js';
import { generateLog, treasureHuntNondeterministicV1, treasureHuntRegistry, treasureHuntV2, type GenerateLogOptions } from '../src/games/treasure-hunt/index.js';

export const FIXTURE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'replay-fixtures');
export const MANIFEST = 'manifest.json';
export const VERDICT = 'hunt-desync.verdict.json';
const CREATED_BY = 'tools/gen-fixtures.ts';

export const nondeterministicRegistry = (): ReducerRegistry => new ReducerRegistry([treasureHuntNondeterministicV1, treasureHuntV2]);

export interface FixtureSpec {
  readonly file: string;
  readonly description: string;
  /** The build whose digests the log's tick entries carry. */
  readonly recordedBy: 'treasure-hunt' | 'treasure-hunt-nondeterministic';
  /** Whether replaying with this engine's build agrees with the recorded digests. */
  readonly expect: 'agree' | 'desync';
  /** Build the header, the starting snapshot and the entries (a fresh pass each call). */
  make(): { header: PlogHeaderInit; snapshot: Snapshot | null; entries: Iterable<Entry> };
}

const SMALL: GenerateLogOptions = { seed: 11, shard: 'hunt-small', players: 12, inputsPerTick: 6, ticks: 40 };
const BIG: GenerateLogOptions = { seed: 100, shard: 'hunt-100k', entries: 100_000, upgradeAtTick: 1000 };
const SNAP: GenerateLogOptions = { seed: 21, shard: 'hunt-snap', players: 40, inputsPerTick: 12, ticks: 120 };
const SNAP_TICK = 59;
// 24 solo players: the first chest whose split depends on arrival order opens late in the log
// (tick 375 of 600 with this engine's game), so the tools must replay most of it first.
const DESYNC: GenerateLogOptions = { seed: 45, shard: 'hunt-desync', players: 24, inputsPerTick: 8, ticks: 600, guildSize: 1 };

function headerOf(o: GenerateLogOptions, description: string): PlogHeaderInit {
  return { shard: o.shard!, reducer: 'treasure-hunt', reducerVersion: o.reducerVersion ?? 1, seed: o.seed, tickMs: o.tickMs ?? 50, createdBy: CREATED_BY, description };
}

function* entriesOf(o: GenerateLogOptions): Generator<Entry, void, undefined> {
  const it = generateLog(o);
  for (;;) {
    const r = it.next();
    if (r.done) return;
    yield r.value;
  }
}

/**
 * The same inputs sequenced again by a leader running `registry`: identical entries up to the
 * first tick whose digest that build computes differently, then the same inputs with other
 * digests (and so other hashes).
 */
export function* rerecord(entries: Iterable<Entry>, registry: ReducerRegistry): Generator<Entry, void, undefined> {
  let leader: ShardMachine | null = null;
  let seq: Sequencer | null = null;
  for (const e of entries) {
    let out: Entry;
    if (e.kind === 'genesis') {
      const g = e.payload as GenesisPayload;
      out = Sequencer.genesis({ shard: e.shard, reducer: registry.get(g.reducer, g.reducerVersion), seed: g.seed, tickMs: g.tickMs, epoch: e.epoch, params: g.params });
      if (!hashEquals(out.hash, e.hash)) throw new Error('rerecord: the genesis entry does not reproduce');
      leader = new ShardMachine(registry, { keepOutputs: false });
      seq = Sequencer.afterGenesis(registry, out, { region: null, dedupeWindowTicks: 100 });
    } else if (e.kind === 'input') {
      const r = seq!.submit({ type: e.type!, version: e.version!, payload: e.payload, ingestId: e.ingestId, origin: e.origin });
      if (r.status !== 'sequenced') throw new Error(`rerecord: input ${e.seq} was not sequenced again`);
      out = r.entry;
    } else if (e.kind === 'tick') out = seq!.closeTick(leader!.lastDigest?.digest ?? null);
    else if (e.kind === 'upgrade') out = seq!.upgrade((e.payload as { reducerVersion: number }).reducerVersion);
    else out = seq!.startEpoch(e.payload as EpochPayload);
    if (out.seq !== e.seq) throw new Error(`rerecord: entry ${e.seq} came out as seq ${out.seq}`);
    leader!.apply(out);
    yield out;
  }
}

export function fixtureSpecs(): FixtureSpec[] {
  return [
    {
      file: 'hunt-small.plog',
      description: 'A small treasure-hunt log (12 players, 40 ticks) for tests that read every entry.',
      recordedBy: 'treasure-hunt',
      expect: 'agree',
      make: () => ({ header: headerOf(SMALL, 'small log: 12 players, 40 ticks'), snapshot: null, entries: entriesOf(SMALL) }),
    },
    {
      file: 'hunt-100k.plog.gz',
      description: 'At least 100,000 entries (200 players, 50 inputs a tick) with an upgrade to reducer version 2 in tick 1000.',
      recordedBy: 'treasure-hunt',
      expect: 'agree',
      make: () => ({ header: headerOf(BIG, '100,000+ entries, upgrade to v2 in tick 1000'), snapshot: null, entries: entriesOf(BIG) }),
    },
    {
      file: 'hunt-from-snapshot.plog',
      description: `A log that starts from the snapshot at tick ${SNAP_TICK} (40 players, ticks ${SNAP_TICK + 1}–119).`,
      recordedBy: 'treasure-hunt',
      expect: 'agree',
      make: () => {
        const all = [...entriesOf(SNAP)];
        const m = new ShardMachine(treasureHuntRegistry(), { keepOutputs: false });
        let snapshot: Snapshot | null = null;
        for (const e of all) {
          m.apply(e);
          if (e.kind === 'tick' && e.tick === SNAP_TICK) {
            snapshot = m.snapshot();
            break;
          }
        }
        return { header: headerOf(SNAP, `starts from the snapshot at tick ${SNAP_TICK}`), snapshot, entries: all.filter((e) => e.seq > snapshot!.seq) };
      },
    },
    {
      file: 'hunt-desync-a.plog.gz',
      description: 'The desync pair, side A: 24 solo players for 600 ticks, recorded by treasure-hunt v1 (correct).',
      recordedBy: 'treasure-hunt',
      expect: 'agree',
      make: () => ({ header: headerOf(DESYNC, 'desync pair A: recorded by treasure-hunt v1'), snapshot: null, entries: entriesOf(DESYNC) }),
    },
    {
      file: 'hunt-desync-b.plog.gz',
      description: 'The desync pair, side B: the same inputs recorded by treasure-hunt-nondeterministic (a known-bad build of v1).',
      recordedBy: 'treasure-hunt-nondeterministic',
      expect: 'desync',
      make: () => ({ header: headerOf(DESYNC, 'desync pair B: the same inputs recorded by the nondeterministic build of v1'), snapshot: null, entries: rerecord(entriesOf(DESYNC), nondeterministicRegistry()) }),
    },
  ];
}

export interface FixtureRecord {
  file: string;
  description: string;
  shard: string;
  recordedBy: string;
  expect: 'agree' | 'desync';
  entries: number;
  ticks: number;
  snapshotTick: number | null;
  upgrades: number;
  /** SHA-256 of the uncompressed .plog bytes. */
  sha256: string;
  /** The last tick closed, as this engine's treasure-hunt build replays it. */
  final: { tick: number; seq: number; digest: string; reducerVersion: number } | null;
}

/**
 * Write one fixture to `path` and describe it. `replay: false` skips replaying it for its final
 * digest (`final` is then null): enough to check that regenerating gives the same bytes.
 */
export async function writeFixture(spec: FixtureSpec, path: string, options: { replay?: boolean } = {}): Promise<FixtureRecord> {
  const { header, snapshot, entries } = spec.make();
  const w = await PlogWriter.create(path, header, { snapshot });
  const m = options.replay === false ? null : snapshot === null ? new ShardMachine(treasureHuntRegistry(), { keepOutputs: false }) : ShardMachine.fromSnapshot(treasureHuntRegistry(), cloneCanonical(snapshot), { keepOutputs: false });
  let n = 0;
  let ticks = 0;
  let upgrades = 0;
  try {
    let batch: Entry[] = [];
    for (const e of entries) {
      m?.apply(e);
      n++;
      if (e.kind === 'tick') ticks++;
      if (e.kind === 'upgrade') upgrades++;
      batch.push(e);
      if (batch.length >= 4096) {
        await w.append(batch);
        batch = [];
      }
    }
    await w.append(batch);
    await w.close();
  } catch (err) {
    await w.abort();
    throw err;
  }
  const d = m?.lastDigest ?? null;
  return {
    file: spec.file,
    description: spec.description,
    shard: header.shard,
    recordedBy: spec.recordedBy,
    expect: spec.expect,
    entries: n,
    ticks,
    snapshotTick: snapshot?.tick ?? null,
    upgrades,
    sha256: await contentSha256(path),
    final: d === null ? null : { tick: d.tick, seq: d.seq, digest: toHex(d.digest), reducerVersion: d.reducerVersion },
  };
}

/** SHA-256 of a fixture's .plog bytes (inflated first when the file is gzip-compressed). */
export async function contentSha256(path: string): Promise<string> {
  let bytes: Uint8Array = await readFile(path);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  return createHash('sha256').update(bytes).digest('hex');
}

export interface FieldVerdict {
  path: string;
  /** The value this engine's treasure-hunt v1 computes (side A, "actual" in verify). */
  reference: unknown;
  /** The value the nondeterministic build computes and recorded (side B, "expected" in verify). */
  recorded: unknown;
}

export interface Verdict {
  pair: [string, string];
  reference: string;
  recorder: string;
  /** The first tick whose digests differ. */
  tick: number;
  /** The first entry of that tick after which the states differ. */
  entry: { seq: number; kind: string; type: string | null; ingestId: string | null; index: number };
  records: { table: string; key: string; fields: FieldVerdict[] }[];
}

/** The oracle: the first diverging tick from the two logs' recorded digests, then whole-state exports compared entry by entry. */
export function desyncVerdict(): Verdict {
  const a = [...entriesOf(DESYNC)];
  const b = [...rerecord(a, nondeterministicRegistry())];
  let T: number | null = null;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.kind === 'tick' && !hashEquals(x.digest, y.digest)) {
      T = x.tick - 1;
      break;
    }
  }
  if (T === null) throw new Error('gen-fixtures: the desync pair does not desync; choose other generator options');
  const ref = new ShardMachine(treasureHuntRegistry(), { keepOutputs: false });
  const bad = new ShardMachine(nondeterministicRegistry(), { keepOutputs: false });
  let index = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    ref.apply(x);
    bad.apply(b[i]!);
    if (x.tick < T) continue;
    const sa = ref.exportState();
    const sb = bad.exportState();
    const records = diffExports(sa, sb);
    const rngDiffers = ref.rngState.some((v, k) => v !== bad.rngState[k]);
    if (records.length > 0 || rngDiffers) {
      return {
        pair: ['hunt-desync-a.plog.gz', 'hunt-desync-b.plog.gz'],
        reference: 'treasure-hunt',
        recorder: 'treasure-hunt-nondeterministic',
        tick: T,
        entry: { seq: x.seq, kind: x.kind, type: x.type, ingestId: x.ingestId, index },
        records,
      };
    }
    index++;
    if (x.kind === 'tick') break;
  }
  throw new Error(`gen-fixtures: tick ${T} digests differ but no entry of it changes the states differently`);
}

function diffExports(sa: Record<string, [string, unknown][]>, sb: Record<string, [string, unknown][]>): Verdict['records'] {
  const out: Verdict['records'] = [];
  for (const table of [...new Set([...Object.keys(sa), ...Object.keys(sb)])].sort()) {
    const ma = new Map(sa[table] ?? []);
    const mb = new Map(sb[table] ?? []);
    for (const key of [...new Set([...ma.keys(), ...mb.keys()])].sort()) {
      const va = ma.get(key);
      const vb = mb.get(key);
      if (va !== undefined && vb !== undefined && hashEquals(encodeCanonical(va), encodeCanonical(vb))) continue;
      const fields: FieldVerdict[] = [];
      leaves(va, vb, '', fields);
      out.push({ table, key, fields });
    }
  }
  return out;
}

function leaves(a: unknown, b: unknown, path: string, out: FieldVerdict[]): void {
  const obj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
  if (obj(a) && obj(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) leaves(a[k], b[k], path === '' ? k : `${path}.${k}`, out);
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) leaves(a[i], b[i], `${path}[${i}]`, out);
    return;
  }
  if (a === b || (a !== undefined && b !== undefined && hashEquals(encodeCanonical(a), encodeCanonical(b)))) return;
  out.push({ path, reference: a, recorded: b });
}

export interface Manifest {
  generatedBy: string;
  fixtures: FixtureRecord[];
}

/** Write every fixture, the manifest and the desync verdict into `dir`. */
export async function generateAll(dir: string, log: (line: string) => void = () => undefined): Promise<Manifest> {
  const fixtures: FixtureRecord[] = [];
  for (const spec of fixtureSpecs()) {
    const t0 = performance.now();
    const r = await writeFixture(spec, join(dir, spec.file));
    fixtures.push(r);
    log(`${spec.file}: ${r.entries} entries, ${r.ticks} ticks, sha256 ${r.sha256.slice(0, 16)}… (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
  const manifest: Manifest = { generatedBy: CREATED_BY, fixtures };
  await writeFile(join(dir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
  const verdict = desyncVerdict();
  await writeFile(join(dir, VERDICT), JSON.stringify(verdict, null, 2) + '\n');
  log(`${VERDICT}: tick ${verdict.tick}, entry ${verdict.entry.seq} (${verdict.entry.type ?? verdict.entry.kind}), ${verdict.records.map((r) => `${r.table}["${r.key}"]`).join(', ')}`);
  return manifest;
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  if (!check) {
    await generateAll(FIXTURE_DIR, (l) => console.log(l));
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'playout-fixtures-'));
  try {
    const fresh = await generateAll(dir, (l) => console.log(l));
    const committed = JSON.parse(await readFile(join(FIXTURE_DIR, MANIFEST), 'utf8')) as Manifest;
    let differ = 0;
    for (const f of fresh.fixtures) {
      const c = committed.fixtures.find((x) => x.file === f.file);
      const onDisk = await contentSha256(join(FIXTURE_DIR, f.file)).catch(() => 'missing');
      if (c?.sha256 !== f.sha256 || onDisk !== f.sha256) {
        differ++;
        console.log(`DIFFERS: ${f.file} regenerates to ${f.sha256}, manifest ${c?.sha256 ?? 'missing'}, file ${onDisk}`);
      }
    }
    const verdict = await readFile(join(dir, VERDICT), 'utf8');
    if (verdict !== (await readFile(join(FIXTURE_DIR, VERDICT), 'utf8').catch(() => ''))) {
      differ++;
      console.log(`DIFFERS: ${VERDICT}`);
    }
    console.log(differ === 0 ? 'every fixture regenerates to the committed bytes' : `${differ} fixture file(s) differ`);
    process.exitCode = differ === 0 ? 0 : 1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await main();

// Golden replay: every fixture in replay-fixtures/ replays to the digests it records and to the
// final digest in the manifest; the desync pair is localised to the verdict stored next to it;
// damaged copies fail each with its own code; and regenerating the fixtures gives their bytes.
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FRAME_END, FRAME_ENTRY, FRAME_HEADER, PLOG_MAGIC, PLOG_PREAMBLE_BYTES, PlogReader, encodeFrame, sealFramePayload } from '../src/adapters/plog.js';
import { openSource, type ReplaySource } from '../src/adapters/replay-source.js';
import { isPlayoutError, sealEntry, type Entry } from '../src/core/index.js';
import { bisect } from '../src/cli/ops/bisect.js';
import { defaultBuild, loadBuild, recorderCandidates, type Build } from '../src/cli/ops/builds.js';
import { replay } from '../src/cli/ops/replay.js';
import type { RecordDiff } from '../src/cli/ops/state-diff.js';
import { verify } from '../src/cli/ops/verify.js';
import { FIXTURE_DIR, MANIFEST, VERDICT, contentSha256, desyncVerdict, fixtureSpecs, writeFixture, type Manifest, type Verdict } from '../tools/gen-fixtures.js';

const manifest = JSON.parse(await readFile(join(FIXTURE_DIR, MANIFEST), 'utf8')) as Manifest;
const verdict = JSON.parse(await readFile(join(FIXTURE_DIR, VERDICT), 'utf8')) as Verdict;
const path = (file: string): string => join(FIXTURE_DIR, file);

let build: Build;
let nondeterministic: Build;
let tmp: string;
const opened: ReplaySource[] = [];
async function open(file: string, shard?: string): Promise<ReplaySource> {
  const s = await openSource(file.startsWith('/') ? file : path(file), { shard: shard ?? null });
  opened.push(s);
  return s;
}

beforeAll(async () => {
  build = await defaultBuild();
  nondeterministic = await loadBuild('treasure-hunt-nondeterministic', process.cwd());
  tmp = await mkdtemp(join(tmpdir(), 'playout-golden-'));
});
afterAll(async () => {
  for (const s of opened) await s.close();
  await rm(tmp, { recursive: true, force: true });
});

/** The verdict's records in the form the tools report them, side A = `a`, side B = `b`. */
function expectRecords(records: readonly RecordDiff[], a: 'reference' | 'recorded', b: 'reference' | 'recorded'): void {
  expect(records.map((r) => ({ table: r.table, key: r.key, fields: r.fields.map((f) => ({ path: f.path, a: f.a, b: f.b })) }))).toEqual(
    verdict.records.map((r) => ({ table: r.table, key: r.key, fields: r.fields.map((f) => ({ path: f.path, a: f[a], b: f[b] })) })),
  );
}

describe('golden replay of replay-fixtures/', () => {
  it('the manifest lists the fixtures the issue asks for', () => {
    const files = manifest.fixtures.map((f) => f.file);
    expect(files).toEqual(fixtureSpecs().map((s) => s.file));
    const big = manifest.fixtures.find((f) => f.file.startsWith('hunt-100k'))!;
    expect(big.entries).toBeGreaterThanOrEqual(100_000);
    expect(big.upgrades).toBe(1);
    expect(manifest.fixtures.some((f) => f.snapshotTick !== null)).toBe(true);
  });

  it.each(manifest.fixtures.map((f) => [f.file, f] as const))('%s replays to its recorded digests and the manifest final digest', async (_file, f) => {
    const src = await open(f.file);
    const r = await replay(src, { build, digestEveryTicks: 0 });
    expect(r.entries).toBe(f.entries);
    expect(r.final).toEqual(f.final);
    if (f.expect === 'agree') expect(r.mismatches).toEqual({ count: 0, first: null });
    else expect(r.mismatches.first!.tick).toBe(verdict.tick);
  });
});

describe('the desync pair', () => {
  it('verify names the tick, the entry and the records of the verdict (expected = recorded, actual = this build)', async () => {
    const src = await open('hunt-desync-b.plog.gz');
    const r = await verify(src, { build, recorders: await recorderCandidates(src.info.reducer, src.info.reducerVersion, build.registry) });
    const m = r.mismatch!;
    expect(m.tick).toBe(verdict.tick);
    expect(m.localised!.build).toBe('treasure-hunt-nondeterministic');
    const c = m.localised!.culprit!;
    expect(c.entry).toMatchObject({ seq: verdict.entry.seq, kind: verdict.entry.kind, type: verdict.entry.type, ingestId: verdict.entry.ingestId, index: verdict.entry.index });
    expectRecords(c.diff.records, 'recorded', 'reference');
    expect(c.diff.recordsMore).toBe(0);
  });

  it('verify agrees with side A', async () => {
    expect((await verify(await open('hunt-desync-a.plog.gz'), { build, recorders: [nondeterministic] })).agree).toBe(true);
  });

  it('bisect of one log under the two builds (--reducer-b) names the same tick, entry and records', async () => {
    const src = await open('hunt-desync-a.plog.gz');
    const r = await bisect({ source: src, build }, { source: src, build: nondeterministic });
    expect(r.divergence).toMatchObject({ tick: verdict.tick, method: 'lockstep' });
    expect(r.divergence!.culprit!.entry.seq).toBe(verdict.entry.seq);
    expectRecords(r.divergence!.culprit!.diff.records, 'reference', 'recorded');
  });

  it('bisect of the two captures finds where the logs part and localises the recording that does not replay', async () => {
    const a = await open('hunt-desync-a.plog.gz');
    const b = await open('hunt-desync-b.plog.gz');
    const r = await bisect({ source: a, build }, { source: b, build }, { recorders: [nondeterministic] });
    expect(r.agree).toBe(false);
    expect(r.logs.firstDifference).toMatchObject({ tick: verdict.tick + 1, fields: ['digest'] });
    expect(r.recordedMismatch).toEqual({ a: null, b: verdict.tick });
    expect(r.recordedVerify!.result.mismatch!.localised!.culprit!.entry.seq).toBe(verdict.entry.seq);
  });
});

describe('damaged fixtures each fail with their own code', () => {
  const small = 'hunt-small.plog';
  async function entriesOf(file: string): Promise<Entry[]> {
    const out: Entry[] = [];
    for await (const b of (await PlogReader.open(path(file))).batches()) out.push(...b);
    return out;
  }
  async function codeOfReplay(file: string, shard?: string): Promise<{ code: string; seq: number | null }> {
    try {
      await replay(await open(file, shard), { build, digestEveryTicks: 0 });
    } catch (err) {
      if (isPlayoutError(err)) return { code: err.code, seq: err.seq };
      throw err;
    }
    return { code: 'none', seq: null };
  }
  /** The fixture with its entry frames replaced (header frame kept as is). */
  async function rebuilt(entries: readonly Entry[]): Promise<Uint8Array> {
    const bytes = await readFile(path(small));
    const headerLength = bytes.readUInt32BE(PLOG_PREAMBLE_BYTES + 1);
    const prefix = bytes.subarray(0, PLOG_PREAMBLE_BYTES + 9 + headerLength);
    expect(prefix[PLOG_PREAMBLE_BYTES]).toBe(FRAME_HEADER);
    const last = entries[entries.length - 1]!;
    return Buffer.concat([prefix, ...entries.map((e) => encodeFrame(FRAME_ENTRY, e.bytes)), encodeFrame(FRAME_END, sealFramePayload({ entries: entries.length, lastSeq: last.seq, lastTick: last.tick, lastHash: last.hash }))]);
  }

  it('a flipped byte: PLAYOUT_ENTRY_HASH_MISMATCH with the seq of the damaged entry', async () => {
    const entries = await entriesOf(small);
    const bytes = new Uint8Array(await readFile(path(small)));
    const at = Buffer.from(bytes).indexOf(Buffer.from(entries[99]!.bytes));
    bytes[at + 25]! ^= 0x10;
    await writeFile(join(tmp, 'flipped.plog'), bytes);
    expect(await codeOfReplay(join(tmp, 'flipped.plog'))).toEqual({ code: 'PLAYOUT_ENTRY_HASH_MISMATCH', seq: 100 });
  });

  it('a truncated file: PLAYOUT_FIXTURE_CORRUPT with the seq of the first entry not read', async () => {
    const entries = await entriesOf(small);
    const bytes = await readFile(path(small));
    const at = bytes.indexOf(Buffer.from(entries[150]!.bytes));
    await writeFile(join(tmp, 'truncated.plog'), bytes.subarray(0, at + 10));
    expect(await codeOfReplay(join(tmp, 'truncated.plog'))).toEqual({ code: 'PLAYOUT_FIXTURE_CORRUPT', seq: 151 });
  });

  it('a broken chain: PLAYOUT_CHAIN_BROKEN at the entry after the forged one', async () => {
    const entries = await entriesOf(small);
    const e = entries[120]!;
    const forged = sealEntry({ ...e, ingestId: `${e.ingestId ?? 'x'}-forged` });
    await writeFile(join(tmp, 'chain.plog'), await rebuilt([...entries.slice(0, 120), forged, ...entries.slice(121)]));
    expect(await codeOfReplay(join(tmp, 'chain.plog'))).toEqual({ code: 'PLAYOUT_CHAIN_BROKEN', seq: 122 });
  });

  it('an unknown format version: PLAYOUT_FIXTURE_FORMAT_UNKNOWN', async () => {
    const bytes = new Uint8Array(await readFile(path(small)));
    bytes[PLOG_MAGIC.length + 1] = 7;
    await writeFile(join(tmp, 'format.plog'), bytes);
    expect((await codeOfReplay(join(tmp, 'format.plog'))).code).toBe('PLAYOUT_FIXTURE_FORMAT_UNKNOWN');
  });

  it('a wrong shard: PLAYOUT_SHARD_NOT_FOUND', async () => {
    await copyFile(path(small), join(tmp, 'copy.plog'));
    expect((await codeOfReplay(join(tmp, 'copy.plog'), 'hunt-elsewhere')).code).toBe('PLAYOUT_SHARD_NOT_FOUND');
  });
});

describe('regenerating the fixtures gives the committed bytes', () => {
  it.each(fixtureSpecs().map((s) => [s.file, s] as const))('%s', async (file, spec) => {
    const f = manifest.fixtures.find((x) => x.file === file)!;
    expect(await contentSha256(path(file))).toBe(f.sha256);
    // Written uncompressed (the hash is of the .plog bytes either way) and not replayed (the
    // golden replay above checks the final digest): this test pays for generation only.
    const fresh = await writeFixture(spec, join(tmp, file.replace(/\.gz$/, '')), { replay: false });
    expect(fresh).toEqual({ ...f, file, final: null });
  });

  it(`${VERDICT}`, () => {
    expect(desyncVerdict()).toEqual(verdict);
  });
});

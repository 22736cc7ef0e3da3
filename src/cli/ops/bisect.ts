// bisect: replay two sides in lockstep — two sources (captures, regions), or one log under two
// builds (`--reducer-b`) — and find the first tick whose digests differ, the first entry of
// that tick after which the states differ, and the differing records field by field.
//
// The sides are compared after every entry, not only at tick ends: both machines flush their
// tables after each entry (see localise.ts) and compare table sums and rng states. A difference
// inside a tick counts only if the tick's digests end up different (a transient difference that
// reconverges is no desync), and then the first differing entry of that tick is the culprit.
// Comparing in the one pass, rather than re-running the diverging tick from a snapshot, keeps
// whatever a build holds outside its tables (caches, insertion order) exactly as in the run
// being localised, and costs about a quarter more per entry than a plain lockstep replay
// (bench/replay.bench.ts) instead of a second pass.
import type { ReadProgress, ReplaySource, SourceInfo } from '../../adapters/replay-source.js';
import { PlayoutError, hashEquals, toHex, type Entry, type ShardMachine } from '../../core/index.js';
import type { Build } from './builds.js';
import { localiseTick, summarise, type Culprit, type EntrySummary } from './localise.js';
import { diffStates, type DiffLimits, type StateDiff } from './state-diff.js';
import { applyGroup, groupsOf, startMachine, type TickGroup } from './ticks.js';
import { verify, type VerifyResult } from './verify.js';

export interface Side {
  readonly source: ReplaySource;
  readonly build: Build;
}

export interface BisectOptions {
  /** For the verify run when a log's recorded digests disagree (see recordedVerify). */
  checkpointEveryEntries?: number;
  limits?: DiffLimits;
  /** Builds tried as recorders when the sides agree but a log's recorded digests do not. */
  recorders?: Build[];
  onProgress?: ((p: ReadProgress, entries: number) => void) | null;
}

export interface LogDifference {
  readonly seq: number;
  readonly tick: number;
  /** Entry fields that differ (prev and hash, which follow from any difference, are left out). */
  readonly fields: string[];
  readonly a: EntrySummary | null;
  readonly b: EntrySummary | null;
}

export interface Divergence {
  readonly tick: number;
  /** True when the sides already differ where they start to be compared (a snapshot start). */
  readonly atStart: boolean;
  readonly digestA: string | null;
  readonly digestB: string | null;
  /** `lockstep`: found entry by entry in the lockstep run; `start`: the sides differ where the comparison starts. */
  readonly method: 'lockstep' | 'start';
  readonly culprit: Culprit | null;
  readonly reason: string | null;
  /** The state difference at the start, when `atStart`. */
  readonly diff: StateDiff | null;
}

export interface BisectResult {
  readonly a: { readonly source: SourceInfo; readonly build: string };
  readonly b: { readonly source: SourceInfo; readonly build: string };
  /** Both sides read the same log (read and decoded once). */
  readonly shared: boolean;
  readonly agree: boolean;
  readonly ticksCompared: number;
  readonly lastEqualTick: number | null;
  readonly logs: { readonly identical: boolean; readonly firstDifference: LogDifference | null };
  readonly divergence: Divergence | null;
  /** One log ends before the other (a common prefix was compared). */
  readonly endedEarly: { readonly side: 'a' | 'b'; readonly lastTick: number | null } | null;
  /** First tick whose digest, as recorded in each side's log, differs from that side's replay. */
  readonly recordedMismatch: { readonly a: number | null; readonly b: number | null };
  /** When the replays agree but a log's recorded digests do not: verify of that log. */
  readonly recordedVerify: { readonly side: 'a' | 'b'; readonly result: VerifyResult } | null;
  readonly elapsedMs: number;
}

function firstTickOf(source: ReplaySource): number {
  return source.snapshot === null ? 0 : source.snapshot.tick + 1;
}

/** Reads two sides' tick groups in step: one stream when they share a source. */
class PairReader {
  private readonly itA: AsyncIterator<TickGroup>;
  private readonly itB: AsyncIterator<TickGroup> | null;
  private pendingA: TickGroup | null = null;
  private pendingB: TickGroup | null = null;

  constructor(itA: AsyncIterator<TickGroup>, itB: AsyncIterator<TickGroup> | null) {
    this.itA = itA;
    this.itB = itB;
  }

  static async open(a: Side, b: Side): Promise<{ reader: PairReader; progress: () => ReadProgress }> {
    const sa = await a.source.read();
    const itA = groupsOf(sa)[Symbol.asyncIterator]();
    if (a.source === b.source) return { reader: new PairReader(itA, null), progress: () => sa.progress() };
    const sb = await b.source.read();
    return { reader: new PairReader(itA, groupsOf(sb)[Symbol.asyncIterator]()), progress: () => sa.progress() };
  }

  private async nextA(): Promise<TickGroup | null> {
    if (this.pendingA !== null) {
      const g = this.pendingA;
      this.pendingA = null;
      return g;
    }
    const r = await this.itA.next();
    return r.done ? null : r.value;
  }

  private async nextB(): Promise<TickGroup | null> {
    if (this.pendingB !== null) {
      const g = this.pendingB;
      this.pendingB = null;
      return g;
    }
    const r = await this.itB!.next();
    return r.done ? null : r.value;
  }

  /** Apply one side's groups before `tick` (the other side starts later, from a snapshot). */
  async skip(side: 'a' | 'b', m: ShardMachine, tick: number): Promise<void> {
    for (;;) {
      const g = side === 'a' ? await this.nextA() : await this.nextB();
      if (g === null) return;
      if (g.tick >= tick) {
        if (side === 'a') this.pendingA = g;
        else this.pendingB = g;
        return;
      }
      applyGroup(m, g);
    }
  }

  async next(): Promise<[TickGroup | null, TickGroup | null]> {
    const ga = await this.nextA();
    if (this.itB === null) return [ga, ga];
    return [ga, await this.nextB()];
  }

  async close(): Promise<void> {
    await this.itA.return?.();
    await this.itB?.return?.();
  }
}

const COMPARED_FIELDS = ['shard', 'seq', 'epoch', 'tick', 'kind', 'type', 'version', 'origin', 'ingestId', 'payload', 'digest'] as const;

/** The fields in which two entries differ, leaving out prev/hash (consequences of the rest). */
function entryFieldsDiffering(x: Entry, y: Entry): string[] {
  const out: string[] = [];
  for (const f of COMPARED_FIELDS) {
    const vx = f === 'payload' ? JSON.stringify(summarise(x, 0).payload) : f === 'digest' ? toHex(x.digest) : x[f];
    const vy = f === 'payload' ? JSON.stringify(summarise(y, 0).payload) : f === 'digest' ? toHex(y.digest) : y[f];
    if (vx !== vy) out.push(f);
  }
  if (out.length === 0 && !hashEquals(x.prev, y.prev)) out.push('prev');
  return out;
}

export async function bisect(a: Side, b: Side, options: BisectOptions = {}): Promise<BisectResult> {
  const t0 = performance.now();
  const limits = options.limits ?? {};
  const shared = a.source === b.source;
  const mA = startMachine(a.source, a.build.registry);
  const mB = startMachine(b.source, b.build.registry);
  const { reader, progress } = await PairReader.open(a, b);
  let ticksCompared = 0;
  let lastEqualTick: number | null = null;
  let firstDifference: LogDifference | null = null;
  let divergence: Divergence | null = null;
  let endedEarly: BisectResult['endedEarly'] = null;
  const recordedMismatch = { a: null as number | null, b: null as number | null };
  let entries = 0;
  let nextProgressAt = 0;
  try {
    // Align: a side that starts from a snapshot at tick s is compared from tick s+1 on; the
    // other side replays up to there first.
    const startA = firstTickOf(a.source);
    const startB = firstTickOf(b.source);
    if (!shared && startA !== startB) {
      if (startA < startB) await reader.skip('a', mA, startB);
      else await reader.skip('b', mB, startA);
      const da = mA.lastDigest;
      const db = mB.lastDigest;
      const tick = Math.max(startA, startB) - 1;
      if (da === null || db === null || da.tick !== tick || db.tick !== tick) {
        throw new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `Cannot compare ${a.source.info.spec} and ${b.source.info.spec}: one starts from a snapshot at tick ${tick} and the other does not reach that tick`, { tick });
      }
      if (!hashEquals(da.digest, db.digest)) {
        divergence = { tick, atStart: true, digestA: toHex(da.digest), digestB: toHex(db.digest), method: 'start', culprit: null, reason: `the sides already differ at tick ${tick}, where ${startA > startB ? 'A' : 'B'} starts from a snapshot; entries before it are not in both sources`, diff: diffStates(mA, mB, limits) };
      }
    }
    while (divergence === null) {
      const [ga, gb] = await reader.next();
      if (ga === null || gb === null) {
        if (ga !== null || gb !== null) endedEarly = { side: ga === null ? 'a' : 'b', lastTick: (ga === null ? mA : mB).lastDigest?.tick ?? null };
        break;
      }
      if (!shared && firstDifference === null) firstDifference = compareGroups(ga, gb);
      if (ga.tick !== gb.tick) {
        divergence = { tick: Math.min(ga.tick, gb.tick), atStart: false, digestA: null, digestB: null, method: 'start', culprit: null, reason: `the logs are not aligned: A continues with tick ${ga.tick}, B with tick ${gb.tick}`, diff: null };
        break;
      }
      noteRecorded(ga, mA, 'a', recordedMismatch);
      noteRecorded(gb, mB, 'b', recordedMismatch);
      const r = localiseTick(mA, mB, ga, gb, limits);
      entries += ga.entries.length;
      if (options.onProgress && entries >= nextProgressAt) {
        options.onProgress(progress(), entries);
        nextProgressAt = entries + 4096;
      }
      const failed = r.culprit?.failure != null;
      if (!failed && !(ga.closed && gb.closed)) continue; // an open last tick: no digest to compare
      ticksCompared++;
      if (!failed && r.digestA !== null && r.digestB !== null && hashEquals(r.digestA, r.digestB)) {
        lastEqualTick = ga.tick;
        continue;
      }
      divergence = { tick: ga.tick, atStart: false, digestA: r.digestA === null ? null : toHex(r.digestA), digestB: r.digestB === null ? null : toHex(r.digestB), method: 'lockstep', culprit: r.culprit, reason: r.reason, diff: null };
    }
  } finally {
    await reader.close();
  }
  let recordedVerify: BisectResult['recordedVerify'] = null;
  if (divergence === null) {
    const side = recordedMismatch.b !== null ? 'b' : recordedMismatch.a !== null ? 'a' : null;
    if (side !== null) {
      const s = side === 'a' ? a : b;
      recordedVerify = { side, result: await verify(s.source, { build: s.build, recorders: options.recorders ?? [], checkpointEveryEntries: options.checkpointEveryEntries, limits }) };
    }
  }
  return {
    a: { source: a.source.info, build: a.build.name },
    b: { source: b.source.info, build: b.build.name },
    shared,
    agree: divergence === null && recordedVerify === null,
    ticksCompared,
    lastEqualTick,
    logs: { identical: shared || firstDifference === null, firstDifference },
    divergence,
    endedEarly,
    recordedMismatch,
    recordedVerify,
    elapsedMs: performance.now() - t0,
  };
}

function compareGroups(ga: TickGroup, gb: TickGroup): LogDifference | null {
  const n = Math.max(ga.entries.length, gb.entries.length);
  for (let i = 0; i < n; i++) {
    const x = ga.entries[i];
    const y = gb.entries[i];
    if (x !== undefined && y !== undefined && hashEquals(x.hash, y.hash)) continue;
    if (x === undefined || y === undefined) {
      const e = (x ?? y)!;
      return { seq: e.seq, tick: e.tick, fields: ['(missing)'], a: x ? summarise(x, i) : null, b: y ? summarise(y, i) : null };
    }
    return { seq: x.seq, tick: x.tick, fields: entryFieldsDiffering(x, y), a: summarise(x, i), b: summarise(y, i) };
  }
  return null;
}

/** Before applying a closed group: does the digest it carries (of the previous tick) match this side's replay? */
function noteRecorded(g: TickGroup, m: ShardMachine, side: 'a' | 'b', out: { a: number | null; b: number | null }): void {
  if (out[side] !== null || !g.closed) return;
  const carried = g.entries[g.entries.length - 1]!.digest;
  const mine = m.lastDigest;
  if (carried !== null && mine !== null && mine.tick === g.tick - 1 && !hashEquals(carried, mine.digest)) out[side] = mine.tick;
}





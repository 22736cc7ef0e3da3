// verify: replay a log and compare every tick digest with the one the log carries (a `tick`
// entry closing T carries the leader's digest of T-1), then localise the first desync.
//
// What can honestly be said about a desync from a log alone:
// - The first diverging tick, exactly: the digests of every earlier tick agreed, so the
//   recorder's state at the start of that tick was this replay's state (up to a 128-bit hash
//   collision), and they differ at its end.
// - Not, by itself, the entry or the records: the log carries one digest per tick, not the
//   recorder's records. Naming them needs the recorder's state after each entry, which only
//   the recorder's code can produce. So verify tries the builds it knows that run the same
//   reducer and version with other code (`--recorded-by`, or the known builds: an older
//   release, a known-bad variant) and accepts one as the recorder only if it reproduces every
//   digest the log carries up to the desync, the differing one included. Such a build is then
//   replayed next to this one entry by entry through the diverging tick, which names the entry
//   and the records field by field (expected = recorded side, actual = this build).
// - When no build reproduces the recording, verify says so and lists the suspects: the entries
//   of the diverging tick with the records each one changed in this replay (the recorder
//   diverged while applying one of them), and checks this build against itself (the tick
//   replayed from a restored snapshot, and in checked mode, which names a reducer that reads
//   the clock or unseeded randomness).
import { GlobalsGuard } from '../../adapters/determinism-guard.js';
import type { ReadProgress, ReplaySource, SourceInfo } from '../../adapters/replay-source.js';
import { PlayoutError, hashEquals, toHex, type ShardMachine } from '../../core/index.js';
import type { Build } from './builds.js';
import { effectsOfTick, localiseTick, summarise, type Culprit, type EntryEffect, type EntrySummary } from './localise.js';
import type { DiffLimits } from './state-diff.js';
import { Checkpoints, applyGroup, type Checkpoint, groupsOf, machineAt, startMachine, type TickGroup } from './ticks.js';

export interface VerifyOptions {
  /** This engine's build: the reference. */
  build: Build;
  /** Candidates for the build that recorded the log. */
  recorders?: Build[];
  checkpointEveryEntries?: number;
  limits?: DiffLimits;
  onProgress?: ((p: ReadProgress, entries: number) => void) | null;
}

export interface RecorderAttempt {
  readonly build: string;
  readonly reproduced: boolean;
  readonly method: 'checkpoint' | 'full-replay';
  readonly detail: string;
}

export interface VerifyMismatch {
  /** The first tick whose recorded digest differs from this replay's. */
  readonly tick: number;
  /** The earliest tick the divergence may have started in (the tick after the last agreeing digest). */
  readonly firstPossibleTick: number;
  /** Seq of the tick entry that closed `tick`, and of the entry that carried its recorded digest. */
  readonly seq: number;
  readonly reportedBySeq: number;
  readonly recorded: string;
  readonly replayed: string;
  readonly entries: EntrySummary[];
  readonly entriesMore: number;
  /** Set when a build reproduced the recording: the entry and records where it and this build part. */
  readonly localised: { readonly build: string; readonly method: 'checkpoint' | 'full-replay'; readonly culprit: Culprit | null; readonly reason: string | null } | null;
  readonly attempts: RecorderAttempt[];
  /** When no build reproduced the recording: what each entry of the tick changed in this replay. */
  readonly suspects: EntryEffect[] | null;
  readonly selfCheck: { readonly restoredReproduces: boolean; readonly checkedMode: { readonly ok: boolean; readonly code: string | null; readonly seq: number | null; readonly message: string | null } } | null;
  readonly note: string;
}

export interface VerifyResult {
  readonly source: SourceInfo;
  readonly build: string;
  readonly agree: boolean;
  readonly entries: number;
  readonly ticks: number;
  readonly digestsChecked: number;
  readonly lastAgreedTick: number | null;
  readonly lastTick: number | null;
  readonly elapsedMs: number;
  readonly mismatch: VerifyMismatch | null;
}

const ENTRIES_LISTED_MAX = 200;

export async function verify(source: ReplaySource, options: VerifyOptions): Promise<VerifyResult> {
  const t0 = performance.now();
  const ref = options.build;
  const limits = options.limits ?? {};
  const m = startMachine(source, ref.registry);
  const cps = new Checkpoints(options.checkpointEveryEntries);
  let lastAgreed: number | null = source.snapshot === null ? null : source.snapshot.tick;
  let entries = 0;
  let ticks = 0;
  let digestsChecked = 0;
  let found: { tick: number; seq: number; next: TickGroup; recorded: Uint8Array; replayed: Uint8Array } | null = null;
  const stream = await source.read();
  let nextProgressAt = 0;
  for await (const g of groupsOf(stream)) {
    const last = g.entries[g.entries.length - 1]!;
    if (g.closed && last.digest !== null && m.lastDigest !== null && m.lastDigest.tick === g.tick - 1) {
      digestsChecked++;
      if (hashEquals(last.digest, m.lastDigest.digest)) lastAgreed = g.tick - 1;
      else {
        found = { tick: g.tick - 1, seq: m.lastDigest.seq, next: g, recorded: last.digest, replayed: m.lastDigest.digest };
        break;
      }
    }
    applyGroup(m, g);
    cps.record(m, g);
    entries += g.entries.length;
    if (g.closed) ticks++;
    if (options.onProgress && entries >= nextProgressAt) {
      options.onProgress(stream.progress(), entries);
      nextProgressAt = entries + 4096;
    }
  }
  const base = {
    source: source.info,
    build: ref.name,
    entries,
    ticks,
    digestsChecked,
    lastAgreedTick: lastAgreed,
    lastTick: m.lastDigest?.tick ?? null,
  };
  if (found === null) return { ...base, agree: true, elapsedMs: performance.now() - t0, mismatch: null };

  const T = found.tick;
  const firstPossibleTick = lastAgreed === null ? firstTickOf(source) : lastAgreed + 1;
  // Recorded digests known up to T: tick t's is carried by the tick entry closing t+1.
  const recorded = new Map<number, Uint8Array>();
  const cp = cps.at(firstPossibleTick - 1);
  const groupsToT: TickGroup[] = cp === null ? [] : cp.since.filter((g) => g.tick <= T);
  for (const g of [...groupsToT, found.next]) {
    const d = g.entries[g.entries.length - 1]!.digest;
    if (g.closed && d !== null) recorded.set(g.tick - 1, d);
  }
  const tickGroup = groupsToT.find((g) => g.tick === T) ?? null;

  const attempts: RecorderAttempt[] = [];
  let localised: VerifyMismatch['localised'] = null;
  for (const cand of options.recorders ?? []) {
    // Fast path: the candidate restored from this replay's checkpoint before the divergence
    // (its state there equals the recorder's: the digests agreed). A build whose behaviour
    // depends on more than its state (say, the order keys were inserted in) may not reproduce
    // from a restored snapshot; then it is replayed from the source's start instead.
    if (cp !== null) {
      const r = tryRecorder(cand, ref, () => machineAt(source, cand.registry, cp), () => machineAt(source, ref.registry, cp), groupsToT, firstPossibleTick, T, recorded, limits);
      attempts.push({ build: cand.name, reproduced: r.reproduced, method: 'checkpoint', detail: r.detail });
      if (r.reproduced) {
        localised = { build: cand.name, method: 'checkpoint', culprit: r.culprit, reason: r.reason };
        break;
      }
    }
    const r = await tryRecorderFromStart(source, cand, ref, cp, firstPossibleTick, T, recorded, limits);
    attempts.push({ build: cand.name, reproduced: r.reproduced, method: 'full-replay', detail: r.detail });
    if (r.reproduced) {
      localised = { build: cand.name, method: 'full-replay', culprit: r.culprit, reason: r.reason };
      break;
    }
  }

  let suspects: EntryEffect[] | null = null;
  let selfCheck: VerifyMismatch['selfCheck'] = null;
  if (localised === null && cp !== null && tickGroup !== null) {
    const before = positioned(machineAt(source, ref.registry, cp), groupsToT, T);
    const after = positioned(machineAt(source, ref.registry, cp), groupsToT, T);
    const { effects, digest } = effectsOfTick(before, after, tickGroup, limits);
    suspects = effects;
    selfCheck = { restoredReproduces: digest !== null && hashEquals(digest, found.replayed), checkedMode: checkedRun(source, ref, cp, groupsToT) };
  }

  const culprit = localised?.culprit ?? null;
  const note =
    localised !== null
      ? culprit !== null
        ? `build ${localised.build} reproduces every recorded digest up to tick ${T}; it and ${ref.name} first differ after ${culprit.entry.kind === 'tick' ? 'the tick entry' : 'entry'} seq ${culprit.entry.seq}`
        : `build ${localised.build} reproduces the recording, but no entry changes the states differently: ${localised.reason}`
      : `the log carries one digest per tick, not the recorder's records, and no known build reproduces the recorded digest of tick ${T}` +
        ` (tried: ${attempts.length === 0 ? 'none' : [...new Set(attempts.map((a) => a.build))].join(', ')}); the divergence happened while applying one of the ${tickGroup?.entries.length ?? '?'} entries of tick ${T}${firstPossibleTick < T ? ` (or of ticks ${firstPossibleTick}–${T - 1}, whose digests the log does not carry)` : ''}. ` +
        'Pass --recorded-by BUILD, or bisect against a capture replayed by the recording build, to name the entry and records';
  return {
    ...base,
    agree: false,
    elapsedMs: performance.now() - t0,
    mismatch: {
      tick: T,
      firstPossibleTick,
      seq: found.seq,
      reportedBySeq: found.next.entries[found.next.entries.length - 1]!.seq,
      recorded: toHex(found.recorded),
      replayed: toHex(found.replayed),
      entries: (tickGroup?.entries ?? []).slice(0, ENTRIES_LISTED_MAX).map(summarise),
      entriesMore: Math.max(0, (tickGroup?.entries.length ?? 0) - ENTRIES_LISTED_MAX),
      localised,
      attempts,
      suspects,
      selfCheck,
      note,
    },
  };
}

function firstTickOf(source: ReplaySource): number {
  return source.snapshot === null ? 0 : source.snapshot.tick + 1;
}

/** Apply the groups before `tick` (a machine at a checkpoint, brought to the start of `tick`). */
function positioned(m: ShardMachine, groups: readonly TickGroup[], tick: number): ShardMachine {
  for (const g of groups) if (g.tick < tick) applyGroup(m, g);
  return m;
}

interface Attempt {
  reproduced: boolean;
  detail: string;
  culprit: Culprit | null;
  reason: string | null;
}

/**
 * Run candidate and reference side by side over `groups` (from the same starting state):
 * whole ticks before `fromTick`, entry by entry from `fromTick` to `T`. The candidate counts as
 * the recorder only if its digest equals every recorded digest on the way, T's included.
 */
function tryRecorder(cand: Build, ref: Build, makeCand: () => ShardMachine, makeRef: () => ShardMachine, groups: readonly TickGroup[], fromTick: number, T: number, recorded: ReadonlyMap<number, Uint8Array>, limits: DiffLimits): Attempt {
  let a: ShardMachine;
  let b: ShardMachine;
  try {
    a = makeCand();
    b = makeRef();
  } catch (err) {
    if (err instanceof PlayoutError) return { reproduced: false, detail: `${cand.name} cannot start: ${err.code}: ${err.message}`, culprit: null, reason: null };
    throw err;
  }
  let culprit: Culprit | null = null;
  let reason: string | null = null;
  for (const g of groups) {
    if (g.tick > T) break;
    if (g.tick < fromTick) {
      try {
        applyGroup(a, g);
      } catch (err) {
        if (err instanceof PlayoutError) return { reproduced: false, detail: `${cand.name} fails at seq ${err.seq ?? '?'}: ${err.code}`, culprit: null, reason: null };
        throw err;
      }
      applyGroup(b, g);
    } else {
      const r = localiseTick(a, b, g, g, limits);
      if (culprit === null && r.culprit !== null) culprit = r.culprit;
      if (r.culprit?.failure?.side === 'a') return { reproduced: false, detail: `${cand.name} fails at seq ${r.culprit.entry.seq}: ${r.culprit.failure.code}`, culprit: null, reason: null };
      if (g.tick === T && culprit === null) reason = r.reason;
    }
    if (g.closed) {
      const want = recorded.get(g.tick);
      const got = a.lastDigest;
      if (want !== undefined && (got === null || got.tick !== g.tick || !hashEquals(got.digest, want))) {
        return { reproduced: false, detail: `${cand.name} computes ${got === null ? 'no digest' : toHex(got.digest)} for tick ${g.tick}, the log records ${toHex(want)}`, culprit: null, reason: null };
      }
    }
  }
  if (a.lastDigest === null || a.lastDigest.tick !== T) return { reproduced: false, detail: `${cand.name} did not reach the end of tick ${T}`, culprit: null, reason: null };
  return { reproduced: true, detail: `${cand.name} reproduces the recorded digests of ticks ${fromTick}–${T}`, culprit, reason };
}

/**
 * The candidate replayed from the source's start (no restored snapshot), checked against every
 * recorded digest on the way; the reference joins it from the checkpoint.
 */
async function tryRecorderFromStart(source: ReplaySource, cand: Build, ref: Build, cp: Checkpoint | null, fromTick: number, T: number, recorded: Map<number, Uint8Array>, limits: DiffLimits): Promise<Attempt> {
  let a: ShardMachine;
  try {
    a = startMachine(source, cand.registry);
  } catch (err) {
    if (err instanceof PlayoutError) return { reproduced: false, detail: `${cand.name} cannot start: ${err.code}: ${err.message}`, culprit: null, reason: null };
    throw err;
  }
  // The reference is positioned at the start of `fromTick` from the checkpoint when there is
  // one (its state there is the recorder's); otherwise it replays from the start alongside.
  let b: ShardMachine | null = cp === null ? startMachine(source, ref.registry) : null;
  const stream = await source.read();
  const tail: TickGroup[] = [];
  for await (const g of groupsOf(stream)) {
    const d = g.closed ? g.entries[g.entries.length - 1]!.digest : null;
    if (d !== null) {
      recorded.set(g.tick - 1, d);
      // Before fromTick the recorded digests are this build's too: the candidate must match them.
      const got = a.lastDigest;
      if (g.tick - 1 < fromTick && got !== null && got.tick === g.tick - 1 && !hashEquals(got.digest, d)) {
        return { reproduced: false, detail: `${cand.name} computes ${toHex(got.digest)} for tick ${got.tick}, the log records ${toHex(d)}`, culprit: null, reason: null };
      }
    }
    if (g.tick > T) break;
    if (g.tick >= fromTick) {
      tail.push(g);
      continue;
    }
    try {
      applyGroup(a, g);
    } catch (err) {
      if (err instanceof PlayoutError) return { reproduced: false, detail: `${cand.name} fails at seq ${err.seq ?? '?'}: ${err.code}`, culprit: null, reason: null };
      throw err;
    }
    if (b !== null) applyGroup(b, g);
  }
  if (b === null) b = positioned(machineAt(source, ref.registry, cp!), cp!.since, fromTick);
  return tryRecorder(cand, ref, () => a, () => b!, tail, fromTick, T, recorded, limits);
}

/** The reference replayed through the diverging tick in checked mode (poisoned globals, frozen reads, full digests). */
function checkedRun(source: ReplaySource, ref: Build, cp: Checkpoint, groups: readonly TickGroup[]): { ok: boolean; code: string | null; seq: number | null; message: string | null } {
  const m = machineAt(source, ref.registry, cp, { checked: { guard: new GlobalsGuard(), fullDigestEveryTicks: 1 } });
  try {
    for (const g of groups) applyGroup(m, g);
    return { ok: true, code: null, seq: null, message: null };
  } catch (err) {
    if (err instanceof PlayoutError) return { ok: false, code: err.code, seq: err.seq, message: err.message };
    throw err;
  }
}

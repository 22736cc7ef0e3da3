// Localising a divergence inside one tick: two machines (side A and side B) replay the tick
// entry by entry, their tables are flushed after every entry, and the first entry after which
// their table sums or rng states differ is the culprit; the differing records are then named
// field by field through the bucket sums (state-diff.ts).
//
// Flushing between entries is sound: a table's sums are updated incrementally (subtract the old
// record hash, add the new one), so flushing a key twice in a tick ends in the same sums as
// flushing it once, and the tick digest is unchanged.
import { PlayoutError, toHex, type Entry, type ShardMachine } from '../../core/index.js';
import { diffStates, flushTables, jsonValue, statesEqual, type DiffLimits, type StateDiff } from './state-diff.js';
import type { TickGroup } from './ticks.js';

export interface EntrySummary {
  readonly seq: number;
  readonly tick: number;
  readonly kind: Entry['kind'];
  readonly type: string | null;
  readonly version: number | null;
  readonly origin: string | null;
  readonly ingestId: string | null;
  readonly payload: unknown;
  /** Position of the entry inside its tick (0-based). */
  readonly index: number;
}

export function summarise(e: Entry, index: number): EntrySummary {
  return { seq: e.seq, tick: e.tick, kind: e.kind, type: e.type, version: e.version, origin: e.origin, ingestId: e.ingestId, payload: jsonValue(e.payload), index };
}

/** One-line description of an entry: `seq 1234 input player.move@1 (ingest abc)`. */
export function describeEntry(e: EntrySummary): string {
  const what = e.kind === 'input' ? `input ${e.type}@${e.version}` : e.kind === 'tick' ? 'tick (onTick)' : e.kind;
  return `seq ${e.seq} ${what}${e.ingestId !== null ? ` ingestId ${e.ingestId}` : ''}${e.origin !== null ? ` from ${e.origin}` : ''}`;
}

export interface SideFailure {
  readonly side: 'a' | 'b';
  readonly code: string;
  readonly message: string;
}

export interface Culprit {
  readonly tick: number;
  /** The first entry after which the two states differ (side A's entry). */
  readonly entry: EntrySummary;
  /** Side B's entry at the same position, when the logs differ there (else null). */
  readonly entryB: EntrySummary | null;
  /** Entries of the tick applied before it, after each of which the states were equal. */
  readonly entriesBefore: number;
  /** A reducer call that threw on one side only, if that is how they differ. */
  readonly failure: SideFailure | null;
  readonly diff: StateDiff;
}

export interface TickLocalisation {
  /** Null when the states were equal after every entry of the tick (see `reason`). */
  readonly culprit: Culprit | null;
  /** Why the digests differ when no entry changed the states differently. */
  readonly reason: string | null;
  /** Digests of the tick after the entry-level run, to check it reproduced the original run. */
  readonly digestA: Uint8Array | null;
  readonly digestB: Uint8Array | null;
}

function applyCatching(m: ShardMachine, e: Entry): PlayoutError | null {
  try {
    m.apply(e);
    return null;
  } catch (err) {
    if (err instanceof PlayoutError) return err;
    throw err;
  }
}

/**
 * Replay one tick on two machines positioned at its start, entry by entry, and find the first
 * entry after which their states differ. Both groups are applied to the end so the tick's
 * digests can be checked against the run being localised.
 */
export function localiseTick(a: ShardMachine, b: ShardMachine, ga: TickGroup, gb: TickGroup, limits: DiffLimits = {}): TickLocalisation {
  const n = Math.max(ga.entries.length, gb.entries.length);
  let culprit: Culprit | null = null;
  let failedA: PlayoutError | null = null;
  let failedB: PlayoutError | null = null;
  for (let i = 0; i < n; i++) {
    const ea = ga.entries[i];
    const eb = gb.entries[i];
    if (ea !== undefined && failedA === null) failedA = applyCatching(a, ea);
    if (eb !== undefined && failedB === null) failedB = applyCatching(b, eb);
    if (culprit !== null) continue;
    const failure: SideFailure | null =
      failedA !== null && failedB === null ? { side: 'a', code: failedA.code, message: failedA.message } : failedB !== null && failedA === null ? { side: 'b', code: failedB.code, message: failedB.message } : null;
    if (failedA !== null && failedB !== null) {
      // Both sides refuse the same entry: not a difference between them but an unreplayable log.
      throw failedA;
    }
    if (failure === null) {
      flushTables(a);
      flushTables(b);
      if (statesEqual(a, b)) continue;
    }
    const e = (ea ?? eb)!;
    const sameEntry = ea !== undefined && eb !== undefined && ea.hash.every((x, k) => x === eb.hash[k]);
    culprit = {
      tick: e.tick,
      entry: summarise(e, i),
      entryB: ea === undefined || eb === undefined || sameEntry ? null : summarise(eb, i),
      entriesBefore: i,
      failure,
      diff: diffStates(a, b, limits),
    };
    if (failure !== null) break;
  }
  let reason: string | null = null;
  if (culprit === null) {
    const da = a.lastDigest;
    const db = b.lastDigest;
    if (da !== null && db !== null && da.seq !== db.seq) reason = `the tables and rng are equal after every entry, but A closes tick ${ga.tick} at seq ${da.seq} and B at seq ${db.seq}: the logs have different entries (the digest covers the seq)`;
    else if (da !== null && db !== null && da.reducerVersion !== db.reducerVersion) reason = `the tables and rng are equal after every entry, but A ran reducer version ${da.reducerVersion} and B version ${db.reducerVersion} (the digest covers the version)`;
    else reason = 'the tables and rng are equal after every entry of the tick';
  }
  return {
    culprit,
    reason,
    digestA: failedA === null && a.lastDigest !== null && a.lastDigest.tick === ga.tick ? a.lastDigest.digest : null,
    digestB: failedB === null && b.lastDigest !== null && b.lastDigest.tick === gb.tick ? b.lastDigest.digest : null,
  };
}

/** What each entry of a tick changed, on one machine: for suspects when the other side is unknown. */
export interface EntryEffect {
  readonly entry: EntrySummary;
  readonly changed: StateDiff;
}

/**
 * Replay a tick on `after` while `before` lags one entry behind (both positioned at the tick's
 * start, same build), and diff them after every entry: the records each entry changed.
 */
export function effectsOfTick(before: ShardMachine, after: ShardMachine, g: TickGroup, limits: DiffLimits = {}): { effects: EntryEffect[]; digest: Uint8Array | null } {
  const effects: EntryEffect[] = [];
  for (let i = 0; i < g.entries.length; i++) {
    const e = g.entries[i]!;
    after.apply(e);
    flushTables(after);
    effects.push({ entry: summarise(e, i), changed: diffStates(before, after, limits) });
    before.apply(e);
  }
  return { effects, digest: after.lastDigest !== null && after.lastDigest.tick === g.tick ? after.lastDigest.digest : null };
}

export function hex(d: Uint8Array | null): string | null {
  return d === null ? null : toHex(d);
}

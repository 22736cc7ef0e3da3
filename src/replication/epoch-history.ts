// Epoch history: which region sequenced which part of a shard's log (DESIGN.md §6).
//
// Epoch 1 starts at the genesis (seq 1); every failover appends an `epoch` entry that starts the
// next epoch and names the last seq the previous epochs kept (`lastSeqPrevEpoch`). The history is
// the list of those starts, one EpochRecord per epoch, kept per shard in the store's meta under
// EPOCHS_META_KEY: it outlives log truncation below snapshots, and it is what two regions compare
// to find where their logs part (the idea of Kafka's leader-epoch checkpoint, KIP-101: the end
// of an epoch in the reference history is where a region holding more of that epoch diverged).
//
// The node keeps it in step with the log: it appends the record of every epoch (or genesis)
// entry it makes durable, and drops records above a truncation (`truncateHistory`).
import type { Entry } from '../core/entry.js';
import { EpochPayloadSchema } from '../core/entry.js';
import { PlayoutError, assert, describe } from '../core/errors.js';
import { ZERO_HASH, toHex } from '../core/hash.js';
import { EpochRecordSchema, type EpochRecord } from '../ports/failover-client.js';
import { z } from 'zod';

/** Store meta key of a shard's epoch history (an array of EpochRecord, oldest first). */
export const EPOCHS_META_KEY = 'failover.epochs';

export const ZERO_HASH_HEX = toHex(ZERO_HASH);

/** What a region holds, as far as comparing histories goes. */
export interface LogView {
  /** Highest durable seq (0: nothing). */
  readonly head: number;
  /** Epoch records of the epochs the log holds, oldest first. */
  readonly epochs: readonly EpochRecord[];
}

/**
 * The record of an epoch's first entry: a genesis (whose leader the caller names: the genesis
 * entry does not carry it) or an `epoch` entry. `prevHash` is the entry's own `prev` field, which
 * the chain guarantees is the hash at lastSeqPrevEpoch.
 */
export function epochRecordOf(entry: Entry, options: { leader?: string | null; atMs?: number | null; failoverId?: string | null } = {}): EpochRecord {
  if (entry.kind === 'genesis') {
    const leader = options.leader ?? null;
    if (leader === null) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot record the first epoch of shard "${entry.shard}": the genesis entry does not name its leader and none was given`, { shard: entry.shard, seq: entry.seq, path: 'leader', expected: 'a region id', received: 'null' });
    }
    return { epoch: entry.epoch, leader, firstSeq: entry.seq, lastSeqPrevEpoch: entry.seq - 1, prevHash: toHex(entry.prev), entryHash: toHex(entry.hash), tick: entry.tick, atMs: options.atMs ?? null, failoverId: null };
  }
  if (entry.kind !== 'epoch') {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot record an epoch from entry ${entry.seq} of shard "${entry.shard}": expected a genesis or epoch entry, received ${entry.kind}`, { shard: entry.shard, seq: entry.seq, path: 'kind', expected: 'genesis | epoch', received: entry.kind });
  }
  const p = EpochPayloadSchema.safeParse(entry.payload);
  if (!p.success || p.data.epoch !== entry.epoch || p.data.lastSeqPrevEpoch !== entry.seq - 1) {
    throw new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot record the epoch of entry ${entry.seq} of shard "${entry.shard}": expected payload {epoch: ${entry.epoch}, leader, lastSeqPrevEpoch: ${entry.seq - 1}}, received ${JSON.stringify(entry.payload)}`, {
      shard: entry.shard,
      seq: entry.seq,
      path: 'payload',
      expected: `{epoch: ${entry.epoch}, leader, lastSeqPrevEpoch: ${entry.seq - 1}}`,
      received: describe(entry.payload),
    });
  }
  return { epoch: entry.epoch, leader: p.data.leader, firstSeq: entry.seq, lastSeqPrevEpoch: p.data.lastSeqPrevEpoch, prevHash: toHex(entry.prev), entryHash: toHex(entry.hash), tick: entry.tick, atMs: options.atMs ?? null, failoverId: options.failoverId ?? null };
}

/**
 * The history with `record` appended. The same record again is a no-op (a replayed append) that
 * only fills in what the held one lacks (a follower records an epoch from its entry alone, then
 * learns when and by which failover it started from the leader's record); a different record for
 * an epoch already held is a fork; epochs and first seqs only grow.
 */
export function appendEpochRecord(history: readonly EpochRecord[], record: EpochRecord, shard: string): EpochRecord[] {
  assert(record.firstSeq === record.lastSeqPrevEpoch + 1, 'an epoch starts right after the last seq of the previous one');
  const same = history.find((r) => r.epoch === record.epoch);
  if (same !== undefined) {
    if (same.entryHash === record.entryHash && same.firstSeq === record.firstSeq) {
      const merged = { ...same, atMs: same.atMs ?? record.atMs, failoverId: same.failoverId ?? record.failoverId };
      return history.map((r) => (r === same ? merged : r));
    }
    throw new PlayoutError('PLAYOUT_FORK', `Cannot record epoch ${record.epoch} of shard "${shard}" starting at seq ${record.firstSeq} (entry ${record.entryHash}): this region holds epoch ${record.epoch} starting at seq ${same.firstSeq} (entry ${same.entryHash})`, {
      shard,
      seq: record.firstSeq,
      path: 'epoch',
      expected: `${same.firstSeq}:${same.entryHash}`,
      received: `${record.firstSeq}:${record.entryHash}`,
    });
  }
  const last = history[history.length - 1];
  if (last !== undefined && (record.epoch <= last.epoch || record.firstSeq <= last.firstSeq)) {
    throw new PlayoutError('PLAYOUT_OUT_OF_ORDER', `Cannot record epoch ${record.epoch} of shard "${shard}" at seq ${record.firstSeq}: the history ends with epoch ${last.epoch} at seq ${last.firstSeq}; epochs and their first seqs only grow`, {
      shard,
      seq: record.firstSeq,
      path: 'epoch',
      expected: `epoch > ${last.epoch} at seq > ${last.firstSeq}`,
      received: `epoch ${record.epoch} at seq ${record.firstSeq}`,
    });
  }
  return [...history, record];
}

/** The history after the log was truncated above `seqMax` (epochs starting beyond it are gone). */
export function truncateHistory(history: readonly EpochRecord[], seqMax: number): EpochRecord[] {
  return history.filter((r) => r.firstSeq <= seqMax);
}

/** The record of the epoch that holds `seq`, or null before the first. */
export function epochAt(history: readonly EpochRecord[], seq: number): EpochRecord | null {
  let found: EpochRecord | null = null;
  for (const r of history) {
    if (r.firstSeq > seq) break;
    found = r;
  }
  return found;
}

/** Last seq of `epoch` in a log of `head` entries: the next epoch's lastSeqPrevEpoch, or the head. */
export function endOfEpoch(history: readonly EpochRecord[], epoch: number, head: number): number | null {
  const i = history.findIndex((r) => r.epoch === epoch);
  if (i < 0) return null;
  const next = history[i + 1];
  return next === undefined ? head : next.lastSeqPrevEpoch;
}

/** Epoch of the entry at the head (0 for an empty log). */
export function headEpochOf(view: LogView): number {
  return view.head === 0 ? 0 : (epochAt(view.epochs, view.head)?.epoch ?? 0);
}

/**
 * Order of two logs for choosing the one a new leader continues: the later epoch of the head entry
 * first, then the longer log (Raft's "at least as up to date"). A log holding more entries of an
 * older epoch is not ahead: those entries lie beyond the end of their epoch.
 */
export function compareLogs(aHeadEpoch: number, aHead: number, bHeadEpoch: number, bHead: number): number {
  if (aHeadEpoch !== bHeadEpoch) return aHeadEpoch < bHeadEpoch ? -1 : 1;
  return aHead === bHead ? 0 : aHead < bHead ? -1 : 1;
}

/**
 * Where `local` parts from `ref`: the highest seq local may keep, when local holds entries that are
 * not in ref's history; null when local is a prefix of ref (or extends it within ref's latest
 * epoch, i.e. is ahead of it in the same history).
 *
 * Walks local's epochs from the newest: the newest one ref also holds (same epoch, same first entry)
 * is the common epoch; local keeps up to the end of that epoch in ref's history (the next epoch's
 * lastSeqPrevEpoch there) or its own end of it, whichever is lower. Local epochs ref never had (an
 * epoch entry appended by a candidate whose promotion was superseded) are divergent as a whole.
 * The hashes are the caller's to check: the entry at the returned seq must hash to the next ref
 * epoch's `prevHash`, which the chain check verifies when local continues from there.
 */
export function divergencePoint(local: LogView, ref: LogView): number | null {
  if (local.head === 0) return null;
  let localEnd = local.head;
  for (let i = local.epochs.length - 1; i >= 0; i--) {
    const le = local.epochs[i]!;
    if (le.firstSeq > local.head) continue;
    const j = ref.epochs.findIndex((r) => r.epoch === le.epoch);
    const re = j < 0 ? null : ref.epochs[j]!;
    if (re !== null && re.firstSeq === le.firstSeq && re.entryHash === le.entryHash) {
      const next = ref.epochs[j + 1];
      const keep = next === undefined ? localEnd : Math.min(localEnd, next.lastSeqPrevEpoch);
      return keep >= local.head ? null : keep;
    }
    // Ref never had this epoch (or had another one under its number): all of it is divergent.
    localEnd = le.lastSeqPrevEpoch;
  }
  // Not even the first epoch in common: another shard's history under the same id.
  return 0;
}

/** Check a history read from the store; corrupt values are refused, never used. */
export function parseEpochHistory(value: unknown, shard: string): EpochRecord[] {
  const r = z.array(EpochRecordSchema).safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new PlayoutError('PLAYOUT_STORE_CORRUPT', `Cannot read the epoch history of shard "${shard}" from the store: ${EPOCHS_META_KEY}.${issue.path.join('.')}: ${issue.message}`, { shard, path: `${EPOCHS_META_KEY}.${issue.path.join('.')}`, expected: issue.message, received: describe(value) });
  }
  for (let i = 1; i < r.data.length; i++) {
    const a = r.data[i - 1]!;
    const b = r.data[i]!;
    if (b.epoch <= a.epoch || b.firstSeq <= a.firstSeq || b.firstSeq !== b.lastSeqPrevEpoch + 1) {
      throw new PlayoutError('PLAYOUT_STORE_CORRUPT', `Cannot read the epoch history of shard "${shard}" from the store: record ${i} (epoch ${b.epoch} at seq ${b.firstSeq}) does not follow epoch ${a.epoch} at seq ${a.firstSeq}`, { shard, path: `${EPOCHS_META_KEY}.${i}`, expected: `epoch > ${a.epoch} at seq > ${a.firstSeq}`, received: `epoch ${b.epoch} at seq ${b.firstSeq}` });
    }
  }
  return r.data;
}

/**
 * Rebuild a history from the log itself (a store without the meta value, or a check of it): the
 * genesis and every epoch entry. `firstLeader` names the genesis's leader.
 */
export function historyFromEntries(entries: Iterable<Entry>, firstLeader: string): EpochRecord[] {
  let history: EpochRecord[] = [];
  for (const e of entries) {
    if (e.kind === 'genesis') history = appendEpochRecord(history, epochRecordOf(e, { leader: firstLeader }), e.shard);
    else if (e.kind === 'epoch') history = appendEpochRecord(history, epochRecordOf(e), e.shard);
  }
  return history;
}

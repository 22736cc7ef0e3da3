// A region that learns of an epoch its log is not part of (a returning old leader that kept
// sequencing while it was cut off, or a follower that kept taking its entries) holds a divergent
// suffix: entries beyond the last seq the new epoch kept. DESIGN.md §6: they are truncated into a
// quarantine report that lists every one of them, the region rejoins as a follower and converges.
// Nothing is dropped silently.
//
// The node's steps, per shard, when it learns a newer epoch (an announce, a peer's epochs, or an
// epoch entry whose lastSeqPrevEpoch is below its head):
//   1. r = reconcile({head, epochs, hashAt}, refEpochs, refHead)
//   2. keep     → nothing to do; establish the epoch (fence.ts) and follow its leader.
//      conflict → stop the shard and alert (PLAYOUT_FORK): the logs differ below any epoch start.
//      truncate → stop sequencing / following the shard and wait for its writes in flight;
//                 entries = store.range(shard, r.keep + 1, head); report = quarantineReport({…, entries});
//                 write it durably (one JSON file per report, encodeQuarantineReport) BEFORE the
//                 truncation, so that a crash in between loses nothing silently; then
//                 await store.truncateAbove(shard, r.keep) (check it returns the same entries);
//                 log it, alert PLAYOUT_DIVERGENT_SUFFIX and list it in the shard's status; drop
//                 epochs above r.keep (truncateHistory) and persist them; rebuild the machine from a
//                 snapshot at or below r.keep; establish the epoch; restart the Follower from r.keep.
import type { Entry } from '../core/entry.js';
import { PlayoutError } from '../core/errors.js';
import { toHex } from '../core/hash.js';
import type { EntryRow, EpochRecord } from '../ports/failover-client.js';
import { divergencePoint, type LogView } from './epoch-history.js';

/** A region's log as reconcile reads it. */
export interface LocalLogView extends LogView {
  /** Hash (hex) of the held entry at seq, or null when not held (truncated below a snapshot). */
  hashAt(seq: number): string | null;
}

export type Reconcile =
  | { readonly action: 'keep' }
  | {
      readonly action: 'truncate';
      /** Keep [.., keep]; entries (keep, head] go to the quarantine report. */
      readonly keep: number;
      readonly count: number;
      /** The reference epoch that starts after `keep` (null when local's own later epoch was superseded). */
      readonly epoch: EpochRecord | null;
    }
  | { readonly action: 'conflict'; readonly error: PlayoutError };

/**
 * Compare a region's log with a reference history (the new leader's epochs): keep it, truncate a
 * divergent suffix, or stop on a conflict the epochs cannot explain (the hash where the reference
 * epoch starts differs from the local one).
 */
export function reconcile(shard: string, local: LocalLogView, ref: LogView): Reconcile {
  const keep = divergencePoint(local, ref);
  if (keep === null) return { action: 'keep' };
  const next = ref.epochs.find((r) => r.firstSeq === keep + 1) ?? null;
  if (next !== null && keep > 0) {
    const mine = local.hashAt(keep);
    if (mine !== null && mine !== next.prevHash) {
      return {
        action: 'conflict',
        error: new PlayoutError('PLAYOUT_FORK', `Cannot reconcile shard "${shard}" with epoch ${next.epoch} (leader ${next.leader}): it continues seq ${keep} with hash ${next.prevHash}, this region holds ${mine} there; the logs differ below the start of the epoch`, {
          shard,
          seq: keep,
          path: 'prevHash',
          expected: next.prevHash,
          received: mine,
        }),
      };
    }
  }
  return { action: 'truncate', keep, count: local.head - keep, epoch: next };
}

/** An entry as a quarantine report lists it, with the seq its input got in the new history when a client retried it. */
export interface QuarantinedEntry extends EntryRow {
  readonly resequencedAt: number | null;
}

export interface QuarantineReport {
  readonly format: 1;
  readonly shard: string;
  readonly region: string;
  readonly reason: string;
  /** The epoch whose history excludes the suffix, and its leader (null when unknown). */
  readonly epoch: number | null;
  readonly leader: string | null;
  /** The log now ends at keptSeq (its hash keptHash); the report holds (keptSeq, seqTo]. */
  readonly keptSeq: number;
  readonly keptHash: string | null;
  readonly seqFrom: number;
  readonly seqTo: number;
  readonly atMs: number;
  /** Every truncated entry, in seq order (tick and epoch entries too: nothing is left out). */
  readonly entries: readonly QuarantinedEntry[];
  /** Input entries among them … */
  readonly inputs: number;
  /** … of which this many were retried by their clients and are in the new history. */
  readonly resequenced: number;
  /**
   * The new history was searched for the inputs' ingestIds over seqs (keptSeq, resequencedCheckedTo]
   * (read from its leader when the report was written); null: it could not be searched, and
   * `resequencedAt: null` then means "not known", not "lost".
   */
  readonly resequencedCheckedTo: number | null;
}

export function entryRowOf(e: Entry): EntryRow {
  return { seq: e.seq, epoch: e.epoch, tick: e.tick, kind: e.kind, type: e.type, version: e.version, origin: e.origin, ingestId: e.ingestId, payload: e.payload, hash: toHex(e.hash) };
}

export interface QuarantineInput {
  shard: string;
  region: string;
  /** The entries LogStore.truncateAbove returned, in seq order. */
  entries: readonly Entry[];
  keptSeq: number;
  keptHash: string | null;
  epoch: EpochRecord | null;
  reason: string;
  atMs: number;
  /** The seq an ingestId has in the new history (the new leader's log), when the caller can tell. */
  resequencedAt?: (ingestId: string) => number | null;
  /** How far the new history was searched for resequencedAt (null or absent: not searched). */
  resequencedCheckedTo?: number | null;
}

export function quarantineReport(q: QuarantineInput): QuarantineReport {
  let inputs = 0;
  let resequenced = 0;
  const rows: QuarantinedEntry[] = [];
  let expected = q.keptSeq + 1;
  for (const e of q.entries) {
    if (e.seq !== expected) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot write the quarantine report of shard "${q.shard}": expected entry ${expected}, received ${e.seq}; a report lists every truncated entry`, { shard: q.shard, seq: e.seq, expected: String(expected), received: String(e.seq) });
    }
    expected++;
    let at: number | null = null;
    if (e.kind === 'input') {
      inputs++;
      if (e.ingestId !== null && q.resequencedAt !== undefined) at = q.resequencedAt(e.ingestId);
      if (at !== null) resequenced++;
    }
    rows.push({ ...entryRowOf(e), resequencedAt: at });
  }
  return {
    format: 1,
    shard: q.shard,
    region: q.region,
    reason: q.reason,
    epoch: q.epoch?.epoch ?? null,
    leader: q.epoch?.leader ?? null,
    keptSeq: q.keptSeq,
    keptHash: q.keptHash,
    seqFrom: q.keptSeq + 1,
    seqTo: q.keptSeq + rows.length,
    atMs: q.atMs,
    entries: rows,
    inputs,
    resequenced,
    resequencedCheckedTo: q.resequencedCheckedTo ?? null,
  };
}

/** The report as one JSON document (bytes in payloads as {"$hex": …}, big integers as strings). */
export function encodeQuarantineReport(report: QuarantineReport): string {
  return JSON.stringify(report, (_key, value: unknown) => {
    if (value instanceof Uint8Array) return { $hex: toHex(value) };
    if (typeof value === 'bigint') return value.toString();
    return value;
  }, 2) + '\n';
}

/** Inputs a report lists that are not in the new history: what the shard really lost. */
export function lostInputs(report: QuarantineReport): QuarantinedEntry[] {
  return report.entries.filter((e) => e.kind === 'input' && e.resequencedAt === null);
}

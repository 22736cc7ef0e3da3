// Fencing (DESIGN.md §6): per shard per region, the established epoch and at most one pending
// promise, as pure values. A node keeps the current FenceState in memory, persists every change
// under FENCE_META_KEY before acting on it (a promise must survive a crash, like a Raft vote),
// and asks `admits` about every entry before its Follower sees it.
//
// The rules:
// - A region promises epoch E to one candidate of one failover, and only when E is above every
//   epoch it knows established or promised: like a vote, so two racing failovers can never both
//   gather a majority for E. The same request again gets the same answer (retries are safe).
// - From the promise on, entries of epochs below E beyond the region's head at that moment are
//   refused: the old leader, cut off and still sequencing, cannot extend the history that the
//   majority froze. The candidate's own limit is raised to the highest fenced head so that it
//   can catch up to it.
// - Once E is established (its epoch entry exists and the region learned it), entries of older
//   epochs are admitted up to E's lastSeqPrevEpoch and refused beyond it, which is what keeps a
//   returning old leader's divergent suffix out of every follower.
// - A region leads when it is the leader of its established epoch and has promised nothing since.
import type { Entry } from '../core/entry.js';
import { PlayoutError, assert, describe } from '../core/errors.js';
import { FenceStateSchema, type EpochRecord, type FenceGrant, type FenceRequest, type FenceState, type ReleaseAnswer, type ReleaseRequest } from '../ports/failover-client.js';

/** Store meta key of a shard's FenceState. */
export const FENCE_META_KEY = 'failover.fence';

/** What a region holds when it answers a fence request (its durable head). */
export interface FenceHead {
  readonly head: number;
  /** Hash at head (null or zeros for an empty log). */
  readonly headHash: string | null;
  readonly headEpoch: number;
  readonly headTick: number;
  readonly openTick: number;
}

/** The fence of a region that knows only its history (at start, or for a new shard). */
export function initialFence(shard: string, region: string, history: readonly EpochRecord[]): FenceState {
  const last = history[history.length - 1];
  return { shard, region, epoch: last?.epoch ?? 0, leader: last?.leader ?? null, ends: history.map((r) => ({ epoch: r.epoch, lastSeqPrevEpoch: r.lastSeqPrevEpoch })), promise: null };
}

/** True when `region` may sequence: it leads the established epoch and has promised nothing since. */
export function leads(fence: FenceState, region: string): boolean {
  return fence.leader === region && fence.promise === null;
}

/** The highest epoch this region has seen, established or promised. */
export function knownEpoch(fence: FenceState): number {
  return fence.promise === null ? fence.epoch : Math.max(fence.epoch, fence.promise.epoch);
}

/**
 * Promise `request.epoch` to `request.candidate`. Returns the new FenceState, which the node
 * persists before answering with `grantOf`. Throws PLAYOUT_FENCE_CONFLICT when the epoch is
 * established already, promised to another candidate or failover, or below a promise.
 */
export function promise(fence: FenceState, request: FenceRequest, head: FenceHead, nowMs: number): FenceState {
  const { epoch, candidate, failoverId } = request;
  const conflict = (why: string, expected: string): never => {
    throw new PlayoutError('PLAYOUT_FENCE_CONFLICT', `Region ${fence.region} cannot fence shard "${fence.shard}" at epoch ${epoch} for ${candidate} (failover ${failoverId}): ${why}`, {
      shard: fence.shard,
      path: 'body.epoch',
      expected,
      received: `epoch ${epoch} for ${candidate}`,
    });
  };
  if (epoch <= fence.epoch) conflict(`epoch ${fence.epoch} is already established here (leader ${fence.leader ?? 'unknown'})`, `epoch > ${fence.epoch}`);
  const p = fence.promise;
  if (p !== null) {
    if (epoch < p.epoch) conflict(`it promised the later epoch ${p.epoch} to ${p.candidate} (failover ${p.failoverId})`, `epoch > ${p.epoch}`);
    if (epoch === p.epoch) {
      if (p.candidate === candidate && p.failoverId === failoverId) return fence;
      conflict(`it promised epoch ${p.epoch} to ${p.candidate} (failover ${p.failoverId})`, `epoch ${p.epoch} for ${p.candidate} (failover ${p.failoverId}), or a later epoch`);
    }
  }
  // The limit is the durable head now (a superseded promise's limit, raised for a catch-up that
  // will not finish, is dropped: its candidate will not lead).
  return { ...fence, promise: { epoch, candidate, failoverId, seqMax: head.head, atMs: Math.max(0, Math.floor(nowMs)) } };
}

/** The answer to a granted fence request (after the new FenceState is durable). */
export function grantOf(fence: FenceState, head: FenceHead, wasLeader: boolean, epochs: readonly EpochRecord[]): FenceGrant {
  const p = fence.promise;
  assert(p !== null, 'a grant answers a promise');
  return {
    region: fence.region,
    shard: fence.shard,
    epoch: p.epoch,
    candidate: p.candidate,
    failoverId: p.failoverId,
    head: head.head,
    headHash: head.head === 0 ? null : head.headHash,
    headEpoch: head.headEpoch,
    headTick: head.headTick,
    openTick: head.openTick,
    wasLeader,
    fence,
    epochs: [...epochs],
  };
}

/**
 * Drop the promise made to `request.failoverId` for `request.epoch` (a failover that did not gather
 * a majority gives its promises back, so the old leader may sequence again). Any other promise is
 * kept: a late release of a superseded failover must not undo its successor's.
 */
export function release(fence: FenceState, request: ReleaseRequest): ReleaseAnswer {
  const p = fence.promise;
  if (p === null || p.epoch !== request.epoch || p.failoverId !== request.failoverId) return { released: false, fence };
  return { released: true, fence: { ...fence, promise: null } };
}

/**
 * The candidate raises its own limit to the highest fenced head so that it can catch up to it.
 * Only the candidate of the pending promise may, for that promise.
 */
export function extendForCatchUp(fence: FenceState, request: { epoch: number; failoverId: string; seqMax: number }): FenceState {
  const p = fence.promise;
  if (p === null || p.epoch !== request.epoch || p.failoverId !== request.failoverId || p.candidate !== fence.region) {
    throw new PlayoutError('PLAYOUT_FENCE_CONFLICT', `Region ${fence.region} cannot catch up for epoch ${request.epoch} (failover ${request.failoverId}) of shard "${fence.shard}": ${p === null ? 'it holds no promise' : `it promised epoch ${p.epoch} to ${p.candidate} (failover ${p.failoverId})`}`, {
      shard: fence.shard,
      path: 'body.failoverId',
      expected: p === null ? 'a promise made to this region' : `epoch ${p.epoch}, failover ${p.failoverId}, candidate ${p.candidate}`,
      received: `epoch ${request.epoch}, failover ${request.failoverId}`,
    });
  }
  if (request.seqMax <= p.seqMax) return fence;
  return { ...fence, promise: { ...p, seqMax: request.seqMax } };
}

/**
 * Learn that `record.epoch` is established (its epoch entry was appended here, announced by the
 * coordinator, or seen in a peer's history). Older epochs end at its lastSeqPrevEpoch; a promise
 * for it (or below) is fulfilled; a promise for a later epoch stays.
 */
export function establish(fence: FenceState, record: EpochRecord): FenceState {
  const known = fence.ends.some((e) => e.epoch === record.epoch);
  if (record.epoch <= fence.epoch && known) return fence;
  // An older epoch learned late (from a peer's whole history) still tightens where the epochs
  // before it end.
  const ends = known ? fence.ends : [...fence.ends, { epoch: record.epoch, lastSeqPrevEpoch: record.lastSeqPrevEpoch }].sort((a, b) => a.epoch - b.epoch);
  if (record.epoch <= fence.epoch) return { ...fence, ends };
  const promise = fence.promise !== null && fence.promise.epoch > record.epoch ? fence.promise : null;
  return { ...fence, epoch: record.epoch, leader: record.leader, ends, promise };
}

/** Establish every epoch of a history (a peer's or the announced one), the latest last. */
export function establishHistory(fence: FenceState, history: readonly EpochRecord[]): FenceState {
  let f = fence;
  for (const r of history) f = establish(f, r);
  return f;
}

/**
 * The highest seq of `entry.epoch` the fence admits (Infinity: no limit): `admits` without the
 * error. A follower's hook calls it for every entry, and a candidate catching up refuses
 * thousands of its stream's entries, each of which `admits` would describe in a new error.
 */
export function admitLimit(fence: FenceState, entry: Pick<Entry, 'epoch'>): number {
  let limit = Number.POSITIVE_INFINITY;
  // `ends` ascends by epoch and so by lastSeqPrevEpoch: the first epoch after the entry's ends it.
  const ends = fence.ends;
  for (let i = 0; i < ends.length; i++) {
    if (ends[i]!.epoch > entry.epoch) {
      limit = ends[i]!.lastSeqPrevEpoch;
      break;
    }
  }
  const p = fence.promise;
  if (p !== null && entry.epoch < p.epoch && p.seqMax < limit) limit = p.seqMax;
  return limit;
}

/**
 * Whether a follower may take `entry` (call before its ordering, dedupe and chain checks: a fenced
 * entry must not even be compared as a duplicate, or an old leader's divergent suffix would look
 * like a fork). Null when admitted; else the PLAYOUT_EPOCH_FENCED error to count and drop it with.
 * Allocates nothing when admitted: it runs for every entry received.
 */
export function admits(fence: FenceState, entry: Pick<Entry, 'seq' | 'epoch' | 'shard'>): PlayoutError | null {
  if (entry.seq <= admitLimit(fence, entry)) return null;
  let limit = Number.POSITIVE_INFINITY;
  let endedBy = 0;
  // `ends` ascends by epoch and so by lastSeqPrevEpoch: the first epoch after the entry's ends it.
  const ends = fence.ends;
  for (let i = 0; i < ends.length; i++) {
    if (ends[i]!.epoch > entry.epoch) {
      limit = ends[i]!.lastSeqPrevEpoch;
      endedBy = ends[i]!.epoch;
      break;
    }
  }
  const p = fence.promise;
  if (p !== null && entry.epoch < p.epoch && p.seqMax < limit) limit = p.seqMax;
  if (entry.seq <= limit) return null;
  const why = p !== null && limit === p.seqMax && entry.epoch < p.epoch
    ? `it promised epoch ${p.epoch} to ${p.candidate} and holds epoch ${entry.epoch} up to seq ${p.seqMax} only`
    : `epoch ${endedBy} started after seq ${limit}`;
  return new PlayoutError('PLAYOUT_EPOCH_FENCED', `Region ${fence.region} refuses entry ${entry.seq} of epoch ${entry.epoch} of shard "${entry.shard}": ${why}`, {
    shard: entry.shard,
    seq: entry.seq,
    path: 'epoch',
    expected: `seq <= ${limit} for epoch ${entry.epoch}`,
    received: `seq ${entry.seq}`,
  });
}

/**
 * An `epoch` entry of an epoch this region does not know yet, starting at or below its accepted
 * head: its log holds entries the new epoch did not keep (a divergent suffix). The Follower must
 * not compare it as a duplicate (it is a fork only to a Follower that does not know epochs): it
 * drops it and the node learns the epoch (fetch the sender's epochs, reconcile, truncate into a
 * quarantine report), after which the entry is taken again.
 */
export function startsBeforeHead(fence: FenceState, entry: Pick<Entry, 'kind' | 'epoch' | 'seq'>, acceptedSeq: number): boolean {
  return entry.kind === 'epoch' && entry.epoch > fence.epoch && entry.seq <= acceptedSeq;
}

/**
 * A peer reports `epoch` established: true when this region does not know it yet, and so must
 * learn it (fetch the peer's epochs, `establish`, reconcile its log, stop sequencing if it led).
 */
export function isNewerEpoch(fence: FenceState, epoch: number): boolean {
  return epoch > fence.epoch;
}

/** Check a FenceState read from the store. */
export function parseFence(value: unknown, shard: string, region: string): FenceState {
  const r = FenceStateSchema.safeParse(value);
  if (!r.success || r.data.shard !== shard || r.data.region !== region) {
    const issue = r.success ? null : r.error.issues[0]!;
    const where = issue === null ? 'shard/region' : issue.path.join('.');
    throw new PlayoutError('PLAYOUT_STORE_CORRUPT', `Cannot read the fence of shard "${shard}" from the store: ${FENCE_META_KEY}.${where}: ${issue?.message ?? `expected shard "${shard}" of region ${region}`}`, {
      shard,
      path: `${FENCE_META_KEY}.${where}`,
      expected: issue?.message ?? `${shard}@${region}`,
      received: r.success ? `${r.data.shard}@${r.data.region}` : describe(value),
    });
  }
  if (r.data.promise !== null && r.data.promise.epoch <= r.data.epoch) {
    throw new PlayoutError('PLAYOUT_STORE_CORRUPT', `Cannot read the fence of shard "${shard}" from the store: its promise for epoch ${r.data.promise.epoch} is not above its established epoch ${r.data.epoch}`, { shard, path: `${FENCE_META_KEY}.promise.epoch`, expected: `> ${r.data.epoch}`, received: String(r.data.promise.epoch) });
  }
  return r.data;
}

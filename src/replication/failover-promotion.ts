// The candidate's side of a failover (POST /v1/shards/:shard/promote), as pure steps the node runs:
//
//   fence = beginPromotion(fence, region, request)     refuses unless this region holds the promise
//                                                      of request.epoch for request.failoverId; raises
//                                                      its own fence limit to the catch-up target
//   persist fence; if request.truncateAbove !== null: quarantine the divergent suffix
//                                                      (failover-quarantine.ts) and rebuild the machine
//   follower catches up (its normal repair from request.sources and the other peers)
//   promotionReady(request, head, hashAt(catchUpTo.seq)) → 'waiting' until ready; a hash that differs
//                                                      is a fork (PLAYOUT_FORK): answer it, do not promote
//   stop the follower once ready, build a Sequencer at the head (remember the dedupe window's
//   ingestIds from the log, as after a restart), then
//   entries = epochEntries(sequencer, …)               the epoch entry, plus a tick entry when the head
//                                                      is inside a tick: sequencing starts at a boundary
//   append them; once durable: record the epoch (epoch-history.ts), fence = establish(fence, record),
//   persist both, start the tick timer, answer PromoteAnswer.
//
// A deadline (request.timeoutMs) bounds the whole: past it the node answers
// PLAYOUT_FAILOVER_INCOMPLETE and keeps its promise (the coordinator does not release it).
import type { Entry } from '../core/entry.js';
import { PlayoutError } from '../core/errors.js';
import type { Sequencer } from '../core/sequencer.js';
import type { FenceState, PromoteRequest } from '../ports/failover-client.js';
import { extendForCatchUp } from './fence.js';

/** Check the promise and raise this candidate's fence limit to the catch-up target. */
export function beginPromotion(fence: FenceState, region: string, request: PromoteRequest): FenceState {
  const p = fence.promise;
  if (fence.epoch >= request.epoch) {
    throw new PlayoutError('PLAYOUT_FENCE_CONFLICT', `Region ${region} cannot lead epoch ${request.epoch} of shard "${fence.shard}": epoch ${fence.epoch} is established here (leader ${fence.leader ?? 'unknown'})`, { shard: fence.shard, path: 'body.epoch', expected: `> ${fence.epoch}`, received: String(request.epoch) });
  }
  if (p === null || p.candidate !== region) {
    throw new PlayoutError('PLAYOUT_FENCE_CONFLICT', `Region ${region} cannot lead epoch ${request.epoch} of shard "${fence.shard}": ${p === null ? 'it holds no promise (fence it first)' : `it promised epoch ${p.epoch} to ${p.candidate}`}`, { shard: fence.shard, path: 'body.failoverId', expected: 'a promise this region made to itself', received: request.failoverId });
  }
  return extendForCatchUp(fence, { epoch: request.epoch, failoverId: request.failoverId, seqMax: request.catchUpTo.seq });
}

/**
 * Check, before every step and right before sealing the epoch entry, that the promise this
 * promotion runs under still holds: a later failover may have superseded it (this region then
 * promised a later epoch to someone else), and a candidate that sealed anyway would be a second
 * leader of nothing — its epoch entry would be refused everywhere, but its clients would wait.
 */
export function stillPromised(fence: FenceState, region: string, request: PromoteRequest): void {
  const p = fence.promise;
  if (p !== null && p.epoch === request.epoch && p.failoverId === request.failoverId && p.candidate === region) return;
  throw new PlayoutError('PLAYOUT_FENCE_CONFLICT', `Region ${region} stops its promotion to epoch ${request.epoch} (failover ${request.failoverId}) of shard "${fence.shard}": ${p === null ? (fence.epoch >= request.epoch ? `epoch ${fence.epoch} is established (leader ${fence.leader ?? 'unknown'})` : 'its promise was released') : `it now promised epoch ${p.epoch} to ${p.candidate} (failover ${p.failoverId})`}`, {
    shard: fence.shard,
    path: 'body.failoverId',
    expected: `epoch ${request.epoch}, failover ${request.failoverId}`,
    received: p === null ? 'no promise' : `epoch ${p.epoch}, failover ${p.failoverId}`,
  });
}

/**
 * Whether the candidate holds the catch-up target: 'waiting' below it; 'ready' at it with the
 * same hash. A different hash there, or a head beyond it, means this log is another history.
 */
export function promotionReady(request: PromoteRequest, head: number, hashAtTarget: string | null): 'waiting' | 'ready' {
  const { seq, hash } = request.catchUpTo;
  if (head < seq) return 'waiting';
  if (head > seq) {
    throw new PlayoutError('PLAYOUT_FORK', `Cannot lead epoch ${request.epoch}: this region holds seq ${head}, beyond the highest fenced head ${seq}; it was not truncated as planned`, { seq: head, path: 'body.catchUpTo.seq', expected: `head ${seq}`, received: `head ${head}` });
  }
  if (hashAtTarget !== hash) {
    throw new PlayoutError('PLAYOUT_FORK', `Cannot lead epoch ${request.epoch}: entry ${seq} here hashes to ${hashAtTarget ?? 'nothing'}, the highest fenced head is ${hash}`, { seq, path: 'body.catchUpTo.hash', expected: hash, received: hashAtTarget ?? 'none' });
  }
  return 'ready';
}

/**
 * The first entries of the new epoch, sealed by `sequencer` (built at the candidate's head): the
 * epoch entry, and when the head entry is not a tick entry, the tick entry closing that tick with
 * the candidate's digest of the tick before (`digestPrev`). Inputs are then sequenced from a
 * fresh tick: a planned switchover completes at a tick boundary, and every tick is sequenced by
 * one epoch's leader only (the tick whose inputs the old leader began is closed by the epoch
 * that kept them).
 */
export function epochEntries(sequencer: Sequencer, epoch: { epoch: number; leader: string; lastSeqPrevEpoch: number }, digestPrev: Uint8Array | null, headIsTickEntry: boolean): Entry[] {
  if (sequencer.seq !== epoch.lastSeqPrevEpoch) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot start epoch ${epoch.epoch} of shard "${sequencer.shard}" after seq ${epoch.lastSeqPrevEpoch}: the sequencer stands at seq ${sequencer.seq}`, { shard: sequencer.shard, path: 'lastSeqPrevEpoch', expected: String(sequencer.seq), received: String(epoch.lastSeqPrevEpoch) });
  }
  const out = [sequencer.startEpoch(epoch)];
  if (!headIsTickEntry) out.push(sequencer.closeTick(digestPrev));
  return out;
}

// FailoverCoordinator (DESIGN.md §6): moves a shard's leadership to a target region, as a pure state
// machine in the style of the Follower: each call takes what the regions answered and returns the
// actions to perform next. `playout failover plan/execute` (src/node/failover-ops.ts) and a node's
// `GET /v1/shards/:shard/failover-plan` drive it over FailoverClients; the simulations drive it over
// the simulated network.
//
//   plan:    statuses of every reachable region → what the switch would do, what it may lose
//   execute: 1. fence epoch E = (highest epoch known or promised) + 1 on every reachable region;
//               each promises to refuse older epochs beyond its head; the old leader stops
//               sequencing and reports its final head. Fewer than a majority granted → release the
//               promises obtained and refuse. Old leader not fenced → refuse unless acceptLoss.
//            2. promote the target: truncate its divergent suffix if any, catch up to the highest
//               fenced head (highest by epoch of the head entry, then seq), append the epoch entry
//               at a tick boundary, start sequencing.
//            3. announce the epoch to every other region: they follow the new leader, and a region
//               holding a divergent suffix quarantines it.
//
// Safety does not rest on this coordinator being alone: promises are per epoch per region (fence.ts),
// so two coordinators racing for the same epoch cannot both gather a majority, and a coordinator that
// comes later takes the next epoch. Promises are released only when no promote was sent: once the
// target may have appended its epoch entry, giving the old leader its sequencer back could let it
// acknowledge inputs the new epoch will not keep.
import { PlayoutError, assert } from '../core/errors.js';
import type { EpochRecord, FenceGrant, FenceRequest, PromoteAnswer, PromoteRequest, RegionFailoverStatus, AnnounceAnswer, ReleaseRequest, AnnounceRequest, EntryRow } from '../ports/failover-client.js';
import { compareLogs, divergencePoint, endOfEpoch, type LogView } from './epoch-history.js';

export interface FailoverInput {
  readonly shard: string;
  /** Every region holding the shard: the majority is counted over these, reachable or not. */
  readonly regions: readonly string[];
  readonly target: string;
  readonly acceptLoss: boolean;
  /** One answer per region: its status, or why it could not be read (unreachable). */
  readonly statuses: ReadonlyMap<string, RegionFailoverStatus | PlayoutError>;
}

export interface PlanRegion {
  readonly region: string;
  readonly reachable: boolean;
  /** Why it could not be read. */
  readonly error: { readonly code: string; readonly message: string } | null;
  /** leader: sequences now; candidate: promised to itself; fenced: promised to another; follower. */
  readonly role: 'leader' | 'candidate' | 'fenced' | 'follower' | 'unknown';
  readonly epoch: number | null;
  readonly head: number | null;
  readonly headEpoch: number | null;
  readonly headTick: number | null;
  readonly lastAgreedTick: number | null;
  readonly quarantined: boolean;
  readonly stopped: string | null;
  readonly promise: { readonly epoch: number; readonly candidate: string; readonly failoverId: string } | null;
}

/** Seqs a failover loses (or would lose), with their inputs when a region holding them could list them. */
export interface LossWindow {
  readonly seqFrom: number;
  /** Highest seq known to exist (null: none known beyond seqFrom - 1, yet the old leader may hold more). */
  readonly seqToKnown: number | null;
  /** True when the old leader is unreachable: it may hold entries nobody else saw beyond seqToKnown. */
  readonly openEnded: boolean;
  /** The region holding them (the old leader) when reachable, else null. */
  readonly heldBy: string | null;
  readonly ack: 'leader' | 'quorum';
  /** Ack mode `leader`: some of them may have been acknowledged to clients. In `quorum` none can. */
  readonly acknowledgedPossible: boolean;
  /** The entries, when fetched from `heldBy` (src/node/failover-ops.ts fills this in). */
  readonly entries: readonly EntryRow[] | null;
  /** More entries exist than were listed. */
  readonly entriesTruncated: boolean;
}

export interface FailoverPlan {
  readonly shard: string;
  readonly target: string;
  readonly acceptLoss: boolean;
  readonly regions: readonly PlanRegion[];
  readonly majority: number;
  readonly reachable: number;
  readonly epoch: { readonly current: number; readonly leader: string | null; readonly leaderReachable: boolean; readonly next: number };
  /** A pending promise of another failover that this one supersedes (it takes a later epoch). */
  readonly supersedes: { readonly epoch: number; readonly candidate: string; readonly failoverId: string; readonly regions: readonly string[] } | null;
  /** Regions to fence (every reachable one). */
  readonly fence: readonly string[];
  /** The highest head among reachable regions: what the target catches up to. */
  readonly highest: { readonly region: string; readonly head: number; readonly headEpoch: number; readonly headHash: string | null; readonly headTick: number; readonly openTick: number } | null;
  readonly catchUp: { readonly from: number; readonly to: number; readonly entries: number; readonly sources: readonly string[] } | null;
  /** Divergent suffixes among reachable regions (the target's is truncated by the promotion, others' when they learn the epoch). */
  readonly truncate: readonly { readonly region: string; readonly keep: number; readonly entries: number }[];
  /** What this failover loses: non-null when the old leader is unreachable. */
  readonly loss: LossWindow | null;
  /** Planned switchover: what would be lost if the old leader were lost now (it is not: it is fenced and kept). */
  readonly lossIfLeaderLost: LossWindow | null;
  /** Where the epoch entry goes: at `tick`, right after a tick entry (atBoundary), or followed by a tick entry closing `tick`. */
  readonly epochEntry: { readonly tick: number; readonly atBoundary: boolean; readonly sequencingTick: number } | null;
  /** The target already leads and nothing is pending: execute has nothing to do. */
  readonly noop: boolean;
  /** Why execute would refuse (null: it would proceed). */
  readonly refusal: PlayoutError | null;
  /** What execute would do, in order, in words. */
  readonly steps: readonly string[];
}

const NONE = { code: 'none', message: '' };

function statusOf(input: FailoverInput, region: string): RegionFailoverStatus | null {
  const s = input.statuses.get(region);
  return s === undefined || s instanceof PlayoutError ? null : s;
}

function viewOf(s: { head: number; epochs: readonly EpochRecord[] }): LogView {
  return { head: s.head, epochs: s.epochs };
}

function roleOf(s: RegionFailoverStatus): PlanRegion['role'] {
  const f = s.fence;
  if (f.promise !== null) return f.promise.candidate === s.region ? 'candidate' : 'fenced';
  return f.leader === s.region ? 'leader' : 'follower';
}

export function majorityOf(regions: number): number {
  return Math.floor(regions / 2) + 1;
}

/** What a failover of `input.shard` to `input.target` would do, from the regions' statuses. Changes nothing. */
export function planFailover(input: FailoverInput): FailoverPlan {
  const { shard, target } = input;
  const regions: PlanRegion[] = input.regions.map((region) => {
    const a = input.statuses.get(region);
    if (a === undefined || a instanceof PlayoutError) {
      return { region, reachable: false, error: a === undefined ? { code: 'PLAYOUT_PEER_UNAVAILABLE', message: `region ${region} was not asked` } : { code: a.code, message: a.message }, role: 'unknown', epoch: null, head: null, headEpoch: null, headTick: null, lastAgreedTick: null, quarantined: false, stopped: null, promise: null };
    }
    const p = a.fence.promise;
    return { region, reachable: true, error: null, role: roleOf(a), epoch: a.fence.epoch, head: a.head, headEpoch: a.headEpoch, headTick: a.headTick, lastAgreedTick: a.lastAgreedTick, quarantined: a.quarantined, stopped: a.stopped, promise: p === null ? null : { epoch: p.epoch, candidate: p.candidate, failoverId: p.failoverId } };
  });
  const live: RegionFailoverStatus[] = [];
  for (const r of input.regions) {
    const s = statusOf(input, r);
    if (s !== null) live.push(s);
  }
  const majority = majorityOf(input.regions.length);

  // The current epoch is the highest any reachable region knows established; its leader is the old leader.
  let current = 0;
  let leader: string | null = null;
  let promised = 0;
  for (const s of live) {
    if (s.fence.epoch > current) {
      current = s.fence.epoch;
      leader = s.fence.leader;
    }
    if (s.fence.promise !== null) promised = Math.max(promised, s.fence.promise.epoch);
  }
  const next = Math.max(current, promised) + 1;
  const leaderStatus = leader === null ? null : statusOf(input, leader);
  const leaderReachable = leaderStatus !== null;

  let supersedes: FailoverPlan['supersedes'] = null;
  if (promised > current) {
    const holders = live.filter((s) => s.fence.promise?.epoch === promised);
    const p = holders[0]!.fence.promise!;
    supersedes = { epoch: p.epoch, candidate: p.candidate, failoverId: p.failoverId, regions: holders.map((s) => s.region) };
  }

  // The highest head: the later epoch of the head entry first, then the longer log.
  let best: RegionFailoverStatus | null = null;
  for (const s of live) if (best === null || compareLogs(s.headEpoch, s.head, best.headEpoch, best.head) > 0) best = s;
  const highest = best === null ? null : { region: best.region, head: best.head, headEpoch: best.headEpoch, headHash: best.headHash, headTick: best.headTick, openTick: best.openTick };

  const truncate: { region: string; keep: number; entries: number }[] = [];
  if (best !== null) {
    for (const s of live) {
      const keep = divergencePoint(viewOf(s), viewOf(best));
      if (keep !== null) truncate.push({ region: s.region, keep, entries: s.head - keep });
    }
  }

  const ack = leaderStatus?.ack ?? live[0]?.ack ?? 'leader';
  const targetStatus = statusOf(input, target);
  let catchUp: FailoverPlan['catchUp'] = null;
  if (best !== null && targetStatus !== null) {
    const keep = truncate.find((t) => t.region === target)?.keep ?? targetStatus.head;
    const sources = live
      .filter((s) => s.region !== target && divergencePoint(viewOf(s), viewOf(best!)) === null && s.head > keep)
      .sort((a, b) => b.head - a.head || (a.region < b.region ? -1 : 1))
      .map((s) => s.region);
    catchUp = { from: keep, to: best.head, entries: best.head - keep, sources };
  }

  // The old leader's last known head: its own answer, else what the others last heard from it.
  let leaderLastKnown: number | null = leaderStatus?.head ?? null;
  if (leader !== null && leaderStatus === null) {
    for (const s of live) for (const p of s.peers) if (p.region === leader && p.head !== null && (p.epoch === null || p.epoch === current)) leaderLastKnown = Math.max(leaderLastKnown ?? 0, p.head);
  }
  let loss: LossWindow | null = null;
  let lossIfLeaderLost: LossWindow | null = null;
  if (best !== null && !leaderReachable) {
    const known = leaderLastKnown !== null && leaderLastKnown > best.head ? leaderLastKnown : null;
    loss = { seqFrom: best.head + 1, seqToKnown: known, openEnded: true, heldBy: null, ack, acknowledgedPossible: ack === 'leader', entries: null, entriesTruncated: false };
  } else if (leaderStatus !== null) {
    let others: RegionFailoverStatus | null = null;
    for (const s of live) if (s.region !== leader && (others === null || compareLogs(s.headEpoch, s.head, others.headEpoch, others.head) > 0)) others = s;
    const kept = others === null ? 0 : others.headEpoch === leaderStatus.headEpoch ? Math.min(others.head, leaderStatus.head) : (endOfEpoch(leaderStatus.epochs, others.headEpoch, leaderStatus.head) ?? 0);
    if (leaderStatus.head > kept) lossIfLeaderLost = { seqFrom: kept + 1, seqToKnown: leaderStatus.head, openEnded: false, heldBy: leaderStatus.region, ack, acknowledgedPossible: ack === 'leader', entries: null, entriesTruncated: false };
  }

  const epochEntry = best === null ? null : { tick: best.openTick, atBoundary: best.openTick > best.headTick || best.head === 0, sequencingTick: best.openTick > best.headTick ? best.openTick : best.openTick + 1 };
  const pendingAnywhere = live.some((s) => s.fence.promise !== null);
  const noop = targetStatus !== null && leader === target && !pendingAnywhere && targetStatus.fence.epoch === current;

  const refusal = refusalOf(input, { live, majority, targetStatus, leader, leaderReachable, loss, best });
  const fence = live.map((s) => s.region);
  const plan: Omit<FailoverPlan, 'steps'> = {
    shard,
    target,
    acceptLoss: input.acceptLoss,
    regions,
    majority,
    reachable: live.length,
    epoch: { current, leader, leaderReachable, next },
    supersedes,
    fence,
    highest,
    catchUp,
    truncate,
    loss,
    lossIfLeaderLost,
    epochEntry,
    noop,
    refusal,
  };
  return { ...plan, steps: stepsOf(plan) };
}

function refusalOf(
  input: FailoverInput,
  c: { live: RegionFailoverStatus[]; majority: number; targetStatus: RegionFailoverStatus | null; leader: string | null; leaderReachable: boolean; loss: LossWindow | null; best: RegionFailoverStatus | null },
): PlayoutError | null {
  const { shard, target } = input;
  const unfit = (why: string, received: string): PlayoutError =>
    new PlayoutError('PLAYOUT_FAILOVER_TARGET_UNFIT', `Cannot fail shard "${shard}" over to ${target}: ${why}`, { shard, path: '--to', expected: 'a reachable, healthy region holding the shard', received });
  if (!input.regions.includes(target)) return unfit(`it does not hold the shard (regions: ${input.regions.join(', ')})`, target);
  if (c.targetStatus === null) {
    const a = input.statuses.get(target);
    return unfit(`it did not answer (${a instanceof PlayoutError ? `${a.code}: ${a.message}` : 'not asked'})`, 'unreachable');
  }
  if (c.targetStatus.stopped !== null) return unfit(`its shard is stopped (${c.targetStatus.stopped})`, 'stopped');
  if (c.targetStatus.quarantined) return unfit(`it is quarantined after a desync (last agreed tick ${c.targetStatus.lastAgreedTick ?? 'none'}); resync it first`, 'quarantined');
  if (c.live.length < c.majority) {
    const missing = input.regions.filter((r) => !c.live.some((s) => s.region === r));
    return new PlayoutError('PLAYOUT_FAILOVER_NO_MAJORITY', `Cannot fail shard "${shard}" over to ${target}: ${c.live.length} of ${input.regions.length} regions answered (${c.live.map((s) => s.region).join(', ') || 'none'}), a majority is ${c.majority}; unreachable: ${missing.join(', ')}`, {
      shard,
      expected: `${c.majority} regions`,
      received: `${c.live.length}`,
    });
  }
  if (!c.leaderReachable && !input.acceptLoss && c.loss !== null) {
    return new PlayoutError('PLAYOUT_FAILOVER_LOSS_UNACCEPTED', `Cannot fail shard "${shard}" over to ${target} without loss: the old leader ${c.leader ?? '(unknown)'} did not answer, so entries from seq ${lossText(c.loss)} may be lost${c.loss.acknowledgedPossible ? ' (ack mode leader: some may have been acknowledged)' : ' (ack mode quorum: none of them was acknowledged)'}; pass --accept-loss to proceed`, {
      shard,
      path: '--accept-loss',
      expected: 'the old leader reachable, or --accept-loss',
      received: `leader ${c.leader ?? 'unknown'} unreachable`,
    });
  }
  return null;
}

export function lossText(l: LossWindow): string {
  const to = l.seqToKnown === null ? '' : ` to ${l.seqToKnown}`;
  return `${l.seqFrom}${to}${l.openEnded ? ' (and any later entry the old leader sequenced unseen)' : ''}`;
}

function stepsOf(p: Omit<FailoverPlan, 'steps'>): string[] {
  if (p.noop) return [`${p.target} already leads shard "${p.shard}" in epoch ${p.epoch.current}: nothing to do`];
  const steps: string[] = [];
  if (p.epoch.leader === p.target) steps.push(`re-elect ${p.target}, which leads epoch ${p.epoch.current}, in epoch ${p.epoch.next}: this clears the pending promises and fences of older failovers`);
  if (p.supersedes !== null) steps.push(`supersede the pending failover ${p.supersedes.failoverId} (epoch ${p.supersedes.epoch} to ${p.supersedes.candidate}, promised by ${p.supersedes.regions.join(', ')})`);
  const leaderNote = p.epoch.leader === null ? '' : p.epoch.leaderReachable ? `; ${p.epoch.leader} (leader of epoch ${p.epoch.current}) stops sequencing and reports its final head` : `; the old leader ${p.epoch.leader} is unreachable and is not fenced`;
  steps.push(`fence epoch ${p.epoch.next} on ${p.fence.join(', ') || 'no region'} (a majority is ${p.majority} of ${p.regions.length})${leaderNote}`);
  for (const t of p.truncate) {
    if (t.region === p.target) steps.push(`${t.region} truncates its divergent suffix (seq ${t.keep + 1}..${t.keep + t.entries}, ${t.entries} entries) into a quarantine report`);
  }
  if (p.catchUp !== null && p.highest !== null) {
    steps.push(
      p.catchUp.entries > 0
        ? `${p.target} catches up from seq ${p.catchUp.from} to the highest fenced head ${p.catchUp.to} (${p.catchUp.entries} entries, from ${p.catchUp.sources.join(', ') || p.highest.region})`
        : `${p.target} holds the highest head (${p.catchUp.to}): no catch-up`,
    );
  }
  if (p.epochEntry !== null && p.highest !== null) {
    steps.push(
      p.epochEntry.atBoundary
        ? `${p.target} appends the epoch entry (epoch ${p.epoch.next}, lastSeqPrevEpoch ${p.highest.head}) at tick ${p.epochEntry.tick}, a tick boundary, and starts sequencing`
        : `${p.target} appends the epoch entry (epoch ${p.epoch.next}, lastSeqPrevEpoch ${p.highest.head}) in tick ${p.epochEntry.tick}, closes that tick, and starts sequencing at tick ${p.epochEntry.sequencingTick}`,
    );
  }
  const followers = p.regions.filter((r) => r.region !== p.target).map((r) => r.region);
  steps.push(`${followers.join(', ') || 'no other region'} follow ${p.target}; clients are redirected to it`);
  for (const t of p.truncate) {
    if (t.region !== p.target) steps.push(`${t.region} quarantines its divergent suffix (seq ${t.keep + 1}..${t.keep + t.entries}) when it learns epoch ${p.epoch.next}`);
  }
  if (p.loss !== null) steps.push(`may lose entries from seq ${lossText(p.loss)}: the old leader lists them in a quarantine report when it returns`);
  return steps;
}

// --- execute -----------------------------------------------------------------------------------

export type FailoverAction =
  | { readonly op: 'fence'; readonly region: string; readonly request: FenceRequest }
  | { readonly op: 'release'; readonly region: string; readonly request: ReleaseRequest }
  | { readonly op: 'promote'; readonly region: string; readonly request: PromoteRequest }
  | { readonly op: 'announce'; readonly region: string; readonly request: AnnounceRequest }
  | { readonly op: 'done'; readonly result: FailoverResult };

export interface FailoverResult {
  readonly ok: boolean;
  readonly shard: string;
  readonly target: string;
  readonly failoverId: string;
  readonly epoch: number;
  /** Why it did not complete (null when ok). */
  readonly error: PlayoutError | null;
  readonly noop: boolean;
  readonly plan: FailoverPlan;
  readonly fenced: readonly FenceGrant[];
  readonly refused: readonly { readonly region: string; readonly code: string; readonly message: string }[];
  /** Regions whose promises were given back (a refused failover leaves the shard as it was). */
  readonly released: readonly string[];
  /** The highest fenced head the target caught up to. */
  readonly highest: { readonly region: string; readonly seq: number; readonly hash: string; readonly epoch: number } | null;
  readonly promoted: PromoteAnswer | null;
  /** What was lost: non-null when the old leader was not fenced. */
  readonly loss: LossWindow | null;
  readonly announced: readonly { readonly region: string; readonly ok: boolean; readonly quarantined: number; readonly error: string | null }[];
}

export interface CoordinatorOptions {
  readonly failoverId: string;
  /** How long the target may take to catch up and append its epoch entry. */
  readonly promoteTimeoutMs: number;
}

type Phase = 'idle' | 'fencing' | 'promoting' | 'announcing' | 'done';

export class FailoverCoordinator {
  readonly input: FailoverInput;
  readonly options: CoordinatorOptions;
  readonly plan: FailoverPlan;
  private phase: Phase = 'idle';
  private readonly grants = new Map<string, FenceGrant>();
  private readonly refused = new Map<string, PlayoutError>();
  private fenceAsked: string[] = [];
  private highest: FailoverResult['highest'] = null;
  private loss: LossWindow | null = null;
  private promoted: PromoteAnswer | null = null;
  private announceAsked: string[] = [];
  private readonly announced = new Map<string, FailoverResult['announced'][number]>();
  private result: FailoverResult | null = null;
  private released: string[] = [];

  constructor(input: FailoverInput, options: CoordinatorOptions) {
    this.input = input;
    this.options = options;
    this.plan = planFailover(input);
  }

  get epoch(): number {
    return this.plan.epoch.next;
  }

  get outcome(): FailoverResult | null {
    return this.result;
  }

  /** Fence every reachable region, or finish at once (a refusal, or nothing to do). */
  start(): FailoverAction[] {
    assert(this.phase === 'idle', 'a coordinator starts once');
    if (this.plan.refusal !== null) return [this.finish(this.plan.refusal)];
    if (this.plan.noop) return [this.finish(null, true)];
    this.phase = 'fencing';
    this.fenceAsked = [...this.plan.fence];
    const request: FenceRequest = { epoch: this.epoch, candidate: this.input.target, failoverId: this.options.failoverId };
    return this.fenceAsked.map((region) => ({ op: 'fence', region, request }));
  }

  onFenceGranted(grant: FenceGrant): FailoverAction[] {
    if (this.phase !== 'fencing' || !this.fenceAsked.includes(grant.region)) return [];
    if (grant.epoch !== this.epoch || grant.failoverId !== this.options.failoverId || grant.candidate !== this.input.target) {
      this.refused.set(grant.region, new PlayoutError('PLAYOUT_FENCE_CONFLICT', `Region ${grant.region} answered a fence for epoch ${grant.epoch} to ${grant.candidate} (failover ${grant.failoverId}), not the one asked`, { shard: this.input.shard }));
    } else {
      this.grants.set(grant.region, grant);
    }
    return this.afterFence();
  }

  onFenceFailed(region: string, error: PlayoutError): FailoverAction[] {
    if (this.phase !== 'fencing' || !this.fenceAsked.includes(region)) return [];
    this.refused.set(region, error);
    return this.afterFence();
  }

  private afterFence(): FailoverAction[] {
    if (this.grants.size + this.refused.size < this.fenceAsked.length) return [];
    const { shard, target } = this.input;
    const granted = this.fenceAsked.filter((r) => this.grants.has(r));
    const refusedText = [...this.refused].map(([r, e]) => `${r}: ${e.code} (${e.message})`).join('; ');
    const conflicts = [...this.refused.values()].filter((e) => e.code === 'PLAYOUT_FENCE_CONFLICT').length;
    if (granted.length < this.plan.majority) {
      const code = conflicts > 0 ? 'PLAYOUT_FENCE_CONFLICT' : 'PLAYOUT_FAILOVER_NO_MAJORITY';
      return this.refuse(new PlayoutError(code, `Cannot fail shard "${shard}" over to ${target}: ${granted.length} of ${this.input.regions.length} regions fenced epoch ${this.epoch} (${granted.join(', ') || 'none'}), a majority is ${this.plan.majority}; ${refusedText}`, { shard, expected: `${this.plan.majority} fenced regions`, received: String(granted.length) }));
    }
    if (!this.grants.has(target)) {
      const why = this.refused.get(target);
      return this.refuse(new PlayoutError(why?.code === 'PLAYOUT_FENCE_CONFLICT' ? 'PLAYOUT_FENCE_CONFLICT' : 'PLAYOUT_FAILOVER_TARGET_UNFIT', `Cannot fail shard "${shard}" over to ${target}: the target did not fence itself for epoch ${this.epoch} (${why?.code ?? NONE.code}: ${why?.message ?? NONE.message})`, { shard, path: '--to', expected: 'the target fenced', received: why?.code ?? 'no answer' }));
    }
    // The highest fenced head, ordered like planFailover's.
    let best: FenceGrant | null = null;
    for (const r of granted) {
      const g = this.grants.get(r)!;
      if (best === null || compareLogs(g.headEpoch, g.head, best.headEpoch, best.head) > 0) best = g;
    }
    assert(best !== null && best.head > 0 && best.headHash !== null, 'a fenced majority holds at least the genesis');
    this.highest = { region: best.region, seq: best.head, hash: best.headHash, epoch: best.headEpoch };
    const leader = this.plan.epoch.leader;
    const leaderFenced = leader !== null && this.grants.has(leader);
    if (!leaderFenced) {
      // What the others last heard of the old leader, and what it told this coordinator before.
      let known: number | null = null;
      const ls = leader === null ? null : this.input.statuses.get(leader);
      if (ls !== undefined && ls !== null && !(ls instanceof PlayoutError)) known = ls.head;
      for (const g of this.input.statuses.values()) {
        if (g instanceof PlayoutError) continue;
        for (const p of g.peers) if (p.region === leader && p.head !== null && (p.epoch === null || p.epoch === this.plan.epoch.current)) known = Math.max(known ?? 0, p.head);
      }
      const ack = this.plan.loss?.ack ?? this.plan.lossIfLeaderLost?.ack ?? 'leader';
      this.loss = { seqFrom: best.head + 1, seqToKnown: known !== null && known > best.head ? known : null, openEnded: true, heldBy: null, ack, acknowledgedPossible: ack === 'leader', entries: null, entriesTruncated: false };
      const leaderRefusal = leader === null ? undefined : this.refused.get(leader);
      if (!this.input.acceptLoss && leaderRefusal?.code === 'PLAYOUT_FENCE_CONFLICT') {
        // A racing failover fenced the old leader first: it stopped, but its final head went to
        // the other coordinator. Executing again supersedes that promise and reads it.
        return this.refuse(new PlayoutError('PLAYOUT_FENCE_CONFLICT', `Cannot fail shard "${shard}" over to ${target} without loss: the old leader ${leader} was fenced by another failover (${leaderRefusal.message}), so its final head is unknown here; execute again to supersede it, or pass --accept-loss`, {
          shard,
          expected: `the old leader fenced for failover ${this.options.failoverId}`,
          received: 'PLAYOUT_FENCE_CONFLICT',
        }));
      }
      if (!this.input.acceptLoss) {
        return this.refuse(new PlayoutError('PLAYOUT_FAILOVER_LOSS_UNACCEPTED', `Cannot fail shard "${shard}" over to ${target} without loss: the old leader ${leader ?? '(unknown)'} was not fenced (${this.refused.get(leader ?? '')?.message ?? 'unreachable'}), so entries from seq ${lossText(this.loss)} may be lost; pass --accept-loss to proceed`, {
          shard,
          path: '--accept-loss',
          expected: 'the old leader fenced, or --accept-loss',
          received: `leader ${leader ?? 'unknown'} not fenced`,
        }));
      }
    }
    const tg = this.grants.get(target)!;
    const keep = tg.head === 0 ? null : divergencePoint({ head: tg.head, epochs: this.epochsOf(target) }, { head: best.head, epochs: this.epochsOf(best.region) });
    const sources = granted
      .filter((r) => r !== target)
      .map((r) => this.grants.get(r)!)
      .filter((g) => g.head > (keep ?? tg.head) && g.headEpoch === best!.headEpoch)
      .sort((a, b) => b.head - a.head || (a.region < b.region ? -1 : 1))
      .map((g) => g.region);
    this.phase = 'promoting';
    return [
      {
        op: 'promote',
        region: target,
        request: {
          epoch: this.epoch,
          failoverId: this.options.failoverId,
          catchUpTo: { seq: best.head, hash: best.headHash, epoch: best.headEpoch },
          sources: sources.length > 0 ? sources : best.region === target ? [] : [best.region],
          truncateAbove: keep,
          timeoutMs: this.options.promoteTimeoutMs,
        },
      },
    ];
  }

  private epochsOf(region: string): readonly EpochRecord[] {
    const g = this.grants.get(region);
    if (g !== undefined) return g.epochs;
    const s = this.input.statuses.get(region);
    return s === undefined || s instanceof PlayoutError ? [] : s.epochs;
  }

  private refuse(error: PlayoutError): FailoverAction[] {
    const request: ReleaseRequest = { epoch: this.epoch, failoverId: this.options.failoverId };
    this.released = [...this.grants.keys()];
    const releases: FailoverAction[] = this.released.map((region) => ({ op: 'release', region, request }));
    return [...releases, this.finish(error)];
  }

  onPromoted(answer: PromoteAnswer): FailoverAction[] {
    if (this.phase !== 'promoting') return [];
    this.promoted = answer;
    this.phase = 'announcing';
    const request: AnnounceRequest = { record: answer.record, epochs: answer.epochs };
    this.announceAsked = this.input.regions.filter((r) => r !== this.input.target);
    if (this.announceAsked.length === 0) return [this.finish(null)];
    return this.announceAsked.map((region) => ({ op: 'announce', region, request }));
  }

  onPromoteFailed(error: PlayoutError): FailoverAction[] {
    if (this.phase !== 'promoting') return [];
    const { shard, target } = this.input;
    // No release: the target may have appended its epoch entry before failing to answer.
    return [
      this.finish(
        new PlayoutError('PLAYOUT_FAILOVER_INCOMPLETE', `Failover of shard "${shard}" to ${target} fenced epoch ${this.epoch} on ${[...this.grants.keys()].join(', ')} but the promotion did not complete (${error.code}: ${error.message}); the shard has no leader until \`playout failover execute\` runs again (it will take epoch ${this.epoch + 1})`, {
          shard,
          expected: `${target} leading epoch ${this.epoch}`,
          received: error.code,
          cause: error,
        }),
      ),
    ];
  }

  onAnnounced(region: string, answer: AnnounceAnswer | PlayoutError): FailoverAction[] {
    if (this.phase !== 'announcing' || !this.announceAsked.includes(region) || this.announced.has(region)) return [];
    this.announced.set(region, answer instanceof PlayoutError ? { region, ok: false, quarantined: 0, error: `${answer.code}: ${answer.message}` } : { region, ok: true, quarantined: answer.quarantined, error: null });
    if (this.announced.size < this.announceAsked.length) return [];
    return [this.finish(null)];
  }

  private finish(error: PlayoutError | null, noop = false): FailoverAction {
    this.phase = 'done';
    this.result = {
      ok: error === null,
      shard: this.input.shard,
      target: this.input.target,
      failoverId: this.options.failoverId,
      epoch: noop ? this.plan.epoch.current : this.epoch,
      error,
      noop,
      plan: this.plan,
      fenced: [...this.grants.values()],
      refused: [...this.refused].map(([region, e]) => ({ region, code: e.code, message: e.message })),
      released: this.released,
      highest: this.highest,
      promoted: this.promoted,
      loss: this.loss,
      announced: this.announceAsked.map((r) => this.announced.get(r) ?? { region: r, ok: false, quarantined: 0, error: 'no answer' }),
    };
    return { op: 'done', result: this.result };
  }
}

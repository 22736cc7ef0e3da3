// Operator functions behind `playout failover plan | execute | status` (DESIGN.md §6) and a node's
// `GET /v1/shards/:shard/failover-plan`. They talk to the regions holding a shard through
// FailoverClients (src/ports/failover-client.ts): over HTTP from the CLI and the node
// (src/adapters/http-failover-client.ts), over the simulated network in test/sim/. The decisions are the pure
// FailoverCoordinator's; this module performs its actions and keeps every timeout in the clients,
// so that the same code runs on the wall clock and on a simulation's manual clock.
import { PlayoutError, isPlayoutError } from '../core/errors.js';
import type { EntryRow, EpochRecord, FailoverClient, FenceState, RegionFailoverStatus } from '../ports/failover-client.js';
import { FailoverCoordinator, planFailover, type FailoverAction, type FailoverPlan, type FailoverResult, type LossWindow } from '../replication/failover-coordinator.js';

export interface FailoverOpsOptions {
  readonly shard: string;
  /** One client per region known to hold the shard. */
  readonly clients: readonly FailoverClient[];
  /** Timeout of one status, fence, release or announce request. */
  readonly requestTimeoutMs: number;
  /** How long the target may take to catch up and append its epoch entry. */
  readonly promoteTimeoutMs: number;
  /** Lost entries listed at most (the count is always exact when known). */
  readonly listEntriesMax: number;
  /** A fresh failover id (unique per execution: promises are made to it). */
  readonly newFailoverId: () => string;
}

/** Tries to give back one promise after a refused failover. */
const RELEASE_ATTEMPTS = 3;

function asPlayoutError(err: unknown, region: string, what: string): PlayoutError {
  if (isPlayoutError(err)) return err;
  return new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `Cannot ${what} from region ${region}: ${(err as Error)?.message ?? String(err)}`, { cause: err, expected: 'an answer', received: 'error' });
}

/** Every region's status (or why it could not be read), and the regions holding the shard: the clients' and any peer a status names. */
export async function gatherStatuses(o: FailoverOpsOptions): Promise<{ regions: string[]; statuses: Map<string, RegionFailoverStatus | PlayoutError> }> {
  const answers = await Promise.all(
    o.clients.map(async (c): Promise<[string, RegionFailoverStatus | PlayoutError]> => {
      try {
        return [c.region, await c.status(o.shard, { timeoutMs: o.requestTimeoutMs })];
      } catch (err) {
        return [c.region, asPlayoutError(err, c.region, `read the failover status of shard "${o.shard}"`)];
      }
    }),
  );
  const statuses = new Map(answers);
  const regions = o.clients.map((c) => c.region);
  // A region another one replicates with counts toward the majority even if this operator has no
  // URL for it: leaving it out would let two halves of a cluster each see "a majority".
  for (const s of statuses.values()) {
    if (s instanceof PlayoutError) continue;
    for (const p of s.peers) {
      if (!regions.includes(p.region)) {
        regions.push(p.region);
        statuses.set(p.region, new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `Region ${p.region} holds shard "${o.shard}" (a peer of ${s.region}) but no URL is configured for it`, { expected: 'a URL for every region', received: 'none' }));
      }
    }
  }
  return { regions, statuses };
}

async function listEntries(o: FailoverOpsOptions, loss: LossWindow | null): Promise<LossWindow | null> {
  if (loss === null || loss.heldBy === null || loss.seqToKnown === null) return loss;
  const client = o.clients.find((c) => c.region === loss.heldBy);
  if (client === undefined) return loss;
  const rows: EntryRow[] = [];
  const to = Math.min(loss.seqToKnown, loss.seqFrom + o.listEntriesMax - 1);
  let from = loss.seqFrom;
  try {
    while (from <= to) {
      const page = await client.entries(o.shard, from, to, { timeoutMs: o.requestTimeoutMs });
      if (page.length === 0) break;
      rows.push(...page);
      from = page[page.length - 1]!.seq + 1;
    }
  } catch {
    // The window is still exact; only its listing is missing, and the output says so.
    return loss;
  }
  return { ...loss, entries: rows, entriesTruncated: loss.seqToKnown > to };
}

/** What a failover to `target` would do and lose. Changes nothing. */
export async function planFailoverOp(o: FailoverOpsOptions, target: string, acceptLoss: boolean): Promise<FailoverPlan> {
  const { regions, statuses } = await gatherStatuses(o);
  const plan = planFailover({ shard: o.shard, regions, target, acceptLoss, statuses });
  return { ...plan, loss: await listEntries(o, plan.loss), lossIfLeaderLost: await listEntries(o, plan.lossIfLeaderLost) };
}

/** Perform a failover to `target`. Resolves with the result (ok or the refusal); never half-silent. */
export async function executeFailoverOp(o: FailoverOpsOptions, target: string, acceptLoss: boolean): Promise<FailoverResult> {
  const { regions, statuses } = await gatherStatuses(o);
  const coordinator = new FailoverCoordinator({ shard: o.shard, regions, target, acceptLoss, statuses }, { failoverId: o.newFailoverId(), promoteTimeoutMs: o.promoteTimeoutMs });
  const client = (region: string): FailoverClient | null => o.clients.find((c) => c.region === region) ?? null;
  const unreachable = (region: string): PlayoutError => new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `No URL is configured for region ${region}`, { expected: 'a URL', received: 'none' });
  let actions: FailoverAction[] = coordinator.start();
  for (;;) {
    const done = actions.find((a) => a.op === 'done');
    // Releases go out with the final answer; wait for them (a few tries each) so that the shard is
    // as it was when we return. A promise whose release is lost stays until a later failover
    // supersedes it: `playout failover status` shows it, and executing a failover to the current
    // leader clears it.
    const releases = actions.filter((a): a is Extract<FailoverAction, { op: 'release' }> => a.op === 'release');
    await Promise.all(
      releases.map(async (a) => {
        const c = client(a.region);
        for (let attempt = 0; c !== null && attempt < RELEASE_ATTEMPTS; attempt++) {
          try {
            await c.release(o.shard, a.request, { timeoutMs: o.requestTimeoutMs });
            return;
          } catch {
            // tried again below; the result still names the region as released-to
          }
        }
      }),
    );
    if (done !== undefined && done.op === 'done') return done.result;
    const fences = actions.filter((a): a is Extract<FailoverAction, { op: 'fence' }> => a.op === 'fence');
    const promotes = actions.filter((a): a is Extract<FailoverAction, { op: 'promote' }> => a.op === 'promote');
    const announces = actions.filter((a): a is Extract<FailoverAction, { op: 'announce' }> => a.op === 'announce');
    const next: FailoverAction[] = [];
    if (fences.length > 0) {
      const answers = await Promise.all(
        fences.map(async (a) => {
          const c = client(a.region);
          try {
            if (c === null) throw unreachable(a.region);
            return { region: a.region, grant: await c.fence(o.shard, a.request, { timeoutMs: o.requestTimeoutMs }), error: null };
          } catch (err) {
            return { region: a.region, grant: null, error: asPlayoutError(err, a.region, `fence shard "${o.shard}"`) };
          }
        }),
      );
      // Fed in the order asked, so that one set of answers always gives one decision.
      for (const a of answers) next.push(...(a.grant !== null ? coordinator.onFenceGranted(a.grant) : coordinator.onFenceFailed(a.region, a.error!)));
    }
    for (const a of promotes) {
      const c = client(a.region);
      try {
        if (c === null) throw unreachable(a.region);
        next.push(...coordinator.onPromoted(await c.promote(o.shard, a.request, { timeoutMs: a.request.timeoutMs + o.requestTimeoutMs })));
      } catch (err) {
        next.push(...coordinator.onPromoteFailed(asPlayoutError(err, a.region, `promote region ${a.region}`)));
      }
    }
    if (announces.length > 0) {
      const answers = await Promise.all(
        announces.map(async (a) => {
          const c = client(a.region);
          try {
            if (c === null) throw unreachable(a.region);
            return { region: a.region, answer: await c.announce(o.shard, a.request, { timeoutMs: o.requestTimeoutMs }) };
          } catch (err) {
            return { region: a.region, answer: asPlayoutError(err, a.region, `announce epoch ${a.request.record.epoch}`) };
          }
        }),
      );
      for (const a of answers) next.push(...coordinator.onAnnounced(a.region, a.answer));
    }
    if (next.length === 0) throw new PlayoutError('PLAYOUT_FAILOVER_INCOMPLETE', `Failover of shard "${o.shard}" to ${target} stopped without an outcome (a coordinator bug)`, { shard: o.shard });
    actions = next;
  }
}

export interface FailoverStatusReport {
  readonly shard: string;
  readonly regions: readonly { readonly region: string; readonly status: RegionFailoverStatus | null; readonly error: { readonly code: string; readonly message: string } | null }[];
  /** The longest epoch history any region holds (the others hold a prefix of it, or diverge). */
  readonly epochs: readonly EpochRecord[];
  readonly epoch: number;
  readonly leader: string | null;
  readonly fences: readonly { readonly region: string; readonly fence: FenceState }[];
}

/** Epoch history and current fences, as every reachable region reports them. */
export async function failoverStatusOp(o: FailoverOpsOptions): Promise<FailoverStatusReport> {
  const { regions, statuses } = await gatherStatuses(o);
  const rows = regions.map((region) => {
    const s = statuses.get(region)!;
    return s instanceof PlayoutError ? { region, status: null, error: { code: s.code, message: s.message } } : { region, status: s, error: null };
  });
  let epochs: EpochRecord[] = [];
  let epoch = 0;
  let leader: string | null = null;
  for (const r of rows) {
    if (r.status === null) continue;
    // The longest history, and among equals the leader's (it stamped when and by which failover).
    const last = r.status.epochs[r.status.epochs.length - 1];
    const mine = epochs[epochs.length - 1];
    if (last !== undefined && (mine === undefined || last.epoch > mine.epoch || (last.epoch === mine.epoch && last.leader === r.region))) epochs = [...r.status.epochs];
    if (r.status.fence.epoch > epoch) {
      epoch = r.status.fence.epoch;
      leader = r.status.fence.leader;
    }
  }
  return { shard: o.shard, regions: rows, epochs, epoch, leader, fences: rows.filter((r) => r.status !== null).map((r) => ({ region: r.region, fence: r.status!.fence })) };
}

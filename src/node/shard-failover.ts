// ShardFailover: a region node's side of a failover (DESIGN.md §6, docs/failover.md "Hooks in the
// node"). It serves the failover routes of src/ports/failover-client.ts for the node's shards —
// status, epochs, fence, release, promote, announce — and learns epochs from peers, by running the
// pure rules of src/replication/ (fence.ts, failover-promotion.ts, failover-quarantine.ts) against
// the shard's ShardHost and switching its role through the RegionNode (FailoverNode below).
//
// Every change of the fence is persisted before it is answered (a promise is a vote), and every
// change of a shard's fence or role runs under the shard's lock, one at a time; a promotion holds
// the lock only for its short steps, so that a later failover can supersede one that is stuck
// catching up.
import { fsync, mkdirSync, openSync, closeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyBaseLogger } from 'fastify';
import type { Entry } from '../core/entry.js';
import { PlayoutError, isPlayoutError } from '../core/errors.js';
import { hashEquals, toHex } from '../core/hash.js';
import { IngestWindow } from '../core/ingest-window.js';
import type {
  AnnounceAnswer,
  AnnounceRequest,
  EpochRecord,
  EpochsAnswer,
  FenceGrant,
  FenceRequest,
  PromoteAnswer,
  PromoteRequest,
  FailoverClient,
  RegionFailoverStatus,
  ReleaseAnswer,
  ReleaseRequest,
} from '../ports/failover-client.js';
import type { FailoverPlan } from '../replication/failover-coordinator.js';
import type { PeerClient } from '../ports/peer-client.js';
import { planFailoverOp } from './failover-ops.js';
import { appendEpochRecord, epochRecordOf } from '../replication/epoch-history.js';
import { beginPromotion, promotionReady, stillPromised } from '../replication/failover-promotion.js';
import { encodeQuarantineReport, quarantineReport, reconcile } from '../replication/failover-quarantine.js';
import { establishHistory, grantOf, leads, promise, release, type FenceHead } from '../replication/fence.js';
import type { FollowerRole } from './follower-role.js';
import { dedupeScanFrom, rawHashAt, scanIngestIds, type DedupeScan, type LeaderRole } from './leader-role.js';
import type { ShardHost } from './shard-host.js';

const fsyncAsync = promisify(fsync);

/** One shard of the node, as the failover side sees it. */
export interface FailoverSlot {
  readonly host: ShardHost;
  leader: LeaderRole | null;
  follower: FollowerRole | null;
}

/** What ShardFailover asks of the node (RegionNode implements it). */
export interface FailoverNode {
  readonly region: string;
  readonly log: FastifyBaseLogger;
  /** Folder of the quarantine report files (`<store>/quarantine`). */
  readonly quarantineDir: string;
  /** Throws PLAYOUT_SHARD_NOT_FOUND. */
  slotOf(shard: string): FailoverSlot;
  /** Regions of the peers. */
  peerRegions(): string[];
  /** Stop sequencing at once: fence the sequencer, stop the tick timer, close the LeaderRole. */
  stopLeading(slot: FailoverSlot, reason: PlayoutError): void;
  /** Stop following (close the FollowerRole). */
  stopFollowing(slot: FailoverSlot): void;
  /** Follow with a new FollowerRole from the durable head: `leader` (null: none has authority yet), streaming from `streamFrom`. */
  follow(slot: FailoverSlot, leader: string | null, streamFrom: string | null, reference: string): void;
  /** Stream from another region with the existing FollowerRole. */
  switchSource(slot: FailoverSlot, region: string): void;
  /** Lead (a new LeaderRole at the durable head), optionally starting an epoch (with its dedupe window read ahead). */
  lead(slot: FailoverSlot, startEpoch: { epoch: number; leader: string; lastSeqPrevEpoch: number } | null, dedupe?: DedupeScan): LeaderRole;
  /** Ticks an ingestId is remembered for by a leader (replication.dedupeWindowTicks). */
  readonly dedupeWindowTicks: number;
  /** GET …/epochs at a peer. */
  peerEpochs(region: string, shard: string, timeoutMs?: number): Promise<EpochsAnswer>;
  /** The peer's status row of the shard (head, epoch), fed to the follower; null when unreachable. */
  refreshPeer(region: string, shard: string): Promise<void>;
  /** What the node knows of its peers' heads for this shard. */
  peerHeads(slot: FailoverSlot): RegionFailoverStatus['peers'];
  /** Failover clients of this region and every peer (reads: status, entries), for a plan. */
  planClients(): FailoverClient[];
  /** The replication client of a peer region (null: not a peer). */
  peerClient(region: string): PeerClient | null;
}

export class ShardFailover {
  private readonly node: FailoverNode;
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly promotions = new Map<string, Promise<PromoteAnswer>>();
  private readonly learning = new Set<string>();
  /** Fence requests this region answered as the leader (a retried request gets the same answer). */
  private readonly fencedAsLeader = new Set<string>();
  /** Per shard, the dedupe window a candidate reads ahead for the failover it was promised to lead. */
  private readonly readAheads = new Map<string, { failoverId: string; scan: Promise<DedupeScan | null>; take: () => void }>();
  /** Per shard, ingress requests held at a candidate until it sequences (see holdIngress). */
  private readonly held = new Map<string, Set<() => void>>();

  constructor(node: FailoverNode) {
    this.node = node;
  }

  /** Run `fn` after every earlier locked step of this shard. */
  private locked<T>(shard: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(shard) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.locks.set(shard, next.catch(() => undefined));
    return next;
  }

  private running(host: ShardHost): void {
    if (host.stopped !== null) throw host.stopped;
  }

  // --- reads ---------------------------------------------------------------------------------

  headInfo(host: ShardHost): FenceHead {
    if (host.durableSeq === 0 || host.durableHash === null) return { head: 0, headHash: null, headEpoch: 0, headTick: 0, openTick: 0 };
    const e = host.ctx.store.get(host.shard, host.durableSeq);
    return { head: host.durableSeq, headHash: toHex(host.durableHash), headEpoch: e?.epoch ?? host.epoch, headTick: host.durableTick, openTick: e?.kind === 'tick' ? host.durableTick + 1 : host.durableTick };
  }

  status(shard: string): RegionFailoverStatus {
    const slot = this.node.slotOf(shard);
    const h = slot.host;
    return {
      region: this.node.region,
      shard,
      ack: h.meta.ack,
      ...this.headInfo(h),
      firstSeq: h.firstSeq(),
      applied: h.machine?.head ?? 0,
      lastAgreedTick: slot.leader !== null ? (h.latestDigest?.tick ?? null) : h.lastAgreedTick,
      quarantined: h.quarantine !== null,
      stopped: h.stopped === null ? null : `${h.stopped.code}: ${h.stopped.message}`,
      fence: h.fence,
      epochs: h.epochs,
      peers: this.node.peerHeads(slot),
    };
  }

  epochs(shard: string): EpochsAnswer {
    const h = this.node.slotOf(shard).host;
    return { shard, region: this.node.region, epochs: h.epochs, fence: h.fence };
  }

  /** GET …/failover-plan: what a failover to `to` would do, read from every region (changes nothing). */
  async plan(shard: string, to: string, acceptLoss: boolean): Promise<FailoverPlan> {
    this.node.slotOf(shard);
    return planFailoverOp({ shard, clients: this.node.planClients(), requestTimeoutMs: 5_000, promoteTimeoutMs: 60_000, listEntriesMax: 1_000, newFailoverId: () => 'plan' }, to, acceptLoss);
  }

  // --- fence, release ----------------------------------------------------------------------------

  fence(shard: string, req: FenceRequest): Promise<FenceGrant> {
    const slot = this.node.slotOf(shard);
    return this.locked(shard, async () => {
      const host = slot.host;
      this.running(host);
      const p = host.fence.promise;
      if (p !== null && p.epoch === req.epoch && p.candidate === req.candidate && p.failoverId === req.failoverId) {
        // The same request again (a retry): the same answer.
        return grantOf(host.fence, this.headInfo(host), this.fencedAsLeader.has(`${shard}/${req.epoch}/${req.failoverId}`), host.epochs);
      }
      const now = Date.now();
      // Refuse before touching anything: a conflicting request leaves the shard as it was.
      promise(host.fence, req, this.headInfo(host), now);
      const wasLeader = slot.leader !== null;
      let limit: number;
      if (slot.leader !== null) {
        // Stop sequencing first: the head this region reports is its final head.
        limit = slot.leader.sequencer.seq;
        this.node.stopLeading(slot, new PlayoutError('PLAYOUT_SEQUENCER_FENCED', `Region ${this.node.region} stopped sequencing shard "${shard}": it promised epoch ${req.epoch} to ${req.candidate} (failover ${req.failoverId})`, { shard }));
      } else {
        limit = Math.max(host.durableSeq, slot.follower?.follower.acceptedSeq ?? 0);
      }
      host.fence = promise(host.fence, req, { ...this.headInfo(host), head: limit }, now);
      // Nobody has authority until the epoch is established; the candidate's digests are the reference.
      slot.follower?.setLeader(null, req.candidate);
      // The promise and the final head become durable together (the store orders its writes; one
      // fsync usually covers both), rather than one fsync after the other.
      await Promise.all([host.waitDurable(limit).catch(() => undefined), host.persistFailover()]);
      if (req.candidate === this.node.region) {
        this.readAhead(host, req.failoverId);
        if (!wasLeader) this.restartStreamLater(slot, req.failoverId);
      } else this.dropReadAhead(shard);
      this.wakeHeld(shard);
      if (wasLeader) {
        this.fencedAsLeader.add(`${shard}/${req.epoch}/${req.failoverId}`);
        this.node.follow(slot, null, req.candidate === this.node.region ? null : req.candidate, req.candidate);
      }
      this.node.log.warn({ shard, epoch: req.epoch, candidate: req.candidate, failoverId: req.failoverId, head: host.durableSeq, wasLeader }, `shard ${shard}: promised epoch ${req.epoch} to ${req.candidate}; entries of older epochs beyond seq ${host.fence.promise?.seqMax} are refused`);
      return grantOf(host.fence, this.headInfo(host), wasLeader, host.epochs);
    });
  }

  release(shard: string, req: ReleaseRequest): Promise<ReleaseAnswer> {
    const slot = this.node.slotOf(shard);
    return this.locked(shard, async () => {
      const host = slot.host;
      const r = release(host.fence, req);
      if (!r.released) return r;
      host.fence = r.fence;
      await host.persistFailover();
      this.dropReadAhead(shard);
      this.wakeHeld(shard);
      this.node.log.warn({ shard, epoch: req.epoch, failoverId: req.failoverId }, `shard ${shard}: released the promise of epoch ${req.epoch} (failover ${req.failoverId})`);
      const leader = host.fence.leader;
      if (leads(host.fence, this.node.region) && slot.leader === null && host.stopped === null) {
        // The old leader gets its sequencer back once everything it holds is applied.
        this.node.stopFollowing(slot);
        await host.drain();
        await this.waitApplied(host, 10_000);
        this.node.lead(slot, null);
      } else if (leader !== null) {
        slot.follower?.setLeader(leader, leader);
      }
      return { released: true, fence: host.fence };
    });
  }

  // --- promote -----------------------------------------------------------------------------------

  /** Idempotent per (epoch, failoverId): a repeated request joins the promotion in progress. */
  promote(shard: string, req: PromoteRequest): Promise<PromoteAnswer> {
    const key = `${shard}/${req.epoch}/${req.failoverId}`;
    let p = this.promotions.get(key);
    if (p === undefined) {
      const done = (): void => {
        if (this.readAheads.get(shard)?.failoverId === req.failoverId) this.dropReadAhead(shard);
      };
      p = this.promoteSteps(shard, req).then(
        (answer) => {
          done();
          return answer;
        },
        (err: unknown) => {
          done();
          // Requests held for this promotion are answered now (redirected, or 503).
          this.wakeHeld(shard);
          throw err;
        },
      );
      this.promotions.set(key, p);
      // A failed promotion may be asked again (it fails again at once unless the promise still holds).
      p.catch(() => this.promotions.delete(key));
    }
    return p;
  }

  private async promoteSteps(shard: string, req: PromoteRequest): Promise<PromoteAnswer> {
    const slot = this.node.slotOf(shard);
    const host = slot.host;
    const region = this.node.region;
    const deadline = Date.now() + req.timeoutMs;
    const t0 = Date.now();
    let caughtUpFrom = 0;
    let quarantined = 0;
    // The raised limit is persisted while the catch-up runs, and is durable before the epoch
    // entry is sealed. (Losing it in a crash would lose nothing: the promise it raises stays, and
    // the entries it admits are the fenced majority's history, which any later promotion of
    // this epoch catches up to anyway.)
    let limitDurable: Promise<void> = Promise.resolve();
    await this.locked(shard, async () => {
      this.running(host);
      host.fence = beginPromotion(host.fence, region, req);
      limitDurable = host.persistFailover();
      limitDurable.catch(() => undefined);
      caughtUpFrom = host.durableSeq;
      if (req.truncateAbove !== null && req.truncateAbove < host.durableSeq) {
        this.dropReadAhead(shard);
        quarantined = await this.truncate(slot, req.truncateAbove, null, `promotion to epoch ${req.epoch} (failover ${req.failoverId}): the highest fenced head ${req.catchUpTo.seq} is of epoch ${req.catchUpTo.epoch}`);
      }
      if (slot.leader !== null) this.node.stopLeading(slot, new PlayoutError('PLAYOUT_SEQUENCER_FENCED', `Region ${region} stops sequencing shard "${shard}" to start epoch ${req.epoch}`, { shard }));
      const from = req.sources.find((r) => r !== region) ?? null;
      if (from !== null && req.catchUpTo.seq > host.durableSeq) {
        // A fresh stream from the best source, from the next seq this region needs: what the
        // stream carried beyond this region's fence limit was refused, and a repair of it would
        // wait for the repair delay or the sources' statuses.
        this.node.stopFollowing(slot);
        await host.drainAppends();
        this.node.follow(slot, null, from, region);
      } else if (slot.follower === null) this.node.follow(slot, null, from, region);
      else slot.follower.setLeader(null, region);
      this.readAhead(host, req.failoverId);
    });
    const tBegun = Date.now();
    await this.catchUp(slot, req, deadline);
    const tCaughtUp = Date.now();
    const readAhead = this.readAheads.get(shard);
    readAhead?.take();
    const dedupe = await readAhead?.scan;
    const tReadAhead = Date.now();
    const leader = await this.locked(shard, async () => {
      this.running(host);
      stillPromised(host.fence, region, req);
      // Ready: stop following, wait for appends in flight, seal the epoch's first entries, lead.
      this.node.stopFollowing(slot);
      await Promise.all([host.drainAppends(), limitDurable]);
      stillPromised(host.fence, region, req);
      const role = this.node.lead(slot, { epoch: req.epoch, leader: region, lastSeqPrevEpoch: host.durableSeq }, dedupe ?? undefined);
      // The record made from the epoch entry once durable takes the failover's id and time (and is
      // persisted with them), so that no second write follows it.
      const entry = role.firstEntries[0]!;
      host.learnedRecords.set(req.epoch, { ...epochRecordOf(entry), atMs: Date.now(), failoverId: req.failoverId });
      return role;
    });
    // Inputs held here are sequenced now, after the epoch entry (see wakeHeld): this runs before
    // the turn that issues the epoch entry's append.
    this.wakeHeld(shard, true);
    const tLeading = Date.now();
    const first = leader.firstEntries;
    const last = first[first.length - 1]!;
    await host.waitDurable(last.seq);
    const tEpochDurable = Date.now();
    let recorded = host.epochs.find((r) => r.epoch === req.epoch);
    if (recorded === undefined) throw new PlayoutError('PLAYOUT_FAILOVER_INCOMPLETE', `Region ${region} could not record epoch ${req.epoch} of shard "${shard}"`, { shard });
    if (recorded.failoverId !== req.failoverId) {
      // Stamp the failover on the record (it was recorded from the entry alone).
      host.epochs = appendEpochRecord(host.epochs, { ...recorded, atMs: Date.now(), failoverId: req.failoverId }, shard);
      void host.persistFailover();
    }
    // The record (with its stamp) is durable: the write recordEpoch started, or the one above.
    await host.failoverPersisted;
    recorded = host.epochs.find((r) => r.epoch === req.epoch)!;
    const record = recorded;
    this.node.log.warn({ shard, epoch: req.epoch, failoverId: req.failoverId, firstSeq: record.firstSeq, caughtUpFrom, ms: Date.now() - t0, phasesMs: { begin: tBegun - t0, catchUp: tCaughtUp - tBegun, readAhead: tReadAhead - tCaughtUp, stopFollowingAndLead: tLeading - tReadAhead, epochDurable: tEpochDurable - tLeading, recorded: Date.now() - tEpochDurable } }, `shard ${shard}: region ${region} leads epoch ${req.epoch} from seq ${record.firstSeq}`);
    return { record, caughtUpFrom, quarantined, sequencingFrom: last.seq + 1, sequencingTick: leader.sequencer.tick, epochs: host.epochs };
  }

  // --- the candidate's read-ahead and held ingress -------------------------------------------------

  /**
   * Read the dedupe window (the inputs' ingestIds the new leader must remember) ahead, a chunk
   * per turn of the event loop, from the moment this region promises itself an epoch: leading
   * then reads only what the catch-up appended after (LeaderRole.resume), instead of the whole
   * window (tens of thousands of entries) while no region sequences.
   */
  private readAhead(host: ShardHost, failoverId: string): void {
    if (this.readAheads.get(host.shard)?.failoverId === failoverId) return;
    this.dropReadAhead(host.shard);
    const control: ReadAheadControl = { taken: false, wake: null };
    const scan = this.scanAhead(host, control).catch(() => null);
    this.readAheads.set(host.shard, {
      failoverId,
      scan,
      take: () => {
        control.taken = true;
        control.wake?.();
      },
    });
  }

  /**
   * A candidate's stream carries only entries its fence refuses from now on, and its promotion
   * restarts it (to catch up) and then stops it (to lead). Restarted here, after this fence is
   * answered and before the promotion asks, so that those two are cheap: the first stream a node
   * closes is the costliest step of its follower's stop (the aborted request's error stack, ~50 ms
   * when stack traces are source-mapped, as under tsx).
   */
  private restartStreamLater(slot: FailoverSlot, failoverId: string): void {
    const host = slot.host;
    const region = this.node.region;
    void this.locked(host.shard, async () => {
      await new Promise((r) => setImmediate(r));
      const p = host.fence.promise;
      const from = host.fence.leader;
      if (p === null || p.failoverId !== failoverId || p.candidate !== region || slot.follower === null || slot.leader !== null || host.stopped !== null || from === null || from === region || !this.node.peerRegions().includes(from)) return;
      this.node.stopFollowing(slot);
      await host.drainAppends();
      if (slot.follower === null && slot.leader === null) this.node.follow(slot, null, from, region);
    }).catch((err: unknown) => this.node.log.warn({ shard: host.shard, code: isPlayoutError(err) ? err.code : undefined }, `shard ${host.shard}: cannot restart the candidate's stream: ${(err as Error)?.message ?? String(err)}`));
  }

  private dropReadAhead(shard: string): void {
    this.readAheads.get(shard)?.take();
    this.readAheads.delete(shard);
  }

  /**
   * The read-ahead: the window up to the durable head, then what the catch-up appends as it
   * lands, until the promotion takes what was read (LeaderRole.resume reads the rest, and checks
   * the hash at `toSeq`: a log truncated and refilled meanwhile is not taken for the same).
   */
  private async scanAhead(host: ShardHost, control: ReadAheadControl): Promise<DedupeScan | null> {
    const m = host.machine;
    if (m === null || host.durableSeq === 0) return null;
    const fromSeq = dedupeScanFrom(host, m.tick - this.node.dedupeWindowTicks);
    // Hashed as it is read (IngestWindow), while the candidate catches up: not when it leads.
    const window = new IngestWindow();
    let toSeq = fromSeq - 1;
    let toHash: Uint8Array | null = null;
    const unsubscribe = host.onAppend(() => control.wake?.());
    try {
      while (!control.taken) {
        if (toSeq >= host.durableSeq) {
          // Level with the log: wait for the catch-up's next append, or for the promotion.
          await new Promise<void>((resolve) => {
            control.wake = () => {
              control.wake = null;
              resolve();
            };
          });
          continue;
        }
        await new Promise((r) => setImmediate(r));
        // Truncated meanwhile (a quarantine): LeaderRole.resume reads the log itself.
        if (host.stopped !== null || host.durableSeq < toSeq) return null;
        const to = Math.min(host.durableSeq, toSeq + READ_AHEAD_CHUNK_ENTRIES);
        scanIngestIds(host, toSeq + 1, to, READ_AHEAD_CHUNK_ENTRIES * 1024, (id, seq, tick) => {
          window.remember(id, seq, tick);
          return true;
        });
        toSeq = to;
        toHash = rawHashAt(host, to)?.slice() ?? null;
        if (toHash === null) return null;
      }
    } finally {
      unsubscribe();
      control.wake = null;
    }
    return toHash === null ? null : { fromSeq, toSeq, toHash, window };
  }

  /**
   * Whether this region sequences the shard's inputs now: it leads its established epoch, or it
   * is the candidate whose LeaderRole has sealed the promised epoch's first entries (inputs then
   * follow the epoch entry in the log, and are acknowledged once durable, after it).
   */
  sequencing(slot: FailoverSlot): boolean {
    const l = slot.leader;
    if (l === null || l.sequencer.isFenced) return false;
    const f = slot.host.fence;
    if (leads(f, this.node.region)) return true;
    const p = f.promise;
    return p !== null && p.candidate === this.node.region && l.sequencer.epoch === p.epoch;
  }

  /**
   * Ingress at a candidate that does not sequence yet waits here (at most `timeoutMs`, at most
   * HELD_REQUESTS_MAX requests per shard) until it does, its promotion ends, or its promise
   * changes, instead of answering 503 and having every client poll. Resolves false at once when
   * this region is not a candidate (or too many wait): the caller answers with a redirect or 503.
   */
  async holdIngress(slot: FailoverSlot, timeoutMs: number): Promise<boolean> {
    const host = slot.host;
    const p = host.fence.promise;
    if (p === null || p.candidate !== this.node.region || host.stopped !== null || timeoutMs <= 0) return false;
    let waiting = this.held.get(host.shard);
    if (waiting === undefined) this.held.set(host.shard, (waiting = new Set()));
    if (waiting.size >= HELD_REQUESTS_MAX) return false;
    const set = waiting;
    await new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(t);
        set.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, timeoutMs);
      set.add(wake);
    });
    return true;
  }

  /**
   * Answer the requests held for a shard. `paced` (a candidate that starts sequencing): in arrival
   * order, the first at once (its inputs join the epoch entry's append: one fsync for both), then
   * one per turn of the event loop. Ingesting them all in one turn would hold the event loop (and
   * the epoch entry's append) for the validation and sealing of thousands of inputs, and make
   * every one of them wait for the whole lot to be stored and applied; paced, the first are
   * acknowledged first and the rest join the appends in flight.
   */
  private wakeHeld(shard: string, paced = false): void {
    const waiting = this.held.get(shard);
    if (waiting === undefined || waiting.size === 0) return;
    const queue = [...waiting];
    if (!paced) {
      for (const wake of queue) wake();
      return;
    }
    const next = (): void => {
      queue.shift()?.();
      if (queue.length > 0) setImmediate(next);
    };
    next();
  }

  /**
   * Catch up to the highest fenced head: the follower repairs from the sources as usual (the fence
   * now admits up to the target). It asks at once from the heads it knows (the stream's
   * heartbeats) and again when the sources' statuses answer, rather than after them; the check
   * runs after every durable append (once the follower applied it), or every CATCH_UP_POLL_MS.
   */
  private async catchUp(slot: FailoverSlot, req: PromoteRequest, deadline: number): Promise<void> {
    const host = slot.host;
    const shard = host.shard;
    const region = this.node.region;
    const refresh = (): void => {
      for (const r of req.sources) {
        if (r !== region) void this.node.refreshPeer(r, shard).then(() => slot.follower?.repairNow(), () => undefined);
      }
    };
    refresh();
    slot.follower?.repairNow();
    let lastRepairMs = Date.now();
    let wake: (() => void) | null = null;
    const unsubscribe = host.onAppend(() => {
      if (wake !== null) setImmediate(wake);
    });
    try {
      for (;;) {
        this.running(host);
        stillPromised(host.fence, region, req);
        const head = host.durableSeq;
        const at = head >= req.catchUpTo.seq ? this.hashAt(host, req.catchUpTo.seq) : null;
        if (promotionReady(req, head, at) === 'ready' && host.machine?.head === head && host.quarantine === null && (slot.follower?.applyIdle ?? true)) return;
        if (Date.now() >= deadline) {
          throw new PlayoutError('PLAYOUT_FAILOVER_INCOMPLETE', `Region ${region} did not catch up to seq ${req.catchUpTo.seq} of shard "${shard}" within ${req.timeoutMs} ms (head ${head}, applied ${host.machine?.head ?? 0}${host.quarantine !== null ? ', quarantined' : ''}); its promise of epoch ${req.epoch} stays`, { shard, seq: head, expected: `head ${req.catchUpTo.seq}`, received: `head ${head}` });
        }
        if (Date.now() - lastRepairMs > REFRESH_SOURCES_MS) {
          lastRepairMs = Date.now();
          refresh();
          slot.follower?.repairNow();
        }
        await new Promise<void>((resolve) => {
          const w = (): void => {
            clearTimeout(t);
            if (wake === w) wake = null;
            resolve();
          };
          const t = setTimeout(w, CATCH_UP_POLL_MS);
          wake = w;
        });
      }
    } finally {
      unsubscribe();
    }
  }

  private hashAt(host: ShardHost, seq: number): string | null {
    if (seq === host.durableSeq && host.durableHash !== null) return toHex(host.durableHash);
    const e = host.ctx.store.get(host.shard, seq);
    return e === null ? null : toHex(e.hash);
  }

  private async waitApplied(host: ShardHost, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (host.machine !== null && host.machine.head < host.durableSeq && host.quarantine === null && host.stopped === null && Date.now() < deadline) await sleep(2);
  }

  // --- learning an epoch ---------------------------------------------------------------------------

  announce(shard: string, req: AnnounceRequest): Promise<AnnounceAnswer> {
    this.node.slotOf(shard);
    return this.learn(shard, req.epochs.length > 0 ? req.epochs : [req.record], req.record.firstSeq, req.record.leader).then((quarantined) => ({ fence: this.node.slotOf(shard).host.fence, quarantined }));
  }

  /** A peer's status (or a diverging epoch entry it sent) names an epoch above ours: fetch its epochs and learn them. */
  learnFrom(shard: string, region: string): void {
    const key = `${shard}/${region}`;
    if (this.learning.has(key)) return;
    this.learning.add(key);
    void (async () => {
      try {
        const answer = await this.node.peerEpochs(region, shard);
        const last = answer.epochs[answer.epochs.length - 1];
        if (last !== undefined && last.epoch === answer.fence.epoch) await this.learn(shard, answer.epochs, last.firstSeq, region);
      } catch (err) {
        this.node.log.warn({ shard, peer: region, code: isPlayoutError(err) ? err.code : undefined }, `shard ${shard}: cannot learn the epochs of ${region}: ${(err as Error).message}`);
      } finally {
        this.learning.delete(key);
      }
    })();
  }

  /**
   * Learn the history `epochs` (the new leader's): merge the records this region holds too, stop
   * sequencing, reconcile the log, quarantine a divergent suffix, establish, follow the leader.
   * Resolves with the number of entries quarantined.
   */
  learn(shard: string, epochs: readonly EpochRecord[], refHead: number, from: string | null): Promise<number> {
    const slot = this.node.slotOf(shard);
    return this.locked(shard, async () => {
      const host = slot.host;
      // Records of epochs this region holds too (same first entry) teach it when and by which failover they started.
      let merged = host.epochs;
      for (const r of epochs) {
        if (r.epoch > (host.epochs[host.epochs.length - 1]?.epoch ?? 0)) host.learnedRecords.set(r.epoch, r);
        const mine = merged.find((m) => m.epoch === r.epoch && m.entryHash === r.entryHash);
        if (mine !== undefined && (mine.atMs === null || mine.failoverId === null)) merged = appendEpochRecord(merged, r, shard);
      }
      const newest = epochs[epochs.length - 1];
      if (merged !== host.epochs) {
        host.epochs = merged;
        if (newest === undefined || newest.epoch <= host.fence.epoch) await host.persistFailover();
      }
      if (newest === undefined || newest.epoch <= host.fence.epoch || host.stopped !== null) return 0;
      const region = this.node.region;
      // Stop sequencing first: a region that learns it no longer leads must not stamp one more entry,
      // and its head is final once its appends in flight landed. (A follower is not drained here: its
      // stream may never pause; a truncation below stops it and drains.)
      if (slot.leader !== null) {
        this.node.stopLeading(slot, new PlayoutError('PLAYOUT_SEQUENCER_FENCED', `Region ${region} stopped sequencing shard "${shard}": epoch ${newest.epoch} (leader ${newest.leader}) is established`, { shard }));
        await host.drain();
      }
      const r = reconcile(shard, { head: host.durableSeq, epochs: host.epochs, hashAt: (seq) => this.hashAt(host, seq) }, { head: Math.max(refHead, newest.firstSeq), epochs });
      if (r.action === 'conflict') {
        this.node.stopFollowing(slot);
        host.stop(r.error);
        return 0;
      }
      let quarantined = 0;
      if (r.action === 'truncate') {
        quarantined = await this.truncate(slot, r.keep, r.epoch ?? newest, `epoch ${newest.epoch} (leader ${newest.leader}) kept seq ..${r.epoch?.lastSeqPrevEpoch ?? r.keep}; this region held entries of an older epoch beyond it`, newest.leader === region ? null : newest.leader);
      }
      host.fence = establishHistory(host.fence, epochs);
      if (host.fence.leader !== null && host.fence.leader !== host.meta.leader) host.meta = { ...host.meta, leader: host.fence.leader };
      await host.persistFailover();
      if (host.fence.promise === null) this.dropReadAhead(shard);
      this.wakeHeld(shard);
      await host.ctx.store.putMeta(shard, 'shard', host.meta);
      this.node.log.warn({ shard, epoch: newest.epoch, leader: newest.leader, quarantined }, `shard ${shard}: learned epoch ${newest.epoch} (leader ${newest.leader})${from !== null ? ` from ${from}` : ''}`);
      // A candidate still promoting for a later epoch keeps its role (its loop checks its promise).
      const leader = host.fence.promise === null ? newest.leader : null;
      if (leader === region) return quarantined;
      const streamFrom = leader ?? host.fence.promise?.candidate ?? newest.leader;
      if (slot.follower === null) this.node.follow(slot, leader, streamFrom === region ? null : streamFrom, leader ?? streamFrom);
      else {
        slot.follower.setLeader(leader, leader ?? streamFrom, newest.tick);
        if (streamFrom !== region) this.node.switchSource(slot, streamFrom);
      }
      return quarantined;
    });
  }

  /**
   * Quarantine the log above `keep`: write the report file durably (it lists every entry), then
   * truncate, then alert. Both roles are stopped; the caller picks the next one.
   */
  private async truncate(slot: FailoverSlot, keep: number, epoch: EpochRecord | null, reason: string, newLeader: string | null = null): Promise<number> {
    const host = slot.host;
    const shard = host.shard;
    if (slot.leader !== null) this.node.stopLeading(slot, new PlayoutError('PLAYOUT_SEQUENCER_FENCED', `Region ${this.node.region} stopped sequencing shard "${shard}" to truncate above seq ${keep}`, { shard }));
    this.node.stopFollowing(slot);
    await host.drain();
    const head = host.durableSeq;
    if (keep >= head) return 0;
    const suffix: Entry[] = [];
    for (const e of host.ctx.store.iterate(shard, keep + 1, head)) suffix.push(e);
    const kept = keep === 0 ? null : host.ctx.store.get(shard, keep);
    const lookup = newLeader === null ? null : await this.resequenced(shard, newLeader, keep, suffix);
    const report = quarantineReport({
      shard,
      region: this.node.region,
      entries: suffix,
      keptSeq: keep,
      keptHash: kept === null ? null : toHex(kept.hash),
      epoch,
      reason,
      atMs: Date.now(),
      resequencedAt: lookup === null ? undefined : (id) => lookup.seqOf.get(id) ?? null,
      resequencedCheckedTo: lookup?.checkedTo ?? null,
    });
    // The report is durable before the truncation: a crash in between loses nothing silently.
    const file = join(this.node.quarantineDir, `${shard}-${report.seqFrom}-${report.seqTo}.json`);
    await writeDurably(this.node.quarantineDir, file, encodeQuarantineReport(report));
    const truncated = await host.truncateAbove(keep);
    if (truncated.length !== suffix.length || truncated.some((e, i) => !hashEquals(e.hash, suffix[i]!.hash))) {
      this.node.log.error({ shard, file }, `shard ${shard}: the store truncated other entries than the quarantine report ${file} lists`);
    }
    host.quarantineReports = [...host.quarantineReports, { file, seqFrom: report.seqFrom, seqTo: report.seqTo, entries: report.entries.length, inputs: report.inputs, epoch: report.epoch, leader: report.leader, atMs: report.atMs, reason }];
    await host.ctx.store.putMeta(shard, 'failover.quarantine', host.quarantineReports);
    await host.persistFailover();
    const alert = new PlayoutError('PLAYOUT_DIVERGENT_SUFFIX', `Shard "${shard}" at region ${this.node.region}: ${report.entries.length} entries (${report.inputs} inputs) [${report.seqFrom}, ${report.seqTo}] were truncated into ${file}: ${reason}`, { shard, seq: report.seqFrom });
    this.node.log.error({ shard, code: alert.code, file, seqFrom: report.seqFrom, seqTo: report.seqTo, inputs: report.inputs, ingestIds: report.entries.filter((e) => e.kind === 'input').map((e) => e.ingestId) }, alert.message);
    return report.entries.length;
  }

  /**
   * Where the inputs of a suffix about to be quarantined went in the new history: their clients
   * retried them at the new leader (same ingestId), usually within seconds. Reads the new leader's
   * log after `keep` (at most RESEQUENCED_LOOKUP_ENTRIES_MAX entries, RESEQUENCED_LOOKUP_MS_MAX);
   * null when it cannot be read (the report then says the search was not made).
   */
  private async resequenced(shard: string, leader: string, keep: number, suffix: readonly Entry[]): Promise<{ seqOf: Map<string, number>; checkedTo: number } | null> {
    const wanted = new Set<string>();
    for (const e of suffix) if (e.kind === 'input' && e.ingestId !== null) wanted.add(e.ingestId);
    const client = this.node.peerClient(leader);
    if (wanted.size === 0 || client === null) return wanted.size === 0 ? { seqOf: new Map(), checkedTo: keep } : null;
    const seqOf = new Map<string, number>();
    const deadline = Date.now() + RESEQUENCED_LOOKUP_MS_MAX;
    let from = keep + 1;
    let checkedTo = keep;
    try {
      const head = (await client.status(shard, { signal: AbortSignal.timeout(RESEQUENCED_LOOKUP_MS_MAX) })).head;
      const to = Math.min(head, keep + RESEQUENCED_LOOKUP_ENTRIES_MAX);
      while (from <= to && seqOf.size < wanted.size && Date.now() < deadline) {
        const page = await client.entries(shard, from, to, { signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) });
        if (page.length === 0) break;
        for (const e of page) if (e.ingestId !== null && wanted.has(e.ingestId) && !seqOf.has(e.ingestId)) seqOf.set(e.ingestId, e.seq);
        checkedTo = page[page.length - 1]!.seq;
        from = checkedTo + 1;
      }
    } catch (err) {
      this.node.log.warn({ shard, peer: leader, code: isPlayoutError(err) ? err.code : undefined }, `shard ${shard}: cannot read the new history from ${leader} to find retried inputs: ${(err as Error).message}`);
      if (checkedTo === keep) return null;
    }
    return { seqOf, checkedTo };
  }
}

/** How the promotion stops a read-ahead (see ShardFailover.scanAhead). */
interface ReadAheadControl {
  taken: boolean;
  wake: (() => void) | null;
}

/** Requests held at most per shard at a candidate (each a batch of inputs). */
const HELD_REQUESTS_MAX = 1_024;
/** The candidate's catch-up loop checks at least this often (it is woken by every durable append too). */
const CATCH_UP_POLL_MS = 10;
/** How often a catching-up candidate asks its sources' statuses again. */
const REFRESH_SOURCES_MS = 200;
/** Entries of the dedupe read-ahead per turn of the event loop (a few ms). */
const READ_AHEAD_CHUNK_ENTRIES = 2_000;

/** How much of the new history a returning region searches for its quarantined inputs' ingestIds. */
const RESEQUENCED_LOOKUP_ENTRIES_MAX = 200_000;
const RESEQUENCED_LOOKUP_MS_MAX = 5_000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Write a file and fsync it and its folder. */
async function writeDurably(dir: string, file: string, text: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, text);
  const fd = openSync(file, 'r');
  try {
    await fsyncAsync(fd);
  } finally {
    closeSync(fd);
  }
  const dfd = openSync(dir, 'r');
  try {
    await fsyncAsync(dfd);
  } finally {
    closeSync(dfd);
  }
}

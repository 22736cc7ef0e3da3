import { describe, expect, it } from 'vitest';
import { PlayoutError, Rng, ZERO_HASH, type Entry } from '../../src/core/index.js';
import type { PeerShardStatus } from '../../src/ports/entry-source.js';
import {
  FOLLOWER_DEFAULTS,
  Follower,
  type AppendAction,
  type BootstrapAction,
  type FollowerAction,
  type FollowerConfig,
  type RequestRangeAction,
} from '../../src/replication/follower.js';
import { SHARD, forge, forgeRun, makeLog } from './chain.js';

const LOG = makeLog(40, 3); // 1 genesis + 40 × (3 inputs + 1 tick) = 161 entries
const at = (seq: number): Entry => LOG[seq - 1]!;
const run = (from: number, to: number): Entry[] => LOG.slice(from - 1, to);

/** A follower with a store that makes appends durable when told to. */
class Harness {
  readonly durable = new Map<number, Entry>();
  readonly follower: Follower;
  readonly actions: FollowerAction[] = [];
  readonly applied: Entry[] = [];
  now = 1_000;

  constructor(config: Partial<FollowerConfig> = {}, head = 0, applied = head, seed = 1) {
    for (let s = 1; s <= head; s++) this.durable.set(s, at(s));
    const c: FollowerConfig = {
      ...FOLLOWER_DEFAULTS,
      gapDelayMs: 0,
      repairDelayMs: 500,
      requestTimeoutMs: 1_000,
      backoffMsMin: 100,
      backoffMsMax: 1_600,
      ...config,
      shard: SHARD,
      region: 'us-sfo',
      peers: config.peers ?? ['eu-fra', 'af-jnb'],
      leader: config.leader === undefined ? 'eu-fra' : config.leader,
    };
    this.follower = new Follower(c, { hashAt: (s) => this.durable.get(s)?.hash ?? null }, Rng.fromSeed(seed), {
      head,
      headHash: head === 0 ? ZERO_HASH : at(head).hash,
      headTick: head === 0 ? 0 : at(head).tick,
      applied,
    });
    this.take(this.follower.start(this.now));
  }

  take(actions: FollowerAction[]): FollowerAction[] {
    this.actions.push(...actions);
    for (const a of actions) {
      if (a.op === 'apply') this.applied.push(...a.entries);
      if (a.op === 'applyStored') for (let s = a.seqFrom; s <= a.seqTo; s++) this.applied.push(this.durable.get(s)!);
      // The node rebuilds its machine from the durable log.
      if (a.op === 'rewind') while (this.applied.length > 0 && this.applied[this.applied.length - 1]!.seq > a.seq) this.applied.pop();
    }
    return actions;
  }

  of<T extends FollowerAction['op']>(op: T): Extract<FollowerAction, { op: T }>[] {
    return this.actions.filter((a) => a.op === op) as Extract<FollowerAction, { op: T }>[];
  }

  /** Make every pending append durable, in order. */
  flush(): void {
    const done = new Set(this.doneAppends);
    for (const a of this.of('append')) {
      if (done.has(a.appendId)) continue;
      this.doneAppends.push(a.appendId);
      for (const e of a.entries) this.durable.set(e.seq, e);
      this.take(this.follower.appended(a.appendId, this.now));
    }
  }
  private readonly doneAppends: number[] = [];

  entries(entries: readonly Entry[], region: string | null = 'eu-fra'): FollowerAction[] {
    return this.take(this.follower.onEntries(entries, region, this.now));
  }

  status(region: string, head: number, firstSeq: number | null = 1): FollowerAction[] {
    const s: PeerShardStatus = { region, shard: SHARD, head, headHash: at(head)?.hash ?? null, tick: at(head)?.tick ?? 0, firstSeq, epoch: 1, digest: null, quarantined: false };
    return this.take(this.follower.onPeerStatus(s, this.now));
  }

  timer(ms: number): FollowerAction[] {
    this.now += ms;
    return this.take(this.follower.onTimer(this.now));
  }

  lastRequest(): RequestRangeAction {
    const r = this.of('requestRange');
    return r[r.length - 1]!;
  }

  answer(req: RequestRangeAction, entries: readonly Entry[], afterMs = 20): FollowerAction[] {
    this.now += afterMs;
    return this.take(this.follower.onRangeResponse(req.requestId, entries, this.now));
  }
}

const seqs = (entries: readonly Entry[]): number[] => entries.map((e) => e.seq);

describe('Follower', () => {
  it('appends entries that continue the head and applies them as they are appended, once', () => {
    const h = new Harness();
    const out = h.entries(run(1, 5));
    // Applied right after the append is issued: durable at the region that sent them, the
    // machine need not wait for this region's fsync (see the Follower's header).
    expect(out.map((a) => a.op)).toEqual(['append', 'apply']);
    expect(seqs((out[0] as AppendAction).entries)).toEqual([1, 2, 3, 4, 5]);
    expect(seqs(h.applied)).toEqual([1, 2, 3, 4, 5]);
    expect(h.follower.status()).toMatchObject({ head: 0, accepted: 5, applied: 5 });
    h.entries(run(6, 7));
    expect(seqs(h.applied)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    h.flush();
    expect(seqs(h.applied)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(h.follower.status()).toMatchObject({ head: 7, accepted: 7, applied: 7, headTick: at(7).tick });
  });

  it('applies an append when it becomes durable if the machine was behind when it was issued', () => {
    const h = new Harness({}, 10, 4);
    // start() replays the durable log first (applyStored 5..10): the machine is level.
    expect(h.of('applyStored')[0]).toMatchObject({ seqFrom: 5, seqTo: 10 });
    h.take(h.follower.quarantine(h.now));
    h.entries(run(11, 12));
    const snap = at(8);
    // Restored while 11..12 are in flight: 9..10 come from the store, 11..12 once durable.
    h.take(h.follower.restored(snap.seq, snap.hash, snap.tick, h.now));
    expect(h.follower.status()).toMatchObject({ mode: 'following', head: 10, accepted: 12, applied: 10 });
    h.entries(run(13, 13));
    expect(h.follower.status().applied).toBe(10);
    h.flush();
    expect(h.follower.status()).toMatchObject({ head: 13, applied: 13 });
    expect(h.of('apply').flatMap((a) => seqs(a.entries))).toEqual([11, 12, 13]);
  });

  it('drops a duplicate whose hash equals the stored entry', () => {
    const h = new Harness({}, 10);
    expect(h.entries([at(4), at(10)])).toEqual([]);
    expect(h.follower.status().counters.duplicates).toBe(2);
  });

  it('drops a duplicate of an entry still being appended', () => {
    const h = new Harness({}, 3);
    h.entries(run(4, 6));
    expect(h.entries([at(5)])).toEqual([]);
    expect(h.follower.status().counters.duplicates).toBe(1);
  });

  it('stops the shard on a duplicate with another hash (a fork) and never applies it', () => {
    const h = new Harness({}, 10);
    const out = h.entries([forge(at(7)), at(11)]);
    expect(out.map((a) => a.op)).toEqual(['alert', 'stop']);
    const stop = h.of('stop')[0]!;
    expect(stop.error.code).toBe('PLAYOUT_FORK');
    expect(stop.error.seq).toBe(7);
    expect(h.of('alert')[0]!.level).toBe('critical');
    expect(h.follower.status().mode).toBe('stopped');
    // Nothing after the fork is taken in, not even entries that chain.
    expect(h.entries([at(11)])).toEqual([]);
    expect(h.of('append')).toHaveLength(0);
  });

  it("treats a leader entry that does not chain to the head as a fork", () => {
    const h = new Harness({}, 10);
    h.entries([forge(at(11), forge(at(10)).hash)], 'eu-fra');
    expect(h.of('stop')[0]!.error.code).toBe('PLAYOUT_FORK');
  });

  it('refuses an entry from a non-leader source that does not chain to the head, and carries on', () => {
    const h = new Harness({}, 10);
    h.entries([forge(at(11), forge(at(10)).hash)], 'af-jnb');
    expect(h.of('stop')).toHaveLength(0);
    expect(h.of('alert')[0]!.error.code).toBe('PLAYOUT_CHAIN_BROKEN');
    h.entries([at(11)], 'eu-fra');
    expect(h.follower.status().accepted).toBe(11);
  });

  it('buffers early entries and requests exactly the missing range', () => {
    const h = new Harness({}, 5);
    h.entries([at(9), at(10)]);
    const req = h.lastRequest();
    expect(req).toMatchObject({ peer: 'eu-fra', seqFrom: 6, seqTo: 8, timeoutMs: 1_000 });
    expect(h.follower.status()).toMatchObject({ buffered: 2, gapFrom: 6 });
    expect(h.follower.status().counters.gaps).toBe(1);
    // The repaired range chains at both ends: it is accepted and the buffer drains behind it.
    h.answer(req, run(6, 8));
    expect(seqs(h.of('append').flatMap((a) => a.entries))).toEqual([6, 7, 8, 9, 10]);
    expect(h.follower.status()).toMatchObject({ buffered: 0, gapFrom: null });
    expect(h.follower.status().counters).toMatchObject({ repairsCompleted: 1, entriesRepaired: 3 });
  });

  it('holds a gap repair back for gapDelayMs, when the source reorders', () => {
    const h = new Harness({ gapDelayMs: 30 }, 5);
    h.entries([at(8)]);
    expect(h.of('requestRange')).toHaveLength(0);
    expect(h.follower.nextWakeMs()).toBe(h.now + 30);
    // The missing entries arrive late on their own: no repair at all.
    h.entries([at(7), at(6)]);
    h.timer(30);
    expect(h.of('requestRange')).toHaveLength(0);
    expect(h.follower.status().accepted).toBe(8);
    h.entries([at(11)]);
    h.timer(30);
    expect(h.lastRequest()).toMatchObject({ seqFrom: 9, seqTo: 10 });
  });

  it('drops the highest buffered entries beyond the bound, and fetches them again', () => {
    const h = new Harness({ bufferEntriesMax: 3 }, 5);
    h.entries([at(20), at(21), at(22), at(23), at(9)]);
    expect(h.follower.status()).toMatchObject({ buffered: 3 });
    expect(h.follower.status().counters.bufferDropped).toBe(2);
    expect(h.of('requestRange').map((r) => [r.seqFrom, r.seqTo])).toEqual([
      [6, 8],
      [10, 19],
    ]);
  });

  it('requests [head+1, min(peerHead, head+batchMax)] after no progress for repairDelayMs while a peer is ahead', () => {
    const h = new Harness({ batchMax: 50, repairInflightMax: 1 }, 10);
    h.status('af-jnb', 150);
    expect(h.of('requestRange')).toHaveLength(0);
    expect(h.follower.nextWakeMs()).toBe(h.now + 500);
    h.timer(499);
    expect(h.of('requestRange')).toHaveLength(0);
    h.timer(1);
    expect(h.lastRequest()).toMatchObject({ peer: 'af-jnb', seqFrom: 11, seqTo: 60 });
  });

  it('pipelines a catch-up over several requests and holds an answer that arrives early', () => {
    const h = new Harness({ batchMax: 20, repairInflightMax: 3, repairDelayMs: 0 }, 10);
    h.status('eu-fra', 150);
    h.status('af-jnb', 150);
    const reqs = h.of('requestRange');
    expect(reqs.map((r) => [r.seqFrom, r.seqTo])).toEqual([
      [11, 30],
      [31, 50],
      [51, 70],
    ]);
    h.answer(reqs[1]!, run(31, 50));
    expect(h.follower.status().accepted).toBe(10);
    h.answer(reqs[0]!, run(11, 30));
    expect(h.follower.status().accepted).toBe(50);
    // Progress frees capacity: the next batches are asked for at once.
    expect(h.of('requestRange').length).toBeGreaterThan(3);
  });

  it('cancels the repairs of a stall once a source delivers again, and repairs again if it stalls again', () => {
    const h = new Harness({ batchMax: 20, repairInflightMax: 3, repairDelayMs: 500 }, 10);
    h.status('eu-fra', 150);
    h.timer(500);
    const reqs = h.of('requestRange');
    expect(reqs.map((r) => [r.seqFrom, r.seqTo])).toEqual([
      [11, 30],
      [31, 50],
      [51, 70],
    ]);
    // The stream reopens (after a link healed) and delivers from head+1: it is alive, the
    // repairs would only bring what it sends next.
    const out = h.entries(run(11, 15));
    expect(out.filter((a) => a.op === 'cancel').map((a) => (a as { requestId: number }).requestId)).toEqual(reqs.map((r) => r.requestId));
    expect(out.filter((a) => a.op === 'requestRange')).toHaveLength(0);
    // Late answers to cancelled requests are ignored.
    h.answer(reqs[0]!, run(11, 30));
    expect(h.follower.status().accepted).toBe(15);
    // Silent again for the repair delay (the answer came 20 ms after the stream's entries):
    // repaired again, from the new head.
    h.timer(479);
    expect(h.of('requestRange')).toHaveLength(3);
    h.timer(1);
    expect(h.lastRequest()).toMatchObject({ seqFrom: 56, seqTo: 75 });
  });

  it('keeps a gap repair when the source delivers, and cancels any request whose range got accepted meanwhile', () => {
    const h = new Harness({}, 5);
    h.entries([at(12)]);
    const gap = h.lastRequest();
    expect(gap).toMatchObject({ seqFrom: 6, seqTo: 11 });
    // Progress that does not fill the gap keeps the request …
    let out = h.entries(run(6, 8));
    expect(out.filter((a) => a.op === 'cancel')).toHaveLength(0);
    // … a source that fills all of it makes it useless.
    out = h.entries(run(9, 11));
    expect(out.filter((a) => a.op === 'cancel')).toEqual([{ op: 'cancel', requestId: gap.requestId }]);
    expect(h.follower.status().accepted).toBe(12);
  });

  it('checks a run of duplicates against the local log at its end, and names the first forked seq', () => {
    const h = new Harness({}, 40);
    expect(h.entries(run(5, 30))).toEqual([]);
    expect(h.follower.status().counters.duplicates).toBe(26);
    // A re-chained forgery from seq 20 on: its end differs from the local log, so the run is
    // checked entry by entry and the fork is reported where it starts.
    const forged = [...run(15, 19), ...forgeRun(run(20, 25))];
    h.entries(forged);
    const stop = h.of('stop')[0]!;
    expect(stop.error.code).toBe('PLAYOUT_FORK');
    expect(stop.error.seq).toBe(20);
  });

  it('compares the overlap of a repaired range with the local log, and refuses one that differs', () => {
    const h = new Harness({}, 5);
    h.entries([at(10)]);
    const gap = h.lastRequest();
    expect(gap).toMatchObject({ seqFrom: 6, seqTo: 9 });
    h.entries(run(6, 7));
    // A re-chained forgery of 6..9: its overlap with what is held (6, 7) differs at its end.
    h.answer(gap, forgeRun(run(6, 9)));
    expect(h.follower.status().counters.refusedRanges).toBe(1);
    expect(h.of('alert').at(-1)!.error.message).toContain('entry 7 has hash');
    expect(h.follower.status().accepted).toBe(7);
    // The genuine range is taken: its overlap is dropped, the rest and the buffer accepted.
    h.timer(1);
    const again = h.lastRequest();
    expect(again).toMatchObject({ seqFrom: 8, seqTo: 9 });
    h.answer(again, run(6, 9).slice(2));
    expect(h.follower.status().accepted).toBe(10);
  });

  it('refuses a range that does not chain to the head and penalises the peer', () => {
    const h = new Harness({ penaltyMs: 10_000 }, 5);
    h.entries([at(10)]);
    const req = h.lastRequest();
    expect(req.peer).toBe('eu-fra');
    h.answer(req, [forge(at(6), forge(at(5)).hash), ...run(7, 9)]);
    const k = h.follower.status().counters;
    expect(k.refusedRanges).toBe(1);
    expect(h.follower.status().accepted).toBe(5);
    expect(h.of('alert').at(-1)!.error.code).toBe('PLAYOUT_RANGE_REFUSED');
    // The next request goes to the other peer.
    h.timer(1);
    expect(h.lastRequest()).toMatchObject({ peer: 'af-jnb', seqFrom: 6, seqTo: 9 });
    const eu = h.follower.status().peers.find((p) => p.region === 'eu-fra')!;
    expect(eu.penalisedUntilMs).toBeGreaterThan(h.now);
  });

  it('refuses a re-chained range whose end does not chain to the buffered entry after it', () => {
    const h = new Harness({}, 5);
    h.entries([at(10)]);
    h.answer(h.lastRequest(), forgeRun(run(6, 9)));
    expect(h.follower.status().counters.refusedRanges).toBe(1);
    expect(h.follower.status().accepted).toBe(5);
    expect(h.of('append')).toHaveLength(0);
  });

  it('refuses a range whose entries do not chain to each other, or that is not the range asked for', () => {
    const h = new Harness({}, 5);
    h.entries([at(12)]);
    h.answer(h.lastRequest(), [at(6), forge(at(7)), at(8)]);
    h.timer(1);
    h.answer(h.lastRequest(), run(7, 11));
    expect(h.follower.status().counters.refusedRanges).toBe(2);
    expect(h.follower.status().accepted).toBe(5);
  });

  it('penalises a peer whose answer fails its hash check', () => {
    const h = new Harness({}, 5);
    h.entries([at(10)]);
    const req = h.lastRequest();
    h.take(h.follower.onRangeFailure(req.requestId, new PlayoutError('PLAYOUT_ENTRY_HASH_MISMATCH', 'corrupt'), null, h.now));
    expect(h.follower.status().counters.refusedRanges).toBe(1);
    expect(h.follower.status().peers.find((p) => p.region === 'eu-fra')!.penalisedUntilMs).toBeGreaterThan(h.now);
  });

  it('tries peers in order of health and latency', () => {
    const h = new Harness({ backoffMsMin: 100 }, 5);
    h.status('eu-fra', 150);
    h.status('af-jnb', 150);
    const gap = (seq: number) => {
      h.entries([at(seq)], null);
      return h.lastRequest();
    };
    // Equal peers: configuration order; then a peer never measured is tried once.
    let req = gap(8);
    expect(req.peer).toBe('eu-fra');
    h.answer(req, run(6, 7), 80);
    req = gap(11);
    expect(req.peer).toBe('af-jnb');
    h.answer(req, run(9, 10), 10);
    // Now the faster one is preferred …
    req = gap(14);
    expect(req.peer).toBe('af-jnb');
    // … until it fails: it backs off, and stays behind the healthier peer afterwards.
    h.take(h.follower.onRangeFailure(req.requestId, new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', 'reset'), null, h.now));
    expect(h.lastRequest().peer).toBe('eu-fra');
    h.answer(h.lastRequest(), run(12, 13), 80);
    h.now += 1_000;
    req = gap(17);
    expect(req.peer).toBe('eu-fra');
    const peers = h.follower.status().peers;
    expect(peers.find((p) => p.region === 'af-jnb')).toMatchObject({ rttMs: 10, failures: 1 });
    expect(peers.find((p) => p.region === 'eu-fra')).toMatchObject({ rttMs: 80, failures: 0 });
  });

  it('retries a timed-out request elsewhere, backing off the silent peer exponentially with jitter', () => {
    const h = new Harness({ peers: ['eu-fra'], requestTimeoutMs: 1_000, backoffMsMin: 100, backoffMsMax: 1_600 }, 5, 5, 99);
    h.entries([at(8)]);
    const backoffs: number[] = [];
    for (let i = 0; i < 6; i++) {
      const first = h.lastRequest();
      expect(h.follower.nextWakeMs()).toBeLessThanOrEqual(h.now + 1_000);
      h.timer(999);
      expect(h.of('cancel').some((a) => a.requestId === first.requestId)).toBe(false);
      const out = h.timer(1);
      expect(out.some((a) => a.op === 'cancel' && a.requestId === first.requestId)).toBe(true);
      const until = h.follower.status().peers[0]!.backoffUntilMs;
      backoffs.push(until - h.now);
      h.now = until - 1;
      h.take(h.follower.onTimer(h.now));
      expect(h.lastRequest()).toBe(first); // still backing off
      h.timer(1);
      expect(h.lastRequest()).not.toBe(first);
    }
    const bases = [100, 200, 400, 800, 1_600, 1_600];
    backoffs.forEach((b, i) => {
      expect(b).toBeGreaterThanOrEqual(bases[i]! / 2);
      expect(b).toBeLessThanOrEqual(bases[i]!);
    });
    expect(new Set(backoffs.map((b, i) => b / bases[i]!)).size).toBeGreaterThan(1);
    expect(h.follower.status().counters.repairTimeouts).toBe(6);
  });

  it('ignores an answer to a request that timed out', () => {
    const h = new Harness({ peers: ['eu-fra'] }, 5);
    h.entries([at(8)]);
    const req = h.lastRequest();
    h.timer(1_000);
    expect(h.answer(req, run(6, 7))).toEqual([]);
    expect(h.follower.status().accepted).toBe(5);
  });

  it('believes a peer that answers an empty range and asks another', () => {
    const h = new Harness({}, 5);
    h.status('eu-fra', 40);
    h.status('af-jnb', 40);
    h.entries([at(9)], null);
    const req = h.lastRequest();
    h.answer(req, []);
    expect(h.follower.status().peers.find((p) => p.region === req.peer)!.head).toBe(5);
    expect(h.lastRequest().peer).not.toBe(req.peer);
  });

  it('bootstraps when no peer retains the range, then continues after the snapshot', () => {
    const h = new Harness({ repairDelayMs: 100 }, 5);
    h.status('eu-fra', 150, 100);
    h.status('af-jnb', 140, 90);
    h.timer(100);
    const boot = h.of('bootstrap');
    expect(boot).toHaveLength(1);
    expect(boot[0]).toMatchObject({ peer: 'eu-fra', seqMin: 6 } satisfies Partial<BootstrapAction>);
    expect(h.follower.status().mode).toBe('bootstrapping');
    // Entries that arrive meanwhile are kept, not appended.
    h.entries([at(120), at(121)]);
    expect(h.of('append')).toHaveLength(0);
    const snap = at(119);
    const out = h.take(h.follower.bootstrapped(boot[0]!.requestId, snap.seq, snap.hash, snap.tick, h.now));
    expect(out.find((a) => a.op === 'follow')).toMatchObject({ seqFrom: 120 });
    expect(seqs(h.of('append').flatMap((a) => a.entries))).toEqual([120, 121]);
    expect(h.follower.status()).toMatchObject({ mode: 'following', head: 119, applied: 121, headTick: snap.tick });
    expect(h.follower.status().counters.bootstraps).toBe(1);
  });

  it('learns from a "not retained" answer and bootstraps when nobody holds the range', () => {
    const h = new Harness({ repairDelayMs: 0, peers: ['eu-fra'] }, 5);
    h.status('eu-fra', 150, null);
    const req = h.lastRequest();
    h.take(h.follower.onRangeFailure(req.requestId, new PlayoutError('PLAYOUT_RANGE_NOT_RETAINED', 'gone'), { firstSeq: 60, head: 150 }, h.now));
    expect(h.of('bootstrap')).toHaveLength(1);
  });

  it('retries a failed bootstrap after backing off', () => {
    const h = new Harness({ repairDelayMs: 0, peers: ['eu-fra'] }, 5);
    h.status('eu-fra', 150, 100);
    const boot = h.of('bootstrap')[0]!;
    h.take(h.follower.bootstrapFailed(boot.requestId, new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', 'bad'), h.now));
    expect(h.follower.status().mode).toBe('following');
    expect(h.of('alert').at(-1)!.error.code).toBe('PLAYOUT_GAP_UNREPAIRABLE');
    expect(h.of('bootstrap')).toHaveLength(1);
    h.timer(200);
    expect(h.of('bootstrap')).toHaveLength(2);
  });

  it('waits for appends in flight before bootstrapping', () => {
    const h = new Harness({ repairDelayMs: 0, peers: ['eu-fra'] }, 5);
    h.entries(run(6, 7));
    h.status('eu-fra', 150, 100);
    expect(h.of('bootstrap')).toHaveLength(0);
    h.flush();
    expect(h.of('bootstrap')).toHaveLength(1);
    expect(h.of('bootstrap')[0]!.seqMin).toBe(8);
  });

  it('falls back to the durable head when an append fails, and fetches the rest again', () => {
    const h = new Harness({ repairDelayMs: 100 }, 5);
    h.entries(run(6, 8));
    h.entries(run(9, 10));
    const [first, second] = h.of('append');
    h.take(h.follower.appendFailed(first!.appendId, new PlayoutError('PLAYOUT_STORE_WRITE_FAILED', 'disk full'), h.now));
    // The later append continued the failed one: its answer no longer counts.
    h.take(h.follower.appendFailed(second!.appendId, new PlayoutError('PLAYOUT_STORE_CONFLICT', 'gap'), h.now));
    expect(h.follower.status()).toMatchObject({ head: 5, accepted: 5, applied: 5 });
    expect(h.follower.status().counters.appendFailures).toBe(1);
    expect(h.of('alert')[0]!.error.code).toBe('PLAYOUT_STORE_WRITE_FAILED');
    // 6..10 were applied as they were appended: the machine goes back to the durable head, once.
    expect(h.of('rewind')).toEqual([{ op: 'rewind', seq: 5 }]);
    expect(seqs(h.applied)).toEqual([]);
    h.status('eu-fra', 10);
    h.timer(1);
    const req = h.lastRequest();
    expect(req).toMatchObject({ seqFrom: 6, seqTo: 10 });
    h.answer(req, run(6, 10));
    h.flush();
    expect(seqs(h.applied)).toEqual([6, 7, 8, 9, 10]);
    expect(h.follower.status()).toMatchObject({ head: 10, applied: 10 });
  });

  it('keeps storing but stops applying while quarantined, and replays from the store once restored', () => {
    const h = new Harness({}, 20);
    h.take(h.follower.quarantine(h.now));
    h.entries(run(21, 30));
    h.flush();
    expect(h.applied).toEqual([]);
    expect(h.follower.status()).toMatchObject({ mode: 'quarantined', head: 30, applied: 20 });
    const snap = at(17);
    h.take(h.follower.restored(snap.seq, snap.hash, snap.tick, h.now));
    expect(h.of('applyStored')[0]).toMatchObject({ seqFrom: 18, seqTo: 30 });
    h.entries(run(31, 32));
    h.flush();
    expect(seqs(h.applied)).toEqual(seqs(run(18, 32)));
    expect(h.follower.status().mode).toBe('following');
  });

  it('refuses to restore from a snapshot of another history', () => {
    const h = new Harness({}, 20);
    h.take(h.follower.quarantine(h.now));
    h.take(h.follower.restored(17, new Uint8Array(16).fill(7), at(17).tick, h.now));
    expect(h.of('alert')[0]!.error.code).toBe('PLAYOUT_FORK');
    expect(h.follower.status().mode).toBe('quarantined');
  });

  it('applies what the store holds beyond the machine when it starts', () => {
    const h = new Harness({}, 30, 12);
    expect(h.of('applyStored')).toEqual([{ op: 'applyStored', seqFrom: 13, seqTo: 30 }]);
    expect(h.follower.status().applied).toBe(30);
  });

  it('ignores a status that is older than what the peer already reported', () => {
    const h = new Harness({}, 5);
    h.status('eu-fra', 100);
    h.status('eu-fra', 40);
    expect(h.follower.status().peers.find((p) => p.region === 'eu-fra')).toMatchObject({ head: 100, lagEntries: 95 });
  });

  it('stops for good when the node says so', () => {
    const h = new Harness({}, 5);
    h.entries([at(9)]);
    const out = h.take(h.follower.stop(new PlayoutError('PLAYOUT_REDUCER_FAILED', 'boom')));
    expect(out.map((a) => a.op)).toEqual(['cancel']);
    expect(h.entries(run(6, 8))).toEqual([]);
    expect(h.follower.nextWakeMs()).toBeNull();
    expect(h.follower.status().stopError?.code).toBe('PLAYOUT_REDUCER_FAILED');
  });

  it('bootstraps from a live peer although a peer that went silent still holds the range', () => {
    const h = new Harness({ repairDelayMs: 0, requestTimeoutMs: 100, backoffMsMin: 100, backoffMsMax: 400 }, 5);
    h.status('eu-fra', 150, 1); // holds everything, then goes silent
    h.status('af-jnb', 150, 100);
    for (let i = 0; i < 3; i++) {
      expect(h.lastRequest().peer).toBe('eu-fra');
      h.timer(100); // the request times out
      h.now = h.follower.status().peers.find((p) => p.region === 'eu-fra')!.backoffUntilMs - 1;
      h.timer(1);
      if (h.of('bootstrap').length > 0) break;
    }
    expect(h.of('bootstrap')).toHaveLength(1);
    expect(h.of('bootstrap')[0]!.peer).toBe('af-jnb');
  });

  it('stays quarantined across a bootstrap until restored', () => {
    const h = new Harness({ repairDelayMs: 0, peers: ['eu-fra'] }, 5);
    h.take(h.follower.quarantine(h.now));
    h.status('eu-fra', 150, 100);
    const boot = h.of('bootstrap')[0]!;
    const snap = at(119);
    h.take(h.follower.bootstrapped(boot.requestId, snap.seq, snap.hash, snap.tick, h.now));
    expect(h.follower.status().mode).toBe('quarantined');
    h.entries(run(120, 122));
    h.flush();
    expect(h.applied).toEqual([]);
    h.take(h.follower.restored(snap.seq, snap.hash, snap.tick, h.now));
    expect(h.of('applyStored')[0]).toMatchObject({ seqFrom: 120, seqTo: 122 });
    expect(h.follower.status().mode).toBe('following');
  });
});

// The Follower's failover hooks (docs/failover.md, "Hooks"): entries the fence refuses are dropped
// before any other check (never compared as duplicates, so an old leader's suffix is not a fork),
// ranges keep their admitted prefix, buffered entries and held ranges are checked again when the
// fence changes, and an epoch entry starting below the head is reported once as `diverged`.
import { describe, expect, it } from 'vitest';
import { ReducerRegistry, Rng, Sequencer, ShardMachine, ZERO_HASH, type Entry } from '../../src/core/index.js';
import type { FenceState } from '../../src/ports/failover-client.js';
import { admits, startsBeforeHead } from '../../src/replication/fence.js';
import { epochEntries } from '../../src/replication/failover-promotion.js';
import { FOLLOWER_DEFAULTS, Follower, type AdmitHook, type FollowerAction, type FollowerConfig } from '../../src/replication/follower.js';
import { tallyReducer } from '../sim/tally-reducer.js';
import { SHARD, makeLog } from './chain.js';

/** Epoch 1: the old leader's log, 41 entries (genesis + 10 ticks × (3 inputs + tick)). */
const OLD = makeLog(10, 3);
const FORK_AT = 21;

/** Epoch 2 (leader af-jnb) continuing OLD after seq FORK_AT (a tick entry): epoch entry, 3 inputs, tick. */
function newBranch(): Entry[] {
  const registry = new ReducerRegistry([tallyReducer()]);
  const m = new ShardMachine(registry);
  for (const e of OLD.slice(0, FORK_AT)) m.apply(e);
  const head = OLD[FORK_AT - 1]!;
  const s = new Sequencer(registry, { shard: SHARD, seq: head.seq, hash: head.hash, tick: m.tick, epoch: 1, reducer: m.reducer!.name, reducerVersion: m.reducer!.version }, { region: 'af-jnb', dedupeWindowTicks: 100 });
  const out = epochEntries(s, { epoch: 2, leader: 'af-jnb', lastSeqPrevEpoch: head.seq }, m.lastDigest?.digest ?? null, head.kind === 'tick');
  for (let i = 0; i < 3; i++) {
    const r = s.submit({ type: 'add', version: 1, payload: { key: 'n', by: i + 1 }, ingestId: `n${i}` });
    if (r.status === 'sequenced') out.push(r.entry);
  }
  out.push(s.closeTick(null));
  return out;
}
const NEW = newBranch();
const oldRun = (from: number, to: number): Entry[] => OLD.slice(from - 1, to);
const newRun = (from: number, to: number): Entry[] => NEW.slice(from - FORK_AT - 1, to - FORK_AT);

const fenceOf = (over: Partial<FenceState>): FenceState => ({ shard: SHARD, region: 'us-sfo', epoch: 1, leader: 'eu-fra', ends: [{ epoch: 1, lastSeqPrevEpoch: 0 }], promise: null, ...over });
const PROMISED: FenceState = fenceOf({ promise: { epoch: 2, candidate: 'af-jnb', failoverId: 'fo-1', seqMax: FORK_AT, atMs: 0 } });
const ESTABLISHED: FenceState = fenceOf({ epoch: 2, leader: 'af-jnb', ends: [{ epoch: 1, lastSeqPrevEpoch: 0 }, { epoch: 2, lastSeqPrevEpoch: FORK_AT }] });

class Harness {
  readonly durable = new Map<number, Entry>();
  readonly actions: FollowerAction[] = [];
  readonly follower: Follower;
  fence: FenceState;
  now = 1_000;

  constructor(fence: FenceState, held: readonly Entry[], leader: string | null = 'eu-fra') {
    this.fence = fence;
    for (const e of held) this.durable.set(e.seq, e);
    const head = held[held.length - 1] ?? null;
    const hook: AdmitHook = { admit: (e) => admits(this.fence, e), diverges: (e, acc) => startsBeforeHead(this.fence, e, acc) };
    const c: FollowerConfig = { ...FOLLOWER_DEFAULTS, shard: SHARD, region: 'us-sfo', peers: ['eu-fra', 'af-jnb'], leader, admit: hook };
    this.follower = new Follower(c, { hashAt: (s) => this.durable.get(s)?.hash ?? null }, Rng.fromSeed(3), { head: head?.seq ?? 0, headHash: head?.hash ?? ZERO_HASH, headTick: head?.tick ?? 0, applied: head?.seq ?? 0 });
    this.take(this.follower.start(this.now));
  }

  take(a: FollowerAction[]): FollowerAction[] {
    this.actions.push(...a);
    return a;
  }

  entries(entries: readonly Entry[], region: string): FollowerAction[] {
    return this.take(this.follower.onEntries(entries, region, this.now));
  }

  setFence(f: FenceState): void {
    this.fence = f;
    this.follower.recheckFence();
  }

  appended(): number[] {
    return this.actions.flatMap((a) => (a.op === 'append' ? a.entries.map((e) => e.seq) : []));
  }

  ops(): string[] {
    return this.actions.map((a) => a.op);
  }
}

describe('Follower fence hooks', () => {
  it.each([
    { name: 'a promise refuses the old leader beyond its limit', fence: PROMISED, held: FORK_AT - 3, send: oldRun(FORK_AT - 2, FORK_AT + 5), from: 'eu-fra', appended: [19, 20, 21], fenced: 5 },
    { name: 'an established epoch refuses the old epoch beyond its end', fence: ESTABLISHED, held: FORK_AT, send: oldRun(FORK_AT + 1, FORK_AT + 4), from: 'eu-fra', appended: [], fenced: 4 },
    { name: 'an established epoch admits its own entries', fence: ESTABLISHED, held: FORK_AT, send: newRun(FORK_AT + 1, FORK_AT + 5), from: 'af-jnb', appended: [22, 23, 24, 25, 26], fenced: 0 },
    { name: 'the old suffix after the new epoch is dropped, not a fork', fence: ESTABLISHED, held: FORK_AT, send: [...newRun(FORK_AT + 1, FORK_AT + 3), ...oldRun(FORK_AT + 1, FORK_AT + 3)], from: 'af-jnb', appended: [22, 23, 24], fenced: 3 },
  ])('$name', ({ fence, held, send, from, appended, fenced }) => {
    const h = new Harness(fence, oldRun(1, held));
    h.entries(send, from);
    expect(h.appended()).toEqual(appended);
    expect(h.ops()).not.toContain('stop');
    expect(h.follower.status().counters.fenced).toBe(fenced);
    expect(h.follower.status().counters.forks).toBe(0);
  });

  it('reports an epoch entry that starts below its head as diverged, once, and compares none of its epoch', () => {
    // This region took the old leader's suffix up to 30 and does not know epoch 2 yet.
    const h = new Harness(fenceOf({}), oldRun(1, 30));
    h.entries(newRun(FORK_AT + 1, FORK_AT + 5), 'af-jnb');
    h.entries(newRun(FORK_AT + 1, FORK_AT + 2), 'af-jnb');
    const diverged = h.actions.filter((a) => a.op === 'diverged');
    expect(diverged).toHaveLength(1);
    expect(diverged[0]).toMatchObject({ region: 'af-jnb', entry: { seq: FORK_AT + 1, epoch: 2, kind: 'epoch' } });
    expect(h.ops()).not.toContain('stop');
    expect(h.follower.status().counters).toMatchObject({ forks: 0, duplicates: 0, fenced: 7 });
  });

  it('keeps the admitted prefix of a repaired range', () => {
    const h = new Harness(PROMISED, oldRun(1, 15));
    h.now += 1_000;
    h.take(h.follower.onPeerStatus({ region: 'eu-fra', shard: SHARD, head: 40, headHash: OLD[39]!.hash, tick: OLD[39]!.tick, firstSeq: 1, epoch: 1, digest: null, quarantined: false }, h.now));
    const req = h.actions.find((a) => a.op === 'requestRange');
    expect(req).toBeDefined();
    if (req?.op !== 'requestRange') return;
    h.take(h.follower.onRangeResponse(req.requestId, oldRun(req.seqFrom, req.seqTo), h.now + 10));
    expect(h.appended()).toEqual([16, 17, 18, 19, 20, 21]);
    expect(h.follower.status().counters.fenced).toBe(req.seqTo - FORK_AT);
    expect(h.follower.status().counters.refusedRanges).toBe(0);
  });

  it('a range refused whole backs off from its peer without refusing the peer as corrupt', () => {
    const h = new Harness(PROMISED, oldRun(1, FORK_AT));
    h.now += 1_000;
    h.take(h.follower.onPeerStatus({ region: 'eu-fra', shard: SHARD, head: 40, headHash: OLD[39]!.hash, tick: OLD[39]!.tick, firstSeq: 1, epoch: 1, digest: null, quarantined: false }, h.now));
    const req = h.actions.find((a) => a.op === 'requestRange');
    if (req?.op !== 'requestRange') throw new Error('expected a range request');
    h.take(h.follower.onRangeResponse(req.requestId, oldRun(req.seqFrom, req.seqTo), h.now + 10));
    expect(h.appended()).toEqual([]);
    const peer = h.follower.status().peers.find((p) => p.region === 'eu-fra')!;
    expect(peer.failures).toBe(1);
    expect(h.follower.status().counters.refusedRanges).toBe(0);
  });

  it('drops buffered entries a later promise refuses, and drains only up to the limit', () => {
    const h = new Harness(fenceOf({}), oldRun(1, 10));
    h.entries(oldRun(13, 25), 'eu-fra'); // a gap at 11..12: buffered
    expect(h.follower.status().buffered).toBe(13);
    h.setFence(PROMISED);
    expect(h.follower.status().buffered).toBe(FORK_AT - 12);
    h.entries(oldRun(11, 12), 'af-jnb');
    expect(h.appended()).toEqual(Array.from({ length: FORK_AT - 10 }, (_, i) => 11 + i));
    expect(h.follower.status().counters.fenced).toBe(25 - FORK_AT);
  });

  it('with no leader set, a chain break is refused and repaired, not a fork', () => {
    for (const leader of [null, 'eu-fra'] as const) {
      const h = new Harness(fenceOf({}), oldRun(1, FORK_AT), leader);
      // The new epoch's tick entry at 23 chains to 22, not to our 21 … pretend it came at 22.
      const bad = { ...newRun(FORK_AT + 2, FORK_AT + 2)[0]!, seq: FORK_AT + 1 } as Entry;
      h.entries([bad], 'eu-fra');
      expect(h.ops().includes('stop')).toBe(leader !== null);
    }
  });

  it('setLeader(null) then the new leader: its chain break is a fork again', () => {
    const h = new Harness(fenceOf({}), oldRun(1, FORK_AT));
    h.follower.setLeader(null);
    expect(h.follower.currentLeader).toBeNull();
    h.follower.setLeader('af-jnb');
    const bad = { ...newRun(FORK_AT + 2, FORK_AT + 2)[0]!, seq: FORK_AT + 1 } as Entry;
    h.entries([bad], 'af-jnb');
    expect(h.ops()).toContain('stop');
  });
});

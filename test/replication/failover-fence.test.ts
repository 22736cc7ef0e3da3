// The pure failover rules below the coordinator: fencing (src/replication/fence.ts), epoch history
// (epoch-history.ts), reconciling a divergent suffix and its quarantine report
// (failover-quarantine.ts), ingress redirects (failover-redirect.ts) and the candidate's steps
// (failover-promotion.ts). Logs are real: sealed by the Sequencer, applied by a ShardMachine.
import { describe, expect, it } from 'vitest';
import { ReducerRegistry, Sequencer, ShardMachine, isPlayoutError, toHex, type Entry } from '../../src/core/index.js';
import type { EpochRecord, FenceState, PromoteRequest } from '../../src/ports/failover-client.js';
import { EPOCHS_META_KEY, appendEpochRecord, compareLogs, divergencePoint, endOfEpoch, epochAt, epochRecordOf, historyFromEntries, parseEpochHistory, truncateHistory } from '../../src/replication/epoch-history.js';
import { encodeQuarantineReport, lostInputs, quarantineReport, reconcile } from '../../src/replication/failover-quarantine.js';
import { routeIngress } from '../../src/replication/failover-redirect.js';
import { beginPromotion, epochEntries, promotionReady, stillPromised } from '../../src/replication/failover-promotion.js';
import { FENCE_META_KEY, admitLimit, admits, establish, establishHistory, extendForCatchUp, grantOf, initialFence, isNewerEpoch, leads, parseFence, promise, release, startsBeforeHead } from '../../src/replication/fence.js';
import { MemoryLogStore } from '../sim/log-store.js';
import { tallyReducer } from '../sim/tally-reducer.js';

const SHARD = 'fo-1';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isPlayoutError(err)) return err.code;
    throw err;
  }
  return 'none';
}

/** A real log, sealed by a Sequencer that can be continued by another leader (failover). */
class Log {
  readonly registry = new ReducerRegistry([tallyReducer()]);
  readonly entries: Entry[] = [];
  seq: Sequencer;
  machine: ShardMachine;
  private n = 0;

  constructor(from: Log | null = null, upTo: number | null = null) {
    this.machine = new ShardMachine(this.registry);
    if (from === null) {
      const g = Sequencer.genesis({ shard: SHARD, reducer: tallyReducer(), seed: 5, tickMs: 50 });
      this.push(g);
      this.seq = Sequencer.afterGenesis(this.registry, g, { region: 'eu-fra', dedupeWindowTicks: 1000 });
      return;
    }
    for (const e of from.entries.slice(0, upTo ?? from.entries.length)) this.push(e);
    const head = this.entries[this.entries.length - 1]!;
    this.seq = new Sequencer(this.registry, { shard: SHARD, seq: head.seq, hash: head.hash, tick: this.machine.tick, epoch: head.epoch, reducer: 'tally', reducerVersion: 1 }, { region: 'af-jnb', dedupeWindowTicks: 1000 });
    this.n = from.n;
  }

  push(e: Entry): void {
    this.machine.apply(e);
    this.entries.push(e);
  }

  inputs(k: number): this {
    for (let i = 0; i < k; i++) {
      const r = this.seq.submit({ type: 'add', version: 1, payload: { key: `k${i % 4}`, by: 1 + (i % 5) }, ingestId: `i${this.n++}` });
      if (r.status === 'sequenced') this.push(r.entry);
    }
    return this;
  }

  tick(): this {
    this.push(this.seq.closeTick(this.machine.lastDigest?.digest ?? null));
    return this;
  }

  startEpoch(epoch: number, leader: string): this {
    for (const e of epochEntries(this.seq, { epoch, leader, lastSeqPrevEpoch: this.seq.seq }, this.machine.lastDigest?.digest ?? null, this.entries[this.entries.length - 1]!.kind === 'tick')) this.push(e);
    return this;
  }

  get head(): number {
    return this.entries.length;
  }

  history(firstLeader = 'eu-fra'): EpochRecord[] {
    return historyFromEntries(this.entries, firstLeader);
  }

  hashAt(seq: number): string | null {
    const e = this.entries[seq - 1];
    return e === undefined ? null : toHex(e.hash);
  }
}

const head = (n: number) => ({ head: n, headHash: 'ab'.repeat(16), headEpoch: 1, headTick: 3, openTick: 4 });

describe('fencing', () => {
  const base = (): FenceState => ({ shard: SHARD, region: 'us-sfo', epoch: 1, leader: 'eu-fra', ends: [{ epoch: 1, lastSeqPrevEpoch: 0 }], promise: null });

  it('promises an epoch to one candidate only, and answers the same request the same way', () => {
    const f = promise(base(), { epoch: 2, candidate: 'af-jnb', failoverId: 'fo-a' }, head(40), 1_000);
    expect(f.promise).toEqual({ epoch: 2, candidate: 'af-jnb', failoverId: 'fo-a', seqMax: 40, atMs: 1_000 });
    expect(promise(f, { epoch: 2, candidate: 'af-jnb', failoverId: 'fo-a' }, head(41), 2_000)).toBe(f);
    expect(codeOf(() => promise(f, { epoch: 2, candidate: 'us-sfo', failoverId: 'fo-b' }, head(41), 2_000))).toBe('PLAYOUT_FENCE_CONFLICT');
    expect(codeOf(() => promise(f, { epoch: 2, candidate: 'af-jnb', failoverId: 'fo-b' }, head(41), 2_000))).toBe('PLAYOUT_FENCE_CONFLICT');
    expect(codeOf(() => promise(base(), { epoch: 1, candidate: 'af-jnb', failoverId: 'fo-a' }, head(41), 2_000))).toBe('PLAYOUT_FENCE_CONFLICT');
    // A later epoch supersedes: its limit is the head now.
    const g = promise(f, { epoch: 3, candidate: 'us-sfo', failoverId: 'fo-c' }, head(40), 3_000);
    expect(g.promise).toMatchObject({ epoch: 3, candidate: 'us-sfo', seqMax: 40 });
    expect(codeOf(() => promise(g, { epoch: 2, candidate: 'af-jnb', failoverId: 'fo-a' }, head(40), 3_000))).toBe('PLAYOUT_FENCE_CONFLICT');
  });

  it('refuses older epochs beyond the fenced head, and after the new epoch beyond its lastSeqPrevEpoch', () => {
    const f = promise(base(), { epoch: 2, candidate: 'af-jnb', failoverId: 'fo-a' }, head(40), 0);
    expect(admits(f, { shard: SHARD, seq: 40, epoch: 1 })).toBeNull();
    const refused = admits(f, { shard: SHARD, seq: 41, epoch: 1 })!;
    expect(refused.code).toBe('PLAYOUT_EPOCH_FENCED');
    expect(refused.seq).toBe(41);
    expect(refused.expected).toBe('seq <= 40 for epoch 1');
    // The promised epoch's own entries pass (the chain check is the Follower's).
    expect(admits(f, { shard: SHARD, seq: 41, epoch: 2 })).toBeNull();
    // The epoch is established with lastSeqPrevEpoch 45 (the highest fenced head was elsewhere).
    const e = establish(f, { epoch: 2, leader: 'af-jnb', firstSeq: 46, lastSeqPrevEpoch: 45, prevHash: 'ab'.repeat(16), entryHash: 'cd'.repeat(16), tick: 5, atMs: null, failoverId: 'fo-a' });
    expect(e).toMatchObject({ epoch: 2, leader: 'af-jnb', ends: [{ epoch: 1, lastSeqPrevEpoch: 0 }, { epoch: 2, lastSeqPrevEpoch: 45 }], promise: null });
    expect(admits(e, { shard: SHARD, seq: 45, epoch: 1 })).toBeNull();
    expect(admits(e, { shard: SHARD, seq: 46, epoch: 1 })?.code).toBe('PLAYOUT_EPOCH_FENCED');
    expect(admits(e, { shard: SHARD, seq: 1_000, epoch: 2 })).toBeNull();
    expect(isNewerEpoch(e, 2)).toBe(false);
    expect(isNewerEpoch(e, 3)).toBe(true);
  });

  it('admitLimit is the highest seq admits takes, for every epoch, under a promise and after it is established', () => {
    const f = promise(base(), { epoch: 2, candidate: 'af-jnb', failoverId: 'fo-a' }, head(40), 0);
    const e = establish(f, { epoch: 2, leader: 'af-jnb', firstSeq: 46, lastSeqPrevEpoch: 45, prevHash: 'ab'.repeat(16), entryHash: 'cd'.repeat(16), tick: 5, atMs: null, failoverId: 'fo-a' });
    const g = promise(e, { epoch: 3, candidate: 'us-sfo', failoverId: 'fo-b' }, head(60), 0);
    for (const fence of [base(), f, e, g]) {
      for (const epoch of [1, 2, 3]) {
        const limit = admitLimit(fence, { epoch });
        for (let seq = 1; seq <= 80; seq++) expect(admits(fence, { shard: SHARD, seq, epoch }) === null, `seq ${seq} epoch ${epoch}`).toBe(seq <= limit);
      }
    }
    expect(admitLimit(f, { epoch: 1 })).toBe(40);
    expect(admitLimit(e, { epoch: 1 })).toBe(45);
    expect(admitLimit(g, { epoch: 2 })).toBe(60);
    expect(admitLimit(g, { epoch: 3 })).toBe(Number.POSITIVE_INFINITY);
  });

  it('tells an epoch entry that starts below the local head (a divergent suffix here) from a fork', () => {
    const f = base();
    expect(startsBeforeHead(f, { kind: 'epoch', epoch: 2, seq: 30 }, 40)).toBe(true);
    expect(startsBeforeHead(f, { kind: 'epoch', epoch: 2, seq: 41 }, 40)).toBe(false);
    expect(startsBeforeHead(f, { kind: 'input', epoch: 2, seq: 30 }, 40)).toBe(false);
    expect(startsBeforeHead({ ...f, epoch: 2 }, { kind: 'epoch', epoch: 2, seq: 30 }, 40)).toBe(false);
  });

  it('ends every epoch where the next one started, not only the latest', () => {
    // Epoch 1 ended at 223 (epoch 2 started at 224), epoch 2 at 713: an old leader of epoch 1
    // sending seq 270 is refused, though 270 <= 713.
    let f = base();
    f = establish(f, { epoch: 2, leader: 'af-jnb', firstSeq: 224, lastSeqPrevEpoch: 223, prevHash: 'ab'.repeat(16), entryHash: 'cd'.repeat(16), tick: 5, atMs: null, failoverId: null });
    f = establish(f, { epoch: 3, leader: 'us-sfo', firstSeq: 714, lastSeqPrevEpoch: 713, prevHash: 'ab'.repeat(16), entryHash: 'ce'.repeat(16), tick: 9, atMs: null, failoverId: null });
    expect(admits(f, { shard: SHARD, seq: 223, epoch: 1 })).toBeNull();
    expect(admits(f, { shard: SHARD, seq: 270, epoch: 1 })?.message).toMatch(/epoch 2 started after seq 223/);
    expect(admits(f, { shard: SHARD, seq: 713, epoch: 2 })).toBeNull();
    expect(admits(f, { shard: SHARD, seq: 714, epoch: 2 })?.code).toBe('PLAYOUT_EPOCH_FENCED');
    // A region that learned epoch 3 first learns epoch 2's start from the whole history later.
    const late = establishHistory(establish(base(), { epoch: 3, leader: 'us-sfo', firstSeq: 714, lastSeqPrevEpoch: 713, prevHash: 'ab'.repeat(16), entryHash: 'ce'.repeat(16), tick: 9, atMs: null, failoverId: null }), [
      { epoch: 2, leader: 'af-jnb', firstSeq: 224, lastSeqPrevEpoch: 223, prevHash: 'ab'.repeat(16), entryHash: 'cd'.repeat(16), tick: 5, atMs: null, failoverId: null },
    ]);
    expect(late.epoch).toBe(3);
    expect(admits(late, { shard: SHARD, seq: 270, epoch: 1 })?.code).toBe('PLAYOUT_EPOCH_FENCED');
  });

  it('keeps a promise for a later epoch when an earlier one is established', () => {
    const f = promise(base(), { epoch: 3, candidate: 'us-sfo', failoverId: 'fo-c' }, head(40), 0);
    const e = establish(f, { epoch: 2, leader: 'af-jnb', firstSeq: 41, lastSeqPrevEpoch: 40, prevHash: 'ab'.repeat(16), entryHash: 'cd'.repeat(16), tick: 5, atMs: null, failoverId: null });
    expect(e.promise).toMatchObject({ epoch: 3 });
    // Epoch 2's entries are older than the promise: refused beyond the fenced head too.
    expect(admits(e, { shard: SHARD, seq: 41, epoch: 2 })?.code).toBe('PLAYOUT_EPOCH_FENCED');
    expect(establish(e, { epoch: 1, leader: 'x', firstSeq: 1, lastSeqPrevEpoch: 0, prevHash: '00'.repeat(16), entryHash: 'cd'.repeat(16), tick: 0, atMs: null, failoverId: null })).toBe(e);
  });

  it('gives a promise back only to the failover it was made to', () => {
    const f = promise(base(), { epoch: 2, candidate: 'af-jnb', failoverId: 'fo-a' }, head(40), 0);
    expect(release(f, { epoch: 2, failoverId: 'fo-b' })).toEqual({ released: false, fence: f });
    expect(release(f, { epoch: 3, failoverId: 'fo-a' }).released).toBe(false);
    const r = release(f, { epoch: 2, failoverId: 'fo-a' });
    expect(r.released).toBe(true);
    expect(r.fence.promise).toBeNull();
    expect(leads(r.fence, 'eu-fra')).toBe(true);
    expect(leads(f, 'eu-fra')).toBe(false);
  });

  it('lets only the candidate raise its limit to catch up', () => {
    const f = promise({ ...base(), region: 'af-jnb' }, { epoch: 2, candidate: 'af-jnb', failoverId: 'fo-a' }, head(40), 0);
    expect(extendForCatchUp(f, { epoch: 2, failoverId: 'fo-a', seqMax: 55 }).promise!.seqMax).toBe(55);
    expect(extendForCatchUp(f, { epoch: 2, failoverId: 'fo-a', seqMax: 30 })).toBe(f);
    expect(codeOf(() => extendForCatchUp(f, { epoch: 2, failoverId: 'fo-b', seqMax: 55 }))).toBe('PLAYOUT_FENCE_CONFLICT');
    const other = promise(base(), { epoch: 2, candidate: 'af-jnb', failoverId: 'fo-a' }, head(40), 0);
    expect(codeOf(() => extendForCatchUp(other, { epoch: 2, failoverId: 'fo-a', seqMax: 55 }))).toBe('PLAYOUT_FENCE_CONFLICT');
  });

  it('survives the store: fence and history are canonical meta values, and corrupt ones are refused', async () => {
    const store = new MemoryLogStore();
    const log = new Log().inputs(3).tick();
    const f = promise(base(), { epoch: 2, candidate: 'af-jnb', failoverId: 'fo-a' }, head(4), 9);
    await store.putMeta(SHARD, FENCE_META_KEY, f);
    await store.putMeta(SHARD, EPOCHS_META_KEY, log.history());
    expect(parseFence(store.getMeta(SHARD, FENCE_META_KEY), SHARD, 'us-sfo')).toEqual(f);
    expect(parseEpochHistory(store.getMeta(SHARD, EPOCHS_META_KEY), SHARD)).toEqual(log.history());
    expect(codeOf(() => parseFence({ ...f, epoch: 'two' }, SHARD, 'us-sfo'))).toBe('PLAYOUT_STORE_CORRUPT');
    expect(codeOf(() => parseFence(f, SHARD, 'eu-fra'))).toBe('PLAYOUT_STORE_CORRUPT');
    expect(codeOf(() => parseFence({ ...f, epoch: 2 }, SHARD, 'us-sfo'))).toBe('PLAYOUT_STORE_CORRUPT');
    const h = log.history();
    expect(codeOf(() => parseEpochHistory([...h, { ...h[0]!, epoch: 2 }], SHARD))).toBe('PLAYOUT_STORE_CORRUPT');
    expect(codeOf(() => parseEpochHistory([{ epoch: 1 }], SHARD))).toBe('PLAYOUT_STORE_CORRUPT');
  });

  it('answers a grant with the durable head and the region history', () => {
    const f = promise(base(), { epoch: 2, candidate: 'af-jnb', failoverId: 'fo-a' }, head(40), 0);
    const g = grantOf(f, head(40), true, []);
    expect(g).toMatchObject({ region: 'us-sfo', epoch: 2, candidate: 'af-jnb', failoverId: 'fo-a', head: 40, wasLeader: true, epochs: [] });
  });
});

describe('epoch history', () => {
  it('records the genesis and every epoch entry, with where each epoch starts', () => {
    const a = new Log().inputs(3).tick().inputs(2);
    const b = new Log(a).startEpoch(2, 'af-jnb').inputs(2).tick();
    const h = b.history();
    expect(h.map((r) => [r.epoch, r.leader, r.firstSeq, r.lastSeqPrevEpoch, r.tick])).toEqual([
      [1, 'eu-fra', 1, 0, 0],
      [2, 'af-jnb', 8, 7, 1],
    ]);
    expect(h[1]!.prevHash).toBe(b.hashAt(7));
    expect(h[1]!.entryHash).toBe(b.hashAt(8));
    // The head was inside tick 1: the new epoch closed it right after its epoch entry.
    expect(b.entries[8]!.kind).toBe('tick');
    expect(b.entries[8]!.epoch).toBe(2);
    expect(epochAt(h, 7)!.epoch).toBe(1);
    expect(epochAt(h, 8)!.epoch).toBe(2);
    expect(endOfEpoch(h, 1, b.head)).toBe(7);
    expect(endOfEpoch(h, 2, b.head)).toBe(b.head);
    expect(truncateHistory(h, 7)).toEqual([h[0]]);
    expect(epochRecordOf(b.entries[7]!, { atMs: 5, failoverId: 'fo-a' })).toMatchObject({ atMs: 5, failoverId: 'fo-a' });
    expect(codeOf(() => epochRecordOf(b.entries[1]!))).toBe('PLAYOUT_INVALID_ARGUMENT');
    expect(codeOf(() => epochRecordOf(b.entries[0]!))).toBe('PLAYOUT_INVALID_ARGUMENT');
  });

  it('appends a record again as a no-op, refuses another record for a held epoch (a fork) and one that goes backwards', () => {
    const h = new Log(new Log().inputs(2).tick()).startEpoch(2, 'af-jnb').history();
    expect(appendEpochRecord(h, h[1]!, SHARD)).toEqual(h);
    expect(codeOf(() => appendEpochRecord(h, { ...h[1]!, entryHash: 'ee'.repeat(16) }, SHARD))).toBe('PLAYOUT_FORK');
    expect(codeOf(() => appendEpochRecord([h[1]!], { ...h[0]!, epoch: 0 }, SHARD))).toBe('PLAYOUT_OUT_OF_ORDER');
  });

  it('starts a new epoch right after a tick entry without closing a tick', () => {
    const a = new Log().inputs(2).tick();
    const b = new Log(a).startEpoch(2, 'af-jnb');
    expect(b.entries.slice(a.head).map((e) => e.kind)).toEqual(['epoch']);
    expect(b.entries[a.head]!.tick).toBe(1);
  });

  it('finds where a log parts from the reference history', () => {
    const a = new Log().inputs(3).tick().inputs(3).tick(); // 1..9, epoch 1
    const old = new Log(a).inputs(4); // the old leader went on to 13 in epoch 1 (divergent after 9)
    const ref = new Log(a).startEpoch(2, 'af-jnb').inputs(2); // epoch 2 from 10
    const view = (l: Log) => ({ head: l.head, epochs: l.history() });
    expect(divergencePoint(view(old), view(ref))).toBe(9);
    // A region behind, or level, or ahead within the reference's last epoch: nothing to cut.
    expect(divergencePoint(view(new Log(a, 5)), view(ref))).toBeNull();
    expect(divergencePoint(view(ref), view(ref))).toBeNull();
    expect(divergencePoint(view(new Log(ref).inputs(3)), view(ref))).toBeNull();
    expect(divergencePoint(view(old), view(a))).toBeNull();
    // A candidate's epoch that was superseded before anyone kept it: all of it is divergent.
    const superseded = new Log(a, 7).startEpoch(2, 'us-sfo').inputs(2); // epoch 2' at 8
    const winner = new Log(a).startEpoch(3, 'af-jnb'); // epoch 3 at 10, kept 1..9
    expect(divergencePoint(view(superseded), view(winner))).toBe(7);
    expect(divergencePoint(view(new Log()), { head: 0, epochs: [] })).toBe(0);
    expect(divergencePoint({ head: 0, epochs: [] }, view(a))).toBeNull();
    expect(compareLogs(2, 10, 1, 13)).toBe(1);
    expect(compareLogs(1, 13, 1, 12)).toBe(1);
    expect(compareLogs(1, 13, 1, 13)).toBe(0);
  });
});

describe('a returning old leader', () => {
  const a = new Log().inputs(3).tick().inputs(3).tick();
  const old = new Log(a).inputs(4).tick();
  const ref = new Log(a).startEpoch(2, 'af-jnb').inputs(2);
  const local = (l: Log) => ({ head: l.head, epochs: l.history(), hashAt: (s: number) => l.hashAt(s) });

  it('truncates its divergent suffix into a report listing every entry and input', () => {
    const r = reconcile(SHARD, local(old), { head: ref.head, epochs: ref.history() });
    expect(r).toMatchObject({ action: 'truncate', keep: 9, count: 5 });
    const truncated = old.entries.slice(9);
    const report = quarantineReport({
      shard: SHARD,
      region: 'eu-fra',
      entries: truncated,
      keptSeq: 9,
      keptHash: old.hashAt(9),
      epoch: r.action === 'truncate' ? r.epoch : null,
      reason: 'epoch 2 kept ..9',
      atMs: 1234,
      resequencedAt: (id) => (id === 'i6' ? 12 : null),
    });
    expect(report).toMatchObject({ shard: SHARD, region: 'eu-fra', epoch: 2, leader: 'af-jnb', keptSeq: 9, seqFrom: 10, seqTo: 14, inputs: 4, resequenced: 1 });
    expect(report.entries.map((e) => [e.seq, e.kind, e.ingestId])).toEqual([
      [10, 'input', 'i6'],
      [11, 'input', 'i7'],
      [12, 'input', 'i8'],
      [13, 'input', 'i9'],
      [14, 'tick', null],
    ]);
    expect(report.entries[0]!.payload).toEqual({ key: 'k0', by: 1 });
    expect(lostInputs(report).map((e) => e.ingestId)).toEqual(['i7', 'i8', 'i9']);
    const json = JSON.parse(encodeQuarantineReport({ ...report, entries: [{ ...report.entries[0]!, payload: { blob: new Uint8Array([1, 2]) } }] }));
    expect(json.entries[0].payload).toEqual({ blob: { $hex: '0102' } });
    // A report must list every truncated entry: a gap is refused.
    expect(codeOf(() => quarantineReport({ shard: SHARD, region: 'eu-fra', entries: truncated.slice(1), keptSeq: 9, keptHash: null, epoch: null, reason: '', atMs: 0 }))).toBe('PLAYOUT_INVALID_ARGUMENT');
  });

  it('keeps a log that is part of the reference history, and stops on a log the epochs cannot explain', () => {
    expect(reconcile(SHARD, local(new Log(a, 6)), { head: ref.head, epochs: ref.history() })).toEqual({ action: 'keep' });
    const forged = { ...local(old), hashAt: (s: number) => (s === 9 ? 'ff'.repeat(16) : old.hashAt(s)) };
    const r = reconcile(SHARD, forged, { head: ref.head, epochs: ref.history() });
    expect(r.action).toBe('conflict');
    if (r.action === 'conflict') expect(r.error.code).toBe('PLAYOUT_FORK');
  });
});

describe('ingress around a failover', () => {
  const fence: FenceState = { shard: SHARD, region: 'eu-fra', epoch: 1, leader: 'eu-fra', ends: [{ epoch: 1, lastSeqPrevEpoch: 0 }], promise: null };
  const urls: Record<string, string> = { 'af-jnb': 'http://127.0.0.1:7102/' };
  const ctx = (f: FenceState, region = 'eu-fra') => ({ region, fence: f, urlOf: (r: string) => urls[r] ?? null, path: `/v1/shards/${SHARD}/inputs`, retryAfterMs: 250 });
  const promised = (candidate: string): FenceState => ({ ...fence, promise: { epoch: 2, candidate, failoverId: 'fo-a', seqMax: 10, atMs: 0 } });

  it('accepts at the leader, and redirects elsewhere (307 with the URL, 421 without)', () => {
    expect(routeIngress(ctx(fence))).toEqual({ kind: 'accept' });
    const after = { ...fence, region: 'us-sfo', epoch: 2, leader: 'af-jnb' };
    const r = routeIngress(ctx(after, 'us-sfo'));
    expect(r).toMatchObject({ kind: 'redirect', status: 307, leader: 'af-jnb', url: 'http://127.0.0.1:7102/', headers: { location: `http://127.0.0.1:7102/v1/shards/${SHARD}/inputs` }, pending: false });
    if (r.kind === 'redirect') expect(r.error.code).toBe('PLAYOUT_NOT_LEADER');
    expect(routeIngress(ctx({ ...after, leader: 'ap-sel' }, 'us-sfo'))).toMatchObject({ kind: 'redirect', status: 421, leader: 'ap-sel', url: null });
  });

  it('during the switch sends clients to the candidate, which asks them to wait until it sequences', () => {
    expect(routeIngress(ctx(promised('af-jnb')))).toMatchObject({ kind: 'redirect', status: 307, leader: 'af-jnb', pending: true });
    const w = routeIngress(ctx({ ...promised('af-jnb'), region: 'af-jnb' }, 'af-jnb'));
    expect(w).toMatchObject({ kind: 'wait', status: 503, candidate: 'af-jnb', headers: { 'retry-after': '1' } });
    if (w.kind === 'wait') {
      expect(w.error.code).toBe('PLAYOUT_FAILOVER_IN_PROGRESS');
      expect(w.error.retriable).toBe(true);
    }
    expect(routeIngress(ctx({ ...fence, leader: null }))).toMatchObject({ kind: 'wait', candidate: null });
  });
});

describe('the candidate', () => {
  const a = new Log().inputs(3).tick().inputs(2);
  const req: PromoteRequest = { epoch: 2, failoverId: 'fo-a', catchUpTo: { seq: 7, hash: a.hashAt(7)!, epoch: 1 }, sources: ['eu-fra'], truncateAbove: null, timeoutMs: 1_000 };
  const mine = promise({ shard: SHARD, region: 'af-jnb', epoch: 1, leader: 'eu-fra', ends: [{ epoch: 1, lastSeqPrevEpoch: 0 }], promise: null }, { epoch: 2, candidate: 'af-jnb', failoverId: 'fo-a' }, head(4), 0);

  it('starts only under its own promise, and raises its limit to the catch-up target', () => {
    expect(beginPromotion(mine, 'af-jnb', req).promise!.seqMax).toBe(7);
    expect(codeOf(() => beginPromotion({ ...mine, promise: null }, 'af-jnb', req))).toBe('PLAYOUT_FENCE_CONFLICT');
    expect(codeOf(() => beginPromotion(mine, 'us-sfo', req))).toBe('PLAYOUT_FENCE_CONFLICT');
    expect(codeOf(() => beginPromotion({ ...mine, epoch: 2, promise: null }, 'af-jnb', req))).toBe('PLAYOUT_FENCE_CONFLICT');
    expect(() => stillPromised(mine, 'af-jnb', req)).not.toThrow();
    expect(codeOf(() => stillPromised(promise(mine, { epoch: 3, candidate: 'us-sfo', failoverId: 'fo-b' }, head(4), 0), 'af-jnb', req))).toBe('PLAYOUT_FENCE_CONFLICT');
  });

  it('waits for the highest fenced head, and refuses to lead another history', () => {
    expect(promotionReady(req, 6, null)).toBe('waiting');
    expect(promotionReady(req, 7, a.hashAt(7))).toBe('ready');
    expect(codeOf(() => promotionReady(req, 7, a.hashAt(6)))).toBe('PLAYOUT_FORK');
    expect(codeOf(() => promotionReady(req, 8, a.hashAt(7)))).toBe('PLAYOUT_FORK');
  });

  it('seals the epoch entry after the previous epoch kept, and nowhere else', () => {
    const b = new Log(a);
    expect(codeOf(() => epochEntries(b.seq, { epoch: 2, leader: 'af-jnb', lastSeqPrevEpoch: 6 }, null, false))).toBe('PLAYOUT_INVALID_ARGUMENT');
    const out = epochEntries(b.seq, { epoch: 2, leader: 'af-jnb', lastSeqPrevEpoch: 7 }, b.machine.lastDigest!.digest, false);
    expect(out.map((e) => [e.kind, e.epoch, e.tick])).toEqual([
      ['epoch', 2, 1],
      ['tick', 2, 1],
    ]);
    expect(out[0]!.payload).toEqual({ epoch: 2, leader: 'af-jnb', lastSeqPrevEpoch: 7 });
    for (const e of out) b.push(e);
    expect(b.machine.epoch).toBe(2);
  });
});

describe('initial fence', () => {
  it('comes from the history', () => {
    const h = new Log(new Log().inputs(1).tick()).startEpoch(2, 'af-jnb').history();
    expect(initialFence(SHARD, 'us-sfo', h)).toEqual({ shard: SHARD, region: 'us-sfo', epoch: 2, leader: 'af-jnb', ends: [{ epoch: 1, lastSeqPrevEpoch: 0 }, { epoch: 2, lastSeqPrevEpoch: 3 }], promise: null });
    expect(initialFence(SHARD, 'us-sfo', [])).toMatchObject({ epoch: 0, leader: null });
  });
});

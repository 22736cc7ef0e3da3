import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  PlayoutError,
  ReducerRegistry,
  Sequencer,
  ShardMachine,
  ZERO_HASH,
  decodeEntry,
  decodeSnapshot,
  defineReducer,
  encodeSnapshot,
  sealEntry,
  toHex,
  type Entry,
  type EntryFields,
  type TickDigest,
} from '../../src/core/index.js';
import { buildLog, kvRegistry, planArb, replayDigests, type Op } from './support/kv-reducer.js';
import { assertProperty } from './support/property.js';
import { z } from 'zod';

const hex = (ds: readonly TickDigest[]): string[] => ds.map((d) => `${d.tick}@${d.seq}:${toHex(d.digest)}`);

function fieldsOf(e: Entry): EntryFields {
  return { shard: e.shard, seq: e.seq, epoch: e.epoch, tick: e.tick, kind: e.kind, type: e.type, version: e.version, origin: e.origin, ingestId: e.ingestId, payload: e.payload, digest: e.digest, prev: e.prev };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof PlayoutError) return err.code;
    throw err;
  }
  return 'no error';
}

function errorOf(fn: () => unknown): PlayoutError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PlayoutError) return err;
    throw err;
  }
  throw new Error('expected a PlayoutError');
}

const fixedPlan: Op[][] = [
  [{ type: 'kv.put', version: 1, payload: { key: 'a', v: 1.5 }, ingestId: 'i1' }],
  [
    { type: 'kv.add', version: 1, payload: { key: 'a', by: 3 }, ingestId: 'i2' },
    { type: 'kv.roll', version: 1, payload: { key: 'b' }, ingestId: null },
  ],
  [{ type: 'kv.tag', version: 1, payload: { key: 'b', tag: 'x' }, ingestId: null }],
  [{ type: 'kv.del', version: 1, payload: { key: 'a' }, ingestId: null }],
  [],
  [{ type: 'kv.put', version: 2, payload: { key: 'c', v: -0, owner: 'me' }, ingestId: null }],
];

describe('ShardMachine replay', () => {
  it('replaying the same entries twice gives the same digest at every tick, equal to the leader', () => {
    assertProperty(
      fc.property(planArb(), fc.integer({ min: 0, max: 0xffffffff }), (plan, seed) => {
        const log = buildLog(plan, { seed });
        const a = replayDigests(log.entries);
        const b = replayDigests(log.entries);
        expect(hex(a.digests)).toEqual(hex(b.digests));
        expect(hex(a.digests)).toEqual(hex(log.digests));
        expect(a.digests).toHaveLength(plan.length);
        expect(a.machine.firstMismatch).toBeNull();
        expect(a.machine.exportState()).toEqual(b.machine.exportState());
      }),
      { numRuns: 60 },
    );
  });

  it('a reducer that keeps hidden state outside its tables replays to different digests, and the log reports the first mismatching tick', () => {
    let hidden = 0;
    const leaky = defineReducer({
      name: 'leaky',
      version: 1,
      tables: { t: z.object({ n: z.number() }) },
      inputs: { bump: { 1: z.object({}) } },
      init() {},
      apply(ctx) {
        hidden++;
        ctx.tables.t.set('k', { n: hidden });
      },
      onTick() {},
    });
    const registry = new ReducerRegistry([leaky]);
    const g = Sequencer.genesis({ shard: 'leak', reducer: leaky, seed: 1, tickMs: 10 });
    const sq = Sequencer.afterGenesis(registry, g, { region: null, dedupeWindowTicks: 0 });
    const leader = new ShardMachine(registry);
    const log = [g];
    leader.apply(g);
    for (let t = 0; t < 4; t++) {
      const r = sq.submit({ type: 'bump', version: 1, payload: {}, ingestId: null });
      if (r.status === 'sequenced') log.push(r.entry);
      leader.apply(log[log.length - 1]!);
      const te = sq.closeTick(leader.lastDigest?.digest ?? null);
      leader.apply(te);
      log.push(te);
    }
    const follower = new ShardMachine(registry);
    for (const e of log) follower.apply(e);
    // Tick 0 closes at seq 3 and its digest is carried by the tick entry at seq 5.
    expect(follower.firstMismatch).toMatchObject({ tick: 0, seq: 3, reportedBySeq: 5 });
    expect(follower.mismatches).toBe(3);
  });

  it('records rejections as data, identically on every replay', () => {
    const plan: Op[][] = [
      [
        { type: 'kv.add', version: 1, payload: { key: 'zz', by: 1 }, ingestId: null },
        { type: 'kv.del', version: 1, payload: { key: 'zz' }, ingestId: null },
        { type: 'kv.put', version: 1, payload: { key: 'zz', v: 1 }, ingestId: null },
        { type: 'kv.add', version: 1, payload: { key: 'zz', by: 1 }, ingestId: null },
      ],
    ];
    const log = buildLog(plan);
    const a = replayDigests(log.entries).machine;
    const b = replayDigests(log.entries).machine;
    expect(a.rejections).toEqual([
      { seq: 2, type: 'kv.add', code: 'KEY_MISSING', reason: 'zz' },
      { seq: 3, type: 'kv.del', code: 'KEY_MISSING', reason: 'zz' },
    ]);
    expect(b.rejections).toEqual(a.rejections);
    expect(log.leader.rejections).toEqual(a.rejections);
  });

  it('rejects an input type the running reducer version does not declare, as data, in checked and unchecked mode alike', () => {
    const log = buildLog([[]]);
    const g = log.entries[0]!;
    const last = log.entries[log.entries.length - 1]!;
    const odd = sealEntry({ shard: g.shard, seq: last.seq + 1, epoch: 1, tick: 1, kind: 'input', type: 'kv.fly', version: 1, origin: null, ingestId: null, payload: {}, digest: null, prev: last.hash });
    for (const checked of [null, { guard: null, fullDigestEveryTicks: 1 }]) {
      const m = replayDigests(log.entries, { checked }).machine;
      m.apply(odd);
      expect(m.rejections).toEqual([{ seq: odd.seq, type: 'kv.fly', code: 'PLAYOUT_INPUT_TYPE_UNKNOWN', reason: expect.stringContaining('kv.fly@1') }]);
      expect(m.head).toBe(odd.seq);
    }
  });

  it('drops outputs when asked to (keepOutputs: false), and without digests computes none but applies alike', () => {
    const log = buildLog(fixedPlan);
    const quiet = replayDigests(log.entries, { keepOutputs: false });
    expect(quiet.machine.takeOutputs()).toEqual([]);
    const bare = replayDigests(log.entries, { digests: false });
    expect(bare.digests).toEqual([]);
    expect(bare.machine.lastDigest).toBeNull();
    expect(bare.machine.exportState()).toEqual(quiet.machine.exportState());
    expect(bare.machine.head).toBe(quiet.machine.head);
  });

  it('keeps outputs emitted by the reducer until taken, tagged with seq and tick', () => {
    const log = buildLog(fixedPlan);
    const m = replayDigests(log.entries).machine;
    const outs = m.takeOutputs();
    expect(outs.length).toBeGreaterThan(0);
    expect(outs[0]).toEqual({ seq: 2, tick: 0, event: { seq: 2, type: 'kv.put' } });
    expect(m.takeOutputs()).toEqual([]);
  });
});

describe('ShardMachine snapshots', () => {
  it('a snapshot at any tick, through its bytes, plus the rest of the log equals a full replay', () => {
    assertProperty(
      fc.property(planArb(10, 5), fc.nat(), fc.option(fc.nat({ max: 9 }), { nil: null }), (plan, at, upgradeAt) => {
        const log = buildLog(plan, { upgradeAtTick: upgradeAt });
        const full = replayDigests(log.entries);
        const tickEntries = log.entries.filter((e) => e.kind === 'tick');
        const cut = tickEntries[at % tickEntries.length]!;
        const head = replayDigests(log.entries.slice(0, cut.seq)).machine;
        const bytes = encodeSnapshot(head.snapshot());
        const restoredDigests: TickDigest[] = [];
        const restored = ShardMachine.fromSnapshot(kvRegistry(), decodeSnapshot(bytes), { onTick: (d) => restoredDigests.push(d) });
        expect(restored.head).toBe(cut.seq);
        expect(toHex(restored.lastDigest!.digest)).toBe(toHex(full.digests[cut.tick]!.digest));
        for (const e of log.entries.slice(cut.seq)) restored.apply(e);
        expect(hex(restoredDigests)).toEqual(hex(full.digests.slice(cut.tick + 1)));
        expect(restored.exportState()).toEqual(full.machine.exportState());
        expect(restored.rngState).toEqual(full.machine.rngState);
        expect(restored.reducer!.version).toBe(full.machine.reducer!.version);
        expect(restored.firstMismatch).toBeNull();
      }),
      { numRuns: 60 },
    );
  });

  it('a snapshot does not change when the machine goes on applying entries', () => {
    const log = buildLog(fixedPlan);
    const m = replayDigests(log.entries.slice(0, log.entries.findIndex((e) => e.kind === 'tick') + 1)).machine;
    const snap = m.snapshot();
    const before = toHex(encodeSnapshot(snap));
    for (const e of log.entries.slice(m.head)) m.apply(e);
    expect(toHex(encodeSnapshot(snap))).toBe(before);
  });

  it('refuses a snapshot whose records do not match its digest, and one with a table the reducer does not know', () => {
    const log = buildLog(fixedPlan);
    const m = replayDigests(log.entries).machine;
    const snap = m.snapshot();
    const tampered = decodeSnapshot(encodeSnapshot(snap));
    (tampered.tables.items![0]![1] as { n: number }).n += 1;
    expect(codeOf(() => ShardMachine.fromSnapshot(kvRegistry(), tampered))).toBe('PLAYOUT_SNAPSHOT_CORRUPT');
    const extra = decodeSnapshot(encodeSnapshot(snap));
    extra.tables.ghosts = [];
    expect(codeOf(() => ShardMachine.fromSnapshot(kvRegistry(), extra))).toBe('PLAYOUT_SNAPSHOT_CORRUPT');
    const unknown = decodeSnapshot(encodeSnapshot(snap));
    unknown.reducerVersion = 9;
    expect(codeOf(() => ShardMachine.fromSnapshot(kvRegistry(), unknown))).toBe('PLAYOUT_REDUCER_UNKNOWN');
  });

  it('detects a flipped byte in an encoded snapshot, and an unknown snapshot format', () => {
    assertProperty(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), (at, mask) => {
        const log = buildLog(fixedPlan);
        const bytes = encodeSnapshot(replayDigests(log.entries).machine.snapshot());
        const bad = bytes.slice();
        bad[at % bad.length]! ^= mask;
        expect(codeOf(() => decodeSnapshot(bad))).toBe('PLAYOUT_SNAPSHOT_CORRUPT');
      }),
      { numRuns: 200 },
    );
    const log = buildLog(fixedPlan);
    const snap = replayDigests(log.entries).machine.snapshot();
    const future = encodeSnapshot({ ...snap, format: 2 });
    expect(codeOf(() => decodeSnapshot(future))).toBe('PLAYOUT_SNAPSHOT_FORMAT_UNKNOWN');
    expect(codeOf(() => decodeSnapshot(new Uint8Array(10)))).toBe('PLAYOUT_SNAPSHOT_CORRUPT');
  });
});

describe('ShardMachine ordering', () => {
  const log = buildLog(fixedPlan).entries;
  const machineAt = (n: number): ShardMachine => replayDigests(log.slice(0, n)).machine;
  const reseal = (e: Entry, change: Partial<EntryFields>): Entry => sealEntry({ ...fieldsOf(e), ...change });

  it('applies the next entry when it chains to the head', () => {
    const m = machineAt(3);
    m.apply(log[3]!);
    expect(m.head).toBe(4);
    expect(toHex(m.headHash)).toBe(toHex(log[3]!.hash));
  });

  it.each([
    ['a broken prev', 'PLAYOUT_CHAIN_BROKEN', (m: ShardMachine) => m.apply(reseal(log[3]!, { prev: log[1]!.hash }))],
    ['a duplicate of the head', 'PLAYOUT_ENTRY_DUPLICATE', (m: ShardMachine) => m.apply(log[2]!)],
    ['a duplicate of an older entry', 'PLAYOUT_ENTRY_DUPLICATE', (m: ShardMachine) => m.apply(log[0]!)],
    ['a gap', 'PLAYOUT_GAP', (m: ShardMachine) => m.apply(log[4]!)],
    ['a fork at the head', 'PLAYOUT_FORK', (m: ShardMachine) => m.apply(reseal(log[2]!, { payload: { key: 'q', by: 1 } }))],
    ['a fork below the head', 'PLAYOUT_FORK', (m: ShardMachine) => m.apply(reseal(log[1]!, { ingestId: 'other' }))],
    ['a tick going backwards', 'PLAYOUT_OUT_OF_ORDER', (m: ShardMachine) => m.apply(reseal(log[3]!, { tick: 0 }))],
    ['a tick jumping ahead', 'PLAYOUT_OUT_OF_ORDER', (m: ShardMachine) => m.apply(reseal(log[3]!, { tick: 5 }))],
    ['an epoch going backwards', 'PLAYOUT_OUT_OF_ORDER', (m: ShardMachine) => m.apply(reseal(log[3]!, { epoch: 0 }))],
    ['an epoch without an epoch entry', 'PLAYOUT_OUT_OF_ORDER', (m: ShardMachine) => m.apply(reseal(log[3]!, { epoch: 2 }))],
    ['an entry of another shard', 'PLAYOUT_OUT_OF_ORDER', (m: ShardMachine) => m.apply(reseal(log[3]!, { shard: 'other' }))],
    ['a second genesis', 'PLAYOUT_GENESIS_INVALID', (m: ShardMachine) => m.apply(reseal(log[0]!, { seq: 4, prev: log[2]!.hash, tick: 1 }))],
  ])('refuses %s with %s, reports its seq, and stays usable', (_name, code, act) => {
    const m = machineAt(3);
    const before = toHex(m.lastDigest!.digest);
    const err = errorOf(() => act(m));
    expect(err.code).toBe(code);
    expect(err.seq).not.toBeNull();
    expect(m.head).toBe(3);
    expect(toHex(m.lastDigest!.digest)).toBe(before);
    // Refusing changed nothing: the right entry still applies.
    m.apply(log[3]!);
    expect(m.head).toBe(4);
  });

  it('refuses every reordering of a log at the first entry out of place', () => {
    assertProperty(
      fc.property(fc.nat({ max: log.length - 1 }), fc.nat({ max: log.length - 1 }), (i, j) => {
        fc.pre(i !== j);
        const swapped = log.slice();
        [swapped[i], swapped[j]] = [swapped[j]!, swapped[i]!];
        const m = new ShardMachine(kvRegistry());
        const first = Math.min(i, j);
        for (let k = 0; k < first; k++) m.apply(swapped[k]!);
        const err = errorOf(() => m.apply(swapped[first]!));
        expect(['PLAYOUT_GAP', 'PLAYOUT_ENTRY_DUPLICATE']).toContain(err.code);
        expect(err.seq).toBe(swapped[first]!.seq);
      }),
      { numRuns: 100 },
    );
  });

  it('applies an epoch entry that raises the epoch, then refuses entries of the old epoch', () => {
    const m = machineAt(log.length);
    const last = log[log.length - 1]!;
    const ep = sealEntry({ shard: last.shard, seq: last.seq + 1, epoch: 2, tick: m.tick, kind: 'epoch', type: null, version: null, origin: 'af-jnb', ingestId: null, payload: { epoch: 2, leader: 'af-jnb', lastSeqPrevEpoch: last.seq }, digest: null, prev: last.hash });
    m.apply(ep);
    expect(m.epoch).toBe(2);
    const old = sealEntry({ shard: last.shard, seq: ep.seq + 1, epoch: 1, tick: m.tick, kind: 'tick', type: null, version: null, origin: null, ingestId: null, payload: null, digest: null, prev: ep.hash });
    expect(codeOf(() => m.apply(old))).toBe('PLAYOUT_OUT_OF_ORDER');
    const stale = sealEntry({ ...fieldsOf(ep), seq: ep.seq + 1, prev: ep.hash });
    expect(codeOf(() => m.apply(stale))).toBe('PLAYOUT_OUT_OF_ORDER');
  });
});

describe('ShardMachine genesis', () => {
  const genesisFields = (payload: unknown, change: Partial<EntryFields> = {}): EntryFields => ({
    shard: 'g-1',
    seq: 1,
    epoch: 1,
    tick: 0,
    kind: 'genesis',
    type: null,
    version: null,
    origin: null,
    ingestId: null,
    payload,
    digest: null,
    prev: ZERO_HASH,
    ...change,
  });
  const good = { reducer: 'kv', reducerVersion: 1, seed: 5, tickMs: 50, engineFormat: 1, hash: 'xxh3-128', params: null };

  it('starts a shard from a valid genesis and runs init', () => {
    const m = new ShardMachine(kvRegistry());
    m.apply(sealEntry(genesisFields(good)));
    expect(m.shard).toBe('g-1');
    expect(m.tables.items!.size).toBe(3);
    expect(m.head).toBe(1);
  });

  it.each([
    ['an unknown engine format', { ...good, engineFormat: 2 }, 'PLAYOUT_GENESIS_INVALID', 'payload.engineFormat'],
    ['another hash function', { ...good, hash: 'sha-256' }, 'PLAYOUT_GENESIS_INVALID', 'payload.hash'],
    ['a zero tickMs', { ...good, tickMs: 0 }, 'PLAYOUT_GENESIS_INVALID', 'payload.tickMs'],
    ['a negative seed', { ...good, seed: -1 }, 'PLAYOUT_GENESIS_INVALID', 'payload.seed'],
    ['an unknown field', { ...good, extra: 1 }, 'PLAYOUT_GENESIS_INVALID', 'payload'],
    ['no payload', null, 'PLAYOUT_GENESIS_INVALID', 'payload'],
    ['an unknown reducer', { ...good, reducer: 'chess' }, 'PLAYOUT_REDUCER_UNKNOWN', null],
    ['an unknown reducer version', { ...good, reducerVersion: 3 }, 'PLAYOUT_REDUCER_UNKNOWN', null],
  ])('refuses a genesis with %s', (_name, payload, code, path) => {
    const err = errorOf(() => new ShardMachine(kvRegistry()).apply(sealEntry(genesisFields(payload))));
    expect(err.code).toBe(code);
    if (path !== null) expect(err.path).toBe(path);
  });

  it('refuses a log that does not start with a genesis, and a genesis at tick 1', () => {
    const input = sealEntry({ ...genesisFields(null), kind: 'input', type: 'kv.put', version: 1, payload: { key: 'a', v: 1 } });
    expect(codeOf(() => new ShardMachine(kvRegistry()).apply(input))).toBe('PLAYOUT_GENESIS_INVALID');
    expect(codeOf(() => new ShardMachine(kvRegistry()).apply(sealEntry(genesisFields(good, { tick: 1 }))))).toBe('PLAYOUT_GENESIS_INVALID');
    expect(codeOf(() => new ShardMachine(kvRegistry()).apply(sealEntry(genesisFields(good, { seq: 2 }))))).toBe('PLAYOUT_GAP');
  });
});

describe('ShardMachine upgrade', () => {
  it('switches the reducer at the next tick exactly, in replay, in the leader and after a snapshot', () => {
    const plan: Op[][] = [
      [{ type: 'kv.put', version: 1, payload: { key: 'a', v: 1 }, ingestId: null }],
      [{ type: 'kv.add', version: 1, payload: { key: 'a', by: 1 }, ingestId: null }],
      [{ type: 'kv.add', version: 1, payload: { key: 'a', by: 1 }, ingestId: null }],
      [{ type: 'kv.add', version: 1, payload: { key: 'a', by: 1 }, ingestId: null }],
    ];
    // The upgrade is the first entry of tick 1: kv.add in tick 1 still adds 1 (v1), tick 2 adds 2 (v2).
    const log = buildLog(plan, { upgradeAtTick: 1 });
    const ns: number[] = [];
    const versions: number[] = [];
    const m = new ShardMachine(kvRegistry(), { onTick: (d) => versions.push(d.reducerVersion) });
    for (const e of log.entries) {
      m.apply(e);
      if (e.kind === 'tick') ns.push((m.tables.items!.get('a') as { n: number }).n);
    }
    expect(ns).toEqual([0, 1, 3, 5]);
    expect(versions).toEqual([1, 1, 2, 2]);
    expect(log.digests.map((d) => d.reducerVersion)).toEqual([1, 1, 2, 2]);
    // v2 adds the audit table at the boundary: it holds records of ticks 2 and 3 only.
    expect(m.tables.audit!.keys()).toEqual(['t2', 't3']);
    expect(hex(replayDigests(log.entries).digests)).toEqual(hex(log.digests));
  });

  it('refuses an upgrade to a version this engine does not have', () => {
    const log = buildLog([[]]).entries;
    const last = log[log.length - 1]!;
    const up = sealEntry({ shard: last.shard, seq: last.seq + 1, epoch: 1, tick: 1, kind: 'upgrade', type: null, version: null, origin: null, ingestId: null, payload: { reducerVersion: 7 }, digest: null, prev: last.hash });
    const m = replayDigests(log).machine;
    expect(codeOf(() => m.apply(up))).toBe('PLAYOUT_REDUCER_UNKNOWN');
    expect(m.head).toBe(last.seq);
  });
});

describe('ShardMachine failures', () => {
  const thrower = defineReducer({
    name: 'thrower',
    version: 1,
    tables: { t: z.object({ n: z.number() }) },
    inputs: { boom: { 1: z.object({}) }, nan: { 1: z.object({}) }, ok: { 1: z.object({}) } },
    init() {},
    apply(ctx, input) {
      if (input.type === 'boom') throw new Error('kaboom');
      if (input.type === 'nan') ctx.tables.t.set('x', { n: Number.NaN });
      if (input.type === 'ok') ctx.tables.t.set('y', { n: 1 });
    },
    onTick() {},
  });

  function run(types: string[]): { m: ShardMachine; entries: Entry[] } {
    const registry = new ReducerRegistry([thrower]);
    const g = Sequencer.genesis({ shard: 'th', reducer: thrower, seed: 1, tickMs: 10 });
    const sq = Sequencer.afterGenesis(registry, g, { region: null, dedupeWindowTicks: 0 });
    const entries = [g];
    for (const type of types) {
      if (type === 'tick') entries.push(sq.closeTick(null));
      else {
        const r = sq.submit({ type, version: 1, payload: {}, ingestId: null });
        if (r.status === 'sequenced') entries.push(r.entry);
      }
    }
    return { m: new ShardMachine(registry), entries };
  }

  it('stops the shard at a reducer that throws, naming the reducer, the input and the seq', () => {
    const { m, entries } = run(['ok', 'boom', 'ok', 'tick']);
    m.apply(entries[0]!);
    m.apply(entries[1]!);
    const err = errorOf(() => m.apply(entries[2]!));
    expect(err.code).toBe('PLAYOUT_REDUCER_FAILED');
    expect(err.seq).toBe(3);
    expect(err.message).toContain('thrower@1');
    expect(err.message).toContain('boom');
    expect(err.cause).toBeInstanceOf(Error);
    expect(errorOf(() => m.apply(entries[3]!))).toBe(err);
  });

  it('stops the shard when a record cannot be hashed at the tick, instead of going on with half-folded sums', () => {
    const { m, entries } = run(['nan', 'ok', 'tick', 'ok', 'tick']);
    for (const e of entries.slice(0, 3)) m.apply(e);
    const err = errorOf(() => m.apply(entries[3]!));
    expect(err.code).toBe('PLAYOUT_VALUE_NOT_CANONICAL');
    expect(err.path).toBe('t["x"].n');
    expect(err.seq).toBe(4);
    expect(errorOf(() => m.apply(entries[4]!)).code).toBe('PLAYOUT_VALUE_NOT_CANONICAL');
    expect(m.head).toBe(3);
  });
});

describe('decodeEntry and ShardMachine together', () => {
  it('a flipped byte in any encoded entry is refused at that entry with its seq, and nothing of it is applied', () => {
    const log = buildLog(fixedPlan).entries;
    assertProperty(
      fc.property(fc.nat({ max: log.length - 1 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (i, at, mask) => {
        const m = new ShardMachine(kvRegistry());
        for (let k = 0; k < i; k++) m.apply(decodeEntry(log[k]!.bytes, 0, log[k]!.bytes.length, k + 1));
        const bad = log[i]!.bytes.slice();
        bad[at % bad.length]! ^= mask;
        const err = errorOf(() => m.apply(decodeEntry(bad, 0, bad.length, i + 1)));
        expect(err.code).toBe('PLAYOUT_ENTRY_HASH_MISMATCH');
        expect(err.seq).toBe(i + 1);
        expect(m.head).toBe(i);
      }),
      { numRuns: 300 },
    );
  });

  it('an entry changed and sealed again breaks the chain at the entry after it', () => {
    const log = buildLog(fixedPlan).entries;
    assertProperty(
      fc.property(fc.nat({ max: log.length - 2 }), (i) => {
        const e = log[i]!;
        const changed = sealEntry({ ...fieldsOf(e), origin: e.origin === 'zz-top' ? 'yy' : 'zz-top' });
        const m = new ShardMachine(kvRegistry());
        for (let k = 0; k < i; k++) m.apply(log[k]!);
        m.apply(changed);
        const err = errorOf(() => m.apply(log[i + 1]!));
        expect(err.code).toBe('PLAYOUT_CHAIN_BROKEN');
        expect(err.seq).toBe(i + 2);
      }),
      { numRuns: 50 },
    );
  });
});

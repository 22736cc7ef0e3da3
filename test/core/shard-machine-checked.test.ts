// Checked mode (DESIGN.md §4): poisoned globals during reducer calls, read-only `get`
// records, and the periodic full recomputation of the incremental digest.
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { GlobalsGuard } from '../../src/adapters/determinism-guard.js';
import { PlayoutError, ReducerRegistry, Sequencer, ShardMachine, defineReducer, toHex, type CheckedOptions, type Entry } from '../../src/core/index.js';
import { buildLog, planArb, replayDigests } from './support/kv-reducer.js';
import { assertProperty } from './support/property.js';

type Where = 'init' | 'apply' | 'onTick';
interface Plan {
  where: Where | null;
  act: (() => unknown) | null;
  swallow: boolean;
}
// The test reducer does what the current test tells it to; reducers may not keep state outside
// their tables, but a test may steer one.
const plan: Plan = { where: null, act: null, swallow: false };
let leaked: { n: number } | null = null;

function maybeAct(where: Where): void {
  if (plan.where !== where || plan.act === null) return;
  if (!plan.swallow) {
    plan.act();
    return;
  }
  try {
    plan.act();
  } catch {
    // A reducer that hides the violation from the engine: checked mode must still report it.
  }
}

const Rec = z.object({ n: z.number(), tags: z.array(z.string()) });
const poison = defineReducer({
  name: 'poison',
  version: 1,
  tables: { t: Rec },
  inputs: {
    'poison.go': { 1: z.object({}) },
    'poison.write': { 1: z.object({ how: z.enum(['field', 'nested', 'delete', 'define', 'array', 'freeze']) }) },
    'poison.leak': { 1: z.object({}) },
  },
  init(ctx) {
    ctx.tables.t.set('k', { n: 1, tags: ['a'] });
    maybeAct('init');
  },
  apply(ctx, input) {
    if (input.type === 'poison.go') maybeAct('apply');
    if (input.type === 'poison.write') {
      const r = ctx.tables.t.get('k') as unknown as { n: number; tags: string[] };
      const write = (): void => {
        switch (input.payload.how) {
          case 'field':
            r.n = 2;
            break;
          case 'nested':
            r.tags.push('b');
            break;
          case 'delete':
            delete (r as Partial<typeof r>).n;
            break;
          case 'define':
            Object.defineProperty(r, 'x', { value: 1 });
            break;
          case 'array':
            r.tags[0] = 'z';
            break;
          case 'freeze':
            Object.freeze(r);
            break;
        }
      };
      if (plan.swallow) {
        try {
          write();
        } catch {
          // swallowed on purpose
        }
      } else write();
    }
    if (input.type === 'poison.leak') leaked = ctx.tables.t.mut('k')!;
  },
  onTick(ctx) {
    // Reads through get keep working in checked mode.
    const r = ctx.tables.t.get('k');
    if (r !== undefined && r.tags.map((x) => x).length < 0) throw new Error('unreachable');
    maybeAct('onTick');
  },
});
const registry = new ReducerRegistry([poison]);

function log(types: string[], payload: Record<string, unknown> = {}): Entry[] {
  const g = Sequencer.genesis({ shard: 'p-1', reducer: poison, seed: 1, tickMs: 10 });
  const sq = Sequencer.afterGenesis(registry, g, { region: null, dedupeWindowTicks: 0 });
  const out = [g];
  for (const type of types) {
    if (type === 'tick') out.push(sq.closeTick(null));
    else {
      const r = sq.submit({ type, version: 1, payload: type === 'poison.write' ? payload : {}, ingestId: null });
      if (r.status === 'sequenced') out.push(r.entry);
    }
  }
  return out;
}

const checked = (fullDigestEveryTicks = 1): CheckedOptions => ({ guard: new GlobalsGuard(), fullDigestEveryTicks });

function failureOf(entries: Entry[], options: CheckedOptions = checked()): PlayoutError {
  const m = new ShardMachine(registry, { checked: options });
  try {
    for (const e of entries) m.apply(e);
  } catch (err) {
    if (!(err instanceof PlayoutError)) throw err;
    expect(m.failure).toBe(err);
    return err;
  }
  throw new Error('expected the replay to fail');
}

const g = globalThis as unknown as Record<string, unknown>;
const originals = {
  random: Math.random,
  Date: g.Date,
  now: performance.now,
  setTimeout: g.setTimeout,
  setInterval: g.setInterval,
  setImmediate: g.setImmediate,
  queueMicrotask: g.queueMicrotask,
  randomUUID: crypto.randomUUID,
};

afterEach(() => {
  plan.where = null;
  plan.act = null;
  plan.swallow = false;
  // Every poisoned global is back after every reducer call, failed or not.
  expect(Math.random).toBe(originals.random);
  expect(g.Date).toBe(originals.Date);
  expect(performance.now).toBe(originals.now);
  expect(g.setTimeout).toBe(originals.setTimeout);
  expect(g.setInterval).toBe(originals.setInterval);
  expect(g.setImmediate).toBe(originals.setImmediate);
  expect(g.queueMicrotask).toBe(originals.queueMicrotask);
  expect(crypto.randomUUID).toBe(originals.randomUUID);
  expect(typeof Math.random()).toBe('number');
  expect(Date.now()).toBeGreaterThan(0);
});

const poisoned: [string, () => unknown][] = [
  ['Math.random()', () => Math.random()],
  ['Date', () => new Date()],
  ['Date.now()', () => Date.now()],
  ['performance.now()', () => performance.now()],
  ['setTimeout()', () => setTimeout(() => {}, 0)],
  ['setInterval()', () => setInterval(() => {}, 1000)],
  ['setImmediate()', () => setImmediate(() => {})],
  ['queueMicrotask()', () => queueMicrotask(() => {})],
  ['crypto.randomUUID()', () => crypto.randomUUID()],
];

describe('checked mode: poisoned globals', () => {
  // Entries: genesis (seq 1), poison.go (seq 2), tick (seq 3).
  const cases = poisoned.flatMap(([what, act]) =>
    (['init', 'apply', 'onTick'] as const).flatMap((where) => [false, true].map((swallow) => ({ what, act, where, swallow, seq: where === 'init' ? 1 : where === 'apply' ? 2 : 3 }))),
  );

  it.each(cases)('$what in $where (swallowed: $swallow) stops the shard with PLAYOUT_DETERMINISM_VIOLATION naming the reducer, the input and the seq', ({ what, act, where, swallow, seq }) => {
    plan.where = where;
    plan.act = act;
    plan.swallow = swallow;
    const err = failureOf(log(['poison.go', 'tick']));
    expect(err.code).toBe('PLAYOUT_DETERMINISM_VIOLATION');
    expect(err.seq).toBe(seq);
    expect(err.message).toContain('poison@1');
    expect(err.message).toContain(what);
    expect(err.message).toContain(where === 'apply' ? 'apply(poison.go)' : where);
    expect(err.message).toContain(`entry ${seq}`);
  });

  it('lets the same calls through outside checked mode (the guard is what stops them)', () => {
    plan.where = 'apply';
    plan.act = () => Math.random();
    const m = new ShardMachine(registry);
    for (const e of log(['poison.go', 'tick'])) m.apply(e);
    expect(m.head).toBe(3);
  });
});

describe('checked mode: read-only records from get', () => {
  it.each(['field', 'nested', 'delete', 'define', 'array', 'freeze'])('a write through get (%s) stops the shard with PLAYOUT_FROZEN_RECORD, swallowed or not', (how) => {
    for (const swallow of [false, true]) {
      plan.swallow = swallow;
      const err = failureOf(log(['poison.write', 'tick'], { how }));
      expect(err.code).toBe('PLAYOUT_FROZEN_RECORD');
      expect(err.seq).toBe(2);
      expect(err.path).toMatch(/^t\["k"\]/);
      expect(err.message).toContain('mut(key)');
    }
  });

  it('names the field written', () => {
    expect(failureOf(log(['poison.write', 'tick'], { how: 'array' })).path).toBe('t["k"].tags[0]');
    expect(failureOf(log(['poison.write', 'tick'], { how: 'field' })).path).toBe('t["k"].n');
  });

  it('replays the kv reducer in checked mode to the same digests as unchecked mode', () => {
    assertProperty(
      fc.property(planArb(8, 5), fc.option(fc.nat({ max: 7 }), { nil: null }), (p, upgradeAt) => {
        const built = buildLog(p, { upgradeAtTick: upgradeAt });
        const plain = replayDigests(built.entries).digests.map((d) => toHex(d.digest));
        const strict = replayDigests(built.entries, { checked: checked(1) }).digests.map((d) => toHex(d.digest));
        expect(strict).toEqual(plain);
      }),
      { numRuns: 40 },
    );
  });
});

describe('checked mode: full recomputation of the digest', () => {
  it('catches a record mutated behind the engine\'s back (a reference kept from mut and written in a later tick)', () => {
    const entries = log(['poison.leak', 'tick', 'tick', 'tick']);
    const m = new ShardMachine(registry, { checked: checked(1) });
    for (const e of entries.slice(0, 3)) m.apply(e);
    leaked!.n = 99;
    const err = (() => {
      try {
        m.apply(entries[3]!);
      } catch (e) {
        return e as PlayoutError;
      }
      throw new Error('expected drift');
    })();
    expect(err.code).toBe('PLAYOUT_DIGEST_DRIFT');
    expect(err.seq).toBe(4);
    expect(err.path).toBe('t');
    expect(() => m.apply(entries[4]!)).toThrow(err);
  });

  it('checks every N ticks only', () => {
    const entries = log(['tick', 'tick', 'tick', 'tick']);
    const m = new ShardMachine(registry, { checked: checked(3) });
    m.apply(entries[0]!);
    m.apply(entries[1]!);
    (m.tables.t!.peek('k') as { n: number }).n = 5;
    m.apply(entries[2]!); // tick 2 of 3: not checked yet
    expect(() => m.apply(entries[3]!)).toThrow(expect.objectContaining({ code: 'PLAYOUT_DIGEST_DRIFT' }));
  });

  it('finds no drift in an honest replay', () => {
    const m = new ShardMachine(registry, { checked: checked(1) });
    for (const e of log(['poison.go', 'tick', 'poison.go', 'tick'])) m.apply(e);
    expect(m.failure).toBeNull();
  });
});

describe('checked mode: inputs', () => {
  it('stops at an input in the log that its schema refuses, instead of turning it into a rejection unchecked mode would not make', () => {
    const g = Sequencer.genesis({ shard: 'p-1', reducer: poison, seed: 1, tickMs: 10 });
    const bad = Sequencer.afterGenesis(new ReducerRegistry([{ ...poison, inputs: { 'poison.write': { 1: z.unknown() } } }]), g, { region: null, dedupeWindowTicks: 0 });
    const r = bad.submit({ type: 'poison.write', version: 1, payload: { how: 'sideways' }, ingestId: null });
    if (r.status !== 'sequenced') throw new Error('expected sequenced');
    const m = new ShardMachine(registry, { checked: checked() });
    m.apply(g);
    const err = (() => {
      try {
        m.apply(r.entry);
      } catch (e) {
        return e as PlayoutError;
      }
      throw new Error('expected a failure');
    })();
    expect(err.code).toBe('PLAYOUT_INPUT_INVALID');
    expect(err.seq).toBe(2);
    expect(err.path).toBe('payload.how');
  });
});

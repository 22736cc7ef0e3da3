// A small key-value reducer for core tests: it exercises every table operation, the rng,
// rejections, outputs, payload versions and an upgrade that adds a table, without depending
// on the example game.
import fc from 'fast-check';
import { z } from 'zod';
import {
  ReducerRegistry,
  Sequencer,
  ShardMachine,
  defineReducer,
  type Entry,
  type InputOf,
  type MachineOptions,
  type ReducerContext,
  type Rejection,
  type TickDigest,
} from '../../../src/core/index.js';

export const Item = z.strictObject({
  v: z.number(),
  n: z.number().int(),
  owner: z.string().nullable(),
  tags: z.array(z.string()),
});
export const Stat = z.strictObject({ count: z.number().int(), last: z.string().nullable() });
export const Audit = z.strictObject({ tick: z.number().int(), items: z.number().int() });

const Key = z.string().min(1).max(8);
const inputs = {
  'kv.put': { 1: z.strictObject({ key: Key, v: z.number() }), 2: z.strictObject({ key: Key, v: z.number(), owner: z.string().max(8) }) },
  'kv.add': { 1: z.strictObject({ key: Key, by: z.number().int() }) },
  'kv.del': { 1: z.strictObject({ key: Key }) },
  'kv.roll': { 1: z.strictObject({ key: Key }) },
  'kv.tag': { 1: z.strictObject({ key: Key, tag: z.string().max(8) }) },
};

type KvTables = { items: typeof Item; stats: typeof Stat };
type KvInput = InputOf<typeof inputs>;

function applyKv(ctx: ReducerContext<KvTables>, input: KvInput, addFactor: number): void | Rejection {
  const items = ctx.tables.items;
  switch (input.type) {
    case 'kv.put': {
      const p = input.payload;
      items.set(p.key, { v: p.v, n: 0, owner: 'owner' in p ? p.owner : null, tags: [] });
      break;
    }
    case 'kv.add': {
      const it = items.mut(input.payload.key);
      if (it === undefined) return { rejected: 'KEY_MISSING', reason: input.payload.key };
      it.n += addFactor * input.payload.by;
      break;
    }
    case 'kv.del':
      if (!items.delete(input.payload.key)) return { rejected: 'KEY_MISSING', reason: input.payload.key };
      break;
    case 'kv.roll': {
      const it = items.mut(input.payload.key);
      if (it === undefined) items.set(input.payload.key, { v: ctx.rng.float(), n: ctx.rng.int(0, 1000), owner: null, tags: [] });
      else it.n = ctx.rng.int(-1000, 1000);
      break;
    }
    case 'kv.tag': {
      const it = items.mut(input.payload.key);
      if (it === undefined) return { rejected: 'KEY_MISSING' };
      if (it.tags.length >= 4) it.tags.shift();
      it.tags.push(input.payload.tag);
      break;
    }
  }
  const s = ctx.tables.stats.mut('global')!;
  s.count += 1;
  s.last = input.type;
  ctx.emit({ seq: input.seq, type: input.type });
}

function initKv(ctx: ReducerContext<KvTables>): void {
  ctx.tables.stats.set('global', { count: 0, last: null });
  for (let i = 0; i < 3; i++) ctx.tables.items.set(`seed${i}`, { v: ctx.rng.int(0, 100), n: 0, owner: null, tags: [] });
}

function onTickKv(ctx: ReducerContext<KvTables>): void {
  // Decay one record chosen by the rng, so rng state and records both move every tick.
  const keys = ctx.tables.items.keys();
  if (keys.length > 0) {
    const k = keys[ctx.rng.int(0, keys.length - 1)]!;
    const it = ctx.tables.items.mut(k)!;
    it.v = it.v / 2;
  }
  if (ctx.tick % 5 === 4 && keys.length > 6) ctx.tables.items.delete(keys[0]!);
}

export const kvV1 = defineReducer({
  name: 'kv',
  version: 1,
  tables: { items: Item, stats: Stat },
  inputs,
  init: (ctx) => initKv(ctx),
  apply: (ctx, input) => applyKv(ctx, input, 1),
  onTick: (ctx) => onTickKv(ctx),
});

/** Version 2: `kv.add` doubles, and every tick writes an `audit` record (a table v1 lacks). */
export const kvV2 = defineReducer({
  name: 'kv',
  version: 2,
  tables: { items: Item, stats: Stat, audit: Audit },
  inputs,
  init: (ctx) => initKv(ctx),
  apply: (ctx, input) => applyKv(ctx, input, 2),
  onTick(ctx) {
    onTickKv(ctx);
    ctx.tables.audit.set(`t${ctx.tick}`, { tick: ctx.tick, items: ctx.tables.items.size });
  },
});

export const kvRegistry = (): ReducerRegistry => new ReducerRegistry([kvV1, kvV2]);

export interface Op {
  type: string;
  version: number;
  payload: unknown;
  ingestId: string | null;
}

export const KEYS = ['a', 'b', 'c', 'd', 'e', 'seed0', 'seed1', 'ß', 'k\u00e9', '10', '9'];
const keyArb = fc.constantFrom(...KEYS);
const numArb = fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }), fc.constant(-0));

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ key: keyArb, v: numArb }).map((payload) => ({ type: 'kv.put', version: 1, payload, ingestId: null })),
  fc.record({ key: keyArb, v: numArb, owner: fc.string({ maxLength: 8 }) }).map((payload) => ({ type: 'kv.put', version: 2, payload, ingestId: null })),
  fc.record({ key: keyArb, by: fc.integer({ min: -50, max: 50 }) }).map((payload) => ({ type: 'kv.add', version: 1, payload, ingestId: null })),
  fc.record({ key: keyArb }).map((payload) => ({ type: 'kv.del', version: 1, payload, ingestId: null })),
  fc.record({ key: keyArb }).map((payload) => ({ type: 'kv.roll', version: 1, payload, ingestId: null })),
  fc.record({ key: keyArb, tag: fc.string({ maxLength: 8 }) }).map((payload) => ({ type: 'kv.tag', version: 1, payload, ingestId: null })),
);

/** Inputs per tick. */
export const planArb = (ticksMax = 12, inputsPerTickMax = 6): fc.Arbitrary<Op[][]> =>
  fc.array(fc.array(opArb, { maxLength: inputsPerTickMax }), { minLength: 1, maxLength: ticksMax });

export interface BuiltLog {
  entries: Entry[];
  /** The leader's digest of every tick, in tick order. */
  digests: TickDigest[];
  leader: ShardMachine;
}

export interface BuildOptions {
  shard?: string;
  seed?: number;
  /** Sequence an upgrade to v2 as the first entry of this tick. */
  upgradeAtTick?: number | null;
  machine?: MachineOptions;
}

/** Sequence `plan` with a leader machine applying as it goes; tick entries carry the leader's digest of the tick before. */
export function buildLog(plan: Op[][], options: BuildOptions = {}): BuiltLog {
  const registry = kvRegistry();
  const digests: TickDigest[] = [];
  const leader = new ShardMachine(registry, { ...options.machine, onTick: (d) => digests.push(d) });
  const genesis = Sequencer.genesis({ shard: options.shard ?? 'kv-1', reducer: kvV1, seed: options.seed ?? 7, tickMs: 50, params: { world: 'test' } });
  const sequencer = Sequencer.afterGenesis(registry, genesis, { region: 'eu-fra', dedupeWindowTicks: 4 });
  const entries: Entry[] = [genesis];
  leader.apply(genesis);
  for (let t = 0; t < plan.length; t++) {
    if (options.upgradeAtTick === t) {
      const e = sequencer.upgrade(2);
      leader.apply(e);
      entries.push(e);
    }
    for (const op of plan[t]!) {
      // v2 payloads of kv.put exist in both reducer versions' input table.
      const r = sequencer.submit(op);
      if (r.status !== 'sequenced') continue;
      leader.apply(r.entry);
      entries.push(r.entry);
    }
    const tick = sequencer.closeTick(leader.lastDigest?.digest ?? null);
    leader.apply(tick);
    entries.push(tick);
  }
  return { entries, digests, leader };
}

/** Replay entries into a fresh machine and collect the digest of every tick (hex). */
export function replayDigests(entries: readonly Entry[], options: MachineOptions = {}): { digests: TickDigest[]; machine: ShardMachine } {
  const digests: TickDigest[] = [];
  const machine = new ShardMachine(kvRegistry(), { ...options, onTick: (d) => digests.push(d) });
  for (const e of entries) machine.apply(e);
  return { digests, machine };
}

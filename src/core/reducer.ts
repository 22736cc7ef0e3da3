// The reducer API a game team writes (DESIGN.md §4).
import type { z } from 'zod';
import type { Canonical } from './codec.js';
import { PlayoutError, describe } from './errors.js';
import type { Rng } from './rng.js';
import type { StateTable } from './state-table.js';

export type TablesDef = Record<string, z.ZodType>;
export type InputsDef = Record<string, Record<number, z.ZodType>>;

export type Tables<T extends TablesDef> = { readonly [K in keyof T]: StateTable<z.infer<T[K]>> };

export interface ReducerContext<T extends TablesDef = TablesDef> {
  readonly tables: Tables<T>;
  readonly rng: Rng;
  /** The open tick. */
  readonly tick: number;
  /** Logical time: tick × tickMs. Never the wall clock. */
  readonly timeMs: number;
  readonly tickMs: number;
  readonly shard: string;
  /** Seq of the entry being applied. */
  readonly seq: number;
  /** Genesis parameters of the shard (world size …), or null. */
  readonly params: unknown;
  /** An output for clients; not part of the state or its digest. */
  emit(event: Canonical): void;
}

export interface InputMeta {
  readonly seq: number;
  readonly origin: string | null;
  readonly ingestId: string | null;
}

export type InputOf<I extends InputsDef> = {
  [Type in keyof I & string]: {
    [V in keyof I[Type] & number]: InputMeta & { readonly type: Type; readonly version: V; readonly payload: z.infer<I[Type][V]> };
  }[keyof I[Type] & number];
}[keyof I & string];

/** A rejection is data: a stable code replayed identically everywhere. */
export interface Rejection {
  readonly rejected: string;
  readonly reason?: string;
}

export interface ReducerSpec<T extends TablesDef, I extends InputsDef> {
  name: string;
  version: number;
  tables: T;
  inputs: I;
  init(ctx: ReducerContext<T>): void;
  apply(ctx: ReducerContext<T>, input: InputOf<I>): void | Rejection;
  onTick(ctx: ReducerContext<T>): void;
}

/** A reducer with its types erased, as the engine handles it. */
export interface Reducer {
  readonly name: string;
  readonly version: number;
  readonly tables: TablesDef;
  readonly inputs: InputsDef;
  init(ctx: ReducerContext): void;
  apply(ctx: ReducerContext, input: InputMeta & { type: string; version: number; payload: unknown }): void | Rejection;
  onTick(ctx: ReducerContext): void;
}

export function defineReducer<T extends TablesDef, I extends InputsDef>(spec: ReducerSpec<T, I>): Reducer {
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(spec.name)) throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `defineReducer: name must match [a-z0-9][a-z0-9._-]{0,63}, received ${describe(spec.name)}`, { path: 'name' });
  if (!Number.isInteger(spec.version) || spec.version < 1) throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `defineReducer: version must be an integer >= 1, received ${describe(spec.version)}`, { path: 'version' });
  return spec as unknown as Reducer;
}

/** Every version of every reducer a node or tool can run. */
export class ReducerRegistry {
  private readonly byName = new Map<string, Map<number, Reducer>>();

  constructor(reducers: Iterable<Reducer> = []) {
    for (const r of reducers) this.add(r);
  }

  add(reducer: Reducer): this {
    let versions = this.byName.get(reducer.name);
    if (!versions) this.byName.set(reducer.name, (versions = new Map()));
    if (versions.has(reducer.version)) throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Reducer ${reducer.name}@${reducer.version} is registered twice`, { path: 'reducers' });
    versions.set(reducer.version, reducer);
    return this;
  }

  get(name: string, version: number): Reducer {
    const r = this.byName.get(name)?.get(version);
    if (!r) {
      const known = [...this.byName].flatMap(([n, vs]) => [...vs.keys()].map((v) => `${n}@${v}`));
      throw new PlayoutError('PLAYOUT_REDUCER_UNKNOWN', `Cannot run reducer ${name}@${version}: expected one of ${known.join(', ') || '(none)'}, received ${name}@${version}`, {
        expected: known.join(', '),
        received: `${name}@${version}`,
      });
    }
    return r;
  }

  has(name: string, version: number): boolean {
    return this.byName.get(name)?.has(version) ?? false;
  }

  list(): Reducer[] {
    return [...this.byName.values()].flatMap((vs) => [...vs.values()]);
  }
}

/**
 * Validate an input's payload against the reducer's zod schema for (type, version).
 * Returns the parsed payload (unknown keys stripped: that is what gets sequenced).
 */
export function validateInput(reducer: Reducer, type: string, version: number, payload: unknown, path = 'payload'): unknown {
  const versions = reducer.inputs[type];
  const schema = versions?.[version];
  if (!schema) {
    const expected = Object.entries(reducer.inputs)
      .flatMap(([t, vs]) => Object.keys(vs).map((v) => `${t}@${v}`))
      .join(', ');
    throw new PlayoutError('PLAYOUT_INPUT_TYPE_UNKNOWN', `Cannot accept input ${type}@${version} for ${reducer.name}@${reducer.version}: expected one of ${expected}, received ${type}@${version}`, {
      path: versions ? 'version' : 'type',
      expected,
      received: `${type}@${version}`,
    });
  }
  const r = schema.safeParse(payload);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const at = issue.path.length ? `${path}.${issue.path.join('.')}` : path;
  let received: unknown = payload;
  for (const k of issue.path) received = (received as Record<PropertyKey, unknown> | null | undefined)?.[k as PropertyKey];
  // zod's own message often ends with "received …" already: do not say it twice.
  const tail = /received/i.test(issue.message) ? '' : `, received ${describe(received)}`;
  throw new PlayoutError('PLAYOUT_INPUT_INVALID', `Cannot accept input ${type}@${version}: ${at}: ${issue.message}${tail}`, {
    path: at,
    expected: issue.message,
    received: describe(received),
  });
}

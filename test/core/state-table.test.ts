import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { BUCKETS, CanonicalWriter, StateTable, decodeCanonical, encodeCanonical, fnv1a32, hash128, toHex } from '../../src/core/index.js';
import { canonicalArb } from './support/arbitraries.js';
import { assertProperty } from './support/property.js';

const MOD = 1n << 128n;
const big = (h: Uint8Array): bigint => BigInt(`0x${toHex(h)}`);
const hex128 = (n: bigint): string => n.toString(16).padStart(32, '0');

/** The digest as DESIGN.md §4 defines it, computed from scratch with BigInt: an independent model of the table's sums. */
function modelDigest(name: string, records: Map<string, unknown>): { table: string; buckets: Map<number, string> } {
  let sum = 0n;
  const buckets = new Map<number, bigint>();
  for (const [key, value] of records) {
    const h = big(hash128(encodeCanonical([name, key, value])));
    sum = (sum + h) % MOD;
    const b = fnv1a32(key) & (BUCKETS - 1);
    buckets.set(b, ((buckets.get(b) ?? 0n) + h) % MOD);
  }
  return { table: hex128(sum), buckets: new Map([...buckets].map(([b, s]) => [b, hex128(s)])) };
}

type Rec = { v: number; tags: string[]; pos: { x: number; y: number } };

type Op =
  | { op: 'set'; key: string; value: Rec }
  | { op: 'mut'; key: string; v: number; tag: string | null }
  | { op: 'delete'; key: string }
  | { op: 'flush' };

const keyArb = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', '10', '9', 'é', '');
const recArb: fc.Arbitrary<Rec> = fc.record({
  v: fc.oneof(fc.integer(), fc.double({ noNaN: true }), fc.constant(-0)),
  tags: fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 }),
  pos: fc.record({ x: fc.integer({ min: -5, max: 5 }), y: fc.double({ noNaN: true, min: -1, max: 1 }) }),
});
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('set' as const), key: keyArb, value: recArb }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('mut' as const), key: keyArb, v: fc.integer(), tag: fc.option(fc.string({ maxLength: 2 }), { nil: null }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), key: keyArb }) },
  { weight: 1, arbitrary: fc.constant({ op: 'flush' as const }) },
);

const copy = <T>(v: T): T => structuredClone(v);

describe('StateTable incremental digest', () => {
  it('equals a full recomputation and an independent model after any sequence of set/mut/delete over many ticks', () => {
    assertProperty(
      fc.property(fc.array(opArb, { maxLength: 80 }), (ops) => {
        const writer = new CanonicalWriter(16);
        const t = new StateTable<Rec>('things');
        const model = new Map<string, unknown>();
        const check = (): void => {
          t.flush(writer);
          const m = modelDigest('things', model);
          expect(toHex(t.digest())).toBe(m.table);
          const full = t.recompute(writer);
          expect(Array.from(full)).toEqual(Array.from(t.sums));
          for (const [b, s] of m.buckets) expect(toHex(t.bucketSum(b))).toBe(s);
          expect(t.size).toBe(model.size);
          expect(t.keys()).toEqual([...model.keys()].sort());
        };
        for (const o of ops) {
          switch (o.op) {
            case 'set':
              t.set(o.key, copy(o.value));
              model.set(o.key, copy(o.value));
              break;
            case 'mut': {
              const r = t.mut(o.key);
              expect(r === undefined).toBe(!model.has(o.key));
              if (r !== undefined) {
                r.v = o.v;
                r.pos.x += 1;
                if (o.tag !== null) r.tags.push(o.tag);
                model.set(o.key, copy(r));
              }
              break;
            }
            case 'delete':
              expect(t.delete(o.key)).toBe(model.delete(o.key));
              break;
            case 'flush':
              check();
              break;
          }
        }
        check();
      }),
      { numRuns: 80 },
    );
  });

  it('handles set, mut, delete and set again of one key inside one tick', () => {
    const writer = new CanonicalWriter();
    const t = new StateTable<{ n: number }>('t');
    t.set('k', { n: 1 });
    t.flush(writer);
    const one = toHex(t.digest());
    t.mut('k')!.n = 2;
    t.delete('k');
    t.set('k', { n: 3 });
    t.mut('k')!.n = 1;
    expect(t.flush(writer)).toBe(1);
    expect(toHex(t.digest())).toBe(one);
    t.set('z', { n: 9 });
    t.delete('z');
    t.flush(writer);
    expect(toHex(t.digest())).toBe(one);
    t.delete('k');
    t.flush(writer);
    expect(toHex(t.digest())).toBe('0'.repeat(32));
  });

  it('rehashes only the keys touched since the last flush', () => {
    const writer = new CanonicalWriter();
    const t = new StateTable<{ n: number }>('t');
    for (let i = 0; i < 1000; i++) t.set(`k${i}`, { n: i });
    expect(t.flush(writer)).toBe(1000);
    t.mut('k5')!.n++;
    t.mut('k5')!.n++;
    t.get('k6');
    t.set('k7', { n: 0 });
    t.delete('k8');
    expect(t.dirtyCount).toBe(3);
    expect(t.flush(writer)).toBe(2);
    expect(t.flush(writer)).toBe(0);
  });

  it('keeps the 4,096 bucket sums adding up to the table sum, and lists a bucket\'s keys', () => {
    const writer = new CanonicalWriter();
    const t = new StateTable<number>('n');
    for (let i = 0; i < 5000; i++) t.set(`key-${i}`, i);
    t.flush(writer);
    let total = 0n;
    const all = t.bucketSums();
    expect(all.length).toBe(BUCKETS * 16);
    for (let b = 0; b < BUCKETS; b++) total = (total + big(all.subarray(b * 16, b * 16 + 16))) % MOD;
    expect(hex128(total)).toBe(toHex(t.digest()));
    const b = fnv1a32('key-42') & (BUCKETS - 1);
    expect(t.keysInBucket(b)).toContain('key-42');
    expect(t.keysInBucket(b).every((k) => (fnv1a32(k) & (BUCKETS - 1)) === b)).toBe(true);
  });
});

describe('record digest', () => {
  const writer = new CanonicalWriter();
  const digestOf = (value: unknown): string => toHex(new StateTable('r').recordHash(writer, 'key', value));

  it('does not depend on key insertion order, -0, or how the record was built', () => {
    assertProperty(
      fc.property(canonicalArb, (v) => {
        const d = digestOf(v);
        const rebuild = (x: unknown, reverse: boolean, bare: boolean): unknown => {
          if (x === null || typeof x !== 'object' || x instanceof Uint8Array) return typeof x === 'number' && x === 0 ? -0 : x;
          if (Array.isArray(x)) return Array.from(x, (y) => rebuild(y, reverse, bare));
          const out: Record<string, unknown> = bare ? Object.create(null) : {};
          const keys = Object.keys(x);
          if (reverse) keys.reverse();
          for (const k of keys) out[k] = rebuild((x as Record<string, unknown>)[k], reverse, bare);
          return out;
        };
        expect(digestOf(rebuild(v, true, false))).toBe(d);
        expect(digestOf(rebuild(v, false, true))).toBe(d);
        expect(digestOf(decodeCanonical(encodeCanonical(v)))).toBe(d);
        expect(digestOf(structuredClone(v))).toBe(d);
      }),
      { numRuns: 300 },
    );
  });

  it('gives a record built by a literal, by assignment, by Object.assign, by spread, by JSON and by zod the same digest', () => {
    const Schema = z.object({ hp: z.number(), name: z.string(), pos: z.object({ x: z.number(), y: z.number() }) });
    const literal = { hp: 10, name: 'ann', pos: { x: 0, y: -1 } };
    const assigned: Record<string, unknown> = {};
    assigned.pos = { y: -1, x: -0 };
    assigned.name = 'ann';
    assigned.hp = 10.0;
    const merged = Object.assign({}, { name: 'ann' }, { pos: { x: 0, y: -1 }, hp: 10 });
    const spread = { ...{ pos: { y: -1, x: 0 } }, hp: 5 + 5, name: 'a' + 'nn' };
    const json = JSON.parse('{"pos":{"y":-1,"x":0},"name":"ann","hp":10}');
    const parsed = Schema.parse({ pos: { y: -1, x: 0 }, name: 'ann', hp: 10, extra: true });
    const d = digestOf(literal);
    for (const other of [assigned, merged, spread, json, parsed]) expect(digestOf(other)).toBe(d);
    expect(digestOf({ ...literal, hp: 11 })).not.toBe(d);
  });

  it('depends on the table name and the key', () => {
    const v = { a: 1 };
    expect(toHex(new StateTable('x').recordHash(writer, 'k', v))).not.toBe(toHex(new StateTable('y').recordHash(writer, 'k', v)));
    expect(toHex(new StateTable('x').recordHash(writer, 'k', v))).not.toBe(toHex(new StateTable('x').recordHash(writer, 'j', v)));
  });

  it('rewrites -0 to 0 inside a record when it is folded, so the live state equals a restored one', () => {
    const t = new StateTable<{ v: number; list: number[] }>('t');
    const rec = { v: -0, list: [1, -0] };
    t.set('k', rec);
    t.flush(writer);
    expect(Object.is(rec.v, 0)).toBe(true);
    expect(Object.is(rec.list[1], 0)).toBe(true);
  });
});

describe('StateTable reads', () => {
  it('iterates in UTF-16 key order whatever the insertion order', () => {
    const t = new StateTable<number>('t');
    for (const k of ['b', '10', 'a', '9', 'é', 'B']) t.set(k, 1);
    expect(t.keys()).toEqual(['10', '9', 'B', 'a', 'b', 'é']);
    expect([...t.entries()].map(([k]) => k)).toEqual(['10', '9', 'B', 'a', 'b', 'é']);
    t.delete('a');
    t.set('0', 1);
    expect(t.keys()).toEqual(['0', '10', '9', 'B', 'b', 'é']);
  });

  it('returns the live record from get outside checked mode, and undefined for a missing key', () => {
    const t = new StateTable<{ n: number }>('t');
    t.set('k', { n: 1 });
    expect(t.get('k')).toEqual({ n: 1 });
    expect(t.get('nope')).toBeUndefined();
    expect(t.mut('nope')).toBeUndefined();
    expect(t.has('k')).toBe(true);
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CanonicalWriter, PlayoutError, decodeCanonical, encodeCanonical, toHex } from '../../src/core/index.js';
import { canonicalArb } from './support/arbitraries.js';
import { assertProperty } from './support/property.js';

/** -0 reads back as 0 and null-prototype objects as plain ones: the model of what a round trip gives. */
function normalise(v: unknown): unknown {
  if (typeof v === 'number') return v === 0 ? 0 : v;
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Uint8Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(normalise);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) out[k] = normalise((v as Record<string, unknown>)[k]);
  return out;
}

function shuffleKeys(v: unknown, order: (keys: string[]) => string[]): unknown {
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map((x) => shuffleKeys(x, order));
  const out: Record<string, unknown> = {};
  for (const k of order(Object.keys(v))) out[k] = shuffleKeys((v as Record<string, unknown>)[k], order);
  return out;
}

function codeOf(fn: () => unknown): { code: string; path: string | null } {
  try {
    fn();
  } catch (err) {
    if (err instanceof PlayoutError) return { code: err.code, path: err.path };
    throw err;
  }
  return { code: 'no error', path: null };
}

describe('canonical codec', () => {
  it('decode ∘ encode is the identity (up to -0 and prototypes), and encode ∘ decode ∘ encode gives the same bytes', () => {
    assertProperty(
      fc.property(canonicalArb, (v) => {
        const bytes = encodeCanonical(v);
        const back = decodeCanonical(bytes);
        expect(normalise(back)).toEqual(normalise(v));
        expect(toHex(encodeCanonical(back))).toBe(toHex(bytes));
      }),
      { numRuns: 400 },
    );
  });

  it('encodes the same value to the same bytes whatever the key insertion order', () => {
    assertProperty(
      fc.property(canonicalArb, fc.integer(), (v, salt) => {
        const reversed = shuffleKeys(v, (ks) => ks.reverse());
        const rotated = shuffleKeys(v, (ks) => (ks.length ? [...ks.slice(salt % ks.length), ...ks.slice(0, salt % ks.length)] : ks));
        const a = toHex(encodeCanonical(v));
        expect(toHex(encodeCanonical(reversed))).toBe(a);
        expect(toHex(encodeCanonical(rotated))).toBe(a);
      }),
      { numRuns: 300 },
    );
  });

  it.each([
    [0, '00'],
    [-0, '00'],
    [127, '7f'],
    [128, 'cc80'],
    [-32, 'e0'],
    [-33, 'd0df'],
    [0xffff, 'cdffff'],
    [0x10000, 'ce00010000'],
    [0x100000000, 'cf0000000100000000'],
    [-0x80000001, 'd3ffffffff7fffffff'],
    [1.5, 'cb3ff8000000000000'],
    [2 ** 53, 'cb4340000000000000'],
    [-(2 ** 60), 'cbc3b0000000000000'],
    ['', 'a0'],
    ['é', 'a2c3a9'],
    [null, 'c0'],
    [true, 'c3'],
    [new Uint8Array([1, 2]), 'c4020102'],
    [{ b: 1, a: [] }, '82a16190a16201'],
  ])('writes %o in its smallest msgpack form: %s', (value, hex) => {
    expect(toHex(encodeCanonical(value))).toBe(hex);
  });

  it('sorts keys by UTF-16 code units, integer-like keys included', () => {
    const v = { b: 1, '10': 2, '9': 3, a: 4, 'é': 5, Z: 6 };
    const back = decodeCanonical(encodeCanonical(v)) as Record<string, unknown>;
    // decodeCanonical yields a plain object, whose own key order JS fixes; the bytes are what is sorted.
    expect(Object.keys(back).sort()).toEqual(['10', '9', 'Z', 'a', 'b', 'é']);
    const w = new CanonicalWriter(4);
    w.writeValue(v);
    const text = new TextDecoder('latin1').decode(w.bytes());
    expect(text.indexOf('10')).toBeLessThan(text.indexOf('9'));
    expect(text.indexOf('Z')).toBeLessThan(text.indexOf('a'));
  });

  it.each([
    ['NaN', { a: { b: Number.NaN } }, 'value.a.b'],
    ['undefined', { a: [1, undefined] }, 'value.a[1]'],
    ['a function', { f: () => 1 }, 'value.f'],
    ['a Map', { m: new Map() }, 'value.m'],
    ['a Date', { d: new (class Stamp {})() }, 'value.d'],
    ['a bigint', { n: 1n }, 'value.n'],
    ['NaN in an array', [1, Number.NaN], 'value[1]'],
    ['a lone surrogate', { s: 'a\ud800b' }, 'value.s'],
    ['a lone surrogate in a key', { ['\udc00']: 1 }, 'value.\udc00'],
    ['a __proto__ key', JSON.parse('{"x": {"__proto__": 1}}'), 'value.x.__proto__'],
  ])('refuses %s with PLAYOUT_VALUE_NOT_CANONICAL and the path of the value', (_name, value, path) => {
    expect(codeOf(() => encodeCanonical(value))).toEqual({ code: 'PLAYOUT_VALUE_NOT_CANONICAL', path });
  });

  it('accepts null-prototype objects and encodes them like plain ones', () => {
    const bare = Object.create(null) as Record<string, unknown>;
    bare.y = 2;
    bare.x = 1;
    expect(toHex(encodeCanonical(bare))).toBe(toHex(encodeCanonical({ x: 1, y: 2 })));
  });

  it('grows its buffer by doubling and keeps what was written', () => {
    const w = new CanonicalWriter(1);
    const big = { s: 'x'.repeat(5000), list: Array.from({ length: 300 }, (_, i) => i * 1000) };
    w.writeValue(big);
    expect(normalise(decodeCanonical(w.bytes()))).toEqual(normalise(big));
  });
});

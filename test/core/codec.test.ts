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

/** An independent canonical msgpack encoder, written plainly: the model the fast writer must match byte for byte. */
function referenceEncode(v: unknown, out: number[] = []): number[] {
  const be = (n: number, bytes: number): void => {
    for (let i = bytes - 1; i >= 0; i--) out.push(Number((BigInt(n) >> BigInt(8 * i)) & 0xffn));
  };
  if (v === null) out.push(0xc0);
  else if (v === true) out.push(0xc3);
  else if (v === false) out.push(0xc2);
  else if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) {
      const n = v === 0 ? 0 : v;
      if (n >= 0 && n < 128) out.push(n);
      else if (n < 0 && n >= -32) out.push(n & 0xff);
      else if (n >= 0) {
        if (n < 0x100) out.push(0xcc, n);
        else if (n < 0x10000) (out.push(0xcd), be(n, 2));
        else if (n < 0x100000000) (out.push(0xce), be(n, 4));
        else (out.push(0xcf), be(n, 8));
      } else if (n >= -0x80) out.push(0xd0, n & 0xff);
      else if (n >= -0x8000) (out.push(0xd1), be(n & 0xffff, 2));
      else if (n >= -0x80000000) (out.push(0xd2), be(n >>> 0, 4));
      else {
        out.push(0xd3);
        const big = BigInt.asUintN(64, BigInt(n));
        for (let i = 7; i >= 0; i--) out.push(Number((big >> BigInt(8 * i)) & 0xffn));
      }
    } else {
      out.push(0xcb);
      const dv = new DataView(new ArrayBuffer(8));
      dv.setFloat64(0, v);
      for (let i = 0; i < 8; i++) out.push(dv.getUint8(i));
    }
  } else if (typeof v === 'string') {
    const bytes = new TextEncoder().encode(v);
    if (bytes.length < 32) out.push(0xa0 | bytes.length);
    else if (bytes.length < 0x100) out.push(0xd9, bytes.length);
    else if (bytes.length < 0x10000) (out.push(0xda), be(bytes.length, 2));
    else (out.push(0xdb), be(bytes.length, 4));
    out.push(...bytes);
  } else if (v instanceof Uint8Array) {
    if (v.length < 0x100) out.push(0xc4, v.length);
    else if (v.length < 0x10000) (out.push(0xc5), be(v.length, 2));
    else (out.push(0xc6), be(v.length, 4));
    out.push(...v);
  } else if (Array.isArray(v)) {
    if (v.length < 16) out.push(0x90 | v.length);
    else if (v.length < 0x10000) (out.push(0xdc), be(v.length, 2));
    else (out.push(0xdd), be(v.length, 4));
    for (const x of v) referenceEncode(x, out);
  } else {
    const keys = Object.keys(v as object).sort();
    if (keys.length < 16) out.push(0x80 | keys.length);
    else if (keys.length < 0x10000) (out.push(0xde), be(keys.length, 2));
    else (out.push(0xdf), be(keys.length, 4));
    for (const k of keys) {
      referenceEncode(k, out);
      referenceEncode((v as Record<string, unknown>)[k], out);
    }
  }
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

  it('writes exactly what a plain reference encoder writes, for any value', () => {
    assertProperty(
      fc.property(canonicalArb, (v) => {
        expect(toHex(encodeCanonical(v))).toBe(toHex(new Uint8Array(referenceEncode(v))));
      }),
      { numRuns: 400 },
    );
  });

  it('writes records of one key set like the reference encoder before and after their writer is compiled', () => {
    // The writer compiles a specialised function for a key set after it has seen it a few
    // times: many records of one shape, with values of every kind in every field.
    const fieldArb = fc.oneof(canonicalArb, fc.integer({ min: -40, max: 300 }), fc.constantFrom(-0, 0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -1, 0.5, null, true, false, 'é', 'x'.repeat(31), 'y'.repeat(32)));
    const recordArb = fc.record({ zeta: fieldArb, alpha: fieldArb, '10': fieldArb, mid: fieldArb, nest: fc.record({ b: fieldArb, a: fieldArb }) });
    assertProperty(
      fc.property(fc.array(recordArb, { minLength: 40, maxLength: 60 }), (records) => {
        for (const r of records) expect(toHex(encodeCanonical(r))).toBe(toHex(new Uint8Array(referenceEncode(r))));
      }),
      { numRuns: 30 },
    );
  });

  it('rewrites -0 to 0 inside records when asked (fixNegativeZero), compiled writer or not', () => {
    const w = new CanonicalWriter(64);
    w.fixNegativeZero = true;
    for (let i = 0; i < 40; i++) {
      const r = { a: -0, b: [-0, 1], c: { d: -0 } };
      w.reset();
      w.writeValue(r);
      expect(Object.is(r.a, 0) && Object.is(r.b[0], 0) && Object.is(r.c.d, 0)).toBe(true);
    }
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

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { createXXHash128 } from 'hash-wasm';
import { describe, expect, it } from 'vitest';
import { HASH_RESULT, add128, add128Words, hash128, hash128Bulk, hash128Into, hash128Raw, hashArena, hashResultWord, sub128, sub128Words, sumBytes, toHex } from '../../src/core/index.js';
import { XXH3_128_WASM_BASE64 } from '../../src/core/xxh3-128-wasm.js';
import { assertProperty } from './support/property.js';

const reference = await createXXHash128();
const ref = (b: Uint8Array): string => {
  reference.init();
  reference.update(b);
  return toHex(reference.digest('binary'));
};

describe('the XXH3-128 module', () => {
  it('is byte for byte the binary hash-wasm ships (regenerate src/core/xxh3-128-wasm.ts from it after an upgrade)', () => {
    const pkg = join(dirname(createRequire(import.meta.url).resolve('hash-wasm')), 'index.esm.js');
    const m = /var name\$\d+ = "xxhash128";\s*var data\$\d+ = "([^"]+)";\s*var hash\$\d+ = "([0-9a-f]+)"/.exec(readFileSync(pkg, 'utf8'));
    expect(m, `xxhash128 module not found in ${pkg}`).not.toBeNull();
    expect(XXH3_128_WASM_BASE64).toBe(m![1]);
    // hash-wasm stamps its saved states with the first 4 bytes of the binary's SHA-1.
    expect(createHash('sha1').update(Buffer.from(XXH3_128_WASM_BASE64, 'base64')).digest('hex').slice(0, 8)).toBe(m![2]);
  });
});

describe('hash128', () => {
  it('equals hash-wasm XXH3-128 on any bytes at any offset, from JS memory and from a hash arena', () => {
    const arena = hashArena(1024);
    assertProperty(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat({ max: 20 }), (bytes, at) => {
        const framed = new Uint8Array(at + bytes.length + 5);
        framed.set(bytes, at);
        const expected = ref(bytes);
        expect(toHex(hash128(framed, at, bytes.length))).toBe(expected);
        if (at + bytes.length <= arena.length) {
          arena.set(bytes, at);
          expect(toHex(hash128(arena, at, bytes.length))).toBe(expected);
        }
        const out = new Uint8Array(20);
        hash128Into(framed, at, bytes.length, out, 3);
        expect(toHex(out.subarray(3, 19))).toBe(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('hashes inputs longer than the module buffer (16 KiB) in chunks', () => {
    for (const n of [16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 100_000]) {
      const b = new Uint8Array(n).map((_, i) => (i * 7) & 0xff);
      expect(toHex(hash128(b))).toBe(ref(b));
    }
  });

  it('hash128Bulk (large inputs by their own code) equals it at any length and offset, chunk boundaries included', () => {
    const big = new Uint8Array(3 * 16 * 1024 + 100).map((_, i) => (i * 131 + 7) & 0xff);
    for (const n of [0, 1, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 2 * 16 * 1024, 3 * 16 * 1024 + 99]) {
      for (const at of [0, 1]) expect(toHex(hash128Bulk(big, at, n)), `length ${n} at ${at}`).toBe(ref(big.subarray(at, at + n)));
    }
    assertProperty(
      fc.property(fc.uint8Array({ maxLength: 40_000 }), (bytes) => {
        expect(toHex(hash128Bulk(bytes))).toBe(ref(bytes));
      }),
      { numRuns: 40 },
    );
  });

  it('matches the xxHash reference test vectors', () => {
    // XXH3_128bits of the empty input and of "a", seed 0, as printed by xxhsum -H2.
    expect(toHex(hash128(new Uint8Array(0)))).toBe('99aa06d3014798d86001c324468d497f');
    expect(toHex(hash128(new TextEncoder().encode('a')))).toBe('a96faf705af16834e6c632b61e964e1f');
  });

  it('leaves the digest in HASH_RESULT, word 0 the least significant', () => {
    const b = new TextEncoder().encode('playout');
    hash128Raw(b, 0, b.length);
    const hex = toHex(HASH_RESULT);
    expect(hex).toBe(ref(b));
    const words = [3, 2, 1, 0].map((w) => hashResultWord(w).toString(16).padStart(8, '0')).join('');
    expect(words).toBe(hex);
  });
});

describe('128-bit sums', () => {
  const MOD = 1n << 128n;
  const big = (h: Uint8Array): bigint => BigInt(`0x${toHex(h)}`);
  const hashArb = fc.uint8Array({ minLength: 16, maxLength: 16 });

  it('add and subtract modulo 2^128, by bytes and by words, like BigInt', () => {
    assertProperty(
      fc.property(fc.array(fc.tuple(fc.boolean(), hashArb), { maxLength: 30 }), (ops) => {
        const a = new Uint32Array(8);
        let model = 0n;
        for (const [plus, h] of ops) {
          const v = big(h);
          const w = [12, 8, 4, 0].map((o) => ((h[o]! << 24) | (h[o + 1]! << 16) | (h[o + 2]! << 8) | h[o + 3]!) >>> 0) as [number, number, number, number];
          if (plus) {
            add128(a, 0, h);
            add128Words(a, 4, w[0], w[1], w[2], w[3]);
            model = (model + v) % MOD;
          } else {
            sub128(a, 0, h);
            sub128Words(a, 4, w[0], w[1], w[2], w[3]);
            model = (model - v + MOD) % MOD;
          }
        }
        expect(toHex(sumBytes(a, 0))).toBe(model.toString(16).padStart(32, '0'));
        expect(toHex(sumBytes(a, 4))).toBe(model.toString(16).padStart(32, '0'));
      }),
      { numRuns: 300 },
    );
  });
});

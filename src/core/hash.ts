// 128-bit hashing and 128-bit sums.
//
// The hash function is XXH3-128 from hash-wasm, chosen by measurement (`npm run bench`,
// "hash" section): on 40–200 byte inputs it ran at about 380–510 ns per call here, against
// 550–1260 ns for the @node-rs/xxhash napi binding (which returns a BigInt we must split) and
// 850–1000 ns for BLAKE3-128 from the same package. The name is recorded in the genesis
// entry so a future engine can choose another one without breaking old logs.
import { createXXHash128 } from 'hash-wasm';

export const HASH_NAME = 'xxh3-128' as const;
export const HASH_BYTES = 16;

const hasher = await createXXHash128();

/** XXH3-128 of `bytes[offset, offset+length)`, as 16 bytes (big-endian, as the reference prints it). */
export function hash128(bytes: Uint8Array, offset = 0, length = bytes.length - offset): Uint8Array {
  hasher.init();
  hasher.update(offset === 0 && length === bytes.length ? bytes : bytes.subarray(offset, offset + length));
  return hasher.digest('binary');
}

export const ZERO_HASH: Uint8Array = new Uint8Array(HASH_BYTES);

export function hashEquals(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === b) return true;
  if (a === null || b === null || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function toHex(bytes: Uint8Array | null): string {
  if (bytes === null) return 'null';
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]!];
  return s;
}

export function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >>> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

// 128-bit sums modulo 2^128 are kept as four uint32 words, least significant first, in a
// Uint32Array at a given index (a table sum, or one of its 4,096 bucket sums). Plain words
// keep the hot path free of BigInt allocation.

/** sums[at..at+4) += h (16 bytes, big-endian) mod 2^128. */
export function add128(sums: Uint32Array, at: number, h: Uint8Array): void {
  let carry = 0;
  for (let w = 0; w < 4; w++) {
    const o = 12 - w * 4;
    const word = ((h[o]! << 24) | (h[o + 1]! << 16) | (h[o + 2]! << 8) | h[o + 3]!) >>> 0;
    const s = sums[at + w]! + word + carry;
    sums[at + w] = s >>> 0;
    carry = s > 0xffffffff ? 1 : 0;
  }
}

/** sums[at..at+4) -= h (16 bytes, big-endian) mod 2^128. */
export function sub128(sums: Uint32Array, at: number, h: Uint8Array): void {
  let borrow = 0;
  for (let w = 0; w < 4; w++) {
    const o = 12 - w * 4;
    const word = ((h[o]! << 24) | (h[o + 1]! << 16) | (h[o + 2]! << 8) | h[o + 3]!) >>> 0;
    const s = sums[at + w]! - word - borrow;
    sums[at + w] = s >>> 0;
    borrow = s < 0 ? 1 : 0;
  }
}

/** The 16 big-endian bytes of the sum at sums[at..at+4). */
export function sumBytes(sums: Uint32Array, at: number): Uint8Array {
  const out = new Uint8Array(16);
  for (let w = 0; w < 4; w++) {
    const o = 12 - w * 4;
    const v = sums[at + w]!;
    out[o] = v >>> 24;
    out[o + 1] = (v >>> 16) & 0xff;
    out[o + 2] = (v >>> 8) & 0xff;
    out[o + 3] = v & 0xff;
  }
  return out;
}

/** FNV-1a 32 of a string's UTF-16 code units: cheap, stable, used for bucket placement only. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

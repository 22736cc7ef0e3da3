// 128-bit hashing and 128-bit sums.
//
// The hash function is XXH3-128 (seed 0), chosen by measurement (bench/hash.bench.ts): on the
// 40–200 byte inputs the core hashes, hash-wasm's XXH3-128 (420–450 ns per call through its
// wrapper) beat the @node-rs/xxhash napi binding (650–860 ns, and it returns a BigInt we must
// split) and BLAKE3-128 from hash-wasm (530–830 ns). The name is recorded in the genesis entry
// so a future engine can choose another one without breaking old logs.
//
// The module is hash-wasm's own binary (src/core/xxh3-128-wasm.ts), called through its exports
// rather than hash-wasm's wrapper, which allocates views and a result per call: 70–160 ns per
// call for the same inputs (bench/hash.bench.ts, "core hash128Raw" vs "hash-wasm XXH3-128"; CPU
// time on a shared, busy machine, so read the ratios more than the numbers). The protocol of the module:
// the seed is read from the first 8 bytes of its buffer by Hash_Init; Hash_Update(n) hashes the
// first n bytes of the buffer (at most 16 KiB); Hash_Final writes the 16-byte digest, big-endian
// (as the xxHash reference prints it), to the start of the buffer.
import { XXH3_128_WASM_BASE64 } from './xxh3-128-wasm.js';

export const HASH_NAME = 'xxh3-128' as const;
export const HASH_BYTES = 16;

interface Xxh3Exports {
  memory: { readonly buffer: ArrayBuffer };
  STATE_SIZE: { readonly value: number };
  Hash_GetBuffer(): number;
  Hash_GetState(): number;
  Hash_Init(): void;
  Hash_Update(length: number): void;
  Hash_Final(): void;
}

function base64Bytes(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// The project's TypeScript lib has no WebAssembly types (no DOM lib): the little used is typed here.
const WebAssemblyApi = (globalThis as unknown as { WebAssembly: { instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: { exports: unknown } }> } }).WebAssembly;
const { instance } = await WebAssemblyApi.instantiate(base64Bytes(XXH3_128_WASM_BASE64), {});
const wasm = instance.exports as unknown as Xxh3Exports;
/** The module's input buffer: 16 KiB at this offset of its memory, which never grows (the module does not allocate). */
const AT = wasm.Hash_GetBuffer();
const CHUNK_BYTES = 16 * 1024;

// Arenas: the module's memory past its hash state, which it never touches (it has no heap;
// its stack grows down from 64 KiB, below its constants, its input buffer and its state). The
// core's encoders write what they hash there, so hashing moves it to the input buffer with
// copyWithin, allocating nothing, where input from a JS buffer over 32 bytes costs a subarray
// view per call (garbage in a replay; in bench/hash.bench.ts's tight loop the two paths take
// about the same time). The memory cannot grow (its maximum is its size).
const memBuffer = wasm.memory.buffer;
const mem = new Uint8Array(memBuffer);
const memView = new DataView(memBuffer);
const stateEnd = wasm.Hash_GetState() + memView.getUint32(wasm.STATE_SIZE.value, true);
let arenaNext = (stateEnd + 63) & ~63;
const arenaEnd = memBuffer.byteLength;
/**
 * A buffer for an encoder whose output is hashed (a CanonicalWriter's home): a region of the
 * hash module's memory when one is left (the core reserves a few at load), else plain memory.
 */
export function hashArena(bytes: number): Uint8Array {
  if (arenaNext + bytes > arenaEnd) return new Uint8Array(bytes);
  const out = new Uint8Array(memBuffer, arenaNext, bytes);
  arenaViews.push(out);
  arenaOffsets.push(arenaNext);
  arenaNext += bytes;
  return out;
}

// The arena views handed out, recognised by identity: cheaper than reading `bytes.buffer` and
// `bytes.byteOffset` (getters) on every hash.
const arenaViews: Uint8Array[] = [];
const arenaOffsets: number[] = [];

function arenaOffsetOf(bytes: Uint8Array): number {
  for (let i = 0; i < arenaViews.length; i++) if (arenaViews[i] === bytes) return arenaOffsets[i]!;
  return -1;
}

/**
 * The digest of the last `hash128Raw` call: a view of the module's memory, overwritten by the
 * next call. Copy what you keep.
 */
export const HASH_RESULT: Uint8Array = mem.subarray(AT, AT + HASH_BYTES);

// Below this many bytes a JS loop copies the input into the module faster than
// `mem.set(bytes.subarray(…))`, which allocates a view per call.
const COPY_LOOP_BYTES = 32;

/** XXH3-128 of `bytes[offset, offset+length)`; the digest is left in HASH_RESULT. Allocates nothing for inputs in an arena. */
export function hash128Raw(bytes: Uint8Array, offset: number, length: number): void {
  memView.setUint32(AT, 0);
  memView.setUint32(AT + 4, 0);
  wasm.Hash_Init();
  const arenaAt = arenaOffsetOf(bytes);
  if (arenaAt >= 0) {
    let from = arenaAt + offset;
    while (length > CHUNK_BYTES) {
      mem.copyWithin(AT, from, from + CHUNK_BYTES);
      wasm.Hash_Update(CHUNK_BYTES);
      from += CHUNK_BYTES;
      length -= CHUNK_BYTES;
    }
    mem.copyWithin(AT, from, from + length);
  } else {
    while (length > CHUNK_BYTES) {
      mem.set(bytes.subarray(offset, offset + CHUNK_BYTES), AT);
      wasm.Hash_Update(CHUNK_BYTES);
      offset += CHUNK_BYTES;
      length -= CHUNK_BYTES;
    }
    if (length <= COPY_LOOP_BYTES) {
      for (let i = 0; i < length; i++) mem[AT + i] = bytes[offset + i]!;
    } else if (offset === 0 && bytes.length <= CHUNK_BYTES) {
      // The whole array when it fits the input buffer, though only `length` bytes are hashed:
      // an entry's body is its bytes but the trailing hash, and copying those 16 bytes more
      // costs less than the view `subarray` would allocate.
      mem.set(bytes, AT);
    } else {
      mem.set(bytes.subarray(offset, offset + length), AT);
    }
  }
  wasm.Hash_Update(length);
  wasm.Hash_Final();
}

/** Word `w` (0 = least significant) of the digest in HASH_RESULT, as a uint32. */
export function hashResultWord(w: number): number {
  return memView.getUint32(AT + 12 - w * 4);
}

/**
 * hash128 of an input far larger than an entry (a snapshot), by its own code. V8 compiles
 * hash128Raw for what it has seen, the entries every append seals and checks; the first input over
 * CHUNK_BYTES took a branch it had never taken, which threw that code away (--trace-deopt showed it
 * at a process's first snapshot), and every append's seal ran unoptimised until V8 compiled it again.
 */
export function hash128Bulk(bytes: Uint8Array, offset = 0, length = bytes.length - offset): Uint8Array {
  memView.setUint32(AT, 0);
  memView.setUint32(AT + 4, 0);
  wasm.Hash_Init();
  for (let from = offset, end = offset + length; from < end; from += CHUNK_BYTES) {
    const n = Math.min(CHUNK_BYTES, end - from);
    mem.set(bytes.subarray(from, from + n), AT);
    wasm.Hash_Update(n);
  }
  wasm.Hash_Final();
  return HASH_RESULT.slice();
}

/** XXH3-128 of `bytes[offset, offset+length)`, as 16 bytes (big-endian, as the reference prints it). */
export function hash128(bytes: Uint8Array, offset = 0, length = bytes.length - offset): Uint8Array {
  hash128Raw(bytes, offset, length);
  return HASH_RESULT.slice();
}

/** As hash128, writing the 16 bytes to `out[outOffset…]`. */
export function hash128Into(bytes: Uint8Array, offset: number, length: number, out: Uint8Array, outOffset: number): void {
  hash128Raw(bytes, offset, length);
  for (let i = 0; i < HASH_BYTES; i++) out[outOffset + i] = mem[AT + i]!;
}

/** True when `bytes[offset, offset+16)` equals the digest in HASH_RESULT. */
export function hashResultEquals(bytes: Uint8Array, offset: number): boolean {
  for (let i = 0; i < HASH_BYTES; i++) if (bytes[offset + i] !== mem[AT + i]) return false;
  return true;
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

/** sums[at..at+4) += (w3:w2:w1:w0) mod 2^128, words uint32, w0 least significant. */
export function add128Words(sums: Uint32Array, at: number, w0: number, w1: number, w2: number, w3: number): void {
  let s = sums[at]! + w0;
  sums[at] = s >>> 0;
  s = sums[at + 1]! + w1 + (s > 0xffffffff ? 1 : 0);
  sums[at + 1] = s >>> 0;
  s = sums[at + 2]! + w2 + (s > 0xffffffff ? 1 : 0);
  sums[at + 2] = s >>> 0;
  sums[at + 3] = sums[at + 3]! + w3 + (s > 0xffffffff ? 1 : 0);
}

/** sums[at..at+4) -= (w3:w2:w1:w0) mod 2^128. */
export function sub128Words(sums: Uint32Array, at: number, w0: number, w1: number, w2: number, w3: number): void {
  let s = sums[at]! - w0;
  sums[at] = s >>> 0;
  s = sums[at + 1]! - w1 - (s < 0 ? 1 : 0);
  sums[at + 1] = s >>> 0;
  s = sums[at + 2]! - w2 - (s < 0 ? 1 : 0);
  sums[at + 2] = s >>> 0;
  sums[at + 3] = sums[at + 3]! - w3 - (s < 0 ? 1 : 0);
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

// Codecs of the lmdb store's entries database (src/adapters/lmdb-store.ts). Exported for
// tests that write raw records behind the store's back (corruption tests).

/** A [shard, seq] or [shard, tick] key. */
export type SeqKey = [string, number];

/**
 * The key codec of the entries database: shard id bytes (ASCII, by its regex), a 0 byte (below
 * every shard id character, so "a" sorts wholly before "a.b"), then the seq as 8 bytes
 * big-endian. Reading a key returns only its seq: every read walks one shard, and decoding the
 * shard string and a [shard, seq] array per entry was a measurable part of a replay.
 * Range bounds outside [0, 2^53) clamp to the lowest and highest seq.
 */
const TWO_32 = 2 ** 32;
export const ENTRY_KEYS = {
  writeKey(key: SeqKey, target: Uint8Array, start: number): number {
    const [shard, seq] = key;
    let p = start;
    for (let i = 0; i < shard.length; i++) target[p++] = shard.charCodeAt(i);
    target[p++] = 0;
    let hi: number;
    let lo: number;
    if (!(seq > 0)) hi = lo = 0;
    else if (seq >= Number.MAX_SAFE_INTEGER) hi = lo = 0xffffffff;
    else {
      hi = Math.floor(seq / TWO_32);
      lo = seq >>> 0;
    }
    target[p++] = hi >>> 24;
    target[p++] = (hi >>> 16) & 0xff;
    target[p++] = (hi >>> 8) & 0xff;
    target[p++] = hi & 0xff;
    target[p++] = lo >>> 24;
    target[p++] = (lo >>> 16) & 0xff;
    target[p++] = (lo >>> 8) & 0xff;
    target[p++] = lo & 0xff;
    return p;
  },
  readKey(source: Uint8Array, _start: number, end: number): number {
    const p = end - 8;
    const hi = ((source[p]! << 24) | (source[p + 1]! << 16) | (source[p + 2]! << 8) | source[p + 3]!) >>> 0;
    const lo = ((source[p + 4]! << 24) | (source[p + 5]! << 16) | (source[p + 6]! << 8) | source[p + 7]!) >>> 0;
    return hi * TWO_32 + lo;
  },
};

/**
 * The value codec of the entries database: writes bytes as they are; on range reads, copies
 * each value out of lmdb's reusable read buffer into a shared slab and hands out a view of it.
 * lmdb-js's own binary path allocates a fresh Buffer (and ArrayBuffer) per value, which was
 * ~19% of a replay from the store in a CPU profile (bench/store.bench.ts). Slabs are small, so
 * an entry kept alive long after a replay pins at most SLAB_BYTES.
 */
const SLAB_BYTES = 32 * 1024;

export class SlabCopier {
  private slab = new Uint8Array(SLAB_BYTES);
  private pos = 0;
  /** lmdb-js: `decode` copies what it keeps, so lmdb may hand it the reusable buffer. */
  readonly needsStableBuffer = false;

  encode(value: Uint8Array): Uint8Array {
    return value;
  }

  decode(bytes: Uint8Array, size?: number): Uint8Array {
    const n = size ?? bytes.length;
    if (this.pos + n > this.slab.length) {
      this.slab = new Uint8Array(Math.max(SLAB_BYTES, n));
      this.pos = 0;
    }
    this.slab.set(new Uint8Array(bytes.buffer, bytes.byteOffset, n), this.pos);
    const out = new Uint8Array(this.slab.buffer, this.pos, n);
    this.pos += n;
    return out;
  }
}

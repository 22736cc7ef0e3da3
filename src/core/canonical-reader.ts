// Reading canonical MessagePack (the values CanonicalWriter writes).
//
// Accepted: nil, booleans, every int width (64-bit ones only within ±(2^53 - 1)), float32/64,
// str (UTF-8, strictly valid), bin, arrays, and maps whose keys are strings (never `__proto__`).
// Refused, with a thrown MsgpackError: ext types (timestamps, records), non-string keys, invalid
// UTF-8, truncated input and bytes left over. Being strict is the point: these bytes are hashed
// and a reader that guessed (msgpackr turns a `__proto__` key into `__proto_` and bad UTF-8 into
// U+FFFD) would hand the engine a value that re-encodes to other bytes.
//
// Why not msgpackr's Unpackr (which the core used first): besides its leniency, per call it
// stores a DataView on the source array (a new hidden class for every fresh view) and reads
// through module state. This reader keeps no per-call allocation but the values it returns and
// caches short keys as shared strings, so records decoded from entries share hidden classes;
// on the treasure-hunt log's entry bodies it took 832 ns against 1,099 ns (bench/core.bench.ts,
// "decode an entry body"; CPU time on a shared, busy machine).

/** A byte sequence that is not canonical msgpack as this engine reads it. */
export class MsgpackError extends Error {
  override readonly name = 'MsgpackError';
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);
const f32 = new Float32Array(1);
const f32Bytes = new Uint8Array(f32.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// Short ASCII strings (keys, type names, shard ids, the ids in payloads) are looked up here by a
// hash of their bytes, so the same bytes give the same string object every time without building
// it, and a reducer's table lookups by an id from a payload find its hash already computed.
const KEY_CACHE_BITS = 12;
const KEY_CACHE_MASK = (1 << KEY_CACHE_BITS) - 1;
const KEY_BYTES_MAX = 24;
const keyCache: (string | null)[] = new Array<string | null>(1 << KEY_CACHE_BITS).fill(null);

export class CanonicalReader {
  private buf: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;

  /** Point the reader at `bytes[start, end)`. */
  reset(bytes: Uint8Array, start: number, end: number): void {
    if (start < 0 || end > bytes.length || start > end) throw new MsgpackError(`range [${start}, ${end}) is outside ${bytes.length} bytes`);
    this.buf = bytes;
    this.pos = start;
    this.end = end;
  }

  /** Decode exactly one value filling `bytes[start, end)`. */
  decode(bytes: Uint8Array, start: number, end: number): unknown {
    this.reset(bytes, start, end);
    const v = this.value();
    if (this.pos !== end) throw new MsgpackError(`${end - this.pos} bytes left after the value at byte ${start}`);
    return v;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw new MsgpackError(`truncated: need ${n} more bytes at byte ${this.pos}, have ${this.end - this.pos}`);
  }

  private u8(): number {
    if (this.pos >= this.end) throw new MsgpackError(`truncated at byte ${this.pos}`);
    return this.buf[this.pos++]!;
  }

  private u16(): number {
    this.need(2);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 2;
    return (b[p]! << 8) | b[p + 1]!;
  }

  private u32(): number {
    this.need(4);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }

  private int64(signed: boolean): number {
    const hi = this.u32();
    const lo = this.u32();
    let v: number;
    if (signed && hi >= 0x80000000) v = (hi - 0x100000000) * 0x100000000 + lo;
    else v = hi * 0x100000000 + lo;
    if (!Number.isSafeInteger(v)) throw new MsgpackError(`a 64-bit integer beyond ±(2^53 - 1) at byte ${this.pos - 9}`);
    return v;
  }

  private float64(): number {
    this.need(8);
    const b = this.buf;
    const p = this.pos;
    if (LITTLE_ENDIAN) for (let i = 0; i < 8; i++) f64Bytes[i] = b[p + 7 - i]!;
    else for (let i = 0; i < 8; i++) f64Bytes[i] = b[p + i]!;
    this.pos = p + 8;
    return f64[0]!;
  }

  private float32(): number {
    this.need(4);
    const b = this.buf;
    const p = this.pos;
    if (LITTLE_ENDIAN) for (let i = 0; i < 4; i++) f32Bytes[i] = b[p + 3 - i]!;
    else for (let i = 0; i < 4; i++) f32Bytes[i] = b[p + i]!;
    this.pos = p + 4;
    return f32[0]!;
  }

  /** The next value; null, booleans, numbers, strings, Uint8Array, arrays or plain objects. */
  value(): unknown {
    const t = this.u8();
    if (t < 0x80) return t;
    if (t >= 0xe0) return t - 0x100;
    if (t < 0x90) return this.map(t & 0x0f);
    if (t < 0xa0) return this.array(t & 0x0f);
    if (t < 0xc0) return this.str(t & 0x1f, false);
    switch (t) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        return this.bin(this.u8());
      case 0xc5:
        return this.bin(this.u16());
      case 0xc6:
        return this.bin(this.u32());
      case 0xca:
        return this.float32();
      case 0xcb:
        return this.float64();
      case 0xcc:
        return this.u8();
      case 0xcd:
        return this.u16();
      case 0xce:
        return this.u32();
      case 0xcf:
        return this.int64(false);
      case 0xd0:
        return (this.u8() << 24) >> 24;
      case 0xd1:
        return (this.u16() << 16) >> 16;
      case 0xd2:
        return this.u32() | 0;
      case 0xd3:
        return this.int64(true);
      case 0xd9:
        return this.str(this.u8(), false);
      case 0xda:
        return this.str(this.u16(), false);
      case 0xdb:
        return this.str(this.u32(), false);
      case 0xdc:
        return this.array(this.u16());
      case 0xdd:
        return this.array(this.u32());
      case 0xde:
        return this.map(this.u16());
      case 0xdf:
        return this.map(this.u32());
      default:
        throw new MsgpackError(`type byte 0x${t.toString(16)} at byte ${this.pos - 1} is not part of canonical msgpack (ext types, reserved)`);
    }
  }

  private array(n: number): unknown[] {
    // Every element takes at least one byte: a length beyond what is left is a lie, refuse it
    // before allocating.
    if (n > this.end - this.pos) throw new MsgpackError(`an array of ${n} at byte ${this.pos} is longer than the ${this.end - this.pos} bytes left`);
    const out = new Array<unknown>(n);
    for (let i = 0; i < n; i++) out[i] = this.value();
    return out;
  }

  private map(n: number): Record<string, unknown> {
    if (n * 2 > this.end - this.pos) throw new MsgpackError(`a map of ${n} at byte ${this.pos} is longer than the ${this.end - this.pos} bytes left`);
    const out: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const k = this.key();
      if (k === '__proto__') throw new MsgpackError(`a "__proto__" key at byte ${this.pos}`);
      out[k] = this.value();
    }
    return out;
  }

  /** The length of the array that starts here, or -1 (and nothing consumed) when no array starts here. */
  arrayLength(): number {
    const t = this.u8();
    if (t >= 0x90 && t < 0xa0) return t & 0x0f;
    if (t === 0xdc) return this.u16();
    if (t === 0xdd) return this.u32();
    this.pos--;
    return -1;
  }

  /** As value(), with short strings taken from the string cache (for fields that repeat: shard ids, type names). */
  valueCached(): unknown {
    const t = this.buf[this.pos];
    if (t !== undefined && t >= 0xa0 && t < 0xc0 && this.pos < this.end) {
      this.pos++;
      return this.str(t & 0x1f, true);
    }
    return this.value();
  }

  private key(): string {
    const t = this.u8();
    if (t >= 0xa0 && t < 0xc0) return this.str(t & 0x1f, true);
    if (t === 0xd9) return this.str(this.u8(), true);
    if (t === 0xda) return this.str(this.u16(), true);
    if (t === 0xdb) return this.str(this.u32(), true);
    throw new MsgpackError(`a map key at byte ${this.pos - 1} is not a string (type byte 0x${t.toString(16)})`);
  }

  private str(n: number, cache: boolean): string {
    this.need(n);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + n;
    const s = shortAscii(b, p, n, cache);
    if (s !== null) return s;
    try {
      return utf8.decode(b.subarray(p, p + n));
    } catch (err) {
      throw new MsgpackError(`a string at byte ${p} is not valid UTF-8 (${(err as Error).message})`);
    }
  }

  /** A hash field: 16 bytes as a view of the input (the caller keeps the input), null for nil, undefined for anything else (consumed). */
  hashView(): Uint8Array | null | undefined {
    const t = this.u8();
    if (t === 0xc0) return null;
    if (t !== 0xc4) {
      this.pos--;
      this.value();
      return undefined;
    }
    const n = this.u8();
    this.need(n);
    const p = this.pos;
    this.pos = p + n;
    return n === 16 ? this.buf.subarray(p, p + n) : undefined;
  }

  private bin(n: number): Uint8Array {
    this.need(n);
    const p = this.pos;
    this.pos = p + n;
    // A copy: a decoded value must not pin (or alias) the buffer it was read from. Small ones
    // are copied by hand into a new array, which V8 allocates on its heap (slice() would create
    // an off-heap ArrayBuffer for 16 bytes).
    if (n > 64) return this.buf.slice(p, p + n);
    const out = new Uint8Array(n);
    const b = this.buf;
    for (let i = 0; i < n; i++) out[i] = b[p + i]!;
    return out;
  }
}

/**
 * The string of the `n` bytes at `b[p]` when they are short ASCII (at most KEY_BYTES_MAX), built,
 * or with `cache` taken from the string cache; null otherwise (the strict UTF-8 path decodes those).
 * The caller has checked that the bytes are there.
 */
export function shortAscii(b: Uint8Array, p: number, n: number, cache: boolean): string | null {
  if (n > KEY_BYTES_MAX) return null;
  if (cache) {
    let h = n;
    for (let i = 0; i < n; i++) {
      const c = b[p + i]!;
      if (c >= 0x80) return null;
      h = Math.imul(h ^ c, 0x01000193);
    }
    const slot = (h ^ (h >>> 15)) & KEY_CACHE_MASK;
    const hit = keyCache[slot];
    if (hit != null && hit.length === n && sameAscii(hit, b, p)) return hit;
    const s = asciiString(b, p, n);
    keyCache[slot] = s;
    return s;
  }
  for (let i = 0; i < n; i++) if (b[p + i]! >= 0x80) return null;
  return asciiString(b, p, n);
}

function sameAscii(s: string, b: Uint8Array, p: number): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) !== b[p + i]) return false;
  return true;
}

function asciiString(b: Uint8Array, p: number, n: number): string {
  // Explicit arities: no intermediate array (fromCharCode.apply), no cons strings (+=), no
  // native call with a subarray (TextDecoder), which all cost more for ids of 8–16 characters.
  switch (n) {
    case 0:
      return '';
    case 1:
      return String.fromCharCode(b[p]!);
    case 2:
      return String.fromCharCode(b[p]!, b[p + 1]!);
    case 3:
      return String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!);
    case 4:
      return String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!);
    case 5:
      return String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!);
    case 6:
      return String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!);
    case 7:
      return String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!);
    case 8:
      return String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!);
    case 9:
      return String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!, b[p + 8]!);
    case 10:
      return String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!, b[p + 8]!, b[p + 9]!);
    case 11:
      return String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!, b[p + 8]!, b[p + 9]!, b[p + 10]!);
    case 12:
      return String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!, b[p + 8]!, b[p + 9]!, b[p + 10]!, b[p + 11]!);
    case 13:
      return String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!, b[p + 8]!, b[p + 9]!, b[p + 10]!, b[p + 11]!, b[p + 12]!);
    case 14:
      return String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!, b[p + 8]!, b[p + 9]!, b[p + 10]!, b[p + 11]!, b[p + 12]!, b[p + 13]!);
    case 15:
      return String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!, b[p + 8]!, b[p + 9]!, b[p + 10]!, b[p + 11]!, b[p + 12]!, b[p + 13]!, b[p + 14]!);
    case 16:
      return String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!, b[p + 8]!, b[p + 9]!, b[p + 10]!, b[p + 11]!, b[p + 12]!, b[p + 13]!, b[p + 14]!, b[p + 15]!);
    default: {
      let s = asciiString(b, p, 16);
      for (let i = 16; i < n; i += 16) s += asciiString(b, p + i, n - i < 16 ? n - i : 16);
      return s;
    }
  }
}

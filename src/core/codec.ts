// Canonical MessagePack.
//
// The same value always encodes to the same bytes, in every region and engine version of a
// format: object keys sorted by UTF-16 code units, safe integers in their smallest msgpack
// width, -0 written as 0, every other number as float64; NaN, undefined, functions, Maps,
// Sets, class instances, strings with lone surrogates and `__proto__` keys refused (none of
// them would read back as the same value). This is the encoding hashed into entry hashes,
// record digests and snapshots.
//
// Encoding is done by this writer rather than by a msgpackr Packr: msgpackr writes object
// keys in insertion order and offers no option to sort them, so a Packr cannot promise that
// `{a, b}` and `{b, a}` encode alike. Decoding is done by CanonicalReader, which refuses what
// the writer would never write (see canonical-reader.ts).
import { Unpackr } from 'msgpackr';
import { CanonicalReader } from './canonical-reader.js';
import { PlayoutError, describe } from './errors.js';

/** A value the canonical codec accepts. */
export type Canonical =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | readonly Canonical[]
  | { readonly [key: string]: Canonical };

const textEncoder = new TextEncoder();

export class CanonicalWriter {
  buf: Uint8Array;
  view: DataView;
  pos = 0;
  /** The buffer given at construction, returned to at every reset (see hashArena); null when the writer owns its buffer. */
  private readonly home: Uint8Array | null;
  private readonly homeView: DataView | null;
  /**
   * Rewrite -0 to 0 inside the values written (state records at flush). The encoding already
   * writes -0 as 0; fixing the record too keeps a live state equal to one restored from a
   * snapshot, where `1 / x` or `Math.atan2(y, x)` would otherwise tell them apart.
   */
  fixNegativeZero = false;

  /** A writer with a buffer of `bytesInitial` bytes that grows by doubling, or one that writes into `buffer` and returns to it at every reset. */
  constructor(bytesInitial: number | Uint8Array = 4096) {
    if (typeof bytesInitial === 'number') {
      this.buf = new Uint8Array(bytesInitial);
      this.home = null;
    } else {
      this.buf = bytesInitial;
      this.home = bytesInitial;
    }
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.homeView = this.home === null ? null : this.view;
  }

  reset(): void {
    this.pos = 0;
    if (this.home !== null && this.buf !== this.home) {
      this.buf = this.home;
      this.view = this.homeView!;
    }
  }

  /** A copy of the bytes written since the last reset. */
  bytes(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  ensure(bytesMore: number): void {
    const need = this.pos + bytesMore;
    if (need <= this.buf.length) return;
    // Grow by doubling: amortised O(1) per byte and few reallocations on the hot path.
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  writeNil(): void {
    this.ensure(1);
    this.buf[this.pos++] = 0xc0;
  }

  writeBool(v: boolean): void {
    this.ensure(1);
    this.buf[this.pos++] = v ? 0xc3 : 0xc2;
  }

  writeArrayHeader(length: number): void {
    this.ensure(5);
    if (length < 16) this.buf[this.pos++] = 0x90 | length;
    else if (length < 0x10000) {
      this.buf[this.pos++] = 0xdc;
      this.view.setUint16(this.pos, length);
      this.pos += 2;
    } else {
      this.buf[this.pos++] = 0xdd;
      this.view.setUint32(this.pos, length);
      this.pos += 4;
    }
  }

  writeMapHeader(length: number): void {
    this.ensure(5);
    if (length < 16) this.buf[this.pos++] = 0x80 | length;
    else if (length < 0x10000) {
      this.buf[this.pos++] = 0xde;
      this.view.setUint16(this.pos, length);
      this.pos += 2;
    } else {
      this.buf[this.pos++] = 0xdf;
      this.view.setUint32(this.pos, length);
      this.pos += 4;
    }
  }

  writeNumber(v: number): void {
    this.ensure(9);
    const b = this.buf;
    if (Number.isInteger(v)) {
      if (v === 0) {
        b[this.pos++] = 0; // also -0
      } else if (v > 0) {
        if (v < 0x80) b[this.pos++] = v;
        else if (v < 0x100) {
          b[this.pos++] = 0xcc;
          b[this.pos++] = v;
        } else if (v < 0x10000) {
          b[this.pos++] = 0xcd;
          this.view.setUint16(this.pos, v);
          this.pos += 2;
        } else if (v < 0x100000000) {
          b[this.pos++] = 0xce;
          this.view.setUint32(this.pos, v);
          this.pos += 4;
        } else if (v <= Number.MAX_SAFE_INTEGER) {
          b[this.pos++] = 0xcf;
          this.view.setBigUint64(this.pos, BigInt(v));
          this.pos += 8;
        } else {
          this.writeFloat64(v);
        }
      } else if (v >= -32) {
        b[this.pos++] = v & 0xff;
      } else if (v >= -0x80) {
        b[this.pos++] = 0xd0;
        this.view.setInt8(this.pos, v);
        this.pos += 1;
      } else if (v >= -0x8000) {
        b[this.pos++] = 0xd1;
        this.view.setInt16(this.pos, v);
        this.pos += 2;
      } else if (v >= -0x80000000) {
        b[this.pos++] = 0xd2;
        this.view.setInt32(this.pos, v);
        this.pos += 4;
      } else if (v >= Number.MIN_SAFE_INTEGER) {
        b[this.pos++] = 0xd3;
        this.view.setBigInt64(this.pos, BigInt(v));
        this.pos += 8;
      } else {
        this.writeFloat64(v);
      }
    } else {
      if (Number.isNaN(v)) throw notCanonical(v, 'a number that is not NaN');
      this.writeFloat64(v);
    }
  }

  /** Non-integers, and integers beyond ±(2^53 - 1), which no 64-bit integer reader could tell from their neighbours. */
  private writeFloat64(v: number): void {
    this.buf[this.pos++] = 0xcb;
    this.view.setFloat64(this.pos, v);
    this.pos += 8;
  }

  writeString(s: string): void {
    const n = s.length;
    // Fast path: short ASCII strings, the common case for keys and type names.
    if (n < 32) {
      this.ensure(1 + n);
      const start = this.pos;
      let ascii = true;
      for (let i = 0; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) {
          ascii = false;
          break;
        }
        this.buf[start + 1 + i] = c;
      }
      if (ascii) {
        this.buf[start] = 0xa0 | n;
        this.pos = start + 1 + n;
        return;
      }
    }
    // A lone surrogate has no UTF-8 form: TextEncoder would write U+FFFD, so two different
    // strings would share bytes and the value would not survive a round trip.
    if (!isWellFormed(s)) throw notCanonical(s, 'a well-formed UTF-16 string (no lone surrogates)');
    // Worst case 3 bytes per UTF-16 unit; header up to 5 bytes.
    this.ensure(5 + n * 3);
    const encoded = textEncoder.encode(s);
    this.writeStrHeader(encoded.length);
    this.buf.set(encoded, this.pos);
    this.pos += encoded.length;
  }

  private writeStrHeader(length: number): void {
    if (length < 32) this.buf[this.pos++] = 0xa0 | length;
    else if (length < 0x100) {
      this.buf[this.pos++] = 0xd9;
      this.buf[this.pos++] = length;
    } else if (length < 0x10000) {
      this.buf[this.pos++] = 0xda;
      this.view.setUint16(this.pos, length);
      this.pos += 2;
    } else {
      this.buf[this.pos++] = 0xdb;
      this.view.setUint32(this.pos, length);
      this.pos += 4;
    }
  }

  writeBin(bytes: Uint8Array): void {
    const length = bytes.length;
    this.ensure(5 + length);
    if (length < 0x100) {
      this.buf[this.pos++] = 0xc4;
      this.buf[this.pos++] = length;
    } else if (length < 0x10000) {
      this.buf[this.pos++] = 0xc5;
      this.view.setUint16(this.pos, length);
      this.pos += 2;
    } else {
      this.buf[this.pos++] = 0xc6;
      this.view.setUint32(this.pos, length);
      this.pos += 4;
    }
    this.buf.set(bytes, this.pos);
    this.pos += length;
  }

  /** Raw bytes, already encoded (e.g. a nested canonical value). */
  writeRaw(bytes: Uint8Array, offset = 0, length = bytes.length - offset): void {
    this.ensure(length);
    this.buf.set(offset === 0 && length === bytes.length ? bytes : bytes.subarray(offset, offset + length), this.pos);
    this.pos += length;
  }

  /**
   * A plain object: its keys in sorted order. Records of one kind share their key order, so the
   * sorted order and the encoded keys are looked up by the object's key sequence (checked key
   * by key with for-in, which allocates nothing) instead of Object.keys().sort() and a UTF-8
   * encoding per key per record: that was the largest cost of a tick's digest (bench/core.bench.ts).
   */
  private writeObject(v: Record<string, unknown>): void {
    // Collect the key sequence without allocating (SCRATCH is done with before any value is
    // written, so nested objects may reuse it).
    let n = 0;
    for (const k in v) {
      if (n === SHAPE_KEYS_MAX) {
        n = -1;
        break;
      }
      SCRATCH[n++] = k;
    }
    if (n === 0 && isEmpty(v)) {
      this.writeMapHeader(0);
      return;
    }
    const shape = n > 0 ? findShape(n) ?? learnShape(v) : learnShape(v);
    shape.write(this, v);
  }

  /** The fields of `v` in the order of `sorted` (encoded keys in `encoded` at `offsets`): the path for shapes without a generated writer. */
  writeFields(v: Record<string, unknown>, sorted: readonly string[], encoded: Uint8Array, offsets: Int32Array): void {
    this.writeMapHeader(sorted.length);
    for (let i = 0; i < sorted.length; i++) {
      const from = offsets[i]!;
      const to = offsets[i + 1]!;
      this.ensure(to - from);
      const b = this.buf;
      let p = this.pos;
      for (let j = from; j < to; j++) b[p++] = encoded[j]!;
      this.pos = p;
      const k = sorted[i]!;
      const x = v[k];
      if (x === 0 && this.fixNegativeZero && Object.is(x, -0)) v[k] = 0;
      this.writeValue(x);
    }
  }

  writeValue(v: unknown): void {
    switch (typeof v) {
      case 'number':
        this.writeNumber(v);
        return;
      case 'string':
        this.writeString(v);
        return;
      case 'boolean':
        this.writeBool(v);
        return;
      case 'object':
        if (v === null) return this.writeNil();
        if (Array.isArray(v)) {
          this.writeArrayHeader(v.length);
          for (let i = 0; i < v.length; i++) {
            const x: unknown = v[i];
            if (x === 0 && this.fixNegativeZero && Object.is(x, -0)) v[i] = 0;
            this.writeValue(x);
          }
          return;
        }
        if (v instanceof Uint8Array) return this.writeBin(v);
        {
          const proto = Object.getPrototypeOf(v);
          if (proto !== Object.prototype && proto !== null) throw notCanonical(v, 'a plain object');
          this.writeObject(v as Record<string, unknown>);
        }
        return;
      default:
        throw notCanonical(v, 'null, a boolean, a number, a string, bytes, an array or a plain object');
    }
  }
}

type ShapeWriter = (w: CanonicalWriter, v: Record<string, unknown>) => void;

/** The sorted order of the keys of objects whose own keys are `keys` (in that order), and a writer for such objects. */
class KeyShape {
  readonly keys: string[];
  readonly sorted: string[];
  readonly encoded: Uint8Array;
  readonly offsets: Int32Array;
  /** The generic loop until the shape has proved common, then a compiled writer. */
  write: ShapeWriter;
  uses = 0;

  constructor(keys: string[], sorted: string[], encoded: Uint8Array, offsets: Int32Array) {
    this.keys = keys;
    this.sorted = sorted;
    this.encoded = encoded;
    this.offsets = offsets;
    this.write = (w, v) => {
      w.writeFields(v, this.sorted, this.encoded, this.offsets);
      if (++this.uses === SHAPE_USES_BEFORE_COMPILE && compiledShapes < COMPILED_SHAPES_MAX) {
        compiledShapes++;
        this.write = compileShapeWriter(this.sorted, this.encoded, this.offsets);
      }
    };
  }
}

/**
 * Shapes by first key; several shapes may share one (a player and a quest both start with
 * `name`). Bounded: dictionary-like objects (keys that are ids) would otherwise fill it, and
 * only shapes seen SHAPE_USES_BEFORE_COMPILE times get compiled, at most COMPILED_SHAPES_MAX.
 */
const SHAPES = new Map<string, KeyShape[]>();
let shapeCount = 0;
const SHAPES_MAX = 4096;
const SHAPE_KEYS_MAX = 64;
const SHAPE_USES_BEFORE_COMPILE = 16;
const COMPILED_SHAPES_MAX = 1024;
let compiledShapes = 0;
const SCRATCH: string[] = new Array<string>(SHAPE_KEYS_MAX).fill('');
const shapeWriter = { w: null as CanonicalWriter | null };

function isEmpty(v: object): boolean {
  for (const _ in v) return false;
  return Object.keys(v).length === 0;
}

/** The shape whose keys are SCRATCH[0, n), or undefined. */
function findShape(n: number): KeyShape | undefined {
  const list = SHAPES.get(SCRATCH[0]!);
  if (list === undefined) return undefined;
  outer: for (let s = 0; s < list.length; s++) {
    const keys = list[s]!.keys;
    if (keys.length !== n) continue;
    for (let i = 1; i < n; i++) if (keys[i] !== SCRATCH[i]) continue outer;
    return list[s];
  }
  return undefined;
}

function learnShape(v: Record<string, unknown>): KeyShape {
  const keys = Object.keys(v);
  const sorted = keys.slice().sort();
  for (const k of sorted) {
    // msgpack readers (msgpackr among them) cannot give a plain object this key back.
    if (k === '__proto__') throw notCanonical(k, 'an object key other than "__proto__"');
    if (!isWellFormed(k)) throw notCanonical(k, 'a well-formed UTF-16 string (no lone surrogates)');
  }
  const w = (shapeWriter.w ??= new CanonicalWriter(256));
  w.reset();
  const offsets = new Int32Array(sorted.length + 1);
  for (let i = 0; i < sorted.length; i++) {
    offsets[i] = w.pos;
    w.writeString(sorted[i]!);
  }
  offsets[sorted.length] = w.pos;
  const shape = new KeyShape(keys, sorted, w.bytes(), offsets);
  if (keys.length > 0 && keys.length <= SHAPE_KEYS_MAX) {
    if (shapeCount >= SHAPES_MAX) {
      SHAPES.clear();
      shapeCount = 0;
    }
    let list = SHAPES.get(keys[0]!);
    if (list === undefined) SHAPES.set(keys[0]!, (list = []));
    list.push(shape);
    shapeCount++;
  }
  return shape;
}

/**
 * A writer specialised for one key set: straight-line code with each key's bytes as constants
 * and each field read by name, so V8 gives every read a monomorphic inline cache. It wrote an
 * item record in about half the time of the generic loop over `v[key]` (keyed loads that go
 * megamorphic across keys). The generated source holds only the writer's method calls, byte
 * constants, and the keys as JSON string literals.
 */
function compileShapeWriter(sorted: readonly string[], encoded: Uint8Array, offsets: Int32Array): ShapeWriter {
  // Per field: make room for the key and 33 bytes, write the key's bytes, then the common
  // values inline (unsigned 32-bit integers, booleans, null, ASCII strings under 32 characters);
  // anything else goes through writeValue with the position handed back and forth. `b` and `p`
  // mirror w.buf and w.pos.
  const lines = [`w.writeMapHeader(${sorted.length});`, 'let b = w.buf, p = w.pos, x;'];
  for (let i = 0; i < sorted.length; i++) {
    const bytes = Array.from(encoded.subarray(offsets[i]!, offsets[i + 1]!));
    const k = JSON.stringify(sorted[i]!);
    lines.push(
      `if (p + ${bytes.length + 33} > b.length) { w.pos = p; w.ensure(${bytes.length + 33}); b = w.buf; }`,
      bytes.map((x) => `b[p++] = ${x};`).join(' '),
      `x = v[${k}];`,
      `if (typeof x === 'number' && x >= 0 && x < 4294967296 && Math.floor(x) === x) {`,
      `  if (x === 0) { if (w.fixNegativeZero && Object.is(x, -0)) v[${k}] = 0; b[p++] = 0; }`,
      '  else if (x < 128) b[p++] = x;',
      '  else if (x < 256) { b[p++] = 0xcc; b[p++] = x; }',
      '  else if (x < 65536) { b[p++] = 0xcd; b[p++] = x >>> 8; b[p++] = x & 0xff; }',
      '  else { b[p++] = 0xce; b[p++] = x >>> 24; b[p++] = (x >>> 16) & 0xff; b[p++] = (x >>> 8) & 0xff; b[p++] = x & 0xff; }',
      '} else if (x === null) b[p++] = 0xc0;',
      'else if (x === true) b[p++] = 0xc3;',
      'else if (x === false) b[p++] = 0xc2;',
      "else if (typeof x === 'string' && x.length < 32 && asciiInto(b, p + 1, x)) { b[p] = 0xa0 | x.length; p += 1 + x.length; }",
      `else { w.pos = p; w.writeValue(x); b = w.buf; p = w.pos; }`,
    );
  }
  lines.push('w.pos = p;');
  return new Function('asciiInto', `"use strict";\nreturn function (w, v) {\n${lines.join('\n')}\n};`)(asciiInto) as ShapeWriter;
}

/** Write `s` as ASCII bytes at b[at…]; false (and a partial write to ignore) when it is not all ASCII. */
function asciiInto(b: Uint8Array, at: number, s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return false;
    b[at + i] = c;
  }
  return true;
}

const isWellFormed: (s: string) => boolean = (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

function notCanonical(v: unknown, expected: string): PlayoutError {
  return new PlayoutError('PLAYOUT_VALUE_NOT_CANONICAL', `Cannot encode value canonically: expected ${expected}, received ${describe(v)}`, {
    expected,
    received: describe(v),
  });
}

/** Where inside `value` the first value that cannot be encoded canonically sits, e.g. `items[2].pos.x`. */
export function findNonCanonical(value: unknown, path = ''): { path: string; received: string } | null {
  switch (typeof value) {
    case 'number':
      return Number.isNaN(value) ? { path, received: describe(value) } : null;
    case 'string':
      return isWellFormed(value) ? null : { path, received: describe(value) };
    case 'boolean':
      return null;
    case 'object': {
      if (value === null || value instanceof Uint8Array) return null;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const found = findNonCanonical(value[i], `${path}[${i}]`);
          if (found) return found;
        }
        return null;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return { path, received: describe(value) };
      for (const k of Object.keys(value)) {
        if (k === '__proto__' || !isWellFormed(k)) return { path: path === '' ? k : `${path}.${k}`, received: `key ${describe(k)}` };
        const found = findNonCanonical((value as Record<string, unknown>)[k], path === '' ? k : `${path}.${k}`);
        if (found) return found;
      }
      return null;
    }
    default:
      return { path, received: describe(value) };
  }
}

const shared = new CanonicalWriter(1 << 16);

/** Canonical bytes of a value (a fresh copy). Errors carry the path of the offending field. */
export function encodeCanonical(value: unknown, what = 'value'): Uint8Array {
  shared.reset();
  try {
    shared.writeValue(value);
  } catch (err) {
    throw withPath(err, value, what);
  }
  return shared.bytes();
}

export function withPath(err: unknown, value: unknown, what: string): unknown {
  if (!(err instanceof PlayoutError) || err.code !== 'PLAYOUT_VALUE_NOT_CANONICAL') return err;
  const found = findNonCanonical(value);
  const path = found && found.path !== '' ? (found.path.startsWith('[') ? `${what}${found.path}` : `${what}.${found.path}`) : what;
  return new PlayoutError('PLAYOUT_VALUE_NOT_CANONICAL', `Cannot encode ${path} canonically: expected ${err.expected}, received ${err.received}`, {
    path,
    expected: err.expected,
    received: err.received,
    cause: err,
  });
}

// A msgpackr reader for format 1, every option that changes the meaning of bytes set: no
// records or shared structures (a plain msgpack reader in any language must read our bytes),
// maps as plain objects, 64-bit integers as numbers, binary copied out. The core itself reads
// with CanonicalReader (strict, and faster: see canonical-reader.ts); this stays for callers
// that want msgpackr's leniency.
export const unpackr = new Unpackr({
  useRecords: false,
  structures: [],
  moreTypes: false,
  mapsAsObjects: true,
  int64AsType: 'number',
  copyBuffers: true,
  bundleStrings: false,
  sequential: false,
  structuredClone: false,
  useTimestamp32: false,
  largeBigIntToFloat: false,
});

const reader = new CanonicalReader();

/**
 * Decode the canonical msgpack value filling `bytes[start, end)`. Throws a MsgpackError for
 * bytes that are not one canonical value (see canonical-reader.ts); turning that into a
 * PlayoutError with the right code is the caller's job.
 */
export function decodeCanonical(bytes: Uint8Array, start = 0, end = bytes.length): unknown {
  return reader.decode(bytes, start, end);
}

/** Deep copy of a canonical value (plain data only). */
export function cloneCanonical<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return value.slice() as T;
  if (Array.isArray(value)) return value.map(cloneCanonical) as T;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value)) out[k] = cloneCanonical((value as Record<string, unknown>)[k]);
  return out as T;
}

/** Freeze a plain-data value and everything inside it. */
export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  if (value instanceof Uint8Array) return value; // typed arrays cannot be frozen
  Object.freeze(value);
  if (Array.isArray(value)) for (const v of value) deepFreeze(v);
  else for (const k of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[k]);
  return value;
}

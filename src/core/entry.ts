// The log entry (DESIGN.md §3).
//
// Wire format, entry format 1:
//
//   entry  = body || hash
//   body   = canonical msgpack array of 13 fields, in this order:
//            [format, shard, seq, epoch, tick, kind, type, version, origin, ingestId,
//             payload, digest, prev]
//   hash   = XXH3-128(body), 16 raw bytes (not msgpack: its length is fixed)
//
// Absent fields are msgpack nil, never missing. `digest` and `prev` are bin8 of 16 bytes.
// Containers (fixture frames, HTTP frames, Kafka records, store values) carry the length,
// so the hash is always the last 16 bytes and verifying it needs no re-encoding.
import { z } from 'zod';
import { CanonicalReader, shortAscii } from './canonical-reader.js';
import { CanonicalWriter, decodeCanonical, withPath } from './codec.js';
import { PlayoutError, describe } from './errors.js';
import { HASH_BYTES, HASH_NAME, HASH_RESULT, ZERO_HASH, hash128, hash128Raw, hashArena, hashEquals, hashResultEquals, toHex } from './hash.js';

export const ENTRY_FORMAT = 1;
export const ENTRY_FIELDS = 13;
export const ENGINE_VERSION = '0.1.0';

export const ENTRY_KINDS = ['genesis', 'input', 'tick', 'epoch', 'upgrade'] as const;
export type EntryKind = (typeof ENTRY_KINDS)[number];

export const SHARD_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const ShardIdSchema = z.string().regex(SHARD_ID, 'shard id: [a-z0-9][a-z0-9._-]{0,63}');
export const RegionIdSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'region id: [a-z0-9][a-z0-9-]{0,31}');

const uint = z.number().int().nonnegative();
const hash16 = z.instanceof(Uint8Array).refine((b) => b.length === HASH_BYTES, 'exactly 16 bytes');

export const GenesisPayloadSchema = z.strictObject({
  reducer: z.string().min(1),
  reducerVersion: uint.min(1),
  seed: z.number().int().min(0).max(0xffffffff),
  tickMs: z.number().int().min(1).max(3_600_000),
  engineFormat: z.literal(ENTRY_FORMAT),
  hash: z.literal(HASH_NAME),
  params: z.unknown().nullable(),
});
export type GenesisPayload = z.infer<typeof GenesisPayloadSchema>;

export const EpochPayloadSchema = z.strictObject({
  epoch: uint.min(1),
  leader: RegionIdSchema,
  lastSeqPrevEpoch: uint,
});
export type EpochPayload = z.infer<typeof EpochPayloadSchema>;

export const UpgradePayloadSchema = z.strictObject({ reducerVersion: uint.min(1) });
export type UpgradePayload = z.infer<typeof UpgradePayloadSchema>;

/** The decoded form of an entry, as other languages see it (the JSON Schema is generated from this). */
export const EntrySchema = z.strictObject({
  format: z.literal(ENTRY_FORMAT),
  shard: ShardIdSchema,
  seq: uint.min(1),
  epoch: uint,
  tick: uint,
  kind: z.enum(ENTRY_KINDS),
  type: z.string().min(1).max(128).nullable(),
  version: uint.min(1).nullable(),
  origin: z.string().max(64).nullable(),
  ingestId: z.string().min(1).max(256).nullable(),
  payload: z.unknown(),
  digest: hash16.nullable(),
  prev: hash16,
  hash: hash16,
});

/** Every field but `hash`: what a writer supplies. */
export interface EntryFields {
  shard: string;
  seq: number;
  epoch: number;
  tick: number;
  kind: EntryKind;
  type: string | null;
  version: number | null;
  origin: string | null;
  ingestId: string | null;
  payload: unknown;
  digest: Uint8Array | null;
  prev: Uint8Array;
}

/** One shape for every entry: every field assigned in the constructor (one V8 hidden class). */
export class Entry {
  readonly format: number;
  readonly shard: string;
  readonly seq: number;
  readonly epoch: number;
  readonly tick: number;
  readonly kind: EntryKind;
  readonly type: string | null;
  readonly version: number | null;
  readonly origin: string | null;
  readonly ingestId: string | null;
  readonly payload: unknown;
  readonly digest: Uint8Array | null;
  readonly prev: Uint8Array;
  readonly hash: Uint8Array;
  /** The entry's encoded bytes (body || hash), kept so it is stored and forwarded without re-encoding. */
  readonly bytes: Uint8Array;

  constructor(f: EntryFields, hash: Uint8Array, bytes: Uint8Array, format = ENTRY_FORMAT) {
    this.format = format;
    this.shard = f.shard;
    this.seq = f.seq;
    this.epoch = f.epoch;
    this.tick = f.tick;
    this.kind = f.kind;
    this.type = f.type;
    this.version = f.version;
    this.origin = f.origin;
    this.ingestId = f.ingestId;
    this.payload = f.payload;
    this.digest = f.digest;
    this.prev = f.prev;
    this.hash = hash;
    this.bytes = bytes;
  }

  /** A JSON-friendly view (hashes as hex) for CLI output and logs. */
  toJSON(): Record<string, unknown> {
    return {
      format: this.format,
      shard: this.shard,
      seq: this.seq,
      epoch: this.epoch,
      tick: this.tick,
      kind: this.kind,
      type: this.type,
      version: this.version,
      origin: this.origin,
      ingestId: this.ingestId,
      payload: this.payload,
      digest: this.digest === null ? null : toHex(this.digest),
      prev: toHex(this.prev),
      hash: toHex(this.hash),
    };
  }
}

// In a hash arena: the body is hashed where it was written (see hashArena).
const writer = new CanonicalWriter(hashArena(16 * 1024));

/** Encode the fields canonically, hash them, and return the sealed entry. */
export function sealEntry(f: EntryFields): Entry {
  writer.reset();
  let payloadAt: number;
  try {
    payloadAt = writeBody(writer, f);
  } catch (err) {
    throw withPath(err, f.payload, `entry ${f.seq} payload`);
  }
  const bodyLength = writer.pos;
  // The sealed entry carries its payload as every reader decodes it from the bytes (-0 as 0,
  // keys in canonical order, copies of bytes), so the leader applies exactly what followers do.
  const payload = decodeCanonical(writer.buf, payloadAt, payloadEnd);
  hash128Raw(writer.buf, 0, bodyLength);
  writer.writeRaw(HASH_RESULT);
  // A view of a shared slab, not an ArrayBuffer of its own per entry (see ownCopy).
  const bytes = ownCopy(writer.buf, 0, writer.pos);
  return new Entry({ ...f, payload }, bytes.subarray(bodyLength), bytes);
}

let payloadEnd = 0;

/** Writes the body; returns where the payload starts (and leaves where it ends in payloadEnd). */
function writeBody(w: CanonicalWriter, f: EntryFields): number {
  w.writeArrayHeader(ENTRY_FIELDS);
  w.writeNumber(ENTRY_FORMAT);
  w.writeString(f.shard);
  w.writeNumber(f.seq);
  w.writeNumber(f.epoch);
  w.writeNumber(f.tick);
  w.writeString(f.kind);
  if (f.type === null) w.writeNil();
  else w.writeString(f.type);
  if (f.version === null) w.writeNil();
  else w.writeNumber(f.version);
  if (f.origin === null) w.writeNil();
  else w.writeString(f.origin);
  if (f.ingestId === null) w.writeNil();
  else w.writeString(f.ingestId);
  const payloadAt = w.pos;
  w.writeValue(f.payload);
  payloadEnd = w.pos;
  if (f.digest === null) w.writeNil();
  else w.writeBin(f.digest);
  w.writeBin(f.prev);
  return payloadAt;
}

const KIND_SET: ReadonlySet<string> = new Set(ENTRY_KINDS);

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
function isStrOrNull(v: unknown): v is string | null {
  return v === null || typeof v === 'string';
}

const reader = new CanonicalReader();
const DECODED: EntryFields = { shard: '', seq: 0, epoch: 0, tick: 0, kind: 'input', type: null, version: null, origin: null, ingestId: null, payload: null, digest: null, prev: ZERO_HASH };

// Entries read from a larger buffer (a fixture's read chunk, an HTTP frame stream) are copied
// into a slab shared by the entries around them, each keeping a view of its part: a copy of
// its own (Uint8Array's slice) allocated an ArrayBuffer per entry, which cost more than
// decoding it (2 µs of 4 µs per entry of the 100,000-entry fixture). An entry kept alive pins
// its slab, at most SLAB_BYTES; entries larger than a quarter slab get their own copy.
const SLAB_BYTES = 32 * 1024;
let slab = new Uint8Array(SLAB_BYTES);
let slabAt = 0;

function ownCopy(bytes: Uint8Array, offset: number, length: number): Uint8Array {
  if (length > SLAB_BYTES >> 2) return Uint8Array.prototype.slice.call(bytes, offset, offset + length);
  if (slabAt + length > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabAt = 0;
  }
  const at = slabAt;
  slab.set(bytes.subarray(offset, offset + length), at);
  slabAt = at + length;
  return new Uint8Array(slab.buffer, at, length);
}

/**
 * Decode and verify one entry from `bytes[offset, offset+length)`.
 * Refuses truncated bytes, a wrong hash, an unknown format and wrong field types, each
 * with its own code and the seq when it can be read. `seqHint` names the entry in errors
 * when its own seq cannot be read (or, for a hash mismatch, cannot be trusted).
 *
 * The hot path of every replay: the hash is checked in the wasm module's memory, then the
 * fields are read in their canonical order straight from the bytes (decodeFast); anything that
 * path does not expect goes to the general reader, which accepts or refuses it with the precise
 * error (decodeGeneral).
 *
 * `hashChecked`: the caller has itself compared the XXH3-128 of these very bytes' body with
 * their trailing hash, and nothing can have changed them since (the Kafka fetch worker does,
 * in the buffer it then hands over); the hash is then not computed again. Every other caller
 * leaves it false.
 */
export function decodeEntry(bytes: Uint8Array, offset = 0, length = bytes.length - offset, seqHint: number | null = null, hashChecked = false): Entry {
  if (length <= HASH_BYTES) {
    throw new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot decode entry${seqHint === null ? '' : ` ${seqHint}`}: expected more than ${HASH_BYTES} bytes, received ${length}`, {
      seq: seqHint,
      path: 'bytes',
      expected: `> ${HASH_BYTES} bytes`,
      received: `${length} bytes`,
    });
  }
  const bodyLength = length - HASH_BYTES;
  // The entry keeps its own bytes (stored and forwarded as they are); its hash, prev and digest
  // are views of them. A part of a larger buffer is copied first: a reader that reuses its
  // buffer would otherwise rewrite the entry under us.
  let own: Uint8Array;
  if (offset !== 0 || length !== bytes.length) own = ownCopy(bytes, offset, length);
  // A Node Buffer (a Kafka record value, a file read) is viewed as a plain Uint8Array, without
  // a copy: Buffer's subarray builds a Buffer through its own constructor, and the entry's hash,
  // prev and digest views cost twice as much from it; plain arrays also keep the code that
  // reads entries monomorphic.
  else if (bytes.constructor !== Uint8Array) own = new Uint8Array(bytes.buffer, bytes.byteOffset, length);
  else own = bytes;
  if (!hashChecked) {
    hash128Raw(own, 0, bodyLength);
    if (!hashResultEquals(own, bodyLength)) throw hashMismatch(own, 0, length, seqHint);
  }
  return decodeFast(own, bodyLength) ?? decodeGeneral(own, bodyLength, seqHint);
}

const KIND_INPUT = 'input';
const KIND_TICK = 'tick';

/** The entry kind spelled by the `n` bytes at b[p], or null. */
function kindAt(b: Uint8Array, p: number, n: number): EntryKind | null {
  let k: EntryKind;
  if (n === 5) {
    const c = b[p];
    if (c === 0x69) k = KIND_INPUT;
    else if (c === 0x65) k = 'epoch';
    else return null;
  } else if (n === 4) k = KIND_TICK;
  else if (n === 7) {
    const c = b[p];
    if (c === 0x67) k = 'genesis';
    else if (c === 0x75) k = 'upgrade';
    else return null;
  } else return null;
  for (let i = 1; i < n; i++) if (b[p + i] !== k.charCodeAt(i)) return null;
  return k;
}

// Position after the last field read by the fast path's helpers, which return -1 for "not
// what the fast path handles" (the general path then decides).
let at = 0;

/** A uint as the canonical writer writes one (fixint, uint 8/16/32, or uint 64 within 2^53); -1 otherwise. */
function uintAt(b: Uint8Array, p: number, end: number): number {
  const t = b[p]!;
  if (t < 0x80) {
    at = p + 1;
    return t;
  }
  if (t === 0xcc && p + 2 <= end) {
    at = p + 2;
    return b[p + 1]!;
  }
  if (t === 0xcd && p + 3 <= end) {
    at = p + 3;
    return (b[p + 1]! << 8) | b[p + 2]!;
  }
  if (t === 0xce && p + 5 <= end) {
    at = p + 5;
    return ((b[p + 1]! << 24) | (b[p + 2]! << 16) | (b[p + 3]! << 8) | b[p + 4]!) >>> 0;
  }
  if (t === 0xcf && p + 9 <= end) {
    const hi = ((b[p + 1]! << 24) | (b[p + 2]! << 16) | (b[p + 3]! << 8) | b[p + 4]!) >>> 0;
    if (hi >= 0x200000) return -1;
    at = p + 9;
    return hi * 0x100000000 + (((b[p + 5]! << 24) | (b[p + 6]! << 16) | (b[p + 7]! << 8) | b[p + 8]!) >>> 0);
  }
  return -1;
}

// The last string read for the shard, type and origin fields: consecutive entries mostly repeat
// them, and comparing the bytes with the last one costs less than the string cache's hash.
const MEMO_SHARD = 0;
const MEMO_TYPE = 1;
const MEMO_ORIGIN = 2;
/** The shard before the last one: a Kafka partition or a merged stream interleaves shards. */
const MEMO_SHARD_PREV = 3;
const NO_MEMO = -1;
const memo: string[] = ['', '', '', ''];

function sameBytes(s: string, b: Uint8Array, from: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) !== b[from + i]) return false;
  return true;
}

/** A short ASCII str (fixstr or str 8) at b[p], the last one of its field when the bytes match, else cached (memo >= 0) or built; undefined for anything else. */
function strAt(b: Uint8Array, p: number, end: number, memoSlot: number): string | undefined {
  const t = b[p]!;
  let n: number;
  let from: number;
  if (t >= 0xa0 && t < 0xc0) {
    n = t & 0x1f;
    from = p + 1;
  } else if (t === 0xd9 && p + 2 <= end) {
    n = b[p + 1]!;
    from = p + 2;
  } else return undefined;
  if (from + n > end) return undefined;
  if (memoSlot !== NO_MEMO) {
    const last = memo[memoSlot]!;
    if (last.length === n && sameBytes(last, b, from, n)) {
      at = from + n;
      return last;
    }
    if (memoSlot === MEMO_SHARD) {
      const prev = memo[MEMO_SHARD_PREV]!;
      if (prev.length === n && sameBytes(prev, b, from, n)) {
        memo[MEMO_SHARD_PREV] = last;
        memo[MEMO_SHARD] = prev;
        at = from + n;
        return prev;
      }
    }
  }
  const s = shortAscii(b, from, n, memoSlot !== NO_MEMO);
  if (s === null) return undefined;
  if (memoSlot === MEMO_SHARD) memo[MEMO_SHARD_PREV] = memo[MEMO_SHARD]!;
  if (memoSlot !== NO_MEMO) memo[memoSlot] = s;
  at = from + n;
  return s;
}

/**
 * The 13 fields read in order from the bytes as the canonical writer writes them; null for
 * anything else, and for every wrong value (the general path names what is wrong). The payload
 * goes through the reader; the rest is read here without building a value first.
 */
function decodeFast(b: Uint8Array, end: number): Entry | null {
  // fixarray of 13, format 1 (a positive fixint)
  if (b[0] !== 0x9d || b[1] !== ENTRY_FORMAT) return null;
  const shard = strAt(b, 2, end, MEMO_SHARD);
  if (shard === undefined) return null;
  const seq = uintAt(b, at, end);
  if (seq < 1) return null;
  const epoch = uintAt(b, at, end);
  if (epoch < 0) return null;
  const tick = uintAt(b, at, end);
  if (tick < 0 || at >= end) return null;
  let p = at;
  let t = b[p]!;
  if (t < 0xa0 || t >= 0xc0) return null;
  const kind = kindAt(b, p + 1, t & 0x1f);
  if (kind === null) return null;
  p += 1 + (t & 0x1f);
  let type: string | null = null;
  if (p >= end) return null;
  if (b[p] === 0xc0) p++;
  else {
    const s = strAt(b, p, end, MEMO_TYPE);
    if (s === undefined) return null;
    type = s;
    p = at;
  }
  let version: number | null = null;
  if (p >= end) return null;
  if (b[p] === 0xc0) p++;
  else {
    version = uintAt(b, p, end);
    if (version < 0) return null;
    p = at;
  }
  let origin: string | null = null;
  if (p >= end) return null;
  if (b[p] === 0xc0) p++;
  else {
    const s = strAt(b, p, end, MEMO_ORIGIN);
    if (s === undefined) return null;
    origin = s;
    p = at;
  }
  let ingestId: string | null = null;
  if (p >= end) return null;
  if (b[p] === 0xc0) p++;
  else {
    // Unique per input: built, not cached (they would only evict the ids that repeat).
    const s = strAt(b, p, end, NO_MEMO);
    if (s === undefined) return null;
    ingestId = s;
    p = at;
  }
  let payload: unknown;
  const r = reader;
  try {
    r.reset(b, p, end);
    payload = r.value();
  } catch {
    return null;
  }
  p = r.pos;
  let digest: Uint8Array | null = null;
  if (p + 18 > end) return null;
  t = b[p]!;
  if (t === 0xc0) p++;
  else if (t === 0xc4 && b[p + 1] === HASH_BYTES) {
    digest = b.subarray(p + 2, p + 18);
    p += 18;
  } else return null;
  if (p + 18 !== end || b[p] !== 0xc4 || b[p + 1] !== HASH_BYTES) return null;
  const f = DECODED;
  f.shard = shard;
  f.seq = seq;
  f.epoch = epoch;
  f.tick = tick;
  f.kind = kind;
  f.type = type;
  f.version = version;
  f.origin = origin;
  f.ingestId = ingestId;
  f.payload = payload;
  f.digest = digest;
  f.prev = b.subarray(p + 2, end);
  const entry = new Entry(f, b.subarray(end, end + HASH_BYTES), b);
  f.payload = null;
  return entry;
}

/** Any entry whose hash is right: the general reader, field by field, then the checks; or the precise refusal. */
function decodeGeneral(own: Uint8Array, bodyLength: number, seqHint: number | null): Entry {
  const r = reader;
  let format: unknown, shard: unknown, seq: unknown, epoch: unknown, tick: unknown, kind: unknown, type: unknown, version: unknown, origin: unknown, ingestId: unknown, payload: unknown, digest: unknown, prev: unknown;
  let fields: number;
  try {
    r.reset(own, 0, bodyLength);
    fields = r.arrayLength();
    if (fields !== ENTRY_FIELDS) return slowDecode(own, bodyLength, seqHint);
    format = r.value();
    shard = r.valueCached();
    seq = r.value();
    epoch = r.value();
    tick = r.value();
    kind = r.valueCached();
    type = r.valueCached();
    version = r.value();
    origin = r.valueCached();
    ingestId = r.value();
    payload = r.value();
    // Views of the entry's own bytes, which the entry keeps anyway.
    digest = r.hashView();
    prev = r.hashView();
  } catch {
    return slowDecode(own, bodyLength, seqHint);
  }
  if (
    r.pos !== bodyLength ||
    format !== ENTRY_FORMAT ||
    typeof shard !== 'string' ||
    !isUint(seq) ||
    seq < 1 ||
    !isUint(epoch) ||
    !isUint(tick) ||
    typeof kind !== 'string' ||
    !KIND_SET.has(kind) ||
    !isStrOrNull(type) ||
    !(version === null || isUint(version)) ||
    !isStrOrNull(origin) ||
    !isStrOrNull(ingestId) ||
    digest === undefined ||
    prev === undefined ||
    prev === null
  ) {
    return slowDecode(own, bodyLength, seqHint);
  }
  // One reused fields object: the constructor copies it.
  const f = DECODED;
  f.shard = shard;
  f.seq = seq;
  f.epoch = epoch;
  f.tick = tick;
  f.kind = kind as EntryKind;
  f.type = type;
  f.version = version;
  f.origin = origin;
  f.ingestId = ingestId;
  f.payload = payload;
  f.digest = digest as Uint8Array | null;
  f.prev = prev as Uint8Array;
  const entry = new Entry(f, own.subarray(bodyLength, bodyLength + HASH_BYTES), own);
  f.payload = null;
  return entry;
}

/** The error for an entry whose bytes do not hash to its recorded hash, with what can be read of it. */
function hashMismatch(bytes: Uint8Array, offset: number, length: number, seqHint: number | null): PlayoutError {
  const bodyEnd = offset + length - HASH_BYTES;
  const stored = bytes.subarray(bodyEnd, offset + length);
  const computed = hash128(bytes, offset, length - HASH_BYTES);
  let raw: unknown = null;
  try {
    raw = decodeCanonical(bytes, offset, bodyEnd);
  } catch {
    // Corrupt bytes need not decode; the error then names the entry by seqHint alone.
  }
  const bodySeq = Array.isArray(raw) && isUint(raw[2]) ? (raw[2] as number) : null;
  const shard = Array.isArray(raw) && typeof raw[1] === 'string' ? (raw[1] as string) : null;
  // The body is untrusted: name the entry by the position the caller read it from when it
  // knows it, since a flipped bit may sit in the seq itself.
  const seq = seqHint ?? bodySeq;
  const claims = bodySeq !== null && bodySeq !== seq ? ` (its body claims seq ${bodySeq})` : '';
  const format = Array.isArray(raw) && isUint(raw[0]) && raw[0] !== ENTRY_FORMAT ? `, or written in entry format ${raw[0]}, which this engine (format ${ENTRY_FORMAT}) cannot read` : '';
  return new PlayoutError(
    'PLAYOUT_ENTRY_HASH_MISMATCH',
    `Cannot accept ${seq === null ? 'entry' : `entry ${seq}`}${shard ? ` of shard "${shard}"` : ''}${claims}: its bytes hash to ${toHex(computed)} but it records ${toHex(stored)}; the entry is corrupt${format}`,
    { seq, shard, path: 'hash', expected: toHex(stored), received: toHex(computed) },
  );
}

/** An entry whose hash is right but whose body is not a format-1 entry: name what is wrong. Always throws. */
function slowDecode(own: Uint8Array, bodyLength: number, seqHint: number | null): never {
  let raw: unknown;
  let decodeError: unknown = null;
  try {
    raw = decodeCanonical(own, 0, bodyLength);
  } catch (err) {
    decodeError = err;
  }
  const seq = Array.isArray(raw) && isUint(raw[2]) ? (raw[2] as number) : seqHint;
  const name = seq === null ? 'entry' : `entry ${seq}`;
  const shard = Array.isArray(raw) && typeof raw[1] === 'string' ? (raw[1] as string) : null;
  if (decodeError !== null || !Array.isArray(raw)) {
    throw new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot decode ${name}: expected a msgpack array of ${ENTRY_FIELDS} fields, received ${decodeError ? `bytes that are not canonical msgpack (${(decodeError as Error).message})` : describe(raw)}`, {
      seq,
      path: 'body',
      expected: `array of ${ENTRY_FIELDS}`,
      received: decodeError ? 'invalid msgpack' : describe(raw),
      cause: decodeError ?? undefined,
    });
  }
  if (raw[0] !== ENTRY_FORMAT) {
    throw new PlayoutError('PLAYOUT_ENTRY_FORMAT_UNKNOWN', `Cannot decode ${name}${shard ? ` of shard "${shard}"` : ''}: expected format ${ENTRY_FORMAT}, received ${describe(raw[0])}`, {
      seq,
      shard,
      path: 'format',
      expected: String(ENTRY_FORMAT),
      received: describe(raw[0]),
    });
  }
  throw malformed(raw, seq);
}

const FIELD_NAMES = ['format', 'shard', 'seq', 'epoch', 'tick', 'kind', 'type', 'version', 'origin', 'ingestId', 'payload', 'digest', 'prev'] as const;

/** The slow path: run the zod schema to name the first bad field precisely. */
function malformed(raw: unknown[], seq: number | null): PlayoutError {
  const name = seq === null ? 'entry' : `entry ${seq}`;
  if (raw.length !== ENTRY_FIELDS) {
    return new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot decode ${name}: expected ${ENTRY_FIELDS} fields, received ${raw.length}`, {
      seq,
      expected: `${ENTRY_FIELDS} fields`,
      received: `${raw.length} fields`,
    });
  }
  const obj: Record<string, unknown> = { hash: new Uint8Array(HASH_BYTES) };
  FIELD_NAMES.forEach((k, i) => (obj[k] = raw[i]));
  const result = EntrySchema.safeParse(obj);
  const issue = result.success ? null : result.error.issues[0]!;
  const path = issue ? issue.path.join('.') : 'entry';
  const received = issue ? describe(issue.path.reduce<unknown>((v, k) => (v as Record<string, unknown>)?.[k as string], obj)) : 'unknown';
  return new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot decode ${name}: field ${path}: ${issue?.message ?? 'invalid'}, received ${received}`, {
    seq,
    path,
    expected: issue?.message ?? null,
    received,
  });
}

/** Check that `entry` continues the chain after an entry with `prevHash` at `prevSeq`. */
export function checkLink(entry: Entry, prevSeq: number, prevHash: Uint8Array): void {
  if (entry.seq !== prevSeq + 1) {
    throw new PlayoutError(entry.seq <= prevSeq ? 'PLAYOUT_ENTRY_DUPLICATE' : 'PLAYOUT_GAP', `Cannot chain entry ${entry.seq} of shard "${entry.shard}": expected seq ${prevSeq + 1}, received ${entry.seq}`, {
      seq: entry.seq,
      shard: entry.shard,
      expected: String(prevSeq + 1),
      received: String(entry.seq),
    });
  }
  if (!hashEquals(entry.prev, prevHash)) {
    throw new PlayoutError('PLAYOUT_CHAIN_BROKEN', `Cannot chain entry ${entry.seq} of shard "${entry.shard}": its prev ${toHex(entry.prev)} is not the hash of entry ${prevSeq}, ${toHex(prevHash)}`, {
      seq: entry.seq,
      shard: entry.shard,
      path: 'prev',
      expected: toHex(prevHash),
      received: toHex(entry.prev),
    });
  }
}

export { ZERO_HASH };

const ingestReader = new CanonicalReader();

/** What rebuilding a dedupe window reads of an entry. */
export interface EntryIngest {
  readonly seq: number;
  readonly tick: number;
  readonly kind: EntryKind;
  readonly ingestId: string | null;
}

/**
 * The seq, tick, kind and ingestId of an encoded entry (format 1) read from its first ten fields,
 * its payload and hash left alone: for bytes the store has already checked (LogStore.rangeRaw).
 * A new leader rebuilds its dedupe window from up to a minute of log; decoding and re-hashing
 * each entry for it held a switchover for a third of a second (bench/failover.bench.ts).
 * Throws PLAYOUT_ENTRY_MALFORMED when the fields are not those of format 1.
 */
export function entryIngestOf(bytes: Uint8Array): EntryIngest {
  const r = ingestReader;
  try {
    r.reset(bytes, 0, bytes.length - HASH_BYTES);
    if (r.arrayLength() !== ENTRY_FIELDS) throw new Error(`expected an array of ${ENTRY_FIELDS} fields`);
    if (r.value() !== ENTRY_FORMAT) throw new Error(`expected format ${ENTRY_FORMAT}`);
    r.valueCached(); // shard
    const seq = r.value();
    r.value(); // epoch
    const tick = r.value();
    const kind = r.valueCached();
    r.valueCached(); // type
    r.value(); // version
    r.valueCached(); // origin
    const ingestId = r.value();
    if (typeof seq !== 'number' || typeof tick !== 'number' || typeof kind !== 'string' || !(ingestId === null || typeof ingestId === 'string')) throw new Error('seq, tick, kind or ingestId of the wrong type');
    return { seq, tick, kind: kind as EntryKind, ingestId };
  } catch (err) {
    throw new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot read the ingestId of an entry: ${(err as Error).message}`, { path: 'bytes', cause: err });
  }
}

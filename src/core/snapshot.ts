// Snapshot codec.
//
// Wire format, snapshot format 1:
//   snapshot = body || hash
//   body     = canonical msgpack map of the Snapshot fields (see ShardMachine.snapshot), with
//              `tables` as { tableName: [[key, record], …] } in key order
//   hash     = XXH3-128(body), 16 raw bytes
// The hash catches torn or flipped bytes; restoring then recomputes the state digest from the
// records and checks it against `digest`, which catches a snapshot that is intact but wrong.
import { z } from 'zod';
import { CanonicalReader } from './canonical-reader.js';
import { CanonicalWriter, decodeCanonical, withPath } from './codec.js';
import { PlayoutError, describe } from './errors.js';
import { HASH_BYTES, hash128, hash128Bulk, hashEquals, toHex } from './hash.js';
import { SNAPSHOT_FORMAT, type CapturedSnapshot, type Snapshot } from './shard-machine.js';

const hash16 = z.instanceof(Uint8Array).refine((b) => b.length === HASH_BYTES, 'exactly 16 bytes');
const uint = z.number().int().nonnegative();

export const SnapshotSchema = z.strictObject({
  format: z.literal(SNAPSHOT_FORMAT),
  shard: z.string(),
  reducer: z.string(),
  reducerVersion: uint.min(1),
  tickReducerVersion: uint.min(1),
  seed: uint,
  tickMs: uint.min(1),
  params: z.unknown(),
  epoch: uint,
  tick: uint,
  seq: uint.min(1),
  lastHash: hash16,
  rng: z.array(z.number().int()).length(4),
  digest: hash16,
  tables: z.record(z.string(), z.array(z.tuple([z.string(), z.unknown()]))),
});

export function encodeSnapshot(s: Snapshot): Uint8Array {
  const w = new CanonicalWriter(1 << 16);
  try {
    w.writeValue(s);
  } catch (err) {
    throw withPath(err, s, 'snapshot');
  }
  const bodyLength = w.pos;
  w.writeRaw(hash128(w.buf, 0, bodyLength));
  return w.bytes();
}

/**
 * encodeSnapshot in steps: the generator yields after every `rowsPerStep` table rows and returns
 * the same bytes as encodeSnapshot. The snapshot must not change while it is encoded
 * (ShardMachine.snapshot returns a copy); a node encodes a capture instead
 * (encodeCapturedSnapshotSteps).
 */
export function encodeSnapshotSteps(s: Snapshot, rowsPerStep = 256): Generator<void, Uint8Array, void> {
  const { tables, ...header } = s;
  return snapshotSteps(
    s,
    header,
    Object.keys(tables).map((name) => {
      const list = tables[name]!;
      return { name, count: list.length, write: (w: CanonicalWriter, i: number) => w.writeValue(list[i]) };
    }),
    rowsPerStep,
  );
}

/**
 * A captured snapshot (ShardMachine.captureSnapshot) encoded in steps: the bytes encodeSnapshot
 * gives for the snapshot taken at the capture, while the machine goes on applying. A node encodes
 * its periodic snapshots this way, a step per turn of its event loop: encoding a 2,000-player
 * state in one go held a follower's loop for 100–250 ms (bench/http-latency.bench.ts), which
 * every input arriving meanwhile waited for. Releases the capture when done or abandoned.
 */
export function* encodeCapturedSnapshotSteps(c: CapturedSnapshot, rowsPerStep = 256): Generator<void, Uint8Array, void> {
  try {
    return yield* snapshotSteps(
      c.header,
      c.header,
      c.tables.map(({ name, capture }) => {
        const keys = capture.keys;
        return {
          name,
          count: keys.length,
          write: (w: CanonicalWriter, i: number) => capture.writeRow(w, keys[i]!),
        };
      }),
      rowsPerStep,
    );
  } finally {
    c.release();
  }
}

interface TableRows {
  name: string;
  count: number;
  /** Writes row i as [key, record]. */
  write(w: CanonicalWriter, i: number): void;
}

/**
 * The encoder behind both step encoders. A node runs it while it applies entries, so it keeps off
 * the branches of the codec that the node's own encoding never takes: V8 compiles the codec for
 * what it has seen (entries sealed, records hashed, all small), and the first time compiled code
 * meets a branch it has never run, V8 throws that code away and runs the function unoptimised until
 * it compiles it again. A node's first periodic snapshot met several at once (a writer growing to
 * hundreds of kilobytes, arrays of thousands of rows, bytes and null through writeValue, a hash over
 * more than 16 KiB): `--trace-deopt` showed writeValue, writeObject, writeArrayHeader, the compiled
 * record writers and hash128Raw thrown away, code every append runs. So each row and each header
 * field is written by a writer of its own and copied into the output here, the tables' array
 * headers are written here, and the body is hashed by hash128Bulk. Encoding a 300 KB state took
 * 19–27 ms the first time and 12–17 ms the fourth, and 9–16 and 4–8 ms since (bench/snapshot.bench.ts).
 */
function* snapshotSteps(described: unknown, header: Omit<Snapshot, 'tables'>, tables: TableRows[], rowsPerStep: number): Generator<void, Uint8Array, void> {
  const out = new SnapshotBytes();
  const w = new CanonicalWriter(4096);
  try {
    const fields = { ...header, tables: null } as Record<string, unknown>;
    // Canonical order, as CanonicalWriter orders a plain object's keys.
    const keys = Object.keys(fields).sort();
    out.header(MAP, keys.length);
    let rows = 0;
    for (const k of keys) {
      w.reset();
      w.writeString(k);
      if (k !== 'tables') {
        const v = fields[k];
        // Hashes, the rng's words and params of null without writeValue's branches for bytes,
        // arrays and null, which records and payloads may never take.
        if (v === null) w.writeNil();
        else if (v instanceof Uint8Array) w.writeBin(v);
        else if (Array.isArray(v)) {
          w.writeArrayHeader(v.length);
          for (const x of v) w.writeValue(x);
        } else w.writeValue(v);
        out.append(w);
        continue;
      }
      out.append(w);
      const sorted = [...tables].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      out.header(MAP, sorted.length);
      for (const t of sorted) {
        w.reset();
        w.writeString(t.name);
        out.append(w);
        out.header(ARRAY, t.count);
        for (let i = 0; i < t.count; i++) {
          w.reset();
          t.write(w, i);
          out.append(w);
          if (++rows === rowsPerStep) {
            rows = 0;
            yield;
          }
        }
      }
    }
  } catch (err) {
    throw withPath(err, described, 'snapshot');
  }
  return out.sealed();
}

const MAP = { fix: 0x80, u16: 0xde, u32: 0xdf };
const ARRAY = { fix: 0x90, u16: 0xdc, u32: 0xdd };

/**
 * A snapshot's bytes as snapshotSteps builds them: appended pieces, container headers, then the
 * hash. Its own growth and header code rather than a CanonicalWriter's, on purpose: see snapshotSteps.
 */
class SnapshotBytes {
  private buf = new Uint8Array(1 << 16);
  private pos = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  /** What `w` wrote since its reset. */
  append(w: CanonicalWriter): void {
    this.room(w.pos);
    this.buf.set(w.buf.subarray(0, w.pos), this.pos);
    this.pos += w.pos;
  }

  /** A msgpack map or array header for `n` elements, in its smallest form. */
  header(kind: typeof MAP, n: number): void {
    this.room(5);
    const b = this.buf;
    if (n < 16) b[this.pos++] = kind.fix | n;
    else if (n < 0x10000) {
      b[this.pos++] = kind.u16;
      b[this.pos++] = n >>> 8;
      b[this.pos++] = n & 0xff;
    } else {
      b[this.pos++] = kind.u32;
      b[this.pos++] = n >>> 24;
      b[this.pos++] = (n >>> 16) & 0xff;
      b[this.pos++] = (n >>> 8) & 0xff;
      b[this.pos++] = n & 0xff;
    }
  }

  /** The body followed by its hash, in an array of their length. */
  sealed(): Uint8Array {
    const bodyLength = this.pos;
    const out = new Uint8Array(bodyLength + HASH_BYTES);
    out.set(this.buf.subarray(0, bodyLength));
    out.set(hash128Bulk(this.buf, 0, bodyLength), bodyLength);
    return out;
  }
}

export function decodeSnapshot(bytes: Uint8Array, offset = 0, length = bytes.length - offset): Snapshot {
  const bodyEnd = checkedBodyEnd(bytes, offset, length);
  let raw: unknown;
  try {
    raw = decodeCanonical(bytes, offset, bodyEnd);
  } catch (err) {
    throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', 'Cannot decode snapshot: the body is not msgpack', { cause: err });
  }
  return checkedFields(SnapshotSchema, raw) as Snapshot;
}

/** Check an encoded snapshot's trailing hash (PLAYOUT_SNAPSHOT_CORRUPT when it does not match). */
export function checkSnapshotHash(bytes: Uint8Array): void {
  checkedBodyEnd(bytes, 0, bytes.length);
}

/** Where the body of an encoded snapshot ends, once its trailing hash is checked. */
function checkedBodyEnd(bytes: Uint8Array, offset: number, length: number): number {
  if (length <= HASH_BYTES) {
    throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot decode snapshot: expected more than ${HASH_BYTES} bytes, received ${length}`, { expected: `> ${HASH_BYTES} bytes`, received: `${length} bytes` });
  }
  const bodyEnd = offset + length - HASH_BYTES;
  const stored = bytes.subarray(bodyEnd, offset + length);
  const computed = hash128Bulk(bytes, offset, length - HASH_BYTES);
  if (!hashEquals(stored, computed)) {
    throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot decode snapshot: its bytes hash to ${toHex(computed)} but it records ${toHex(stored)}`, { expected: toHex(stored), received: toHex(computed) });
  }
  return bodyEnd;
}

/** The decoded body checked: its format first (its own code), then every field by the schema. */
function checkedFields(schema: z.ZodType, raw: unknown): unknown {
  const format = (raw as { format?: unknown } | null)?.format;
  if (format !== SNAPSHOT_FORMAT) {
    throw new PlayoutError('PLAYOUT_SNAPSHOT_FORMAT_UNKNOWN', `Cannot decode snapshot: expected format ${SNAPSHOT_FORMAT}, received ${describe(format)}`, {
      path: 'format',
      expected: String(SNAPSHOT_FORMAT),
      received: describe(format),
    });
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot decode snapshot: ${issue.path.join('.')}: ${issue.message}`, { path: issue.path.join('.'), expected: issue.message });
  }
  return r.data;
}

/** A snapshot's fields other than its tables. */
export type SnapshotHeader = Omit<Snapshot, 'tables'>;

const SnapshotHeaderSchema = SnapshotSchema.omit({ tables: true });
const headerReader = new CanonicalReader();

/**
 * The fields of a snapshot other than its tables, with the whole snapshot's hash checked and the
 * tables skipped undecoded: what a store needs to file a snapshot it is given. Decoding the tables
 * of a 100 KB snapshot took tens of milliseconds of a node's event loop at every snapshot; they are
 * decoded (and the state digest recomputed from them) where a snapshot is restored.
 */
export function readSnapshotHeader(bytes: Uint8Array, offset = 0, length = bytes.length - offset): SnapshotHeader {
  const bodyEnd = checkedBodyEnd(bytes, offset, length);
  const raw: Record<string, unknown> = {};
  const r = headerReader;
  try {
    r.reset(bytes, offset, bodyEnd);
    const t = bytes[offset]!;
    let n: number;
    if (t >= 0x80 && t <= 0x8f) {
      n = t & 0x0f;
      r.pos = offset + 1;
    } else if (t === 0xde) {
      n = msgpackLength(bytes, offset + 1, 2, bodyEnd);
      r.pos = offset + 3;
    } else if (t === 0xdf) {
      n = msgpackLength(bytes, offset + 1, 4, bodyEnd);
      r.pos = offset + 5;
    } else throw new Error(`expected a map, received type byte 0x${t.toString(16)}`);
    for (let i = 0; i < n; i++) {
      const key = r.value();
      if (typeof key !== 'string') throw new Error(`expected string keys, received ${describe(key)}`);
      if (key === 'tables') r.pos = skipMsgpack(bytes, r.pos, bodyEnd);
      else raw[key] = r.value();
    }
    if (r.pos !== bodyEnd) throw new Error(`${bodyEnd - r.pos} bytes left after the body`);
  } catch (err) {
    throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot decode snapshot: the body is not msgpack (${(err as Error).message})`, { cause: err });
  }
  return checkedFields(SnapshotHeaderSchema, raw) as SnapshotHeader;
}

function msgpackLength(b: Uint8Array, p: number, bytesN: 1 | 2 | 4, end: number): number {
  if (p + bytesN > end) throw new Error(`truncated at byte ${p}`);
  if (bytesN === 1) return b[p]!;
  if (bytesN === 2) return (b[p]! << 8) | b[p + 1]!;
  return ((b[p]! << 24) >>> 0) + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
}

/** The position after the msgpack value at `p` (any form), without decoding it. */
export function skipMsgpack(b: Uint8Array, p: number, end: number): number {
  let values = 1;
  while (values > 0) {
    values--;
    if (p >= end) throw new Error(`truncated at byte ${p}`);
    const t = b[p++]!;
    if (t < 0x80 || t >= 0xe0) continue; // fixint
    if (t < 0x90) values += 2 * (t & 0x0f);
    else if (t < 0xa0) values += t & 0x0f;
    else if (t < 0xc0) p += t & 0x1f;
    else {
      switch (t) {
        case 0xc0:
        case 0xc2:
        case 0xc3:
          break;
        case 0xc4:
        case 0xd9:
          p += 1 + msgpackLength(b, p, 1, end);
          break;
        case 0xc5:
        case 0xda:
          p += 2 + msgpackLength(b, p, 2, end);
          break;
        case 0xc6:
        case 0xdb:
          p += 4 + msgpackLength(b, p, 4, end);
          break;
        case 0xc7:
          p += 2 + msgpackLength(b, p, 1, end);
          break;
        case 0xc8:
          p += 3 + msgpackLength(b, p, 2, end);
          break;
        case 0xc9:
          p += 5 + msgpackLength(b, p, 4, end);
          break;
        case 0xcc:
        case 0xd0:
          p += 1;
          break;
        case 0xcd:
        case 0xd1:
          p += 2;
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          p += 4;
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          p += 8;
          break;
        case 0xd4:
          p += 2;
          break;
        case 0xd5:
          p += 3;
          break;
        case 0xd6:
          p += 5;
          break;
        case 0xd7:
          p += 9;
          break;
        case 0xd8:
          p += 17;
          break;
        case 0xdc:
          values += msgpackLength(b, p, 2, end);
          p += 2;
          break;
        case 0xdd:
          values += msgpackLength(b, p, 4, end);
          p += 4;
          break;
        case 0xde:
          values += 2 * msgpackLength(b, p, 2, end);
          p += 2;
          break;
        case 0xdf:
          values += 2 * msgpackLength(b, p, 4, end);
          p += 4;
          break;
        default:
          throw new Error(`unknown type byte 0x${t.toString(16)} at byte ${p - 1}`);
      }
    }
    if (p > end) throw new Error(`truncated before byte ${p}`);
  }
  return p;
}

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
import { CanonicalWriter, decodeCanonical, withPath } from './codec.js';
import { PlayoutError, describe } from './errors.js';
import { HASH_BYTES, hash128, hashEquals, toHex } from './hash.js';
import { SNAPSHOT_FORMAT, type Snapshot } from './shard-machine.js';

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

export function decodeSnapshot(bytes: Uint8Array, offset = 0, length = bytes.length - offset): Snapshot {
  if (length <= HASH_BYTES) {
    throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot decode snapshot: expected more than ${HASH_BYTES} bytes, received ${length}`, { expected: `> ${HASH_BYTES} bytes`, received: `${length} bytes` });
  }
  const bodyEnd = offset + length - HASH_BYTES;
  const stored = bytes.subarray(bodyEnd, offset + length);
  const computed = hash128(bytes, offset, length - HASH_BYTES);
  if (!hashEquals(stored, computed)) {
    throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot decode snapshot: its bytes hash to ${toHex(computed)} but it records ${toHex(stored)}`, { expected: toHex(stored), received: toHex(computed) });
  }
  let raw: unknown;
  try {
    raw = decodeCanonical(bytes, offset, bodyEnd);
  } catch (err) {
    throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', 'Cannot decode snapshot: the body is not msgpack', { cause: err });
  }
  const format = (raw as { format?: unknown } | null)?.format;
  if (format !== SNAPSHOT_FORMAT) {
    throw new PlayoutError('PLAYOUT_SNAPSHOT_FORMAT_UNKNOWN', `Cannot decode snapshot: expected format ${SNAPSHOT_FORMAT}, received ${describe(format)}`, {
      path: 'format',
      expected: String(SNAPSHOT_FORMAT),
      received: describe(format),
    });
  }
  const r = SnapshotSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot decode snapshot: ${issue.path.join('.')}: ${issue.message}`, { path: issue.path.join('.'), expected: issue.message });
  }
  return r.data as Snapshot;
}

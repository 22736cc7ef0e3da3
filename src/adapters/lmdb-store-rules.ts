// The rules of the LogStore port (src/ports/log-store.ts) as plain functions: argument
// checks, the chain check of an append, and the checks of records read back. The lmdb store
// and its simulated twin (test/sim/log-store.ts) both call these, so the twin cannot drift
// from the real store in what it accepts or refuses; the contract suite tests both.
import { Entry, SHARD_ID, decodeEntry } from '../core/entry.js';
import { PlayoutError, assert, describe, isPlayoutError } from '../core/errors.js';
import { HASH_BYTES, ZERO_HASH, hash128, hashEquals, toHex } from '../core/hash.js';
import { checkSnapshotHash, readSnapshotHeader, type SnapshotHeader } from '../core/snapshot.js';
import type { StoredHead } from '../ports/log-store.js';

export function checkShardId(shard: unknown): asserts shard is string {
  if (typeof shard !== 'string' || !SHARD_ID.test(shard)) {
    throw new PlayoutError('PLAYOUT_SHARD_ID_INVALID', `Cannot use shard id ${describe(shard)}: expected [a-z0-9][a-z0-9._-]{0,63}`, {
      path: 'shard',
      expected: '[a-z0-9][a-z0-9._-]{0,63}',
      received: describe(shard),
    });
  }
}

/** A non-negative safe integer argument (seq, tick, byte limit). */
export function checkUint(name: string, value: unknown, min = 0): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot use ${name} ${describe(value)}: expected an integer >= ${min}`, {
      path: name,
      expected: `integer >= ${min}`,
      received: describe(value),
    });
  }
}

export function checkMetaKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0 || key.length > 128) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot use meta key ${describe(key)}: expected a string of 1–128 characters`, {
      path: 'key',
      expected: 'string of 1–128 characters',
      received: describe(key),
    });
  }
}

function conflict(shard: string, seq: number, message: string, expected: string, received: string, path: string | null = null): PlayoutError {
  return new PlayoutError('PLAYOUT_STORE_CONFLICT', `Cannot append entry ${seq} to shard "${shard}": ${message}`, { shard, seq, path, expected, received });
}

/**
 * Check that `entries` continue `head` (null: the shard holds nothing) and chain among
 * themselves. Throws PLAYOUT_STORE_CONFLICT naming the first entry that does not.
 */
export function checkAppend(shard: string, entries: readonly Entry[], head: { readonly seq: number; readonly hash: Uint8Array } | null): void {
  let seq = head === null ? 0 : head.seq;
  let hash = head === null ? ZERO_HASH : head.hash;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (!(e instanceof Entry)) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot append entries[${i}] to shard "${shard}": expected an Entry (sealEntry or decodeEntry), received ${describe(e)}`, {
        shard,
        path: `entries[${i}]`,
        expected: 'Entry',
        received: describe(e),
      });
    }
    // The stored bytes are what later reads verify; an Entry whose bytes do not end in its
    // hash was built by hand, which is a bug rather than bad input.
    assert(e.bytes.length > HASH_BYTES && hashEquals(e.bytes.subarray(e.bytes.length - HASH_BYTES), e.hash), `entry ${e.seq}: bytes end with its hash`);
    if (e.shard !== shard) throw conflict(shard, e.seq, `it belongs to shard "${e.shard}"`, shard, e.shard, 'shard');
    if (e.seq !== seq + 1) {
      const why = head === null && i === 0 ? 'the shard is empty, so the log must start with its genesis at seq 1' : `expected seq ${seq + 1} (head ${seq})`;
      throw conflict(shard, e.seq, `${why}, received seq ${e.seq}`, String(seq + 1), String(e.seq), 'seq');
    }
    if (!hashEquals(e.prev, hash)) {
      throw conflict(shard, e.seq, `its prev ${toHex(e.prev)} is not the hash of entry ${seq}, ${toHex(hash)}`, toHex(hash), toHex(e.prev), 'prev');
    }
    if (e.seq === 1 && e.kind !== 'genesis') {
      throw conflict(shard, e.seq, `expected a genesis entry at seq 1, received ${e.kind}`, 'genesis', e.kind, 'kind');
    }
    seq = e.seq;
    hash = e.hash;
  }
}

export function headOfEntry(e: Entry): StoredHead {
  return { seq: e.seq, hash: e.hash, tick: e.tick, epoch: e.epoch };
}

function corrupt(shard: string, seq: number, message: string, cause?: unknown, expected: string | null = null, received: string | null = null): PlayoutError {
  return new PlayoutError('PLAYOUT_STORE_CORRUPT', `Cannot read entry ${seq} of shard "${shard}" from the store: ${message}`, { shard, seq, cause, expected, received });
}

/**
 * Decode a stored entry and check it is the record its key names. Hash and shape failures
 * become PLAYOUT_STORE_CORRUPT with the key's seq; an unknown entry format is not corruption
 * (a newer engine wrote it) and keeps its own code.
 */
export function decodeStoredEntry(shard: string, seq: number, bytes: Uint8Array): Entry {
  let e: Entry;
  try {
    e = decodeEntry(bytes, 0, bytes.length, seq);
  } catch (err) {
    if (isPlayoutError(err, 'PLAYOUT_ENTRY_FORMAT_UNKNOWN')) throw err;
    if (isPlayoutError(err)) throw corrupt(shard, seq, err.message, err, err.expected, err.received);
    throw err;
  }
  if (e.seq !== seq || e.shard !== shard) {
    throw corrupt(shard, seq, `the record holds entry ${e.seq} of shard "${e.shard}"`, undefined, `${shard}/${seq}`, `${e.shard}/${e.seq}`);
  }
  return e;
}

/** Check that entry `e`, read right after `before`, chains to it (a record swapped in from another history). */
export function checkStoredLink(shard: string, before: Entry, e: Entry): void {
  if (!hashEquals(e.prev, before.hash)) {
    throw corrupt(shard, e.seq, `its prev ${toHex(e.prev)} is not the hash of the stored entry ${before.seq}, ${toHex(before.hash)}`, undefined, toHex(before.hash), toHex(e.prev));
  }
}

// Entry wire format (src/core/entry.ts): fixarray(13), format, shard (str), seq (uint), …
// Reading the shard and seq from the first bytes lets `rangeRaw` check that a record is the
// one its key names without decoding the payload (serving a peer does not need it).
const textDecoder = new TextDecoder();

function peekShardSeq(b: Uint8Array): { shard: string; seq: number } | null {
  if (b.length < 4 || b[0] !== 0x9d || b[1] !== 0x01) return null;
  let p = 2;
  let len: number;
  const t = b[p]!;
  if (t >= 0xa0 && t <= 0xbf) {
    len = t & 0x1f;
    p += 1;
  } else if (t === 0xd9) {
    len = b[p + 1]!;
    p += 2;
  } else return null;
  if (p + len + 9 > b.length) return null;
  const shard = textDecoder.decode(b.subarray(p, p + len));
  p += len;
  const s = b[p]!;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let seq: number;
  if (s <= 0x7f) seq = s;
  else if (s === 0xcc) seq = b[p + 1]!;
  else if (s === 0xcd) seq = view.getUint16(p + 1);
  else if (s === 0xce) seq = view.getUint32(p + 1);
  else if (s === 0xcf) seq = Number(view.getBigUint64(p + 1));
  else return null;
  return { shard, seq };
}

/** Verify an encoded entry without decoding it: its hash, and the shard and seq it holds. */
export function checkRawEntry(shard: string, seq: number, bytes: Uint8Array): void {
  if (bytes.length <= HASH_BYTES) throw corrupt(shard, seq, `expected more than ${HASH_BYTES} bytes, received ${bytes.length}`);
  const body = bytes.length - HASH_BYTES;
  const computed = hash128(bytes, 0, body);
  const stored = bytes.subarray(body);
  if (!hashEquals(computed, stored)) {
    throw corrupt(shard, seq, `its bytes hash to ${toHex(computed)} but it records ${toHex(stored)}`, undefined, toHex(stored), toHex(computed));
  }
  const id = peekShardSeq(bytes);
  if (id === null) {
    // An intact record in a layout this peek does not know (a future format): decode fully.
    decodeStoredEntry(shard, seq, bytes);
    return;
  }
  if (id.seq !== seq || id.shard !== shard) {
    throw corrupt(shard, seq, `the record holds entry ${id.seq} of shard "${id.shard}"`, undefined, `${shard}/${seq}`, `${id.shard}/${id.seq}`);
  }
}

/** Verify the trailing hash of a stored snapshot (its full check happens when it is restored). */
export function checkStoredSnapshot(shard: string, tick: number, bytes: Uint8Array): void {
  const ok = bytes.length > HASH_BYTES && hashEquals(hash128(bytes, 0, bytes.length - HASH_BYTES), bytes.subarray(bytes.length - HASH_BYTES));
  if (!ok) {
    throw new PlayoutError('PLAYOUT_STORE_CORRUPT', `Cannot read the snapshot of shard "${shard}" at tick ${tick} from the store: its bytes do not match their hash`, { shard, tick });
  }
}

export interface SnapshotPoint {
  readonly tick: number;
  readonly seq: number;
  readonly lastHash: Uint8Array;
  readonly epoch: number;
  readonly bytes: number;
}

/** Decode a snapshot offered to putSnapshot and check it is the one the arguments name. */
export function checkSnapshotForPut(shard: string, tick: number, seq: number, bytes: unknown, header?: SnapshotHeader): SnapshotPoint {
  if (!(bytes instanceof Uint8Array)) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot store a snapshot of shard "${shard}": expected bytes, received ${describe(bytes)}`, { shard, path: 'bytes', expected: 'Uint8Array', received: describe(bytes) });
  }
  let s: SnapshotHeader;
  try {
    // Hash-checked whole; the tables are decoded where the snapshot is restored. A caller that
    // encoded the bytes itself gives their fields: reading them back means skipping every
    // table (tens of ms the first time in a process, on the thread that serves ingress).
    if (header !== undefined) {
      checkSnapshotHash(bytes);
      s = header;
    } else s = readSnapshotHeader(bytes);
  } catch (err) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot store the snapshot of shard "${shard}" at tick ${tick}: ${(err as Error).message}`, { shard, tick, path: 'bytes', cause: err });
  }
  if (s.shard !== shard || s.tick !== tick || s.seq !== seq) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot store a snapshot as shard "${shard}" tick ${tick} seq ${seq}: it is the snapshot of shard "${s.shard}" at tick ${s.tick}, seq ${s.seq}`, {
      shard,
      tick,
      path: 'bytes',
      expected: `${shard}@${tick}/${seq}`,
      received: `${s.shard}@${s.tick}/${s.seq}`,
    });
  }
  return { tick, seq, lastHash: Uint8Array.from(s.lastHash), epoch: s.epoch, bytes: bytes.length };
}

/** A snapshot whose head entry the log holds must carry that entry's hash (same history). */
export function checkSnapshotMatchesLog(shard: string, snap: SnapshotPoint, stored: Entry | null): void {
  if (stored === null) return;
  if (!hashEquals(stored.hash, snap.lastHash) || stored.kind !== 'tick' || stored.tick !== snap.tick) {
    throw new PlayoutError('PLAYOUT_STORE_CONFLICT', `Cannot store the snapshot of shard "${shard}" at tick ${snap.tick}: the log's entry ${snap.seq} (${stored.kind} of tick ${stored.tick}, hash ${toHex(stored.hash)}) is not the tick entry it was taken after (hash ${toHex(snap.lastHash)})`, {
      shard,
      seq: snap.seq,
      tick: snap.tick,
      expected: toHex(snap.lastHash),
      received: toHex(stored.hash),
    });
  }
}

export function refuseTruncateBelow(shard: string, seqMin: number, snapshotSeqs: readonly number[]): PlayoutError {
  return new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot truncate shard "${shard}" below seq ${seqMin}: the log may only start right after a snapshot held, expected seqMin one of ${snapshotSeqs.map((s) => s + 1).join(', ') || '(no snapshots)'}, received ${seqMin}`, {
    shard,
    path: 'seqMin',
    expected: snapshotSeqs.map((s) => s + 1).join(', ') || 'a snapshot first',
    received: String(seqMin),
  });
}

export function refuseTruncateAbove(shard: string, seqMax: number, baseSeq: number): PlayoutError {
  return new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot truncate shard "${shard}" above seq ${seqMax}: the log starts after the snapshot at seq ${baseSeq}, expected seqMax >= ${baseSeq}, received ${seqMax}`, {
    shard,
    path: 'seqMax',
    expected: `>= ${baseSeq}`,
    received: String(seqMax),
  });
}

export function refuseDeleteBase(shard: string, tick: number): PlayoutError {
  return new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot delete the snapshot of shard "${shard}" at tick ${tick}: the retained log starts right after it, so replay needs it (truncate the log past a newer snapshot first)`, {
    shard,
    tick,
    path: 'tick',
    expected: 'a snapshot that is not the log base',
    received: String(tick),
  });
}

// Sealed records: every value the lmdb store keeps besides entries and snapshots (which carry
// their own hash) is written as canonical msgpack || XXH3-128 of it, so a flipped bit in a
// digest, a snapshot index or a shard's base is reported as PLAYOUT_STORE_CORRUPT instead of
// being believed (a wrong base hash would make the store refuse or accept the wrong chain).
import { decodeCanonical, encodeCanonical } from '../core/codec.js';
import { PlayoutError } from '../core/errors.js';
import { HASH_BYTES, hash128, hashEquals } from '../core/hash.js';

export function sealRecord(value: unknown, what = 'record'): Uint8Array {
  const body = encodeCanonical(value, what);
  const out = new Uint8Array(body.length + HASH_BYTES);
  out.set(body, 0);
  out.set(hash128(body), body.length);
  return out;
}

/** The value of a sealed record, or PLAYOUT_STORE_CORRUPT naming `what` (and the tick, if any). */
export function openSealed(bytes: Uint8Array, what: string, tick: number | null = null): unknown {
  const body = bytes.length - HASH_BYTES;
  if (body <= 0 || !hashEquals(hash128(bytes, 0, body), bytes.subarray(body))) {
    throw new PlayoutError('PLAYOUT_STORE_CORRUPT', `Cannot read ${what} from the store: its bytes do not match their hash`, { tick });
  }
  try {
    return decodeCanonical(bytes, 0, body);
  } catch (err) {
    throw new PlayoutError('PLAYOUT_STORE_CORRUPT', `Cannot read ${what} from the store: it is not msgpack`, { tick, cause: err });
  }
}

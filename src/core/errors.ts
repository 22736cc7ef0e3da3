// The registry of operating errors. It imports nothing, so every layer can use it.
//
// Codes are permanent: tests and operators match on them. Messages may improve.
// Every message states the action, the input, what was expected and what was received.
// Bugs (broken invariants) are not here: they are `assert` failures and stop the shard.

export const ERROR_CODES = {
  PLAYOUT_INVALID_ARGUMENT: { retriable: false, doc: 'A function, CLI or API argument does not match its schema.' },
  PLAYOUT_CONFIG_INVALID: { retriable: false, doc: 'A region config file does not match its schema, or names an environment variable that is not set.' },
  PLAYOUT_UNAUTHENTICATED: { retriable: false, doc: 'An HTTP request carries no bearer token or an unknown one (401); nothing was changed.' },
  PLAYOUT_FORBIDDEN: { retriable: false, doc: 'An HTTP request carries a valid token of a scope that may not call this route (403); nothing was changed.' },
  PLAYOUT_BODY_TOO_LARGE: { retriable: false, doc: 'An HTTP body exceeds the node\'s body limit (413); nothing was changed.' },
  PLAYOUT_BODY_MALFORMED: { retriable: false, doc: 'An HTTP body is not valid JSON or has an unsupported content type; nothing was changed.' },
  PLAYOUT_ROUTE_NOT_FOUND: { retriable: false, doc: 'No HTTP route has this method and path.' },
  PLAYOUT_FRAME_TOO_LARGE: { retriable: false, doc: 'A replication frame exceeds the frame size limit, or its length prefix is torn.' },
  PLAYOUT_TOO_MANY_STREAMS: { retriable: true, doc: 'A node already serves its limit of open replication streams (429).' },
  PLAYOUT_NOT_LEADER: { retriable: false, doc: 'Inputs were sent to a region that does not lead the shard (421); the response names the leader.' },
  PLAYOUT_SHARD_EXISTS: { retriable: false, doc: 'A shard with this id already exists on the node (409).' },
  PLAYOUT_SHARD_STOPPED: { retriable: false, doc: 'The shard stopped after a fork, a reducer failure or a store failure; an operator must act (503).' },
  PLAYOUT_OVERLOADED: { retriable: true, doc: 'The shard\'s ingress queue is full; retry after a short delay (503).' },
  PLAYOUT_ENTRY_FORMAT_UNKNOWN: { retriable: false, doc: 'An entry declares a format version this engine cannot decode.' },
  PLAYOUT_ENTRY_MALFORMED: { retriable: false, doc: 'An entry does not decode to the entry shape (wrong field type, truncated bytes, not msgpack).' },
  PLAYOUT_ENTRY_HASH_MISMATCH: { retriable: false, doc: 'An entry\'s stored hash does not equal the hash of its bytes: the entry is corrupt.' },
  PLAYOUT_CHAIN_BROKEN: { retriable: false, doc: 'An entry\'s `prev` does not equal the hash of the entry before it.' },
  PLAYOUT_ENTRY_DUPLICATE: { retriable: false, doc: 'An entry with a seq already applied was offered again (same hash).' },
  PLAYOUT_FORK: { retriable: false, doc: 'An entry with a seq already applied was offered with a different hash: two histories exist.' },
  PLAYOUT_GAP: { retriable: true, doc: 'An entry arrived with a seq beyond head+1; the missing range must be fetched first.' },
  PLAYOUT_RANGE_NOT_RETAINED: { retriable: false, doc: 'A peer was asked for a range whose start it no longer (or does not yet) hold; ask another peer, or bootstrap from a snapshot.' },
  PLAYOUT_RANGE_REFUSED: { retriable: false, doc: 'A repaired range was refused: it does not hash-chain to the local head (or to the entry after it), or it is not the range asked for. The peer that sent it is penalised.' },
  PLAYOUT_GAP_UNREPAIRABLE: { retriable: true, doc: 'No reachable peer holds the missing range and none can serve a snapshot to bootstrap from; the follower keeps retrying.' },
  PLAYOUT_PEER_UNAVAILABLE: { retriable: true, doc: 'A peer did not answer: connection refused or reset, timeout, or a server error.' },
  PLAYOUT_SHARD_QUARANTINED: { retriable: true, doc: 'The shard is quarantined after a desync: it keeps receiving entries but neither applies them nor serves its state until resynced.' },
  PLAYOUT_OUT_OF_ORDER: { retriable: false, doc: 'An entry\'s tick or epoch goes backwards, or it belongs to another shard.' },
  PLAYOUT_GENESIS_INVALID: { retriable: false, doc: 'The genesis entry is missing, not at seq 1, or its parameters are invalid.' },
  PLAYOUT_REDUCER_UNKNOWN: { retriable: false, doc: 'The log names a reducer name or version that is not registered.' },
  PLAYOUT_REDUCER_FAILED: { retriable: false, doc: 'A reducer function threw; the shard stops because its state may be half-updated.' },
  PLAYOUT_DETERMINISM_VIOLATION: { retriable: false, doc: 'In checked mode a reducer touched the wall clock, unseeded randomness (Math random, crypto UUIDs) or timers.' },
  PLAYOUT_FROZEN_RECORD: { retriable: false, doc: 'In checked mode a reducer wrote to a record obtained with `get` instead of `mut`.' },
  PLAYOUT_VALUE_NOT_CANONICAL: { retriable: false, doc: 'A value cannot be encoded canonically (undefined, a function, a Map, NaN, a lone surrogate, a `__proto__` key …).' },
  PLAYOUT_INPUT_INVALID: { retriable: false, doc: 'An input does not match the zod schema of its (type, version); it is never sequenced.' },
  PLAYOUT_INPUT_TYPE_UNKNOWN: { retriable: false, doc: 'An input names a type or a payload version the reducer does not declare.' },
  PLAYOUT_DIGEST_MISMATCH: { retriable: false, doc: 'A tick digest differs from the leader\'s digest carried by the log: a desync.' },
  PLAYOUT_DIGEST_DRIFT: { retriable: false, doc: 'In checked mode the incremental digest differs from a full recomputation: an engine bug or a mutated frozen record.' },
  PLAYOUT_SNAPSHOT_CORRUPT: { retriable: false, doc: 'A snapshot fails its hash or its recomputed digest differs from the digest it records.' },
  PLAYOUT_SNAPSHOT_FORMAT_UNKNOWN: { retriable: false, doc: 'A snapshot declares a format version this engine cannot decode.' },
  PLAYOUT_SHARD_ID_INVALID: { retriable: false, doc: 'A shard id does not match [a-z0-9][a-z0-9._-]{0,63}.' },
  PLAYOUT_SEQUENCER_FENCED: { retriable: false, doc: 'The sequencer was asked to sequence after it was fenced or stopped.' },
  PLAYOUT_EPOCH_FENCED: { retriable: false, doc: 'An entry was refused because its epoch ended (or was fenced by a failover) before its seq: it belongs to a history the shard no longer follows.' },
  PLAYOUT_FENCE_CONFLICT: { retriable: false, doc: 'A region refused to fence a shard for a failover: it already promised that epoch (or a later one) to another candidate, or the epoch is already established.' },
  PLAYOUT_FAILOVER_NO_MAJORITY: { retriable: true, doc: 'A failover could not reach, or could not fence, a majority of the shard\'s regions; nothing was promoted.' },
  PLAYOUT_FAILOVER_LOSS_UNACCEPTED: { retriable: false, doc: 'A failover would lose entries (the old leader is unreachable or holds entries no fenced region has) and --accept-loss was not given; nothing was promoted.' },
  PLAYOUT_FAILOVER_TARGET_UNFIT: { retriable: false, doc: 'The failover target cannot lead the shard: it does not hold it, is unreachable, quarantined or stopped.' },
  PLAYOUT_FAILOVER_IN_PROGRESS: { retriable: true, doc: 'The shard is between two epochs: a failover fenced it and its new leader does not sequence yet (503 with Retry-After).' },
  PLAYOUT_FAILOVER_INCOMPLETE: { retriable: true, doc: 'A failover fenced a majority but the target did not finish catching up or appending its epoch entry; the shard has no leader until a failover is executed again.' },
  PLAYOUT_DIVERGENT_SUFFIX: { retriable: false, doc: 'A region holds entries beyond the end of their epoch (a returning old leader): they were truncated into a quarantine report and the region rejoined as a follower.' },
  PLAYOUT_KAFKA_UNAVAILABLE: { retriable: true, doc: 'A Kafka broker cannot be reached or did not acknowledge in time (connection refused, request timeout, no leader); nothing was lost, retry.' },
  PLAYOUT_KAFKA_REFUSED: { retriable: false, doc: 'A Kafka broker refused a request for good (a record larger than the broker accepts, an invalid topic config, not authorized); retrying the same request cannot succeed.' },
  PLAYOUT_KAFKA_TOPIC_MISMATCH: { retriable: false, doc: 'A Kafka topic exists with another partition count than configured: shards would map to other partitions.' },
  PLAYOUT_FIXTURE_FORMAT_UNKNOWN: { retriable: false, doc: 'A fixture file is not a .plog file or declares an unknown format version.' },
  PLAYOUT_FIXTURE_CORRUPT: { retriable: false, doc: 'A fixture file is truncated or a frame is torn.' },
  PLAYOUT_SHARD_NOT_FOUND: { retriable: false, doc: 'The source holds no such shard.' },
  PLAYOUT_SOURCE_NOT_FOUND: { retriable: false, doc: 'The source path or URL does not exist or cannot be read.' },
  PLAYOUT_STORE_CORRUPT: { retriable: false, doc: 'A record read from the store fails its checks (torn write, flipped bits).' },
  PLAYOUT_STORE_CONFLICT: { retriable: false, doc: 'An append does not continue the stored log (wrong seq or prev).' },
  PLAYOUT_STORE_WRITE_FAILED: { retriable: true, doc: 'A durable write failed (I/O error, disk full, a crash); nothing of it was stored and the store is still consistent.' },
  PLAYOUT_TICK_NOT_RETAINED: { retriable: false, doc: 'The requested tick is older than every retained snapshot or newer than the log.' },
} as const satisfies Record<string, { retriable: boolean; doc: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorDetails {
  /** Path of the offending field, e.g. `entries[3].payload.x`. */
  path?: string | null;
  expected?: string | null;
  received?: string | null;
  seq?: number | null;
  tick?: number | null;
  shard?: string | null;
  cause?: unknown;
}

export class PlayoutError extends Error {
  override readonly name = 'PlayoutError';
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly path: string | null;
  readonly expected: string | null;
  readonly received: string | null;
  readonly seq: number | null;
  readonly tick: number | null;
  readonly shard: string | null;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.retriable = ERROR_CODES[code].retriable;
    this.path = details.path ?? null;
    this.expected = details.expected ?? null;
    this.received = details.received ?? null;
    this.seq = details.seq ?? null;
    this.tick = details.tick ?? null;
    this.shard = details.shard ?? null;
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      retriable: this.retriable,
      path: this.path,
      expected: this.expected,
      received: this.received,
      seq: this.seq,
      tick: this.tick,
      shard: this.shard,
    };
  }
}

export function isPlayoutError(err: unknown, code?: ErrorCode): err is PlayoutError {
  return err instanceof PlayoutError && (code === undefined || err.code === code);
}

/** A broken invariant: a bug, not an operating error. The shard stops. */
export class AssertionFailed extends Error {
  override readonly name = 'AssertionFailed';
}

export function assert(condition: unknown, why: string): asserts condition {
  if (!condition) throw new AssertionFailed(why);
}

/** Describe a received value briefly for an error message. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return value.length > 40 ? `string "${value.slice(0, 40)}…"` : `string "${value}"`;
  if (typeof value === 'number') return `number ${value}`;
  if (typeof value === 'bigint') return `bigint ${value}`;
  if (typeof value === 'boolean') return `boolean ${value}`;
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (Array.isArray(value)) return `array of ${value.length}`;
  if (typeof value === 'function') return 'function';
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return `${proto?.constructor?.name ?? 'object'} instance`;
  return 'object';
}

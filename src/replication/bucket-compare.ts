// Both sides of the bucket protocol (src/ports/peer-client.ts): what a region answers about
// its state at a tick, and how the asking region turns the answers into named records.
//
// Two states agree when their digests agree; a table agrees when its sum does; within a table
// the 4,096 bucket sums narrow the difference to a few buckets, whose records are then shipped
// and diffed. Two round trips and O(differing buckets) records, whatever the state's size.
import { encodeCanonical } from '../core/codec.js';
import { PlayoutError } from '../core/errors.js';
import { hashEquals } from '../core/hash.js';
import { BUCKETS, type StateTable } from '../core/state-table.js';
import type { BucketsAnswer, BucketsQuery, RecordsAnswer, RecordsQuery, TableBuckets } from '../ports/peer-client.js';

/** At most this many buckets per records query: bounds one answer (and one request line). */
export const BUCKETS_PER_QUERY_MAX = 64;
const SUM_BYTES = 16;

/** A shard's state at a closed tick, as the bucket protocol reads it (a ShardMachine at that boundary). */
export interface TickState {
  readonly tick: number;
  /** Seq of the tick entry that closed it. */
  readonly seq: number;
  readonly digest: Uint8Array;
  readonly tables: Readonly<Record<string, StateTable>>;
}

/** Every table's sum, by name. */
export function tableSums(state: TickState): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const name of Object.keys(state.tables).sort()) out[name] = state.tables[name]!.digest();
  return out;
}

/** Round 1, answering side: table sums, and bucket sums of the tables that differ from the asker's. */
export function answerBuckets(state: TickState, query: BucketsQuery): BucketsAnswer {
  if (query.tick !== state.tick) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot answer buckets of tick ${query.tick}: the state given is at tick ${state.tick}`, {
      path: 'tick',
      expected: String(state.tick),
      received: String(query.tick),
    });
  }
  const tables: TableBuckets[] = [];
  for (const name of Object.keys(state.tables).sort()) {
    const t = state.tables[name]!;
    const sum = t.digest();
    const theirs = query.tableSums === null ? null : (query.tableSums[name] ?? null);
    const differs = query.tableSums === null || theirs === null || !hashEquals(theirs, sum);
    tables.push({ table: name, sum, bucketSums: differs ? t.bucketSums() : null });
  }
  return { tick: state.tick, seq: state.seq, digest: state.digest, tables };
}

/** Round 2, answering side: the records of the buckets asked for. */
export function answerRecords(state: TickState, query: RecordsQuery): RecordsAnswer {
  const t = state.tables[query.table];
  if (t === undefined) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot answer records of table "${query.table}": expected one of ${Object.keys(state.tables).sort().join(', ')}`, {
      path: 'table',
      expected: Object.keys(state.tables).sort().join(', '),
      received: query.table,
    });
  }
  checkBucketList(query.buckets);
  const records: [string, unknown][] = [];
  for (const b of query.buckets) for (const key of t.keysInBucket(b)) records.push([key, t.peek(key)]);
  records.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { tick: state.tick, table: query.table, buckets: [...query.buckets], records };
}

export function checkBucketList(buckets: readonly number[]): void {
  if (buckets.length === 0 || buckets.length > BUCKETS_PER_QUERY_MAX) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot query buckets: expected 1–${BUCKETS_PER_QUERY_MAX} buckets, received ${buckets.length}`, {
      path: 'buckets',
      expected: `1–${BUCKETS_PER_QUERY_MAX} buckets`,
      received: String(buckets.length),
    });
  }
  for (let i = 0; i < buckets.length; i++) {
    const b = buckets[i]!;
    if (!Number.isInteger(b) || b < 0 || b >= BUCKETS || (i > 0 && b <= buckets[i - 1]!)) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot query buckets: expected ascending integers in [0, ${BUCKETS - 1}], received ${String(b)} at buckets[${i}]`, {
        path: `buckets[${i}]`,
        expected: `ascending integer in [0, ${BUCKETS - 1}]`,
        received: String(b),
      });
    }
  }
}

/** Buckets whose sums differ between a local table and a peer's 4,096 × 16 bytes of bucket sums. */
export function differingBuckets(local: StateTable, peerBucketSums: Uint8Array): number[] {
  if (peerBucketSums.length !== BUCKETS * SUM_BYTES) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot compare bucket sums of table "${local.name}": expected ${BUCKETS * SUM_BYTES} bytes, received ${peerBucketSums.length}`, {
      path: 'bucketSums',
      expected: `${BUCKETS * SUM_BYTES} bytes`,
      received: `${peerBucketSums.length} bytes`,
    });
  }
  const mine = local.bucketSums();
  const out: number[] = [];
  for (let b = 0; b < BUCKETS; b++) {
    const at = b * SUM_BYTES;
    for (let i = 0; i < SUM_BYTES; i++) {
      if (mine[at + i] !== peerBucketSums[at + i]) {
        out.push(b);
        break;
      }
    }
  }
  return out;
}

/** One record that differs; a side that lacks the key has `present: false` and value null. */
export interface RecordDiff {
  readonly table: string;
  readonly key: string;
  readonly localPresent: boolean;
  readonly local: unknown;
  readonly peerPresent: boolean;
  readonly peer: unknown;
}

/**
 * Diff the local records of `buckets` against the peer's answer: keys on one side only, and
 * keys whose canonical encodings differ (the same comparison the digest makes).
 */
export function diffRecords(local: StateTable, answer: RecordsAnswer): RecordDiff[] {
  const peer = new Map<string, unknown>();
  for (const [k, v] of answer.records) peer.set(k, v);
  const keys = new Set<string>(peer.keys());
  for (const b of answer.buckets) for (const k of local.keysInBucket(b)) keys.add(k);
  const out: RecordDiff[] = [];
  for (const key of [...keys].sort()) {
    const localPresent = local.has(key);
    const peerPresent = peer.has(key);
    const lv = localPresent ? local.peek(key) : null;
    const pv = peerPresent ? peer.get(key) : null;
    if (localPresent && peerPresent && bytesEqual(encodeCanonical(lv), encodeCanonical(pv))) continue;
    out.push({ table: local.name, key, localPresent, local: lv, peerPresent, peer: pv });
  }
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

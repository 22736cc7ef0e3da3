// Which partition of a playout topic holds a shard.
//
// Every playout record's key is its shard id, and the partition is the one the Java client's
// default partitioner picks for that key: murmur2(utf8(key)) & 0x7fffffff, modulo the partition
// count. kafkajs 2 (DefaultPartitioner) and the Java client agree on it, so a node can tell
// from its group assignment which shards it serves. librdkafka clients (kcat, confluent-kafka-*)
// default to another hash (crc32): they must set `partitioner=murmur2_random` (docs/kafka.md).
import { assert } from '../core/index.js';

const encoder = new TextEncoder();

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  const m = 0x5bd1e995;
  const r = 24;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = (data[i4]! & 0xff) | ((data[i4 + 1]! & 0xff) << 8) | ((data[i4 + 2]! & 0xff) << 16) | ((data[i4 + 3]! & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> r;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  // The Java switch falls through from case 3 to case 1; spelled out here.
  const tail = length & ~3;
  const rest = length & 3;
  if (rest === 3) h ^= (data[tail + 2]! & 0xff) << 16;
  if (rest >= 2) h ^= (data[tail + 1]! & 0xff) << 8;
  if (rest >= 1) {
    h ^= data[tail]! & 0xff;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition (0-based) of `shard` in a topic of `partitions` partitions. */
export function partitionOf(shard: string, partitions: number): number {
  assert(Number.isInteger(partitions) && partitions >= 1, 'a topic has at least one partition');
  return (murmur2(encoder.encode(shard)) & 0x7fffffff) % partitions;
}

// Kafka record batches read without kafkajs' per-record decoding, for the fetch worker
// (kafka-fetch-worker.ts).
//
// kafkajs decodes every record of a fetch response into an object before a consumer sees it: a
// Decoder and a Buffer per record, its key and value as Buffers, its offset and timestamp each
// parsed from a decimal string, added as a BigInt and printed back, a headers object; Batch then
// parses every offset again to filter the records before the fetched offset. That is about 2 µs
// of CPU per record on this project's machines (bench/kafka.bench.ts, the bare kafkajs consumer),
// more than a follower spends applying the entry it carries.
//
// installRecordBatchReader() replaces kafkajs' decoder of a partition's record set (the module
// every Fetch response version from 4 on calls) in this thread's kafkajs with one that reads each
// plain record batch (magic 2, uncompressed, neither transactional nor a control batch: what
// KafkaLogPublisher produces) as a single RecordRegion message: the batch's records left as
// bytes, with its last offset as the message offset, so kafkajs' Batch, offset resolution and lag
// work unchanged at batch granularity. Every other batch (compressed, transactional, control,
// legacy message sets) goes through kafkajs' own decoder, and comes out as kafkajs messages.
// readRegionRecords() then walks a region's records (varints, no objects).
//
// Only the fetch worker installs it: its kafkajs hosts no consumer but WorkerConsumer's, whose
// eachBatch understands regions. kafkajs 2.2.x (its last release) is the version read here.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The record set of a batch, as fetched. Marked so a consumer tells it from a kafkajs message. */
export class RecordRegion {
  readonly region = true;
  // What kafkajs' Batch, filterAbortedMessages and its runner read of a message.
  readonly key = null;
  readonly value = null;
  readonly headers = {};
  readonly isControlRecord = false;
  readonly batchContext: { readonly producerId: string; readonly inTransaction: false };
  /** The batch's last offset, as kafkajs gives message offsets. */
  readonly offset: string;

  constructor(
    /** The fetch response's record set; the records of this batch are bytes [start, end). */
    readonly bytes: Uint8Array,
    readonly start: number,
    readonly end: number,
    /** Offset of the batch's first record (number: below 2^53, as every real offset). */
    readonly baseOffset: number,
    readonly count: number,
    lastOffset: number,
    producerId: string,
  ) {
    this.offset = String(lastOffset);
    this.batchContext = { producerId, inTransaction: false };
  }

  /** The same records, copied to `bytes[at…]`. */
  movedTo(bytes: Uint8Array, at: number): RecordRegion {
    return new RecordRegion(bytes, at, at + (this.end - this.start), this.baseOffset, this.count, Number(this.offset), this.batchContext.producerId);
  }
}

/** A record of a region, as readRegionRecords reports it: positions in the region's `bytes`. */
export interface RegionRecordSink {
  (offset: number, keyAt: number, keyLength: number, valueAt: number, valueLength: number): void;
}

// Cursor of the varint reader below (module state rather than an object per call).
let pos = 0;

/** A zigzag varint (int32) at b[pos]. */
function varint(b: Uint8Array): number {
  let u = 0;
  let shift = 0;
  for (;;) {
    if (shift > 28) throw new Error('varint longer than 5 bytes');
    const c = b[pos++]!;
    if (c === undefined) throw new Error('record truncated');
    u |= (c & 0x7f) << shift;
    if (c < 0x80) break;
    shift += 7;
  }
  return (u >>> 1) ^ -(u & 1);
}

function skipVarint(b: Uint8Array): void {
  for (let n = 0; n < 10; n++) if (b[pos++]! < 0x80) return;
  throw new Error('varlong longer than 10 bytes');
}

/**
 * Calls `sink` for each record of the region, in order. A null key or value has length -1.
 * Throws an Error naming what is wrong when the bytes are not records of a magic-2 batch.
 */
export function readRegionRecords(r: RecordRegion, sink: RegionRecordSink): void {
  const b = r.bytes;
  pos = r.start;
  for (let i = 0; i < r.count; i++) {
    const length = varint(b);
    const recordEnd = pos + length;
    if (length < 0 || recordEnd > r.end) throw new Error(`record ${i} of the batch at offset ${r.baseOffset} overruns its batch`);
    pos++; // attributes
    skipVarint(b); // timestamp delta (a varlong)
    const offsetDelta = varint(b);
    const keyLength = varint(b);
    const keyAt = pos;
    if (keyLength > 0) pos += keyLength;
    const valueLength = varint(b);
    const valueAt = pos;
    if (valueLength > 0) pos += valueLength;
    if (pos > recordEnd) throw new Error(`record ${i} of the batch at offset ${r.baseOffset} overruns its length`);
    sink(r.baseOffset + offsetDelta, keyAt, keyLength, valueAt, valueLength);
    // Headers are skipped: the record's length says where the next one starts.
    pos = recordEnd;
  }
}

// Batch attributes (Kafka's DefaultRecordBatch): compression codec in bits 0-2, transactional, control.
const COMPRESSION_MASK = 0x07;
const TRANSACTIONAL_FLAG = 0x10;
const CONTROL_FLAG = 0x20;
const MAGIC_OFFSET = 16;
/** baseOffset .. recordsCount: the records start here. */
const RECORDS_AT = 61;
/** Bytes before batchLength counts (baseOffset, batchLength). */
const LOG_OVERHEAD = 12;
const TWO_32 = 2 ** 32;

interface KafkajsDecoder {
  buffer: Buffer;
  offset: number;
  readInt32(): number;
  canReadBytes(n: number): boolean;
  readBytes(n: number): Buffer;
}
type DecodeMessages = (decoder: KafkajsDecoder) => Promise<unknown[]>;
type RecordBatchDecoder = (decoder: KafkajsDecoder) => Promise<{ records: unknown[] }>;

/** The int64 at b[p] as a number, or NaN past 2^53 (such offsets go through kafkajs' decoder). */
function int64At(b: Buffer, p: number): number {
  const hi = b.readInt32BE(p);
  if (hi < 0 || hi >= 0x200000) return NaN;
  return hi * TWO_32 + b.readUInt32BE(p + 4);
}

/** The parts of kafkajs (2.2.x) the reader falls back on. */
export interface KafkajsRecordDecoders {
  /** kafkajs' decoder of one record batch (any codec, control and transactional batches). */
  decodeBatch: RecordBatchDecoder;
  Decoder: new (b: Buffer) => KafkajsDecoder;
}

/** kafkajs' own modules, loaded from its files (they are not exported), or null if they are not there. */
export function kafkajsRecordDecoders(): KafkajsRecordDecoders | null {
  const require = createRequire(import.meta.url);
  try {
    const root = dirname(require.resolve('kafkajs'));
    const decodeBatch = require(join(root, 'src/protocol/recordBatch/v0/decoder.js')) as RecordBatchDecoder;
    const Decoder = require(join(root, 'src/protocol/decoder.js')) as new (b: Buffer) => KafkajsDecoder;
    return typeof decodeBatch === 'function' && typeof Decoder === 'function' ? { decodeBatch, Decoder } : null;
  } catch {
    return null;
  }
}

/**
 * The messages of a partition's record set (magic-2 batches back to back, as a fetch returns
 * them): a RecordRegion per plain batch, kafkajs' messages for the others; a batch cut short
 * at the end is left out (the next fetch starts there).
 */
export async function readRecordSet(set: Buffer, kafkajs: KafkajsRecordDecoders): Promise<unknown[]> {
  const out: unknown[] = [];
  let p = 0;
  while (set.length - p >= RECORDS_AT) {
    const batchEnd = p + LOG_OVERHEAD + set.readInt32BE(p + 8);
    if (batchEnd > set.length) break;
    const attributes = set.readInt16BE(p + 21);
    const baseOffset = int64At(set, p);
    const count = set.readInt32BE(p + 57);
    if (set.readInt8(p + MAGIC_OFFSET) !== 2 || (attributes & (COMPRESSION_MASK | TRANSACTIONAL_FLAG | CONTROL_FLAG)) !== 0 || Number.isNaN(baseOffset) || count < 0) {
      try {
        const batch = await kafkajs.decodeBatch(new kafkajs.Decoder(set.subarray(p)));
        for (const m of batch.records) out.push(m);
      } catch (err) {
        if ((err as Error).name === 'KafkaJSPartialMessageError') break;
        throw err;
      }
    } else if (count > 0) {
      const lastOffset = baseOffset + set.readInt32BE(p + 23);
      const producerId = set.readBigInt64BE(p + 43).toString();
      out.push(new RecordRegion(set, p + RECORDS_AT, batchEnd, baseOffset, count, lastOffset, producerId));
    }
    p = batchEnd;
  }
  return out;
}

let installed: boolean | null = null;

/**
 * Install the record-batch reader in this thread's kafkajs (see the top of this file). Returns
 * false, leaving kafkajs as it is, when kafkajs already decoded a fetch response in this thread
 * (its response modules hold the old decoder) or its files are not where 2.2.x has them.
 */
export function installRecordBatchReader(): boolean {
  if (installed !== null) return installed;
  installed = false;
  const require = createRequire(import.meta.url);
  const kafkajs = kafkajsRecordDecoders();
  if (kafkajs === null) return false;
  const root = dirname(require.resolve('kafkajs'));
  const decodeMessagesPath = join(root, 'src/protocol/requests/fetch/v4/decodeMessages.js');
  const responsePaths = [4, 5, 6, 7, 8, 9, 10, 11].map((v) => join(root, `src/protocol/requests/fetch/v${v}/response.js`));
  if (responsePaths.some((p) => require.cache[p] !== undefined)) return false;
  let original: DecodeMessages;
  try {
    original = require(decodeMessagesPath) as DecodeMessages;
  } catch {
    return false;
  }
  const cached = require.cache[decodeMessagesPath];
  if (cached === undefined || typeof original !== 'function') return false;

  const decodeMessages: DecodeMessages = async (decoder) => {
    const at = decoder.offset;
    const buf = decoder.buffer;
    // Peek: the record set's size, then its first batch's magic byte. Anything but magic 2
    // (legacy message sets) is kafkajs' to decode.
    if (!decoder.canReadBytes(4 + MAGIC_OFFSET + 1)) return original(decoder);
    const size = buf.readInt32BE(at);
    if (size <= 0 || !decoder.canReadBytes(4 + size) || buf.readInt8(at + 4 + MAGIC_OFFSET) !== 2) return original(decoder);
    decoder.readInt32();
    return readRecordSet(decoder.readBytes(size), kafkajs);
  };
  cached.exports = decodeMessages;
  installed = true;
  return true;
}

// The fetch worker's record-batch reader against kafkajs' own decoding of the same bytes, encoded
// by kafkajs' encoder (plain, with headers, null keys and values, gzip, transactional, cut short).
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RecordRegion, kafkajsRecordDecoders, readRecordSet, readRegionRecords } from '../../src/adapters/kafka-record-batches.js';
import { Rng } from '../../src/core/index.js';

const require = createRequire(import.meta.url);
const root = dirname(require.resolve('kafkajs'));
type Encoded = { buffer: Buffer };
const { RecordBatch } = require(join(root, 'src/protocol/recordBatch/v0/index.js')) as { RecordBatch: (o: object) => Promise<Encoded> };
const Record = require(join(root, 'src/protocol/recordBatch/record/v0/index.js')) as (o: object) => Encoded;
const Long = require(join(root, 'src/utils/long.js')) as { fromValue(v: number | string): unknown };
const GZIP = 1;

interface Rec {
  offset: string;
  key: string | null;
  value: string | null;
}

const decoders = kafkajsRecordDecoders()!;

async function batchOf(firstOffset: number, recs: { key: Buffer | null; value: Buffer | null; headers?: Record<string, string> }[], options: { compression?: number; transactional?: boolean } = {}): Promise<Buffer> {
  const records = recs.map((r, i) => Record({ offsetDelta: i, timestampDelta: i * 1000, key: r.key, value: r.value, headers: r.headers ?? {} }));
  const b = await RecordBatch({ firstOffset: Long.fromValue(firstOffset), lastOffsetDelta: recs.length - 1, records, producerId: Long.fromValue(7), ...options });
  return b.buffer;
}

/** What a consumer sees of the messages: a region's records read out, kafkajs' messages as they are. */
function flatten(messages: unknown[]): Rec[] {
  const out: Rec[] = [];
  const text = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString('latin1'));
  for (const m of messages) {
    if (m instanceof RecordRegion) {
      readRegionRecords(m, (offset, keyAt, keyLength, valueAt, valueLength) =>
        out.push({ offset: String(offset), key: keyLength < 0 ? null : text(m.bytes.subarray(keyAt, keyAt + keyLength)), value: valueLength < 0 ? null : text(m.bytes.subarray(valueAt, valueAt + valueLength)) }),
      );
    } else {
      const k = m as { offset: string; key: Buffer | null; value: Buffer | null };
      out.push({ offset: k.offset, key: text(k.key), value: text(k.value) });
    }
  }
  return out;
}

async function kafkajsRead(set: Buffer): Promise<Rec[]> {
  const out: Rec[] = [];
  const d = new decoders.Decoder(set);
  while (d.offset < set.length) {
    try {
      const b = await decoders.decodeBatch(d);
      for (const m of b.records) out.push(...flatten([m]));
    } catch (err) {
      if ((err as Error).name === 'KafkaJSPartialMessageError') break;
      throw err;
    }
  }
  return out;
}

describe('readRecordSet (the fetch worker reads plain record batches without kafkajs decoding each record)', () => {
  it('reads the same records as kafkajs from plain, gzip and transactional batches, with headers, null keys and values, a cut-short last batch', async () => {
    const seed = Number(process.env.SEED ?? Date.now() % 1_000_000);
    console.log(`readRecordSet: reproduce with seed=${seed}`);
    const rng = Rng.fromSeed(seed);
    const rec = () => {
      const n = rng.int(0, 300);
      const value = rng.int(0, 9) === 0 ? null : Buffer.from(Array.from({ length: n }, () => rng.int(0, 255)));
      const key = rng.int(0, 9) === 0 ? null : Buffer.from(`shard-${rng.int(0, 5)}`);
      return rng.int(0, 4) === 0 ? { key, value, headers: { h: 'x'.repeat(rng.int(0, 200)), g: 'y' } } : { key, value };
    };
    const parts: Buffer[] = [];
    let offset = 1_000_000_000_000; // past 2^32: offsets as numbers keep their high bits
    for (let b = 0; b < 12; b++) {
      const recs = Array.from({ length: rng.int(1, 40) }, rec);
      const kind = b % 4;
      parts.push(await batchOf(offset, recs, kind === 1 ? { compression: GZIP } : kind === 3 ? { transactional: true } : {}));
      offset += recs.length;
    }
    const whole = Buffer.concat(parts);
    const got = await readRecordSet(whole, decoders);
    expect(got.filter((m) => m instanceof RecordRegion).length).toBe(6); // the plain batches
    expect(flatten(got)).toEqual(await kafkajsRead(whole));
    expect(flatten(got).length).toBe(offset - 1_000_000_000_000);
    // A response cut in the middle of its last batch: that batch is left out, as kafkajs does.
    const cut = whole.subarray(0, whole.length - 5);
    expect(flatten(await readRecordSet(cut, decoders))).toEqual(await kafkajsRead(cut));
    expect(flatten(await readRecordSet(cut, decoders))).toEqual(flatten(await readRecordSet(Buffer.concat(parts.slice(0, -1)), decoders)));
  });

  it('gives a region the last offset of its batch (kafkajs resolves and commits by it)', async () => {
    const set = await batchOf(41, [{ key: Buffer.from('a'), value: Buffer.from('1') }, { key: Buffer.from('a'), value: Buffer.from('2') }]);
    const [region] = (await readRecordSet(set, decoders)) as RecordRegion[];
    expect(region).toBeInstanceOf(RecordRegion);
    expect([region!.baseOffset, region!.count, region!.offset]).toEqual([41, 2, '42']);
  });

  it('refuses a region whose records overrun their batch', async () => {
    const set = await batchOf(0, [{ key: Buffer.from('a'), value: Buffer.from('12345678') }]);
    const [region] = (await readRecordSet(set, decoders)) as RecordRegion[];
    const short = new RecordRegion(region!.bytes, region!.start, region!.end - 3, 0, 1, 0, '-1');
    expect(() => readRegionRecords(short, () => undefined)).toThrow(/overruns/);
  });

  // In a process of its own, as in the fetch worker: installing patches that process's kafkajs.
  it('installs into kafkajs 2.2 before its first fetch, and then the fetch decoder is the reader', () => {
    const url = pathToFileURL(join(dirname(new URL(import.meta.url).pathname), '../../src/adapters/kafka-record-batches.ts')).href;
    const code = `import(${JSON.stringify(url)}).then((m) => {
      const installed = m.installRecordBatchReader();
      const { createRequire } = require('node:module');
      const r = createRequire(${JSON.stringify(url)});
      const decode = r(require('node:path').join(require('node:path').dirname(r.resolve('kafkajs')), 'src/protocol/requests/fetch/v4/decodeMessages.js'));
      console.log(JSON.stringify({ installed, again: m.installRecordBatchReader(), patched: decode.toString().includes('readRecordSet') }));
    })`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', code], { encoding: 'utf8', timeout: 60_000 });
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual({ installed: true, again: true, patched: true });
  });
});

// Unit tests of the Kafka adapters' pure parts (no broker): the partitioner, kafka:// URLs,
// option validation and the validation of input records.
import { Partitioners, type KafkaMessage } from 'kafkajs';
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { PlayoutError } from '../../src/core/index.js';
import { KafkaEntrySource } from '../../src/adapters/kafka-entry-source.js';
import { KafkaInput, KafkaInputReader } from '../../src/adapters/kafka-input-reader.js';
import { KafkaLogPublisher } from '../../src/adapters/kafka-log-publisher.js';
import { murmur2, partitionOf } from '../../src/adapters/kafka-partition.js';
import { PackedBatch, toErrorData } from '../../src/adapters/kafka-consumer-port.js';
import { parseKafkaUrl } from '../../src/adapters/kafka-replay-source.js';
import { mirrorTopic } from '../../src/adapters/kafka-topics.js';
import { counter } from './fixtures/counter-log.js';

const brokers = ['127.0.0.1:9092'];

describe('partitionOf', () => {
  // Values printed by org.apache.kafka.common.utils.Utils.murmur2 from the kafka-clients 3.9.1 jar.
  it.each([
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
    ['hunt-1', -1125709069],
    ['eu-fra.shard_9', -1760415896],
  ])('murmur2(%s) is the Java client\'s %d', (key, want) => {
    expect(murmur2(new TextEncoder().encode(key))).toBe(want);
  });

  it('agrees with the Java client and with kafkajs\' DefaultPartitioner for every key and count', () => {
    expect(partitionOf('hunt-1', 12)).toBe(7);
    expect(partitionOf('eu-fra.shard_9', 12)).toBe(0);
    const kafkajs = Partitioners.DefaultPartitioner();
    for (let i = 0; i < 500; i++) {
      const shard = `s${i}.${'x'.repeat(i % 9)}`;
      for (const n of [1, 2, 3, 7, 12, 64]) {
        const partitionMetadata = Array.from({ length: n }, (_, partitionId) => ({ partitionId, leader: 0 })) as never;
        expect(partitionOf(shard, n)).toBe(kafkajs({ topic: 't', partitionMetadata, message: { key: shard, value: null } }));
      }
    }
  });
});

describe('kafka:// URLs', () => {
  it('parses brokers, topic and partition', () => {
    expect(parseKafkaUrl('kafka://127.0.0.1:9092/playout.log')).toEqual({ brokers: ['127.0.0.1:9092'], topic: 'playout.log', partition: null });
    expect(parseKafkaUrl('kafka://a:1,b.example:29092/eu-fra.playout.log?partition=3')).toEqual({ brokers: ['a:1', 'b.example:29092'], topic: 'eu-fra.playout.log', partition: 3 });
    expect(mirrorTopic('eu-fra')).toBe('eu-fra.playout.log');
  });

  it.each([
    ['http://h:1/t', 'kafka://host:port/topic'],
    ['kafka://h/t', 'host:port'],
    ['kafka://h:99999/t', 'host:port'],
    ['kafka://h:1/', 'kafka://host:port/topic'],
    ['kafka://h:1/bad topic', '[a-zA-Z0-9._-]{1,249}'],
    ['kafka://h:1/t?partition=x', 'partition=N'],
    ['kafka://h:1/t?offset=3', 'partition=N'],
  ])('refuses %s', (url, expected) => {
    let err: unknown;
    try {
      parseKafkaUrl(url);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PlayoutError);
    expect(err).toMatchObject({ code: 'PLAYOUT_INVALID_ARGUMENT', path: 'source', expected, received: url });
  });
});

describe('adapter options', () => {
  it.each([
    [() => new KafkaLogPublisher({ client: { brokers: [] } }), 'client.brokers'],
    [() => new KafkaLogPublisher({ client: { brokers: ['no-port'] } }), 'client.brokers.0'],
    [() => new KafkaLogPublisher({ client: { brokers }, topic: 'a b' }), 'topic'],
    [() => new KafkaLogPublisher({ client: { brokers }, batchBytesMax: 10 }), 'batchBytesMax'],
    [() => new KafkaEntrySource({ client: { brokers }, groupId: '' }, { onEntries: () => undefined }), 'groupId'],
    [() => new KafkaEntrySource({ client: { brokers }, groupId: 'g', commit: 'sometimes' as never }, { onEntries: () => undefined }), 'commit'],
    [() => new KafkaInputReader({ client: { brokers }, groupId: 'g', unknown: 1 } as never, { sequence: async () => [] }), '(root)'],
  ])('refuses bad options with PLAYOUT_INVALID_ARGUMENT and the path (%#)', (make, path) => {
    let err: unknown;
    try {
      make();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PlayoutError);
    expect((err as PlayoutError).code).toBe('PLAYOUT_INVALID_ARGUMENT');
    expect((err as PlayoutError).message).toContain(`option ${path}`);
  });
});

describe('KafkaInputReader.parse', () => {
  const reader = new KafkaInputReader({ client: { brokers }, groupId: 'g', checkPartition: false }, { sequence: async () => [], reducerOf: (shard) => (shard === 'gone' ? null : counter) });
  let offset = 0;
  const msg = (key: string | null, value: Buffer | string | null, headers: Record<string, string> = {}): KafkaMessage =>
    ({ key: key === null ? null : Buffer.from(key), value: value === null ? null : Buffer.from(value), offset: String(offset++), timestamp: '1700000000000', attributes: 0, headers }) as KafkaMessage;
  const good = { type: 'counter.add', version: 1, payload: { key: 'a', by: 2 }, ingestId: 'i-1' };

  it('accepts JSON and msgpack envelopes, with or without a content-type header', () => {
    for (const m of [msg('s1', JSON.stringify(good)), msg('s1', `  \n${JSON.stringify(good)}`), msg('s1', pack(good)), msg('s1', pack(good), { 'content-type': 'application/msgpack' }), msg('s1', JSON.stringify(good), { 'Content-Type': 'application/json; charset=utf-8' })]) {
      const r = reader.parse(m, 'playout.inputs', 0);
      expect(r).toBeInstanceOf(KafkaInput);
      const input = r as KafkaInput;
      expect([input.shard, input.type, input.version, input.payload, input.ingestId, input.origin, input.timestampMs]).toEqual(['s1', 'counter.add', 1, { key: 'a', by: 2 }, 'i-1', null, 1700000000000]);
    }
  });

  it.each([
    ['no key', null, JSON.stringify(good), {}, 'PLAYOUT_INPUT_INVALID', 'key'],
    ['a key that is not a shard id', 'Bad Shard', JSON.stringify(good), {}, 'PLAYOUT_SHARD_ID_INVALID', 'key'],
    ['no value', 's1', null, {}, 'PLAYOUT_INPUT_INVALID', 'value'],
    ['broken JSON', 's1', '{"type": ', {}, 'PLAYOUT_INPUT_INVALID', 'value'],
    ['msgpack that is not a map', 's1', pack([1, 2]), {}, 'PLAYOUT_INPUT_INVALID', 'value'],
    ['an unknown content type', 's1', JSON.stringify(good), { 'content-type': 'text/csv' }, 'PLAYOUT_INPUT_INVALID', 'headers.content-type'],
    ['a missing type', 's1', JSON.stringify({ ...good, type: undefined }), {}, 'PLAYOUT_INPUT_INVALID', 'value.type'],
    ['a version that is a string', 's1', JSON.stringify({ ...good, version: '1' }), {}, 'PLAYOUT_INPUT_INVALID', 'value.version'],
    ['an unknown envelope field', 's1', JSON.stringify({ ...good, ingestID: 'x' }), {}, 'PLAYOUT_INPUT_INVALID', 'value.ingestID'],
    ['a missing payload', 's1', JSON.stringify({ type: 'counter.add', version: 1 }), {}, 'PLAYOUT_INPUT_INVALID', 'value.payload'],
    ['a shard field that differs from the key', 's1', JSON.stringify({ ...good, shard: 's2' }), {}, 'PLAYOUT_INPUT_INVALID', 'value.shard'],
    ['an unknown input type', 's1', JSON.stringify({ ...good, type: 'counter.mul' }), {}, 'PLAYOUT_INPUT_TYPE_UNKNOWN', 'type'],
    ['an unknown payload version', 's1', JSON.stringify({ ...good, version: 2 }), {}, 'PLAYOUT_INPUT_TYPE_UNKNOWN', 'version'],
    ['a payload field of the wrong type', 's1', JSON.stringify({ ...good, payload: { key: 'a', by: 'two' } }), {}, 'PLAYOUT_INPUT_INVALID', 'value.payload.by'],
    ['a payload field out of range', 's1', JSON.stringify({ ...good, payload: { key: 'a', by: 5000 } }), {}, 'PLAYOUT_INPUT_INVALID', 'value.payload.by'],
    ['a 64-bit integer in msgpack', 's1', Buffer.from([0x84, 0xa4, ...Buffer.from('type'), 0xab, ...Buffer.from('counter.add'), 0xa7, ...Buffer.from('version'), 0x01, 0xa7, ...Buffer.from('payload'), 0x82, 0xa3, ...Buffer.from('key'), 0xa1, 0x61, 0xa2, ...Buffer.from('by'), 0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xa8, ...Buffer.from('ingestId'), 0xa1, 0x78]), {}, 'PLAYOUT_INPUT_INVALID', 'value.payload.by'],
    ['a shard not served here', 'gone', JSON.stringify(good), {}, 'PLAYOUT_SHARD_NOT_FOUND', 'key'],
  ])('rejects %s', (_what, key, value, headers, code, path) => {
    const r = reader.parse(msg(key, value as Buffer | string | null, headers), 'playout.inputs', 0);
    expect(r).not.toBeInstanceOf(KafkaInput);
    const error = (r as { error: PlayoutError }).error;
    expect(error).toBeInstanceOf(PlayoutError);
    expect({ code: error.code, path: error.path }).toEqual({ code, path });
    expect(error.expected).not.toBeNull();
    expect(error.received).not.toBeNull();
    expect(error.message).toMatch(/^Cannot accept the input at playout\.inputs\/0@\d+: /);
  });
});

describe('PackedBatch (a batch handed over by the fetch worker)', () => {
  // Keys and values back to back after 3 bytes of something else, as in a transferred buffer.
  const bytes = new Uint8Array([9, 9, 9, ...Buffer.from('shard-a'), 1, 2, 3, ...Buffer.from('b'), 7]);
  const data = bytes.subarray(3);
  // record 0: key "shard-a", value [1,2,3]; record 1: no key, no value; record 2: key "b", value [7]
  const index = new Int32Array([0, 7, 7, 3, 10, -1, 10, -1, 10, 1, 11, 1]);

  it('reads values as views, compares keys, and gives offsets as decimal strings', () => {
    const b = new PackedBatch('t', 0, '12', 3, data, index, new Uint8Array([1, 0, 0]), new Float64Array([5, 6, 9007199254740991]));
    expect([...b.value(0)!]).toEqual([1, 2, 3]);
    expect(b.value(0)!.buffer).toBe(bytes.buffer);
    expect(b.value(1)).toBeNull();
    expect([...b.value(2)!]).toEqual([7]);
    expect(b.keyIs(0, 'shard-a')).toBe(true);
    expect(b.keyIs(0, 'shard-b')).toBe(false);
    expect(b.keyIs(1, '')).toBe(false);
    expect(b.keyIs(2, 'b')).toBe(true);
    expect([b.keyText(0), b.keyText(1), b.keyText(2)]).toEqual(['shard-a', null, 'b']);
    expect([b.offset(0), b.offset(1), b.offset(2)]).toEqual(['5', '6', '9007199254740991']);
    expect([b.hashChecked(0), b.hashChecked(1), b.hashChecked(2)]).toEqual([true, false, false]);
    // Offsets past 2^53 cross as strings.
    const big = new PackedBatch('t', 0, '12', 3, data, index, new Uint8Array(3), ['9007199254740993', '9007199254740994', '9007199254740995']);
    expect(big.offset(0)).toBe('9007199254740993');
  });

  it('errors cross threads with the fields kafkaError reads', () => {
    const err = Object.assign(new Error('boom'), { name: 'KafkaJSProtocolError', retriable: false, type: 'NOT_AUTHORIZED' });
    expect(toErrorData(err)).toMatchObject({ name: 'KafkaJSProtocolError', message: 'boom', retriable: false, type: 'NOT_AUTHORIZED' });
    expect(toErrorData('plain')).toEqual({ name: 'Error', message: 'plain' });
  });
});

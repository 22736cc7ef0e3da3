// The worker thread of WorkerConsumer (kafka-consumer-port.ts): it hosts the process's kafkajs
// consumers that run off the main thread. Each fetches and decodes record batches here, packs
// each batch's keys and values into one buffer and transfers it to the main thread, which hands
// the records over. kafkajs fetches again only after the main thread said every batch of the
// last fetch was handled ('done'), as in one thread; the main thread answers at once unless its
// own queue of batches is full.
import { parentPort } from 'node:worker_threads';
import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import { HASH_BYTES, hash128Raw, hashResultEquals } from '../core/hash.js';
import { createKafka } from './kafka-client.js';
import { RecordRegion, installRecordBatchReader, readRegionRecords } from './kafka-record-batches.js';
import { RUN_OPTIONS, toErrorData, type FetchWorkerData, type FromWorker, type ToWorker } from './kafka-consumer-port.js';

// Before any consumer here fetches: kafkajs' fetch responses are then read a record batch at a
// time (kafka-record-batches.ts).
installRecordBatchReader();

const port = parentPort!;
const post = (m: FromWorker, transfer?: ArrayBuffer[]): void => port.postMessage(m, transfer);
const tpKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

class Hosted {
  readonly consumer: Consumer;
  private readonly heartbeatEveryMs: number;
  /** The last seek of each partition applied here (WorkerConsumer numbers them). */
  readonly seekNos = new Map<string, number>();
  readonly pending = new Map<number, { payload: EachBatchPayload; done: () => void }>();
  private nextBatchId = 1;

  constructor(
    readonly cid: number,
    data: FetchWorkerData,
  ) {
    const { kafka } = createKafka(data.client, 'Kafka fetch worker');
    this.consumer = kafka.consumer(data.consumer);
    this.heartbeatEveryMs = data.consumer.heartbeatInterval ?? 3_000;
    const c = this.consumer;
    c.on(c.events.GROUP_JOIN, (e) => post({ cid, t: 'join', assignment: e.payload.memberAssignment }));
    c.on(c.events.FETCH, () => post({ cid, t: 'fetch' }));
    c.on(c.events.CRASH, (e) => post({ cid, t: 'crash', error: toErrorData(e.payload.error), restart: e.payload.restart }));
    c.on(c.events.STOP, () => post({ cid, t: 'stop' }));
  }

  readonly eachBatch = async (payload: EachBatchPayload): Promise<void> => {
    const { batch } = payload;
    // Record regions (kafka-record-batches.ts) for plain record batches, kafkajs messages for
    // any other. A region may start before the fetched offset (Kafka returns whole batches).
    const messages = batch.messages as unknown as (KafkaMessage | RecordRegion)[];
    const fetched = Number((batch as unknown as { fetchedOffset: string }).fetchedOffset);
    let bytes = 0;
    let countMax = 0;
    let safe = true;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      if (m instanceof RecordRegion) {
        bytes += m.end - m.start;
        countMax += m.count;
      } else {
        bytes += (m.key?.length ?? 0) + (m.value?.length ?? 0);
        countMax++;
        if (m.offset.length > 15 && BigInt(m.offset) > SAFE_MAX) safe = false;
      }
    }
    const data = new Uint8Array(bytes);
    const index = new Int32Array(4 * countMax);
    const verified = new Uint8Array(countMax);
    const offsetNumbers = new Float64Array(safe ? countMax : 0);
    const offsetStrings: string[] = [];
    let n = 0;
    let at = 0;
    // Each record's value is checked against its XXH3-128 here, where its bytes are already in
    // hand: the main thread then decodes without hashing again (the buffer is transferred, so
    // nothing changes the bytes in between). A record that fails is decoded by the main thread
    // the usual way, which finds the mismatch and reports it.
    const check = (valueAt: number, valueLength: number): number => {
      if (valueLength <= HASH_BYTES) return 0;
      const bodyLength = valueLength - HASH_BYTES;
      hash128Raw(data, valueAt, bodyLength);
      return hashResultEquals(data, valueAt + bodyLength) ? 1 : 0;
    };
    const sink = (offset: number, keyAt: number, keyLength: number, valueAt: number, valueLength: number): void => {
      if (offset < fetched) return;
      const k = 4 * n;
      index[k] = keyAt;
      index[k + 1] = keyLength < 0 ? -1 : keyLength;
      index[k + 2] = valueAt;
      index[k + 3] = valueLength < 0 ? -1 : valueLength;
      verified[n] = valueLength < 0 ? 0 : check(valueAt, valueLength);
      if (safe) offsetNumbers[n] = offset;
      else offsetStrings.push(String(offset));
      n++;
    };
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      if (m instanceof RecordRegion) {
        // The region's bytes in one copy; its records are then read where they landed.
        const length = m.end - m.start;
        data.set(m.bytes.subarray(m.start, m.end), at);
        readRegionRecords(m.movedTo(data, at), sink);
        at += length;
        continue;
      }
      const { key, value } = m;
      const k = 4 * n;
      index[k] = at;
      if (key === null) index[k + 1] = -1;
      else {
        data.set(key, at);
        index[k + 1] = key.length;
        at += key.length;
      }
      index[k + 2] = at;
      if (value === null) index[k + 3] = -1;
      else {
        data.set(value, at);
        index[k + 3] = value.length;
        verified[n] = check(at, value.length);
        at += value.length;
      }
      if (safe) offsetNumbers[n] = Number(m.offset);
      else offsetStrings.push(m.offset);
      n++;
    }
    if (n === 0) {
      // Every record read lies before the fetched offset: a batch whose last records were
      // compacted away (its last offset, which kafkajs takes for the region's, is past its last
      // record). Move past it here, or the same batch is fetched again and again.
      payload.resolveOffset(batch.lastOffset());
      await payload.heartbeat();
      return;
    }
    // Offsets are decimal strings (int64); as numbers they cross threads without a string each.
    const offsets: Float64Array | string[] = safe ? offsetNumbers : offsetStrings;
    const transfer: ArrayBuffer[] = [data.buffer, index.buffer, verified.buffer];
    if (safe) transfer.push(offsetNumbers.buffer);
    const id = this.nextBatchId++;
    const done = new Promise<void>((resolve) => this.pending.set(id, { payload, done: resolve }));
    post(
      {
        cid: this.cid,
        t: 'batch',
        id,
        topic: batch.topic,
        partition: batch.partition,
        highWatermark: batch.highWatermark,
        seekNo: this.seekNos.get(tpKey(batch.topic, batch.partition)) ?? 0,
        stale: payload.isStale(),
        running: payload.isRunning(),
        count: n,
        data,
        index,
        verified,
        offsets,
      },
      transfer,
    );
    // The main thread may hold the batch while its queue is full: stay in the group meanwhile.
    const beat = setInterval(() => void payload.heartbeat().catch(() => undefined), this.heartbeatEveryMs);
    try {
      await done;
    } finally {
      clearInterval(beat);
      this.pending.delete(id);
    }
    await payload.heartbeat();
  };

  async call(m: Extract<ToWorker, { t: 'call' }>): Promise<void> {
    const c = this.consumer;
    switch (m.method) {
      case 'connect':
        return c.connect();
      case 'subscribe':
        return c.subscribe(m.args);
      case 'run':
        return c.run({ ...RUN_OPTIONS, eachBatch: this.eachBatch });
      case 'disconnect':
        await c.disconnect();
        hosted.delete(this.cid);
        return;
      case 'commitOffsets':
        return c.commitOffsets(m.args);
    }
  }
}

const hosted = new Map<number, Hosted>();

port.on('message', (m: ToWorker) => {
  if (m.t === 'open') {
    hosted.set(m.cid, new Hosted(m.cid, m.data));
    return;
  }
  const h = hosted.get(m.cid);
  if (h === undefined) {
    if (m.t === 'call') post({ cid: m.cid, t: 'reply', id: m.id, error: { name: 'Error', message: `no consumer ${m.cid} in the Kafka fetch worker` } });
    return;
  }
  switch (m.t) {
    case 'call':
      h.call(m).then(
        () => post({ cid: m.cid, t: 'reply', id: m.id, error: null }),
        (err: unknown) => post({ cid: m.cid, t: 'reply', id: m.id, error: toErrorData(err) }),
      );
      return;
    case 'pause':
    case 'resume':
      try {
        h.consumer[m.t](m.topics);
      } catch {
        // Not running yet (kafkajs refuses pause before run): the main thread applies them after.
      }
      return;
    case 'seek':
      h.seekNos.set(tpKey(m.topic, m.partition), m.seekNo);
      try {
        h.consumer.seek({ topic: m.topic, partition: m.partition, offset: m.offset });
      } catch (err) {
        post({ cid: m.cid, t: 'error', error: toErrorData(err) });
      }
      return;
    case 'resolve':
      h.pending.get(m.id)?.payload.resolveOffset(m.offset);
      return;
    case 'done':
      h.pending.get(m.id)?.done();
      return;
  }
});

// The worker thread of WorkerConsumer (kafka-consumer-port.ts): it hosts the process's kafkajs
// consumers that run off the main thread. Each fetches and decodes record batches here, packs
// each batch's keys and values into one buffer and transfers it to the main thread, which hands
// the records over. kafkajs fetches again only after the main thread said every batch of the
// last fetch was handled ('done'), as in one thread; the main thread answers at once unless its
// own queue of batches is full.
import { parentPort } from 'node:worker_threads';
import type { Consumer, EachBatchPayload } from 'kafkajs';
import { createKafka } from './kafka-client.js';
import { RUN_OPTIONS, toErrorData, type FetchWorkerData, type FromWorker, type ToWorker } from './kafka-consumer-port.js';

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
    const messages = batch.messages;
    const n = messages.length;
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const m = messages[i]!;
      bytes += (m.key?.length ?? 0) + (m.value?.length ?? 0);
    }
    const buf = new ArrayBuffer(bytes);
    const data = new Uint8Array(buf);
    const indexBuf = new ArrayBuffer(16 * n);
    const index = new Int32Array(indexBuf);
    let at = 0;
    for (let i = 0; i < n; i++) {
      const { key, value } = messages[i]!;
      index[4 * i] = at;
      if (key === null) index[4 * i + 1] = -1;
      else {
        data.set(key, at);
        index[4 * i + 1] = key.length;
        at += key.length;
      }
      index[4 * i + 2] = at;
      if (value === null) index[4 * i + 3] = -1;
      else {
        data.set(value, at);
        index[4 * i + 3] = value.length;
        at += value.length;
      }
    }
    // Offsets are decimal strings (int64); as numbers they cross threads without a string each.
    let offsets: Float64Array | string[];
    const transfer: ArrayBuffer[] = [buf, indexBuf];
    if (n === 0 || BigInt(messages[n - 1]!.offset) <= SAFE_MAX) {
      const offsetsBuf = new ArrayBuffer(8 * n);
      const f = new Float64Array(offsetsBuf);
      for (let i = 0; i < n; i++) f[i] = Number(messages[i]!.offset);
      offsets = f;
      transfer.push(offsetsBuf);
    } else offsets = messages.map((m) => m.offset);
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

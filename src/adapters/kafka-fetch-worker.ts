// The worker thread of WorkerConsumer (kafka-consumer-port.ts): a kafkajs consumer that fetches
// and decodes record batches here, packs each batch's keys and values into one buffer and
// transfers it to the main thread, which hands the records over. kafkajs fetches again only
// after the main thread said every batch of the last fetch was handled ('done'), as in one
// thread; the main thread answers at once unless its own queue of batches is full.
import { parentPort, workerData } from 'node:worker_threads';
import type { EachBatchPayload } from 'kafkajs';
import { createKafka } from './kafka-client.js';
import { RUN_OPTIONS, toErrorData, type FetchWorkerData, type FromWorker, type ToWorker } from './kafka-consumer-port.js';

const port = parentPort!;
const { client, consumer: consumerConfig } = workerData as FetchWorkerData;
const { kafka } = createKafka(client, 'Kafka fetch worker');
const consumer = kafka.consumer(consumerConfig);
const heartbeatEveryMs = consumerConfig.heartbeatInterval ?? 3_000;

const post = (m: FromWorker, transfer?: ArrayBuffer[]): void => port.postMessage(m, transfer);
const tpKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/** The last seek of each partition applied here (WorkerConsumer numbers them). */
const seekNos = new Map<string, number>();
const pending = new Map<number, { payload: EachBatchPayload; done: () => void }>();
let nextBatchId = 1;

consumer.on(consumer.events.GROUP_JOIN, (e) => post({ t: 'join', assignment: e.payload.memberAssignment }));
consumer.on(consumer.events.FETCH, () => post({ t: 'fetch' }));
consumer.on(consumer.events.CRASH, (e) => post({ t: 'crash', error: toErrorData(e.payload.error), restart: e.payload.restart }));
consumer.on(consumer.events.STOP, () => post({ t: 'stop' }));

const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

async function eachBatch(payload: EachBatchPayload): Promise<void> {
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
  const last = n > 0 ? BigInt(messages[n - 1]!.offset) : 0n;
  if (last <= SAFE_MAX) {
    const f = new Float64Array(n);
    for (let i = 0; i < n; i++) f[i] = Number(messages[i]!.offset);
    offsets = f;
  } else offsets = messages.map((m) => m.offset);
  const id = nextBatchId++;
  const done = new Promise<void>((resolve) => pending.set(id, { payload, done: resolve }));
  const transfer: ArrayBuffer[] = [buf, indexBuf];
  if (offsets instanceof Float64Array) transfer.push(offsets.buffer as ArrayBuffer);
  post(
    {
      t: 'batch',
      id,
      topic: batch.topic,
      partition: batch.partition,
      highWatermark: batch.highWatermark,
      seekNo: seekNos.get(tpKey(batch.topic, batch.partition)) ?? 0,
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
  const beat = setInterval(() => void payload.heartbeat().catch(() => undefined), heartbeatEveryMs);
  try {
    await done;
  } finally {
    clearInterval(beat);
    pending.delete(id);
  }
  await payload.heartbeat();
}

async function call(m: Extract<ToWorker, { t: 'call' }>): Promise<void> {
  switch (m.method) {
    case 'connect':
      return consumer.connect();
    case 'subscribe':
      return consumer.subscribe(m.args);
    case 'run':
      return consumer.run({ ...RUN_OPTIONS, eachBatch });
    case 'disconnect':
      return consumer.disconnect();
    case 'commitOffsets':
      return consumer.commitOffsets(m.args);
  }
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'call':
      call(m).then(
        () => post({ t: 'reply', id: m.id, error: null }),
        (err: unknown) => post({ t: 'reply', id: m.id, error: toErrorData(err) }),
      );
      return;
    case 'pause':
    case 'resume':
      try {
        consumer[m.t](m.topics);
      } catch {
        // Not running yet (kafkajs refuses pause before run): the main thread applies them after.
      }
      return;
    case 'seek':
      seekNos.set(tpKey(m.topic, m.partition), m.seekNo);
      try {
        consumer.seek({ topic: m.topic, partition: m.partition, offset: m.offset });
      } catch (err) {
        post({ t: 'error', error: toErrorData(err) });
      }
      return;
    case 'resolve':
      pending.get(m.id)?.payload.resolveOffset(m.offset);
      return;
    case 'done':
      pending.get(m.id)?.done();
      return;
  }
});

// The part of a kafkajs consumer that KafkaGroupConsumer drives, with two implementations:
//
//   - kafkajsPort: the kafkajs consumer in this thread (KafkaInputReader; KafkaEntrySource with
//     fetchThread 'main');
//   - WorkerConsumer: the same kafkajs consumer in a worker thread (kafka-fetch-worker.ts), which
//     fetches and decodes Kafka's record batches there and hands each batch over as one
//     transferred buffer (PackedBatch). One worker per process hosts every WorkerConsumer: it
//     stays warm (compiled code, a grown young generation) across consumers that come and go
//     with rebalances and restarts, and holds the process open only while one is running.
//
// Why a worker: kafkajs spends about 3 µs of CPU per record decoding a fetch response (varints,
// Long arithmetic, a Buffer and an object per record), as much as a follower spends decoding,
// verifying and applying the entry in it. In one thread the two add up; with the fetch in a
// worker they run side by side, and the follower's thread only decodes and applies entries
// (bench/kafka.bench.ts).
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Consumer, ConsumerConfig, EachBatchPayload, IMemberAssignment } from 'kafkajs';
import type { KafkaClientConfig } from './kafka-client.js';

export interface PartitionsOfTopic {
  topic: string;
  partitions: number[];
}

/** A fetched batch of one partition as the worker hands it over: every key and value in one buffer. */
export class PackedBatch {
  // data's buffer and offset, read once: a view built from them costs half of one built
  // through data's getters, and one is built per record.
  private readonly buffer: ArrayBufferLike;
  private readonly base: number;

  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly highWatermark: string,
    readonly count: number,
    /** Keys and values, back to back. */
    readonly data: Uint8Array,
    /** Per record i: key start, key length (-1: null), value start, value length (-1: null), at 4i. */
    readonly index: Int32Array,
    /**
     * Per record: 1 when the worker found the value's trailing 16 bytes to be the XXH3-128 of the
     * rest (an entry's hash; see decodeEntry's hashChecked), else 0 (decode checks it again).
     */
    readonly verified: Uint8Array,
    /** Record offsets, as numbers when all are below 2^53 (always in practice), else as strings. */
    readonly offsets: Float64Array | string[],
  ) {
    this.buffer = data.buffer;
    this.base = data.byteOffset;
  }

  offset(i: number): string {
    const o = this.offsets[i]!;
    return typeof o === 'string' ? o : String(o);
  }

  /** The record value as a view of `data`, or null (a tombstone). */
  value(i: number): Uint8Array | null {
    const len = this.index[4 * i + 3]!;
    return len < 0 ? null : new Uint8Array(this.buffer, this.base + this.index[4 * i + 2]!, len);
  }

  /** True when the worker checked the value's entry hash (see `verified`). */
  hashChecked(i: number): boolean {
    return this.verified[i] === 1;
  }

  /** True when the record key's bytes spell `ascii`. */
  keyIs(i: number, ascii: string): boolean {
    const len = this.index[4 * i + 1]!;
    if (len !== ascii.length) return false;
    const d = this.data;
    const at = this.index[4 * i]!;
    for (let j = 0; j < len; j++) if (d[at + j] !== ascii.charCodeAt(j)) return false;
    return true;
  }

  keyText(i: number): string | null {
    const len = this.index[4 * i + 1]!;
    if (len < 0) return null;
    const at = this.index[4 * i]!;
    return Buffer.from(this.buffer, this.base + at, len).toString('utf8');
  }
}

export interface PackedBatchPayload {
  readonly packed: true;
  readonly batch: PackedBatch;
  isRunning(): boolean;
  isStale(): boolean;
  resolveOffset(offset: string): void;
  heartbeat(): Promise<void>;
}

export type AnyBatchPayload = EachBatchPayload | PackedBatchPayload;

export interface ConsumerPort {
  connect(): Promise<void>;
  subscribe(topics: string[], fromBeginning: boolean): Promise<void>;
  run(eachBatch: (payload: AnyBatchPayload) => Promise<void>): Promise<void>;
  disconnect(): Promise<void>;
  pause(topics: PartitionsOfTopic[]): void;
  resume(topics: PartitionsOfTopic[]): void;
  seek(topic: string, partition: number, offset: string): void;
  commitOffsets(offsets: { topic: string; partition: number; offset: string }[]): Promise<void>;
  onJoin(listener: (assignment: IMemberAssignment) => void): () => void;
  onFetch(listener: () => void): () => void;
  /** The consumer failed; `restart` tells whether kafkajs restarts it. */
  onCrash(listener: (error: Error, restart: boolean) => void): () => void;
  onStop(listener: () => void): () => void;
}

/** The options every consumer of KafkaGroupConsumer runs with. */
export const RUN_OPTIONS = { autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: 1 } as const;

/** A kafkajs consumer in this thread. */
export function kafkajsPort(consumer: Consumer): ConsumerPort {
  return {
    connect: () => consumer.connect(),
    subscribe: (topics, fromBeginning) => consumer.subscribe({ topics, fromBeginning }),
    run: (eachBatch) => consumer.run({ ...RUN_OPTIONS, eachBatch }),
    disconnect: () => consumer.disconnect(),
    pause: (topics) => consumer.pause(topics),
    resume: (topics) => consumer.resume(topics),
    seek: (topic, partition, offset) => consumer.seek({ topic, partition, offset }),
    commitOffsets: (offsets) => consumer.commitOffsets(offsets),
    onJoin: (l) => consumer.on(consumer.events.GROUP_JOIN, (e) => l(e.payload.memberAssignment)),
    onFetch: (l) => consumer.on(consumer.events.FETCH, () => l()),
    onCrash: (l) => consumer.on(consumer.events.CRASH, (e) => l(e.payload.error, e.payload.restart)),
    onStop: (l) => consumer.on(consumer.events.STOP, () => l()),
  };
}

/** What the worker is started with (plain data: it crosses threads). */
export interface FetchWorkerData {
  client: KafkaClientConfig;
  consumer: ConsumerConfig;
}

/** An error as it crosses threads: kafkaError() reads these fields. */
export interface ErrorData {
  name: string;
  message: string;
  stack?: string;
  retriable?: boolean;
  type?: string;
}

export function toErrorData(err: unknown): ErrorData {
  const e = err as Partial<ErrorData> | null;
  const out: ErrorData = { name: typeof e?.name === 'string' ? e.name : 'Error', message: typeof e?.message === 'string' ? e.message : String(err) };
  if (typeof e?.stack === 'string') out.stack = e.stack;
  if (typeof e?.retriable === 'boolean') out.retriable = e.retriable;
  if (typeof e?.type === 'string') out.type = e.type;
  return out;
}

function fromErrorData(d: ErrorData): Error {
  const err = new Error(d.message) as Error & { retriable?: boolean; type?: string };
  err.name = d.name;
  if (d.stack !== undefined) err.stack = d.stack;
  if (d.retriable !== undefined) err.retriable = d.retriable;
  if (d.type !== undefined) err.type = d.type;
  return err;
}

// Messages between the threads; `cid` names the consumer (one worker hosts several).
export type ToWorker = { cid: number } & (
  | { t: 'open'; data: FetchWorkerData }
  | { t: 'call'; id: number; method: 'connect' | 'run' | 'disconnect'; args?: undefined }
  | { t: 'call'; id: number; method: 'subscribe'; args: { topics: string[]; fromBeginning: boolean } }
  | { t: 'call'; id: number; method: 'commitOffsets'; args: { topic: string; partition: number; offset: string }[] }
  | { t: 'pause' | 'resume'; topics: PartitionsOfTopic[] }
  | { t: 'seek'; topic: string; partition: number; offset: string; seekNo: number }
  | { t: 'resolve'; id: number; offset: string }
  | { t: 'done'; id: number }
);

export type FromWorker = { cid: number } & (
  | { t: 'reply'; id: number; error: ErrorData | null }
  | { t: 'join'; assignment: IMemberAssignment }
  | { t: 'fetch' }
  | { t: 'crash'; error: ErrorData; restart: boolean }
  | { t: 'stop' }
  | { t: 'error'; error: ErrorData }
  | {
      t: 'batch';
      id: number;
      topic: string;
      partition: number;
      highWatermark: string;
      /** The last seek of this partition the worker applied before it handed the batch over. */
      seekNo: number;
      stale: boolean;
      running: boolean;
      count: number;
      data: Uint8Array;
      index: Int32Array;
      verified: Uint8Array;
      offsets: Float64Array | string[];
    }
);

const tpKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/**
 * The worker: its compiled .js in dist; under tsx or vitest, its .ts source, loaded through
 * tsx's loader registered inside the worker (Node 20 does not apply the parent's loader, nor an
 * `--import` in a worker's execArgv, to the worker's own module).
 */
function startWorker(): Worker {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) return new Worker(new URL('./kafka-fetch-worker.js', self));
  const api = pathToFileURL(createRequire(self).resolve('tsx/esm/api')).href.replace(/\.cjs$/, '.mjs');
  const target = new URL('./kafka-fetch-worker.ts', self).href;
  const code = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(target)}); })`;
  return new Worker(code, { eval: true });
}

type Listener<A extends unknown[]> = (...args: A) => void;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** The process's fetch worker and the consumers it hosts. */
class FetchWorker {
  readonly worker: Worker = startWorker();
  readonly consumers = new Map<number, WorkerConsumer>();
  dead: Error | null = null;

  constructor() {
    this.worker.unref();
    this.worker.on('message', (m: FromWorker) => this.consumers.get(m.cid)?.onMessage(m));
    this.worker.on('error', (err) => this.died(err));
    this.worker.on('exit', (code) => this.died(new Error(`the Kafka fetch worker exited with code ${code}`)));
  }

  private died(err: Error): void {
    if (this.dead !== null) return;
    this.dead = err;
    if (sharedWorker === this) sharedWorker = null;
    for (const c of this.consumers.values()) c.died(err);
    this.consumers.clear();
  }

  attach(cid: number, c: WorkerConsumer): void {
    this.consumers.set(cid, c);
    // Running consumers keep the process open, as kafkajs' sockets do in this thread.
    this.worker.ref();
  }

  detach(cid: number): void {
    this.consumers.delete(cid);
    if (this.consumers.size === 0) this.worker.unref();
  }
}

let sharedWorker: FetchWorker | null = null;
let nextConsumerId = 1;

/** A kafkajs consumer running in a worker thread (see the top of this file). */
export class WorkerConsumer implements ConsumerPort {
  private host: FetchWorker | null = null;
  private readonly cid = nextConsumerId++;
  private readonly data: FetchWorkerData;
  private nextCallId = 1;
  private readonly calls = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private eachBatch: ((payload: AnyBatchPayload) => Promise<void>) | null = null;
  /** Seeks issued per partition: a batch the worker handed over before it applied the last one is stale. */
  private readonly seekNos = new Map<string, number>();
  private running = false;
  private dead: Error | null = null;
  private readonly joinListeners = new Set<Listener<[IMemberAssignment]>>();
  private readonly fetchListeners = new Set<Listener<[]>>();
  private readonly crashListeners = new Set<Listener<[Error, boolean]>>();
  private readonly stopListeners = new Set<Listener<[]>>();
  private readonly onError: (err: Error) => void;

  constructor(data: FetchWorkerData, onError: (err: Error) => void) {
    this.data = data;
    this.onError = onError;
  }

  private start(): FetchWorker {
    if (this.host !== null) return this.host;
    sharedWorker ??= new FetchWorker();
    const host = sharedWorker;
    this.host = host;
    host.attach(this.cid, this);
    host.worker.postMessage({ cid: this.cid, t: 'open', data: this.data } satisfies ToWorker);
    return host;
  }

  /** The worker is gone: fail what waits on it, and report a crash that is not restarted. */
  died(err: Error): void {
    if (this.dead !== null) return;
    this.dead = err;
    const wasRunning = this.running;
    this.running = false;
    for (const c of this.calls.values()) c.reject(err);
    this.calls.clear();
    if (wasRunning) {
      for (const l of this.crashListeners) l(err, false);
      for (const l of this.stopListeners) l();
    }
  }

  private post(m: DistributiveOmit<ToWorker, 'cid'>): void {
    if (this.dead !== null || this.host === null) return;
    this.host.worker.postMessage({ ...m, cid: this.cid });
  }

  private call(m: DistributiveOmit<Extract<ToWorker, { t: 'call' }>, 'id' | 'cid'>): Promise<void> {
    const host = this.start();
    if (this.dead !== null) return Promise.reject(this.dead);
    const id = this.nextCallId++;
    return new Promise<void>((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      host.worker.postMessage({ ...m, id, cid: this.cid } as ToWorker);
    });
  }

  onMessage(m: FromWorker): void {
    switch (m.t) {
      case 'reply': {
        const c = this.calls.get(m.id);
        if (c === undefined) return;
        this.calls.delete(m.id);
        if (m.error === null) c.resolve();
        else c.reject(fromErrorData(m.error));
        return;
      }
      case 'batch':
        void this.handle(m);
        return;
      case 'join':
        for (const l of this.joinListeners) l(m.assignment);
        return;
      case 'fetch':
        for (const l of this.fetchListeners) l();
        return;
      case 'crash':
        if (!m.restart) this.running = false;
        for (const l of this.crashListeners) l(fromErrorData(m.error), m.restart);
        return;
      case 'stop':
        this.running = false;
        for (const l of this.stopListeners) l();
        return;
      case 'error':
        this.onError(fromErrorData(m.error));
        return;
    }
  }

  private async handle(m: Extract<FromWorker, { t: 'batch' }>): Promise<void> {
    const k = tpKey(m.topic, m.partition);
    const batch = new PackedBatch(m.topic, m.partition, m.highWatermark, m.count, m.data, m.index, m.verified, m.offsets);
    const payload: PackedBatchPayload = {
      packed: true,
      batch,
      isRunning: () => m.running && this.running,
      isStale: () => m.stale || m.seekNo !== (this.seekNos.get(k) ?? 0),
      resolveOffset: (offset) => this.post({ t: 'resolve', id: m.id, offset }),
      // The worker heartbeats while it waits for this batch to be handed over.
      heartbeat: () => Promise.resolve(),
    };
    try {
      if (this.eachBatch !== null) await this.eachBatch(payload);
    } catch (err) {
      this.onError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.post({ t: 'done', id: m.id });
    }
  }

  connect(): Promise<void> {
    return this.call({ t: 'call', method: 'connect' });
  }

  subscribe(topics: string[], fromBeginning: boolean): Promise<void> {
    return this.call({ t: 'call', method: 'subscribe', args: { topics, fromBeginning } });
  }

  async run(eachBatch: (payload: AnyBatchPayload) => Promise<void>): Promise<void> {
    this.eachBatch = eachBatch;
    this.running = true;
    try {
      await this.call({ t: 'call', method: 'run' });
    } catch (err) {
      this.running = false;
      throw err;
    }
  }

  async disconnect(): Promise<void> {
    const host = this.host;
    if (host === null) return;
    try {
      if (this.dead === null) await this.call({ t: 'call', method: 'disconnect' });
    } finally {
      this.running = false;
      this.dead ??= new Error('the consumer was disconnected');
      host.detach(this.cid);
    }
  }

  pause(topics: PartitionsOfTopic[]): void {
    this.post({ t: 'pause', topics });
  }

  resume(topics: PartitionsOfTopic[]): void {
    this.post({ t: 'resume', topics });
  }

  seek(topic: string, partition: number, offset: string): void {
    const k = tpKey(topic, partition);
    const seekNo = (this.seekNos.get(k) ?? 0) + 1;
    this.seekNos.set(k, seekNo);
    this.post({ t: 'seek', topic, partition, offset, seekNo });
  }

  commitOffsets(offsets: { topic: string; partition: number; offset: string }[]): Promise<void> {
    return this.call({ t: 'call', method: 'commitOffsets', args: offsets });
  }

  onJoin(l: (assignment: IMemberAssignment) => void): () => void {
    this.joinListeners.add(l);
    return () => this.joinListeners.delete(l);
  }

  onFetch(l: () => void): () => void {
    this.fetchListeners.add(l);
    return () => this.fetchListeners.delete(l);
  }

  onCrash(l: (error: Error, restart: boolean) => void): () => void {
    this.crashListeners.add(l);
    return () => this.crashListeners.delete(l);
  }

  onStop(l: () => void): () => void {
    this.stopListeners.add(l);
    return () => this.stopListeners.delete(l);
  }
}

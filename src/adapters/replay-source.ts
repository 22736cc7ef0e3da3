// Where the engineers' tools (replay, verify, bisect, diff, inspect) read a shard's log from.
//
// SOURCE is a fixture file (`.plog`), a node's store directory, a live region
// (`http(s)://host:port`, http-replay-source.ts) or a Kafka topic (`kafka://broker:port/topic`,
// kafka-replay-source.ts). Each kind is one opener in a table keyed by URL scheme; a bare path
// is a fixture or a store depending on what it names. Every source yields the same three
// things: what the log is (header info), the snapshot its entries start after (or none: they
// start at genesis), and the entries, in seq order, decoded and verified, in batches.
import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENTRY_FORMAT, GenesisPayloadSchema, HASH_NAME, PlayoutError, ZERO_HASH, checkLink, cloneCanonical, decodeSnapshot, toHex, type Entry, type ReducerRegistry, type ShardMachine, type Snapshot } from '../core/index.js';
import { stateAtTick } from '../replication/state-at-tick.js';
import { PlogReader, type PlogReaderOptions } from './plog.js';

export interface SourceInfo {
  /** The SOURCE argument as given. */
  readonly spec: string;
  readonly kind: 'fixture' | 'store' | 'http' | 'kafka';
  /** Resolved path or URL. */
  readonly location: string;
  readonly shard: string;
  readonly reducer: string;
  /** Reducer version running at the first entry (genesis, or the snapshot's next tick). */
  readonly reducerVersion: number;
  readonly seed: number;
  readonly tickMs: number;
  readonly engineVersion: string | null;
  readonly entryFormat: number;
  readonly hash: string;
  readonly createdBy: string | null;
  readonly description: string | null;
  /** Seq of the first entry the source yields. */
  readonly firstSeq: number;
  /** The snapshot the entries start after, or null. */
  readonly snapshot: { readonly tick: number; readonly seq: number; readonly digest: string } | null;
  /** Size in bytes when known (a file), else null. */
  readonly bytes: number | null;
}

export interface ReadProgress {
  readonly done: number;
  readonly total: number | null;
  readonly unit: 'bytes' | 'entries';
}

/** One pass over a source's entries. */
export interface EntryStream extends AsyncIterable<Entry[]> {
  progress(): ReadProgress;
  /** End the pass early and release its resources (also done when iteration ends). */
  close(): Promise<void>;
}

export interface ReadOptions {
  /** Strict (default) stops at the first broken link; lenient reports problems and goes on (inspect). */
  strict?: boolean;
  onProblem?: PlogReaderOptions['onProblem'];
  batchEntries?: number;
}

export interface ReplaySource {
  readonly info: SourceInfo;
  /**
   * The snapshot the entries start after, decoded and hash-checked; null when they start at
   * genesis. For reading only: a machine restored from a snapshot adopts its records and
   * changes them, so restore from `freshSnapshot()`.
   */
  readonly snapshot: Snapshot | null;
  /** A private copy of `snapshot` to restore a machine from. */
  freshSnapshot(): Snapshot | null;
  /** A new pass over the entries from the first one. A source can be read any number of times. */
  read(options?: ReadOptions): Promise<EntryStream>;
  /**
   * The state right after `tick` closed, from the nearest snapshot the source holds plus a
   * replay (time travel). Sources without snapshots of their own leave it out; callers then
   * replay from the start.
   */
  stateAt?(registry: ReducerRegistry, tick: number): ShardMachine;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** The shard to read; a single-shard source (a fixture) checks it, a multi-shard one needs it. */
  shard?: string | null;
  /** Relative paths resolve against this directory. */
  cwd?: string;
  /** Where remote sources find their credentials (a region's bearer token); default: none. */
  env?: Readonly<Record<string, string | undefined>>;
  /** The environment variable holding the token, instead of PLAYOUT_PEER_TOKEN / PLAYOUT_ADMIN_TOKEN. */
  tokenEnv?: string | null;
  /**
   * A remote source whose log no longer reaches genesis may start from its own snapshot (the
   * oldest one its retained log continues). Without it such a source is refused.
   */
  fromSnapshot?: boolean;
}

export type SourceOpener = (spec: string, location: string, options: OpenOptions) => Promise<ReplaySource>;

/** Openers by URL scheme (with the colon). Remote ones are loaded when used: `inspect x.plog` loads neither undici nor kafkajs. */
const SCHEMES = new Map<string, SourceOpener>([
  ['file:', (spec, location, options) => openPath(spec, fileURLToPath(location), options)],
  ['http:', async (spec, location, options) => (await import('./http-replay-source.js')).openHttpSource(spec, location, options)],
  ['https:', async (spec, location, options) => (await import('./http-replay-source.js')).openHttpSource(spec, location, options)],
  ['kafka:', async (spec, location, options) => (await import('./kafka-replay-source.js')).openKafkaSource(spec, location, options)],
]);

/** Openers for a bare path, by what it names. */
const PATH_KINDS: { fixture: SourceOpener; store: SourceOpener | null } = {
  fixture: openFixture,
  store: openStore,
};

/** Make a scheme (e.g. `kafka:`) available to every tool. */
export function registerSourceScheme(scheme: string, opener: SourceOpener): void {
  SCHEMES.set(scheme.endsWith(':') ? scheme : `${scheme}:`, opener);
}

/** Make store directories readable (the lmdb store registers itself here). */
export function registerStoreOpener(opener: SourceOpener): void {
  PATH_KINDS.store = opener;
}

const SCHEME = /^([a-z][a-z0-9+.-]*:)\/\//i;

/** Open SOURCE: a fixture path, a store directory, or a URL with a registered scheme. */
export async function openSource(spec: string, options: OpenOptions = {}): Promise<ReplaySource> {
  if (typeof spec !== 'string' || spec.length === 0) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', 'Cannot open a source: expected a fixture path, a store directory or a URL, received an empty string', { path: 'SOURCE', expected: 'a path or URL', received: 'empty' });
  }
  const m = SCHEME.exec(spec);
  if (m !== null) {
    const scheme = m[1]!.toLowerCase();
    const opener = SCHEMES.get(scheme);
    if (opener === undefined) {
      throw new PlayoutError('PLAYOUT_SOURCE_NOT_FOUND', `Cannot open source ${spec}: this build reads ${[...SCHEMES.keys()].map((s) => `${s}//`).join(', ')} URLs and paths, received ${scheme}//`, {
        path: 'SOURCE',
        expected: [...SCHEMES.keys()].join(', '),
        received: scheme,
      });
    }
    return opener(spec, spec, options);
  }
  const location = isAbsolute(spec) ? spec : resolve(options.cwd ?? process.cwd(), spec);
  return openPath(spec, location, options);
}

async function openPath(spec: string, location: string, options: OpenOptions): Promise<ReplaySource> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(location)).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PlayoutError('PLAYOUT_SOURCE_NOT_FOUND', `Cannot open source ${spec}: ${code === 'ENOENT' ? 'no such file or directory' : code === 'EACCES' ? 'permission denied' : (err as Error).message}`, {
      path: 'SOURCE',
      expected: 'a fixture file or a store directory',
      received: spec,
      cause: err,
    });
  }
  if (!isDirectory) return PATH_KINDS.fixture(spec, location, options);
  if (PATH_KINDS.store === null) {
    throw new PlayoutError('PLAYOUT_SOURCE_NOT_FOUND', `Cannot open source ${spec}: it is a directory and this build cannot read store directories yet`, {
      path: 'SOURCE',
      expected: 'a fixture file',
      received: 'a directory',
    });
  }
  return PATH_KINDS.store(spec, location, options);
}

async function openFixture(spec: string, location: string, options: OpenOptions): Promise<ReplaySource> {
  const first = await PlogReader.open(location);
  await first.close();
  const h = first.header;
  if (options.shard != null && options.shard !== h.shard) {
    throw new PlayoutError('PLAYOUT_SHARD_NOT_FOUND', `Cannot read shard "${options.shard}" from ${spec}: the fixture holds shard "${h.shard}" only`, {
      path: '--shard',
      shard: options.shard,
      expected: h.shard,
      received: options.shard,
    });
  }
  const info: SourceInfo = {
    spec,
    kind: 'fixture',
    location,
    shard: h.shard,
    reducer: h.reducer,
    reducerVersion: h.reducerVersion,
    seed: h.seed,
    tickMs: h.tickMs,
    engineVersion: h.engineVersion,
    entryFormat: h.entryFormat,
    hash: h.hash,
    createdBy: h.createdBy,
    description: h.description,
    firstSeq: h.firstSeq,
    snapshot: h.snapshot,
    bytes: first.stats.fileBytes,
  };
  const open = new Set<PlogReader>();
  const snapshot = first.snapshot;
  return {
    info,
    snapshot,
    freshSnapshot: () => (snapshot === null ? null : cloneCanonical(snapshot)),
    async read(readOptions: ReadOptions = {}): Promise<EntryStream> {
      const reader = await PlogReader.open(location, { strict: readOptions.strict ?? true, onProblem: readOptions.onProblem ?? null, batchEntries: readOptions.batchEntries ?? 256 });
      open.add(reader);
      return {
        [Symbol.asyncIterator]: () => reader.batches(),
        progress: () => ({ done: reader.fileBytesConsumed(), total: reader.stats.fileBytes, unit: 'bytes' }),
        close: async () => {
          open.delete(reader);
          await reader.close();
        },
      };
    },
    async close(): Promise<void> {
      for (const r of open) await r.close();
      open.clear();
    },
  };
}

/**
 * A node's store directory, opened read-only (a running node may be writing it; reads see the
 * durable state at open). The entries start at genesis when the store still holds seq 1, else
 * after the retained snapshot the log was truncated below.
 */
async function openStore(spec: string, location: string, options: OpenOptions): Promise<ReplaySource> {
  // Loaded here, not at the top: reading a fixture should not load lmdb's native module.
  const { LmdbLogStore } = await import('./lmdb-store.js');
  const store = await LmdbLogStore.open(location, { readOnly: true });
  try {
    const shard = chooseShard(`the store ${spec}`, store.shards(), options.shard);
    const head = store.head(shard);
    const first = store.firstSeq(shard);
    if (head === null || first === null) throw new PlayoutError('PLAYOUT_SHARD_NOT_FOUND', `Cannot read shard "${shard}" from the store ${spec}: it holds no entries of it`, { shard, path: '--shard' });
    const firstSeq = first;
    const headSeq = head.seq;
    let snapshot: Snapshot | null = null;
    if (firstSeq !== 1) {
      // The retained log continues the snapshot that sits right below it.
      const info = store.snapshots(shard).find((x) => x.seq === firstSeq - 1);
      const stored = info === undefined ? null : store.snapshot(shard, info.tick);
      if (stored === null || stored.seq !== firstSeq - 1) {
        throw new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `Cannot replay shard "${shard}" from the store ${spec}: its log starts at seq ${firstSeq} and no snapshot ends at seq ${firstSeq - 1}`, { shard, seq: firstSeq });
      }
      snapshot = decodeSnapshot(stored.bytes);
    }
    const { reducer, reducerVersion, seed, tickMs } = startOf(`the store ${spec}`, shard, snapshot === null ? store.get(shard, 1) : null, snapshot, 'PLAYOUT_STORE_CORRUPT');
    const info: SourceInfo = {
      spec,
      kind: 'store',
      location,
      shard,
      reducer,
      reducerVersion,
      seed,
      tickMs,
      engineVersion: null,
      entryFormat: ENTRY_FORMAT,
      hash: HASH_NAME,
      createdBy: null,
      description: null,
      firstSeq,
      snapshot: snapshot === null ? null : { tick: snapshot.tick, seq: snapshot.seq, digest: toHex(snapshot.digest) },
      bytes: null,
    };
    const total = headSeq - firstSeq + 1;
    const start = snapshot;
    return {
      info,
      snapshot,
      freshSnapshot: () => (start === null ? null : cloneCanonical(start)),
      async read(readOptions: ReadOptions = {}): Promise<EntryStream> {
        const batchEntries = Math.max(1, readOptions.batchEntries ?? 256);
        let done = 0;
        let closed = false;
        async function* batches(): AsyncGenerator<Entry[], void, undefined> {
          // The store checks every record and link as it reads; a lenient read has nothing to add.
          // A batch is one synchronous cursor read: no generator step per entry.
          const cursor = store.entryCursor(shard, firstSeq, headSeq);
          try {
            while (!closed) {
              const batch: Entry[] = [];
              if (cursor.read(batch, batchEntries) === 0) return;
              done += batch.length;
              yield batch;
            }
          } finally {
            cursor.close();
          }
        }
        return {
          [Symbol.asyncIterator]: () => batches(),
          progress: () => ({ done, total, unit: 'entries' }),
          close: async () => {
            closed = true;
          },
        };
      },
      stateAt: (registry: ReducerRegistry, tick: number) => stateAtTick(store, registry, shard, tick, { keepOutputs: false }),
      close: () => store.close(),
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}

/** What a log runs, read from its genesis entry or from the snapshot it starts after. */
export function startOf(where: string, shard: string, genesis: Entry | null, snapshot: Snapshot | null, code: PlayoutError['code'] = 'PLAYOUT_GENESIS_INVALID'): { reducer: string; reducerVersion: number; seed: number; tickMs: number } {
  if (snapshot !== null) {
    if (snapshot.shard !== shard) {
      throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot read shard "${shard}" from ${where}: its snapshot is of shard "${snapshot.shard}"`, { shard, path: 'snapshot.shard', expected: shard, received: snapshot.shard });
    }
    return { reducer: snapshot.reducer, reducerVersion: snapshot.reducerVersion, seed: snapshot.seed, tickMs: snapshot.tickMs };
  }
  const parsed = GenesisPayloadSchema.safeParse(genesis?.payload);
  if (genesis === null || genesis.seq !== 1 || genesis.kind !== 'genesis' || !parsed.success) {
    throw new PlayoutError(code, `Cannot read shard "${shard}" from ${where}: its entry 1 is not a valid genesis entry`, { shard, seq: 1, path: 'entries[1]', expected: 'a genesis entry', received: genesis === null ? 'no entry' : genesis.kind });
  }
  return { reducer: parsed.data.reducer, reducerVersion: parsed.data.reducerVersion, seed: parsed.data.seed, tickMs: parsed.data.tickMs };
}

/**
 * One pass over entries that arrive in pages (a remote source), checked link by link from
 * where the log starts (the snapshot's last entry, or nothing before genesis), cut into
 * batches. Strict reads stop at the first gap or broken link with its seq; lenient ones
 * (inspect) report it and go on from the entry that broke it.
 */
export function chainedStream(where: string, start: Snapshot | null, total: number, pages: (signal: AbortSignal) => AsyncIterable<Entry[]>, options: ReadOptions = {}): EntryStream {
  const strict = options.strict ?? true;
  const batchEntries = Math.max(1, options.batchEntries ?? 256);
  const abort = new AbortController();
  let done = 0;
  let lastSeq = start === null ? 0 : start.seq;
  let lastHash = start === null ? ZERO_HASH : start.lastHash;
  async function* batches(): AsyncGenerator<Entry[], void, undefined> {
    try {
      for await (const page of pages(abort.signal)) {
        for (let i = 0; i < page.length; i += batchEntries) {
          const batch = page.length <= batchEntries ? page : page.slice(i, i + batchEntries);
          for (const e of batch) {
            try {
              checkLink(e, lastSeq, lastHash);
            } catch (err) {
              const p = err as PlayoutError;
              const message = `Cannot read ${where}: ${p.code === 'PLAYOUT_GAP' ? `entries ${lastSeq + 1}–${e.seq - 1} are missing (the next one held is ${e.seq})` : p.message}`;
              if (strict) throw new PlayoutError(p.code, message, { seq: p.seq, shard: p.shard, path: p.path, expected: p.expected, received: p.received, cause: err });
              options.onProblem?.({ code: p.code, seq: e.seq, message, offset: 0 });
            }
            lastSeq = e.seq;
            lastHash = e.hash;
          }
          done += batch.length;
          if (abort.signal.aborted) return;
          yield batch;
        }
      }
    } finally {
      abort.abort();
    }
  }
  return {
    [Symbol.asyncIterator]: () => batches(),
    progress: () => ({ done, total, unit: 'entries' }),
    close: async () => abort.abort(),
  };
}

/** The shard to read: the one asked for, which the source must hold, or the only one it holds. */
export function chooseShard(where: string, shards: readonly string[], requested: string | null | undefined): string {
  if (requested != null) {
    if (shards.includes(requested)) return requested;
    throw new PlayoutError('PLAYOUT_SHARD_NOT_FOUND', `Cannot read shard "${requested}" from ${where}: it holds ${shards.length === 0 ? 'no shard' : `shards ${shards.join(', ')}`}`, {
      path: '--shard',
      shard: requested,
      expected: shards.join(', ') || 'none',
      received: requested,
    });
  }
  if (shards.length === 1) return shards[0]!;
  throw new PlayoutError(shards.length === 0 ? 'PLAYOUT_SHARD_NOT_FOUND' : 'PLAYOUT_INVALID_ARGUMENT', `Cannot choose a shard of ${where}: ${shards.length === 0 ? 'it holds none' : `it holds ${shards.join(', ')}; pass --shard`}`, {
    path: '--shard',
    expected: shards.join(', ') || 'a source with a shard',
    received: 'no --shard',
  });
}

/**
 * A source whose entries arrive in pages from elsewhere (a region, a Kafka topic): every pass
 * is a chainedStream over `pages`, and closing the source closes its open passes, then `release`.
 */
export function pagedSource(info: SourceInfo, snapshot: Snapshot | null, where: string, total: number, pages: (signal: AbortSignal) => AsyncIterable<Entry[]>, release: () => Promise<void>): ReplaySource {
  const streams = new Set<EntryStream>();
  return {
    info,
    snapshot,
    freshSnapshot: () => (snapshot === null ? null : cloneCanonical(snapshot)),
    async read(readOptions: ReadOptions = {}): Promise<EntryStream> {
      const stream = chainedStream(where, snapshot, total, pages, readOptions);
      streams.add(stream);
      return {
        [Symbol.asyncIterator]: () => stream[Symbol.asyncIterator](),
        progress: () => stream.progress(),
        close: async () => {
          streams.delete(stream);
          await stream.close();
        },
      };
    },
    async close(): Promise<void> {
      for (const s of streams) await s.close();
      streams.clear();
      await release();
    },
  };
}

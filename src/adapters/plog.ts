// Fixture files (`.plog`): one recorded shard log, read and written as a stream.
//
// File format 1 (docs/plog.md has the full description):
//
//   file     = magic || version || frame(H) || [frame(S)] || frame(E)* || frame(Z)
//   magic    = 89 50 4C 4F 47 0D 0A 1A 0A      ("\x89PLOG\r\n\x1a\n": catches text-mode
//                                               transfers and files that are not .plog)
//   version  = uint16 big-endian, 1
//   frame    = kind (1 byte) || length (uint32 BE) || check (4 bytes) || payload (length bytes)
//   payload  = body || XXH3-128(body)           every frame's payload ends with its own hash
//   check    = the first 4 bytes of that trailing hash
//
//   H  header: canonical msgpack map (PlogHeaderSchema) || hash
//   S  snapshot the log starts from: encodeSnapshot bytes (which are body || hash already)
//   E  one entry: Entry.bytes (canonical body || hash already)
//   Z  end: canonical msgpack map {entries, lastSeq, lastHash, lastTick} || hash
//
// Why the check is a copy of the payload's own hash prefix rather than a CRC of the frame: the
// payload's hash is already there (entries and snapshots carry one), so the check costs nothing
// to compute; a flipped length makes the 4 bytes at the claimed end disagree with the check, so
// the frame is reported torn (PLAYOUT_FIXTURE_CORRUPT) instead of being decoded misaligned; and a
// flipped byte inside an entry still reaches decodeEntry, which names the entry and its seq
// (PLAYOUT_ENTRY_HASH_MISMATCH). The Z frame makes truncation at a frame boundary detectable: a
// file without it is incomplete. Writers write to `<path>.partial` and rename on close, so a
// crashed capture never leaves a complete-looking file.
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { FileBytes, FileSink, GZIP_MAGIC, GzipBytes, GzipSink, ReadAhead, type ByteSink, type ByteSource } from './plog-bytes.js';
import { z } from 'zod';
import {
  CanonicalWriter,
  ENGINE_VERSION,
  ENTRY_FORMAT,
  Entry,
  HASH_BYTES,
  HASH_NAME,
  PlayoutError,
  ShardIdSchema,
  ZERO_HASH,
  checkLink,
  decodeCanonical,
  decodeEntry,
  decodeSnapshot,
  describe,
  encodeSnapshot,
  hash128,
  hashEquals,
  toHex,
  type Snapshot,
} from '../core/index.js';

export const PLOG_MAGIC = Uint8Array.of(0x89, 0x50, 0x4c, 0x4f, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
export const PLOG_FORMAT = 1;
export const PLOG_PREAMBLE_BYTES = PLOG_MAGIC.length + 2;
export const FRAME_HEADER_BYTES = 9;

export const FRAME_HEADER = 0x48; // 'H'
export const FRAME_SNAPSHOT = 0x53; // 'S'
export const FRAME_ENTRY = 0x45; // 'E'
export const FRAME_END = 0x5a; // 'Z'

/** Frames larger than this are refused on read and write: a flipped length never makes us allocate gigabytes. */
export const FRAME_BYTES_MAX = 256 << 20;

const uint = z.number().int().nonnegative();

/** The header frame's body. Every field is present; absent values are null. */
export const PlogHeaderSchema = z.strictObject({
  /** Same as the file's format version, repeated inside the hashed header. */
  plogFormat: z.literal(PLOG_FORMAT),
  engineVersion: z.string().min(1).max(64),
  entryFormat: z.literal(ENTRY_FORMAT),
  hash: z.literal(HASH_NAME),
  shard: ShardIdSchema,
  reducer: z.string().min(1).max(64),
  /** The reducer version running at the first entry (genesis or the snapshot's next tick). */
  reducerVersion: uint.min(1),
  seed: z.number().int().min(0).max(0xffffffff),
  tickMs: z.number().int().min(1),
  /** Seq of the first entry frame: 1, or the snapshot's seq + 1. */
  firstSeq: uint.min(1),
  /** The snapshot the log starts from, or null when it starts at genesis. */
  snapshot: z.strictObject({ tick: uint, seq: uint.min(1), digest: z.string().regex(/^[0-9a-f]{32}$/) }).nullable(),
  /** The tool that wrote the file, e.g. `tools/gen-fixtures.ts` or `playout capture 0.1.0`. */
  createdBy: z.string().min(1).max(256),
  /** Free text, e.g. what a fixture is for. */
  description: z.string().max(4096).nullable(),
});
export type PlogHeader = z.infer<typeof PlogHeaderSchema>;

/** What a writer supplies: the fields the file format fills in itself are optional. */
export type PlogHeaderInit = Omit<PlogHeader, 'plogFormat' | 'engineVersion' | 'entryFormat' | 'hash' | 'firstSeq' | 'snapshot' | 'description'> & {
  engineVersion?: string;
  description?: string | null;
};

const PlogEndSchema = z.strictObject({
  entries: uint,
  lastSeq: uint,
  lastTick: uint,
  lastHash: z.instanceof(Uint8Array).refine((b) => b.length === HASH_BYTES, 'exactly 16 bytes'),
});
interface PlogEnd {
  entries: number;
  lastSeq: number;
  lastTick: number;
  lastHash: Uint8Array;
}

function corrupt(path: string, message: string, seq: number | null, extra: { expected?: string; received?: string; cause?: unknown } = {}): PlayoutError {
  return new PlayoutError('PLAYOUT_FIXTURE_CORRUPT', `Cannot read fixture ${path}: ${message}`, { path, seq, ...extra });
}

/** One frame's bytes: kind || length || check || payload (payload = body || hash). */
export function encodeFrame(kind: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  out[0] = kind;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload.subarray(payload.length - HASH_BYTES, payload.length - HASH_BYTES + 4), 5);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** A canonical value sealed as a frame payload (header and end frames). */
export function sealFramePayload(value: unknown): Uint8Array {
  return sealValue(new CanonicalWriter(1 << 12), value);
}

/** Seal a canonical value as a frame payload: body || XXH3-128(body). */
function sealValue(w: CanonicalWriter, value: unknown): Uint8Array {
  w.reset();
  w.writeValue(value);
  const bodyLength = w.pos;
  w.writeRaw(hash128(w.buf, 0, bodyLength));
  return w.bytes();
}

// --- writer --------------------------------------------------------------------------------

export interface PlogWriterOptions {
  /** The snapshot the log starts from (entries then start at snapshot.seq + 1). */
  snapshot?: Snapshot | null;
  /** Bytes buffered before a write to the file. */
  bufferBytes?: number;
}

/**
 * Streams a shard log into a `.plog` file. Entries are checked on append (same shard,
 * contiguous seq, chained prev), so a writer never produces a file its reader refuses.
 */
export class PlogWriter {
  readonly path: string;
  readonly header: PlogHeader;
  private readonly partialPath: string;
  private sink: ByteSink | null;
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;
  private readonly bufferBytes: number;
  private lastSeq: number;
  private lastHash: Uint8Array;
  private lastTick: number;
  private count = 0;
  private closed = false;

  private constructor(path: string, sink: ByteSink, header: PlogHeader, snapshot: Snapshot | null, bufferBytes: number) {
    this.path = path;
    this.partialPath = `${path}.partial`;
    this.sink = sink;
    this.header = header;
    this.bufferBytes = bufferBytes;
    this.buf = new Uint8Array(bufferBytes + FRAME_HEADER_BYTES);
    this.view = new DataView(this.buf.buffer);
    this.lastSeq = snapshot === null ? 0 : snapshot.seq;
    this.lastHash = snapshot === null ? ZERO_HASH : snapshot.lastHash;
    this.lastTick = snapshot === null ? 0 : snapshot.tick;
  }

  static async create(path: string, init: PlogHeaderInit, options: PlogWriterOptions = {}): Promise<PlogWriter> {
    const snapshot = options.snapshot ?? null;
    const candidate = {
      plogFormat: PLOG_FORMAT,
      engineVersion: init.engineVersion ?? ENGINE_VERSION,
      entryFormat: ENTRY_FORMAT,
      hash: HASH_NAME,
      shard: init.shard,
      reducer: init.reducer,
      reducerVersion: init.reducerVersion,
      seed: init.seed,
      tickMs: init.tickMs,
      firstSeq: snapshot === null ? 1 : snapshot.seq + 1,
      snapshot: snapshot === null ? null : { tick: snapshot.tick, seq: snapshot.seq, digest: toHex(snapshot.digest) },
      createdBy: init.createdBy,
      description: init.description ?? null,
    };
    const parsed = PlogHeaderSchema.safeParse(candidate);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot write fixture ${path}: header.${issue.path.join('.')}: ${issue.message}`, {
        path: `header.${issue.path.join('.')}`,
        expected: issue.message,
        received: describe(issue.path.reduce<unknown>((v, k) => (v as Record<string, unknown>)?.[k as string], candidate)),
      });
    }
    const header = parsed.data;
    if (snapshot !== null && (snapshot.shard !== header.shard || snapshot.reducer !== header.reducer || snapshot.reducerVersion !== header.reducerVersion || snapshot.seed !== header.seed)) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot write fixture ${path}: the snapshot is of ${snapshot.shard} ${snapshot.reducer}@${snapshot.reducerVersion} seed ${snapshot.seed}, the header says ${header.shard} ${header.reducer}@${header.reducerVersion} seed ${header.seed}`, {
        path: 'snapshot',
        expected: `${header.shard} ${header.reducer}@${header.reducerVersion} seed ${header.seed}`,
        received: `${snapshot.shard} ${snapshot.reducer}@${snapshot.reducerVersion} seed ${snapshot.seed}`,
      });
    }
    const fh = await open(`${path}.partial`, 'w');
    // A name ending in .gz is written gzip-compressed (see plog-bytes.ts).
    const sink = path.endsWith('.gz') ? new GzipSink(fh) : new FileSink(fh);
    const w = new PlogWriter(path, sink, header, snapshot, Math.max(1 << 12, options.bufferBytes ?? 1 << 20));
    w.put(PLOG_MAGIC);
    w.ensure(2);
    w.view.setUint16(w.pos, PLOG_FORMAT);
    w.pos += 2;
    const cw = new CanonicalWriter(1 << 12);
    w.frame(FRAME_HEADER, sealValue(cw, header));
    if (snapshot !== null) w.frame(FRAME_SNAPSHOT, encodeSnapshot(snapshot));
    return w;
  }

  /** Entries written so far. */
  get entries(): number {
    return this.count;
  }

  /** Append entries; they must continue the log (the snapshot, or genesis at seq 1). */
  async append(entries: readonly Entry[]): Promise<void> {
    if (this.closed) throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot append to fixture ${this.path}: the writer is closed`);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.shard !== this.header.shard) {
        throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot append entry ${e.seq} to fixture ${this.path}: expected shard "${this.header.shard}", received "${e.shard}"`, {
          seq: e.seq,
          path: 'shard',
          expected: this.header.shard,
          received: e.shard,
        });
      }
      checkLink(e, this.lastSeq, this.lastHash);
      this.frame(FRAME_ENTRY, e.bytes);
      this.lastSeq = e.seq;
      this.lastHash = e.hash;
      this.lastTick = e.tick;
      this.count++;
      if (this.pos >= this.bufferBytes) await this.flush();
    }
  }

  /** Write the end frame, make the file durable and give it its final name. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const end: PlogEnd = { entries: this.count, lastSeq: this.lastSeq, lastTick: this.lastTick, lastHash: this.lastHash };
    this.frame(FRAME_END, sealValue(new CanonicalWriter(256), end));
    await this.flush();
    const sink = this.sink!;
    this.sink = null;
    try {
      await sink.finish();
    } finally {
      await sink.close();
    }
    await rename(this.partialPath, this.path);
  }

  /** Give up: remove the partial file. */
  async abort(): Promise<void> {
    this.closed = true;
    const sink = this.sink;
    this.sink = null;
    if (sink !== null) await sink.close();
    await rm(this.partialPath, { force: true });
  }

  private frame(kind: number, payload: Uint8Array): void {
    if (payload.length > FRAME_BYTES_MAX) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot write a frame of ${payload.length} bytes to fixture ${this.path}: the limit is ${FRAME_BYTES_MAX}`, {
        expected: `<= ${FRAME_BYTES_MAX} bytes`,
        received: `${payload.length} bytes`,
      });
    }
    this.ensure(FRAME_HEADER_BYTES + payload.length);
    const b = this.buf;
    b[this.pos] = kind;
    this.view.setUint32(this.pos + 1, payload.length);
    const h = payload.length - HASH_BYTES;
    b[this.pos + 5] = payload[h]!;
    b[this.pos + 6] = payload[h + 1]!;
    b[this.pos + 7] = payload[h + 2]!;
    b[this.pos + 8] = payload[h + 3]!;
    b.set(payload, this.pos + FRAME_HEADER_BYTES);
    this.pos += FRAME_HEADER_BYTES + payload.length;
  }

  private put(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  private ensure(bytesMore: number): void {
    const need = this.pos + bytesMore;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  private async flush(): Promise<void> {
    if (this.pos > 0) await this.sink!.write(this.buf.subarray(0, this.pos));
    this.pos = 0;
  }
}

/** Write a whole log to a fixture file. */
export async function writePlog(path: string, init: PlogHeaderInit, entries: Iterable<Entry> | AsyncIterable<Entry>, options: PlogWriterOptions = {}): Promise<PlogHeader> {
  const w = await PlogWriter.create(path, init, options);
  try {
    const batch: Entry[] = [];
    for await (const e of entries) {
      batch.push(e);
      if (batch.length >= 4096) {
        await w.append(batch);
        batch.length = 0;
      }
    }
    await w.append(batch);
    await w.close();
  } catch (err) {
    await w.abort();
    throw err;
  }
  return w.header;
}

// --- reader --------------------------------------------------------------------------------

/** Default size of the reader's buffers: small enough that a kept entry pins little, large enough that reads are few. */
const READ_BYTES = 64 << 10;

export interface PlogReaderOptions {
  /** Entries per yielded batch. */
  batchEntries?: number;
  /**
   * Bytes per read into the reader's buffer (a larger frame gets a buffer of its own size).
   * Each read goes to a fresh buffer that the entries decoded from it keep views of, so an
   * entry kept after the read keeps at most this many bytes alive.
   */
  readBytes?: number;
  /**
   * Strict (default): every entry must chain to the one before it; the first broken link
   * throws. Lenient (`inspect`): chain breaks and gaps are reported to `onProblem` and reading
   * continues; a corrupt entry (bad hash, undecodable) is reported and skipped when its frame
   * is intact.
   */
  strict?: boolean;
  onProblem?: ((problem: PlogProblem) => void) | null;
}

export interface PlogProblem {
  readonly code: PlayoutError['code'];
  readonly seq: number | null;
  readonly message: string;
  /** Byte offset of the frame in the file. */
  readonly offset: number;
}

export interface PlogStats {
  /** Bytes of the file. */
  fileBytes: number;
  /** Bytes consumed so far. */
  bytesRead: number;
  entries: number;
  /** Smallest and largest entry frame payload. */
  entryBytesMin: number;
  entryBytesMax: number;
  entryBytesTotal: number;
  snapshotBytes: number;
  /** The end frame has been read and matches what was read before it. */
  complete: boolean;
}

/**
 * Reads a `.plog` file with one file handle and one growing buffer: memory stays constant in
 * the file's size (the largest frame sets the buffer's size). Entries are decoded, their hashes
 * verified, their chain and shard checked, and yielded in batches.
 */
export class PlogReader {
  readonly path: string;
  readonly header: PlogHeader;
  /** The snapshot the log starts from (decoded and hash-checked), or null. */
  readonly snapshot: Snapshot | null;
  readonly stats: PlogStats;
  private src: ByteSource | null;
  private buf: Uint8Array;
  private view: DataView;
  /** Valid bytes are buf[start, end); `fileOffset` is the stream position of buf[end] (uncompressed). */
  private start: number;
  private end: number;
  private fileOffset: number;
  private readonly batchEntries: number;
  /** Size of the buffers `fill` reads into: entries hold views of them, so a kept entry keeps its buffer. */
  private readonly readBytes: number;
  /** Bytes the next buffer must hold (a frame larger than the buffer). */
  private need = 0;
  private readonly strict: boolean;
  private readonly onProblem: ((problem: PlogProblem) => void) | null;
  private started = false;
  // Where the reading is: the chain so far and the batch being filled.
  private prevSeq: number;
  private prevHash: Uint8Array;
  private lastTick: number;
  private ended = false;
  /** Lenient mode after a skipped corrupt entry: the next entry's link cannot be checked. */
  private linkUnknown = false;
  private entryFrames = 0;
  private batch: Entry[] = [];

  private constructor(path: string, src: ByteSource, header: PlogHeader, snapshot: Snapshot | null, state: { buf: Uint8Array; start: number; end: number; fileOffset: number; fileBytes: number; snapshotBytes: number }, options: PlogReaderOptions) {
    this.path = path;
    this.src = src;
    this.header = header;
    this.snapshot = snapshot;
    this.buf = state.buf;
    this.view = new DataView(state.buf.buffer, state.buf.byteOffset, state.buf.byteLength);
    this.start = state.start;
    this.end = state.end;
    this.fileOffset = state.fileOffset;
    this.batchEntries = options.batchEntries ?? 256;
    this.readBytes = Math.max(1 << 10, options.readBytes ?? READ_BYTES);
    this.prevSeq = header.firstSeq - 1;
    this.prevHash = snapshot === null ? ZERO_HASH : snapshot.lastHash;
    this.lastTick = snapshot === null ? 0 : snapshot.tick + 1;
    this.strict = options.strict ?? true;
    this.onProblem = options.onProblem ?? null;
    this.stats = {
      fileBytes: state.fileBytes,
      bytesRead: state.fileOffset - (state.end - state.start),
      entries: 0,
      entryBytesMin: 0,
      entryBytesMax: 0,
      entryBytesTotal: 0,
      snapshotBytes: state.snapshotBytes,
      complete: false,
    };
  }

  /** Open a fixture and read its preamble, header and snapshot. */
  static async open(path: string, options: PlogReaderOptions = {}): Promise<PlogReader> {
    let fh: FileHandle;
    let fileBytes: number;
    try {
      const st = await stat(path);
      if (!st.isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
      fileBytes = st.size;
      fh = await open(path, 'r');
    } catch (err) {
      throw sourceNotFound(path, err);
    }
    let src: ByteSource;
    try {
      const head = new Uint8Array(2);
      const { bytesRead } = await fh.read(head, 0, 2, 0);
      const raw = bytesRead === 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1] ? new GzipBytes(fh, path) : new FileBytes(fh);
      src = new ReadAhead(raw);
    } catch (err) {
      await fh.close();
      throw sourceNotFound(path, err);
    }
    try {
      return await PlogReader.openSource(path, src, fileBytes, options);
    } catch (err) {
      await src.close();
      throw err;
    }
  }

  private static async openSource(path: string, src: ByteSource, fileBytes: number, options: PlogReaderOptions): Promise<PlogReader> {
    const readBytes = options.readBytes ?? READ_BYTES;
    let buf = new Uint8Array(Math.max(readBytes, 1 << 12));
    let end = 0;
    let fileOffset = 0;
    const fill = async (need: number): Promise<void> => {
      // Make sure buf[start..start+need) is loaded; `start` is 0 during open (we never shift here).
      while (end < need) {
        if (need > buf.length) {
          const next = new Uint8Array(Math.max(buf.length * 2, need));
          next.set(buf.subarray(0, end));
          buf = next;
        }
        const bytesRead = await src.read(buf, end, buf.length - end);
        if (bytesRead === 0) return;
        end += bytesRead;
        fileOffset += bytesRead;
      }
    };
    await fill(PLOG_PREAMBLE_BYTES);
    for (let i = 0; i < PLOG_MAGIC.length; i++) {
      if (buf[i] !== PLOG_MAGIC[i] || end < PLOG_MAGIC.length) {
        throw new PlayoutError('PLAYOUT_FIXTURE_FORMAT_UNKNOWN', `Cannot read fixture ${path}: it is not a .plog file (expected the bytes 89 50 4c 4f 47 0d 0a 1a 0a, received ${hexPrefix(buf, Math.min(end, PLOG_MAGIC.length))})`, {
          path,
          expected: '.plog magic',
          received: hexPrefix(buf, Math.min(end, PLOG_MAGIC.length)),
        });
      }
    }
    if (end < PLOG_PREAMBLE_BYTES) throw corrupt(path, `the file ends inside its preamble (${end} bytes)`, null);
    const version = (buf[PLOG_MAGIC.length]! << 8) | buf[PLOG_MAGIC.length + 1]!;
    if (version !== PLOG_FORMAT) {
      throw new PlayoutError('PLAYOUT_FIXTURE_FORMAT_UNKNOWN', `Cannot read fixture ${path}: expected .plog format ${PLOG_FORMAT}, received format ${version}`, {
        path: 'version',
        expected: String(PLOG_FORMAT),
        received: String(version),
      });
    }
    let pos = PLOG_PREAMBLE_BYTES;
    const readFrame = async (what: string): Promise<{ kind: number; offset: number; length: number } | null> => {
      await fill(pos + FRAME_HEADER_BYTES);
      if (end === pos) return null;
      if (end < pos + FRAME_HEADER_BYTES) throw corrupt(path, `the file ends inside the ${what} frame header at byte ${pos}`, null);
      const kind = buf[pos]!;
      const length = ((buf[pos + 1]! << 24) >>> 0) + (buf[pos + 2]! << 16) + (buf[pos + 3]! << 8) + buf[pos + 4]!;
      checkFrameLength(path, pos, length, null);
      await fill(pos + FRAME_HEADER_BYTES + length);
      if (end < pos + FRAME_HEADER_BYTES + length) throw corrupt(path, `the file ends inside the ${what} frame at byte ${pos} (expected ${length} bytes, ${end - pos - FRAME_HEADER_BYTES} left)`, null);
      checkFrameCheck(path, buf, pos, length, null);
      const frame = { kind, offset: pos + FRAME_HEADER_BYTES, length };
      pos += FRAME_HEADER_BYTES + length;
      return frame;
    };
    const hf = await readFrame('header');
    if (hf === null || hf.kind !== FRAME_HEADER) throw corrupt(path, `expected a header frame at byte ${PLOG_PREAMBLE_BYTES}, received ${hf === null ? 'the end of the file' : `frame kind 0x${hf.kind.toString(16)}`}`, null);
    const header = decodeHeader(path, buf, hf.offset, hf.length);
    let snapshot: Snapshot | null = null;
    let snapshotBytes = 0;
    if (header.snapshot !== null) {
      const sf = await readFrame('snapshot');
      if (sf === null || sf.kind !== FRAME_SNAPSHOT) throw corrupt(path, `the header announces a snapshot at tick ${header.snapshot.tick} but the next frame is ${sf === null ? 'the end of the file' : `kind 0x${sf.kind.toString(16)}`}`, null);
      try {
        snapshot = decodeSnapshot(buf, sf.offset, sf.length);
      } catch (err) {
        throw corrupt(path, `its snapshot frame: ${(err as Error).message}`, null, { cause: err });
      }
      snapshotBytes = sf.length;
      const s = snapshot;
      if (s.shard !== header.shard || s.tick !== header.snapshot.tick || s.seq !== header.snapshot.seq || toHex(s.digest) !== header.snapshot.digest || s.reducer !== header.reducer || s.reducerVersion !== header.reducerVersion || s.seed !== header.seed) {
        throw corrupt(path, `the snapshot (shard ${s.shard}, tick ${s.tick}, seq ${s.seq}, ${s.reducer}@${s.reducerVersion}) does not match the header (shard ${header.shard}, tick ${header.snapshot.tick}, seq ${header.snapshot.seq}, ${header.reducer}@${header.reducerVersion})`, null, {
          expected: `tick ${header.snapshot.tick} seq ${header.snapshot.seq}`,
          received: `tick ${s.tick} seq ${s.seq}`,
        });
      }
      if (header.firstSeq !== s.seq + 1) throw corrupt(path, `header.firstSeq is ${header.firstSeq} but the snapshot ends at seq ${s.seq}`, null);
    } else if (header.firstSeq !== 1) {
      throw corrupt(path, `header.firstSeq is ${header.firstSeq} without a snapshot; a log without a snapshot starts at seq 1`, null);
    }
    return new PlogReader(path, src, header, snapshot, { buf, start: pos, end, fileOffset, fileBytes, snapshotBytes }, options);
  }

  /**
   * Entries in batches, decoded and verified. Can be called once per reader. The file handle
   * is closed when the iteration ends (completely, by an error, or by `break`).
   *
   * The frames are parsed synchronously (`parse`), a whole batch at a time: the generator only
   * hands batches over and waits for bytes, so the per-entry work runs in an ordinary optimised
   * loop, not across generator steps.
   */
  async *batches(): AsyncGenerator<Entry[], void, undefined> {
    if (this.started) throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Fixture ${this.path} is already being read; open it again to read it twice`);
    this.started = true;
    const batchEntries = Math.max(1, this.batchEntries);
    try {
      for (;;) {
        const more = this.parse(batchEntries);
        if (this.batch.length >= batchEntries) {
          const full = this.batch;
          this.batch = [];
          yield full;
          continue;
        }
        if (!more) continue;
        if (!(await this.fill())) break;
      }
      if (this.end > this.start) {
        throw corrupt(this.path, `the file ends inside a frame at byte ${this.fileOffset - (this.end - this.start)} (torn write or truncated copy); the first entry not read is seq ${this.prevSeq + 1}`, this.prevSeq + 1);
      }
      if (!this.ended) {
        throw corrupt(this.path, `the file ends after entry ${this.prevSeq} without its end frame (truncated copy, or a capture that did not finish); the first entry not read is seq ${this.prevSeq + 1}`, this.prevSeq + 1);
      }
      if (this.batch.length > 0) {
        const last = this.batch;
        this.batch = [];
        yield last;
      }
    } catch (err) {
      // Hand over the entries verified before the damage, then report it: a consumer sees
      // every good entry and learns exactly where the file stops being readable.
      if (this.batch.length > 0) {
        const good = this.batch;
        this.batch = [];
        yield good;
      }
      throw err;
    } finally {
      await this.close();
    }
  }

  /**
   * Decode every whole frame in the buffer into `this.batch` until it holds `batchEntries`.
   * True when the buffer has no whole frame left (more bytes are needed), false when the
   * batch is full.
   *
   * Entries keep views of the buffer (decodeEntry adopts a buffer that is exactly the entry,
   * instead of copying it): `fill` never writes over bytes it has handed out, it moves on to a
   * fresh buffer.
   */
  private parse(batchEntries: number): boolean {
    const b = this.buf;
    const view = this.view;
    const batch = this.batch;
    const stats = this.stats;
    const shard = this.header.shard;
    let p = this.start;
    const end = this.end;
    try {
      while (batch.length < batchEntries) {
        const avail = end - p;
        if (avail < FRAME_HEADER_BYTES) return true;
        const kind = b[p]!;
        const length = view.getUint32(p + 1);
        if (length <= HASH_BYTES || length > FRAME_BYTES_MAX) checkFrameLength(this.path, this.fileOffset - avail, length, this.prevSeq + 1);
        if (avail < FRAME_HEADER_BYTES + length) {
          if (FRAME_HEADER_BYTES + length > b.length) this.need = FRAME_HEADER_BYTES + length;
          return true;
        }
        const h = p + length - HASH_BYTES + FRAME_HEADER_BYTES;
        if (b[p + 5] !== b[h] || b[p + 6] !== b[h + 1] || b[p + 7] !== b[h + 2] || b[p + 8] !== b[h + 3]) checkFrameCheck(this.path, b, p, length, this.prevSeq + 1, this.fileOffset - avail);
        const at = p + FRAME_HEADER_BYTES;
        p = at + length;
        if (this.ended) throw corrupt(this.path, `found a frame after the end frame at byte ${this.fileOffset - avail}`, null);
        if (kind === FRAME_ENTRY) {
          this.entryFrames++;
          const seq = this.prevSeq + 1;
          let e: Entry;
          try {
            e = decodeEntry(new Uint8Array(b.buffer, b.byteOffset + at, length), 0, length, seq);
          } catch (err) {
            if (this.strict || !(err instanceof PlayoutError)) throw err;
            this.problem(err.code, err.seq, err.message, this.fileOffset - avail);
            this.prevSeq = seq;
            this.linkUnknown = true;
            continue;
          }
          if (e.shard !== shard || e.kind === 'genesis' || e.tick < this.lastTick || this.linkUnknown || e.seq !== seq || !hashEquals(e.prev, this.prevHash)) this.checkEntry(e, this.fileOffset - avail);
          this.lastTick = e.tick;
          this.prevSeq = e.seq;
          this.prevHash = e.hash;
          if (stats.entries === 0 || length < stats.entryBytesMin) stats.entryBytesMin = length;
          if (length > stats.entryBytesMax) stats.entryBytesMax = length;
          stats.entryBytesTotal += length;
          stats.entries++;
          batch.push(e);
        } else if (kind === FRAME_END) {
          this.endFrame(b, at, length, this.fileOffset - avail);
        } else {
          throw corrupt(this.path, `unexpected frame kind 0x${kind.toString(16)} at byte ${this.fileOffset - avail} (expected an entry or the end frame)`, this.prevSeq + 1);
        }
      }
      return false;
    } finally {
      this.start = p;
      stats.bytesRead = this.fileOffset - (end - p);
    }
  }

  /** The uncommon checks of an entry, out of the hot loop: shard, genesis, link, tick order. */
  private checkEntry(e: Entry, frameOffset: number): void {
    const shard = this.header.shard;
    if (e.shard !== shard) {
      const err = new PlayoutError('PLAYOUT_FIXTURE_CORRUPT', `Cannot read fixture ${this.path}: entry ${e.seq} belongs to shard "${e.shard}", the header says "${shard}"`, {
        path: 'shard',
        seq: e.seq,
        shard,
        expected: shard,
        received: e.shard,
      });
      if (this.strict) throw err;
      this.problem(err.code, e.seq, err.message, frameOffset);
    }
    if (e.kind === 'genesis') this.checkGenesis(e);
    if (this.linkUnknown) this.linkUnknown = false;
    else if (e.seq !== this.prevSeq + 1 || !hashEquals(e.prev, this.prevHash)) {
      if (this.strict) checkLink(e, this.prevSeq, this.prevHash);
      else {
        try {
          checkLink(e, this.prevSeq, this.prevHash);
        } catch (err) {
          const pe = err as PlayoutError;
          this.problem(pe.code, e.seq, pe.message, frameOffset);
        }
      }
    }
    if (e.tick < this.lastTick) {
      const err = new PlayoutError('PLAYOUT_OUT_OF_ORDER', `Cannot read fixture ${this.path}: entry ${e.seq} is at tick ${e.tick}, after an entry at tick ${this.lastTick}`, {
        seq: e.seq,
        path: 'tick',
        expected: `>= ${this.lastTick}`,
        received: String(e.tick),
      });
      if (this.strict) throw err;
      this.problem(err.code, e.seq, err.message, frameOffset);
    }
  }

  /** The end frame: it must count what was read before it. */
  private endFrame(b: Uint8Array, at: number, length: number, frameOffset: number): void {
    const endFrame = decodeEnd(this.path, b, at, length);
    if (endFrame.entries !== this.entryFrames || endFrame.lastSeq !== this.prevSeq || (!this.linkUnknown && !hashEquals(endFrame.lastHash, this.prevHash))) {
      const err = corrupt(this.path, `its end frame records ${endFrame.entries} entries up to seq ${endFrame.lastSeq}, but ${this.entryFrames} entries up to seq ${this.prevSeq} were read`, this.prevSeq + 1, {
        expected: `${endFrame.entries} entries, last seq ${endFrame.lastSeq}`,
        received: `${this.entryFrames} entries, last seq ${this.prevSeq}`,
      });
      if (this.strict) throw err;
      this.problem(err.code, this.prevSeq + 1, err.message, frameOffset);
    }
    this.ended = true;
    this.stats.complete = true;
  }

  /** Every entry (a convenience over `batches`). */
  async *entries(): AsyncGenerator<Entry, void, undefined> {
    for await (const batch of this.batches()) for (const e of batch) yield e;
  }

  async close(): Promise<void> {
    const src = this.src;
    this.src = null;
    if (src !== null) await src.close();
  }

  /** Bytes of the file consumed so far (compressed bytes for a .gz file): progress against `stats.fileBytes`. */
  fileBytesConsumed(): number {
    return this.src === null ? this.stats.fileBytes : this.src.consumed();
  }

  /** True when the file is gzip-compressed. */
  get compressed(): boolean {
    return this.src?.compressed ?? false;
  }

  /** A genesis entry must say what the header says (the header is what tools show before reading). */
  private checkGenesis(e: Entry): void {
    const g = e.payload as Record<string, unknown> | null;
    const h = this.header;
    if (g === null || typeof g !== 'object' || g.reducer !== h.reducer || g.reducerVersion !== h.reducerVersion || g.seed !== h.seed || g.tickMs !== h.tickMs) {
      const received = g === null || typeof g !== 'object' ? describe(g) : `${String(g.reducer)}@${String(g.reducerVersion)} seed ${String(g.seed)} tickMs ${String(g.tickMs)}`;
      const err = corrupt(this.path, `its genesis entry (${received}) does not match its header (${h.reducer}@${h.reducerVersion} seed ${h.seed} tickMs ${h.tickMs})`, e.seq, {
        expected: `${h.reducer}@${h.reducerVersion} seed ${h.seed} tickMs ${h.tickMs}`,
        received,
      });
      if (this.strict) throw err;
      this.problem(err.code, e.seq, err.message, 0);
    }
  }

  private problem(code: PlayoutError['code'], seq: number | null, message: string, offset: number): void {
    if (this.onProblem !== null) this.onProblem({ code, seq, message, offset });
  }

  /**
   * Move the unread bytes to a fresh buffer (never over bytes handed out as entries) and read
   * more after them. False at the end of the file.
   */
  private async fill(): Promise<boolean> {
    if (this.src === null) return false;
    const unread = this.end - this.start;
    const size = Math.max(this.readBytes, this.need, unread + FRAME_HEADER_BYTES);
    this.need = 0;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(this.start, this.end));
    this.buf = next;
    this.view = new DataView(next.buffer);
    this.start = 0;
    this.end = unread;
    const bytesRead = await this.src.read(next, unread, next.length - unread);
    if (bytesRead === 0) return false;
    this.end += bytesRead;
    this.fileOffset += bytesRead;
    return true;
  }
}

function sourceNotFound(path: string, err: unknown): PlayoutError {
  const code = (err as NodeJS.ErrnoException)?.code;
  const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory, not a fixture file' : (err as Error)?.message ?? String(err);
  return new PlayoutError('PLAYOUT_SOURCE_NOT_FOUND', `Cannot open fixture ${path}: ${why}`, { path, expected: 'a readable .plog file', received: why, cause: err });
}

function hexPrefix(buf: Uint8Array, n: number): string {
  if (n === 0) return 'an empty file';
  return Array.from(buf.subarray(0, n), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

function checkFrameLength(path: string, offset: number, length: number, seq: number | null): void {
  if (length <= HASH_BYTES || length > FRAME_BYTES_MAX) {
    throw corrupt(path, `the frame at byte ${offset} declares ${length} bytes (expected ${HASH_BYTES + 1} to ${FRAME_BYTES_MAX}); the file is torn or not a .plog file${seq === null ? '' : `; the first entry not read is seq ${seq}`}`, seq, {
      expected: `${HASH_BYTES + 1}..${FRAME_BYTES_MAX} bytes`,
      received: `${length} bytes`,
    });
  }
}

function checkFrameCheck(path: string, buf: Uint8Array, p: number, length: number, seq: number | null, fileOffset = p): void {
  const h = p + FRAME_HEADER_BYTES + length - HASH_BYTES;
  if (buf[p + 5] !== buf[h] || buf[p + 6] !== buf[h + 1] || buf[p + 7] !== buf[h + 2] || buf[p + 8] !== buf[h + 3]) {
    const expected = toHex(buf.subarray(p + 5, p + 9));
    const received = toHex(buf.subarray(h, h + 4));
    throw corrupt(path, `the frame at byte ${fileOffset} fails its check (expected ${expected}, received ${received}): its length or its end is damaged${seq === null ? '' : `; the first entry not read is seq ${seq}`}`, seq, { expected, received });
  }
}

function decodeSealed(path: string, what: string, buf: Uint8Array, offset: number, length: number): unknown {
  const bodyEnd = offset + length - HASH_BYTES;
  const computed = hash128(buf, offset, length - HASH_BYTES);
  if (!hashEquals(computed, buf.subarray(bodyEnd, offset + length))) {
    throw corrupt(path, `its ${what} frame hashes to ${toHex(computed)} but records ${toHex(buf.subarray(bodyEnd, offset + length))}`, null);
  }
  try {
    return decodeCanonical(buf, offset, bodyEnd);
  } catch (err) {
    throw corrupt(path, `its ${what} frame is not msgpack`, null, { cause: err });
  }
}

function decodeHeader(path: string, buf: Uint8Array, offset: number, length: number): PlogHeader {
  const raw = decodeSealed(path, 'header', buf, offset, length);
  const declared = (raw as { plogFormat?: unknown } | null)?.plogFormat;
  if (declared !== PLOG_FORMAT) {
    throw new PlayoutError('PLAYOUT_FIXTURE_FORMAT_UNKNOWN', `Cannot read fixture ${path}: its header declares format ${describe(declared)}, expected ${PLOG_FORMAT}`, {
      path: 'header.plogFormat',
      expected: String(PLOG_FORMAT),
      received: describe(declared),
    });
  }
  const r = PlogHeaderSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const at = `header.${issue.path.join('.')}`;
    const code = issue.path[0] === 'entryFormat' || issue.path[0] === 'hash' ? 'PLAYOUT_FIXTURE_FORMAT_UNKNOWN' : 'PLAYOUT_FIXTURE_CORRUPT';
    throw new PlayoutError(code, `Cannot read fixture ${path}: ${at}: ${issue.message}`, { path: at, expected: issue.message });
  }
  return r.data;
}

function decodeEnd(path: string, buf: Uint8Array, offset: number, length: number): PlogEnd {
  const raw = decodeSealed(path, 'end', buf, offset, length);
  const r = PlogEndSchema.safeParse(raw);
  if (!r.success) throw corrupt(path, `its end frame: ${r.error.issues[0]!.path.join('.')}: ${r.error.issues[0]!.message}`, null);
  return r.data;
}

// Byte streams under the .plog reader and writer: a plain file, or a gzip-compressed one
// (`.plog.gz`). Compression is outside the format: the reader sees the same bytes either way,
// and a fixture's identity (the hash gen-fixtures records) is the hash of those bytes, so a
// different zlib build producing other compressed bytes changes nothing.
//
// Gzip keeps large fixtures small in the repository (the 100,000-entry one shrinks about 3×:
// entry hashes repeat as the next entry's prev). Inflating took about 5 ms per MB here, against
// 70–120 ms of replay per MB of entries (bench/replay.bench.ts times both forms of that fixture).
import type { FileHandle } from 'node:fs/promises';
import { createGunzip, createGzip, constants as zlibConstants, type Gunzip, type Gzip } from 'node:zlib';
import { PlayoutError } from '../core/index.js';

export const GZIP_MAGIC = Uint8Array.of(0x1f, 0x8b);

export interface ByteSource {
  /** Read up to `length` bytes into `into` at `at`; 0 at the end of the stream. */
  read(into: Uint8Array, at: number, length: number): Promise<number>;
  /** Bytes of the underlying file consumed so far (compressed bytes for gzip). */
  consumed(): number;
  readonly compressed: boolean;
  close(): Promise<void>;
}

export class FileBytes implements ByteSource {
  private readonly fh: FileHandle;
  private position = 0;
  readonly compressed = false;

  constructor(fh: FileHandle) {
    this.fh = fh;
  }

  async read(into: Uint8Array, at: number, length: number): Promise<number> {
    const { bytesRead } = await this.fh.read(into, at, length, this.position);
    this.position += bytesRead;
    return bytesRead;
  }

  consumed(): number {
    return this.position;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/**
 * A gzip file inflated as it is read; memory stays at about one compressed chunk and what it
 * inflates to. The file is read with the handle (no fs stream owns it) and fed to zlib one
 * chunk at a time when the inflated bytes run out.
 */
export class GzipBytes implements ByteSource {
  private readonly fh: FileHandle;
  private readonly path: string;
  private readonly gunzip: Gunzip;
  // Small compressed reads keep progress (compressed bytes consumed) fine-grained.
  private readonly input = Buffer.allocUnsafe(1 << 17);
  private readonly out: Buffer[] = [];
  private outAt = 0;
  private position = 0;
  private inputDone = false;
  private ended = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;
  readonly compressed = true;

  constructor(fh: FileHandle, path: string) {
    this.fh = fh;
    this.path = path;
    this.gunzip = createGunzip({ chunkSize: 1 << 18 });
    this.gunzip.on('data', (chunk: Buffer) => {
      this.out.push(chunk);
      this.notify();
    });
    this.gunzip.on('end', () => {
      this.ended = true;
      this.notify();
    });
    this.gunzip.on('error', (err: Error) => {
      this.error = err;
      this.notify();
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    if (w !== null) w();
  }

  private damaged(err: Error): PlayoutError {
    return new PlayoutError('PLAYOUT_FIXTURE_CORRUPT', `Cannot read fixture ${this.path}: its gzip stream is damaged or truncated (${err.message})`, { path: this.path, cause: err });
  }

  /** Feed zlib until it has produced output, ended or failed. */
  private async pump(): Promise<void> {
    while (this.out.length === 0 && !this.ended && this.error === null) {
      if (this.inputDone) {
        // Only zlib can move now: its output, end or error wakes us.
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      const { bytesRead } = await this.fh.read(this.input, 0, this.input.length, this.position);
      if (bytesRead === 0) {
        this.inputDone = true;
        this.gunzip.end();
        continue;
      }
      this.position += bytesRead;
      // Wait until zlib has consumed the chunk (backpressure: one compressed chunk in flight),
      // then one turn for the output it pushed to arrive as 'data'. zlib keeps a reference to
      // the chunk, so it gets its own copy.
      await new Promise<void>((resolve) => this.gunzip.write(Buffer.from(this.input.subarray(0, bytesRead)), () => resolve()));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  async read(into: Uint8Array, at: number, length: number): Promise<number> {
    let n = 0;
    while (n < length) {
      if (this.out.length === 0) {
        if (n > 0) break;
        await this.pump();
        if (this.error !== null) throw this.damaged(this.error);
        if (this.out.length === 0) break; // ended
      }
      const chunk = this.out[0]!;
      const take = Math.min(length - n, chunk.length - this.outAt);
      into.set(chunk.subarray(this.outAt, this.outAt + take), at + n);
      n += take;
      this.outAt += take;
      if (this.outAt === chunk.length) {
        this.out.shift();
        this.outAt = 0;
      }
    }
    return n;
  }

  consumed(): number {
    return this.position;
  }

  async close(): Promise<void> {
    this.gunzip.destroy();
    await this.fh.close();
  }
}

/**
 * Keeps the next chunk of a source in flight while the caller works on the current one: the
 * file read (and, for gzip, the inflate, which zlib runs on the thread pool) overlaps with
 * decoding and applying entries on the main thread, instead of the main thread idling on each
 * read. Two buffers of `chunkBytes`, alternating.
 */
export class ReadAhead implements ByteSource {
  private readonly inner: ByteSource;
  private readonly chunkBytes: number;
  private current: Uint8Array;
  private spare: Uint8Array;
  private at = 0;
  private length = 0;
  private pending: Promise<number> | null = null;
  private done = false;

  constructor(inner: ByteSource, chunkBytes = 1 << 20) {
    this.inner = inner;
    this.chunkBytes = chunkBytes;
    this.current = new Uint8Array(chunkBytes);
    this.spare = new Uint8Array(chunkBytes);
  }

  get compressed(): boolean {
    return this.inner.compressed;
  }

  private prefetch(): void {
    const into = this.spare;
    this.pending = (async () => {
      // Fill the whole chunk unless the source ends: small reads would defeat the overlap.
      let n = 0;
      while (n < into.length) {
        const got = await this.inner.read(into, n, into.length - n);
        if (got === 0) break;
        n += got;
      }
      return n;
    })();
    // An error is reported when the chunk is asked for, not when it is fetched ahead.
    this.pending.catch(() => undefined);
  }

  async read(into: Uint8Array, at: number, length: number): Promise<number> {
    if (this.at === this.length) {
      if (this.done) return 0;
      if (this.pending === null) this.prefetch();
      const n = await this.pending!;
      this.pending = null;
      const filled = this.spare;
      this.spare = this.current;
      this.current = filled;
      this.at = 0;
      this.length = n;
      if (n < this.chunkBytes) this.done = true;
      else this.prefetch();
      if (n === 0) return 0;
    }
    const take = Math.min(length, this.length - this.at);
    into.set(this.current.subarray(this.at, this.at + take), at);
    this.at += take;
    return take;
  }

  consumed(): number {
    return this.inner.consumed();
  }

  async close(): Promise<void> {
    await this.pending?.catch(() => undefined);
    await this.inner.close();
  }
}

export interface ByteSink {
  write(bytes: Uint8Array): Promise<void>;
  /** Flush everything and make it durable. */
  finish(): Promise<void>;
  close(): Promise<void>;
}

export class FileSink implements ByteSink {
  private readonly fh: FileHandle;

  constructor(fh: FileHandle) {
    this.fh = fh;
  }

  async write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) {
      const { bytesWritten } = await this.fh.write(bytes, off, bytes.length - off);
      off += bytesWritten;
    }
  }

  async finish(): Promise<void> {
    await this.fh.sync();
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** Gzip-compresses into the file handle; the compressed output is written in order as zlib produces it. */
export class GzipSink implements ByteSink {
  private readonly fh: FileHandle;
  private readonly gzip: Gzip;
  private writes: Promise<void> = Promise.resolve();
  private pendingBytes = 0;
  private error: Error | null = null;
  private readonly ended: Promise<void>;

  constructor(fh: FileHandle) {
    this.fh = fh;
    this.gzip = createGzip({ level: zlibConstants.Z_BEST_COMPRESSION, memLevel: 9 });
    this.gzip.on('data', (chunk: Buffer) => {
      this.pendingBytes += chunk.length;
      this.writes = this.writes.then(async () => {
        let off = 0;
        while (off < chunk.length) off += (await this.fh.write(chunk, off, chunk.length - off)).bytesWritten;
        this.pendingBytes -= chunk.length;
      });
    });
    this.ended = new Promise((resolve, reject) => {
      this.gzip.on('end', () => resolve());
      this.gzip.on('error', (err: Error) => {
        this.error = err;
        reject(err);
      });
    });
    this.ended.catch(() => undefined);
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.error !== null) throw this.error;
    // Copy: the writer reuses its buffer, and zlib holds the chunk until it has consumed it.
    this.gzip.write(Buffer.from(bytes));
    if (this.pendingBytes > 4 << 20) await this.writes;
  }

  async finish(): Promise<void> {
    this.gzip.end();
    await this.ended;
    await this.writes;
    await this.fh.sync();
  }

  async close(): Promise<void> {
    if (!this.gzip.writableEnded) this.gzip.destroy();
    await this.writes.catch(() => undefined);
    await this.fh.close();
  }
}

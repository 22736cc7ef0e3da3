// Replication frames: the body of GET /v1/shards/:shard/stream and GET …/entries.
//
// Wire format, frame format 1:
//
//   frame     = length:u32be || type:u8 || body        (length counts type + body)
//   type 0x01 = ENTRY      body = the entry's wire bytes (canonical msgpack body || 16-byte hash)
//   type 0x02 = HEARTBEAT  body = canonical msgpack map, see `Heartbeat`
//   type 0x03 = END        body = canonical msgpack map {code, message}: why the sender closes
//
// An entry travels as its stored bytes: the sender neither decodes nor re-encodes it (the
// store serves `rangeRaw`), and the receiver verifies the entry's own hash, so a flipped bit
// anywhere in the frame body is caught by `decodeEntry`. The length prefix is checked
// against `frameBytesMax` before anything is buffered, so a torn or hostile prefix cannot
// make the receiver allocate gigabytes.
import { decodeCanonical, encodeCanonical } from '../core/codec.js';
import { decodeEntry, type Entry } from '../core/entry.js';
import { PlayoutError, describe } from '../core/errors.js';
import type { PeerShardStatus } from '../ports/entry-source.js';

export const FRAME_ENTRY = 0x01;
export const FRAME_HEARTBEAT = 0x02;
export const FRAME_END = 0x03;
export const FRAME_HEADER_BYTES = 5;
export const FRAMES_CONTENT_TYPE = 'application/vnd.playout.frames';

/**
 * What a heartbeat says about its sender's copy of the shard: the port's PeerShardStatus
 * (src/ports/entry-source.ts) plus the sender's wall clock, for lag estimates only (never for
 * ordering).
 */
export interface Heartbeat extends PeerShardStatus {
  readonly nowMs: number;
}

export interface EndFrame {
  code: string;
  message: string;
}

/** FrameWriter.take copies out fewer bytes than this, and hands larger batches over. */
const TAKE_COPY_BYTES_MAX = 1 << 14;

/** Appends frames into one growing buffer; `take()` hands the bytes out and starts over. */
export class FrameWriter {
  private buf: Buffer;
  private pos = 0;
  private readonly bytesInitial: number;

  constructor(bytesInitial = 1 << 16) {
    this.bytesInitial = bytesInitial;
    this.buf = Buffer.allocUnsafe(bytesInitial);
  }

  get length(): number {
    return this.pos;
  }

  entry(bytes: Uint8Array): void {
    this.frame(FRAME_ENTRY, bytes);
  }

  heartbeat(h: Heartbeat): void {
    this.frame(FRAME_HEARTBEAT, encodeCanonical(h, 'heartbeat'));
  }

  end(e: EndFrame): void {
    this.frame(FRAME_END, encodeCanonical(e, 'end frame'));
  }

  /** Make room for `bytes` more bytes of frames at once (a chunk of known size: no regrowth on the way). */
  reserve(bytes: number): void {
    const need = this.pos + bytes;
    if (need <= this.buf.length) return;
    let size = Math.max(this.bytesInitial, this.buf.length * 2);
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  private frame(type: number, body: Uint8Array): void {
    const need = this.pos + FRAME_HEADER_BYTES + body.length;
    if (need > this.buf.length) this.reserve(FRAME_HEADER_BYTES + body.length);
    this.buf.writeUInt32BE(body.length + 1, this.pos);
    this.buf[this.pos + 4] = type;
    this.buf.set(body, this.pos + FRAME_HEADER_BYTES);
    this.pos = need;
  }

  /**
   * The frames written since the last take. A few frames are copied out and the buffer is
   * reused; a large batch (a catch-up chunk, a range answer) is handed over whole and the
   * writer starts a new buffer, sparing a copy of megabytes.
   */
  take(): Buffer {
    if (this.pos < TAKE_COPY_BYTES_MAX) {
      const out = Buffer.from(this.buf.subarray(0, this.pos));
      this.pos = 0;
      return out;
    }
    const out = this.buf.subarray(0, this.pos);
    // The next frame allocates a new buffer (a one-shot writer never does).
    this.buf = Buffer.alloc(0);
    this.pos = 0;
    return out;
  }
}

export type Frame = { type: 'entry'; entry: Entry } | { type: 'heartbeat'; heartbeat: Heartbeat } | { type: 'end'; end: EndFrame };

/**
 * Incremental frame decoder: push the chunks of a response as they arrive and read decoded
 * frames. Entries are verified (hash, format, field types) as they are decoded.
 */
export class FrameDecoder {
  // A plain Uint8Array, never a Buffer: decodeEntry copies an entry's bytes out with
  // `slice`, which on a Buffer would return a view of this reused buffer, and the stored
  // entry would change under its hash at the next push.
  private buf: Uint8Array;
  private view: DataView;
  private start = 0;
  private end = 0;
  private readonly frameBytesMax: number;
  private readonly what: string;

  constructor(frameBytesMax: number, what = 'replication stream') {
    this.frameBytesMax = frameBytesMax;
    this.what = what;
    this.buf = new Uint8Array(1 << 16);
    this.view = new DataView(this.buf.buffer);
  }

  /** Bytes received but not yet forming a whole frame. */
  get pendingBytes(): number {
    return this.end - this.start;
  }

  push(chunk: Uint8Array): void {
    const len = chunk.length;
    if (this.end + len > this.buf.length) {
      const live = this.end - this.start;
      if (live + len <= this.buf.length && this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        let size = this.buf.length * 2;
        while (size < live + len) size *= 2;
        const next = new Uint8Array(size);
        next.set(this.buf.subarray(this.start, this.end));
        this.buf = next;
        this.view = new DataView(next.buffer);
      }
      this.start = 0;
      this.end = live;
    }
    this.buf.set(chunk, this.end);
    this.end += len;
  }

  /** The next whole frame, or null when more bytes are needed. Throws on a torn or oversized frame. */
  next(): Frame | null {
    if (this.end - this.start < 4) return null;
    const length = this.view.getUint32(this.start);
    if (length === 0 || length + 4 > this.frameBytesMax) {
      throw new PlayoutError('PLAYOUT_FRAME_TOO_LARGE', `Cannot read a frame of the ${this.what}: expected a length of 1 to ${this.frameBytesMax - 4} bytes, received ${length}`, {
        expected: `1..${this.frameBytesMax - 4} bytes`,
        received: `${length} bytes`,
      });
    }
    if (this.end - this.start < 4 + length) return null;
    const type = this.buf[this.start + 4]!;
    const bodyStart = this.start + FRAME_HEADER_BYTES;
    const bodyLength = length - 1;
    this.start += 4 + length;
    if (this.start === this.end) this.start = this.end = 0;
    // The cursor moved (or reset), but the bytes stay in place until the next push: decode now.
    const at = bodyStart;
    switch (type) {
      case FRAME_ENTRY:
        return { type: 'entry', entry: decodeEntry(this.buf, at, bodyLength) };
      case FRAME_HEARTBEAT:
        return { type: 'heartbeat', heartbeat: decodeHeartbeat(this.buf, at, bodyLength, this.what) };
      case FRAME_END:
        return { type: 'end', end: decodeEnd(this.buf, at, bodyLength, this.what) };
      default:
        throw new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot read a frame of the ${this.what}: expected type 1, 2 or 3, received ${type}`, { path: 'frame.type', expected: '1, 2 or 3', received: String(type) });
    }
  }

  /**
   * Decode the whole entry frames available into `out` (no frame object per entry: a catch-up
   * decodes tens of thousands a second), up to the first other frame, which is returned; null
   * when more bytes are needed. Entries decoded before a bad frame are in `out` when it throws.
   */
  nextEntries(out: Entry[]): Frame | null {
    for (;;) {
      const avail = this.end - this.start;
      if (avail < FRAME_HEADER_BYTES) return this.next();
      const length = this.view.getUint32(this.start);
      if (this.buf[this.start + 4] !== FRAME_ENTRY || length === 0 || length + 4 > this.frameBytesMax || avail < 4 + length) return this.next();
      const at = this.start + FRAME_HEADER_BYTES;
      this.start += 4 + length;
      if (this.start === this.end) this.start = this.end = 0;
      // As in next(): the bytes stay in place until the next push.
      out.push(decodeEntry(this.buf, at, length - 1));
    }
  }

  /** Call when the response ended: leftover bytes mean a torn frame. */
  finish(): void {
    if (this.end - this.start > 0) {
      throw new PlayoutError('PLAYOUT_FRAME_TOO_LARGE', `The ${this.what} ended inside a frame: ${this.end - this.start} bytes left over`, { expected: 'whole frames', received: `${this.end - this.start} trailing bytes` });
    }
  }
}

function decodeHeartbeat(buf: Uint8Array, offset: number, length: number, what: string): Heartbeat {
  let v: unknown;
  try {
    v = decodeCanonical(buf, offset, offset + length);
  } catch (err) {
    throw new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot read a heartbeat of the ${what}: not msgpack`, { path: 'heartbeat', cause: err });
  }
  const h = v as Record<string, unknown> | null;
  const d = h?.digest as Record<string, unknown> | null | undefined;
  const isHash = (x: unknown): boolean => x instanceof Uint8Array && x.length === 16;
  const ok =
    h !== null &&
    typeof h === 'object' &&
    typeof h.region === 'string' &&
    typeof h.shard === 'string' &&
    Number.isSafeInteger(h.head) &&
    Number.isSafeInteger(h.tick) &&
    (h.headHash === null || isHash(h.headHash)) &&
    (h.firstSeq === null || Number.isSafeInteger(h.firstSeq)) &&
    Number.isSafeInteger(h.epoch) &&
    (d === null || (typeof d === 'object' && d !== undefined && Number.isSafeInteger(d.tick) && isHash(d.digest))) &&
    typeof h.quarantined === 'boolean' &&
    typeof h.nowMs === 'number';
  if (!ok) {
    throw new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot read a heartbeat of the ${what}: expected {region, shard, head, tick, headHash, firstSeq, epoch, digest, quarantined, nowMs}, received ${describe(v)}`, { path: 'heartbeat', received: describe(v) });
  }
  return h as unknown as Heartbeat;
}

function decodeEnd(buf: Uint8Array, offset: number, length: number, what: string): EndFrame {
  let v: unknown;
  try {
    v = decodeCanonical(buf, offset, offset + length);
  } catch (err) {
    throw new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot read the end frame of the ${what}: not msgpack`, { path: 'end', cause: err });
  }
  const e = v as Partial<EndFrame> | null;
  if (e === null || typeof e !== 'object' || typeof e.code !== 'string' || typeof e.message !== 'string') {
    throw new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot read the end frame of the ${what}: expected {code, message}, received ${describe(v)}`, { path: 'end', received: describe(v) });
  }
  return { code: e.code, message: e.message };
}

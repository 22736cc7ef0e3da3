// The ingestIds a leader remembers for dedupe (DESIGN.md §5: an input retried within the window
// is answered with its first seq), without a heap object per id.
//
// A leader at 10,000 inputs/s with the default window of 1,200 ticks of 50 ms remembers 600,000
// ids. As a Map of strings to { seq, tick } records that was over a million objects in the old
// generation, which every full garbage collection marked: tens of milliseconds of pauses on the
// thread that sequences and answers ingress. Here an id is its XXH3-128 (of its canonical msgpack
// string, so distinct ids have distinct bytes), recorded in insertion order in segments of typed
// arrays, each with its own open-addressing index: no object per id, nothing for the collector
// to trace. Segments are never resized (a doubling ring copied and re-indexed everything, 17 ms
// at 130,000 ids and growing with the window) and never delete from their index: ids expire in
// the order they were remembered, so expiry moves a cursor and drops whole segments behind it.
//
// Ids are compared by their 128-bit hash. Two different ids sharing one is not a practical
// accident; a client that crafts a collision (XXH3 is not a cryptographic hash) only gets one of
// its own inputs answered as a duplicate of another of its own.
import { CanonicalWriter } from './codec.js';
import { assert } from './errors.js';
import { hash128Raw, hashResultWord } from './hash.js';

/** Records per segment by default; the index has twice as many positions. */
const SEGMENT_RECORDS = 1 << 16;

class Segment {
  /** The four 32-bit words of each record's hash. */
  readonly words: Uint32Array;
  readonly seqs: Float64Array;
  readonly ticks: Float64Array;
  /** 1 once a later record of the same id supersedes this one. */
  readonly superseded: Uint8Array;
  /** Record + 1 per position, 0 for empty; for an id remembered twice here, its latest record. */
  readonly index: Int32Array;
  count = 0;

  constructor(records: number) {
    this.words = new Uint32Array(4 * records);
    this.seqs = new Float64Array(records);
    this.ticks = new Float64Array(records);
    this.superseded = new Uint8Array(records);
    this.index = new Int32Array(2 * records);
  }
}

export class IngestWindow {
  private readonly segmentRecords: number;
  private readonly indexMask: number;
  /** Oldest first; the last one takes new records. */
  private segments: Segment[] = [];
  /** The next record to expire: in segments[0], at this position. */
  private expireAt = 0;
  private liveCount = 0;
  private readonly writer = new CanonicalWriter(64);
  /** The id hashed last: a leader looks an id up and then remembers it. */
  private lastId: string | null = null;
  // The hash of the last id (hashOf), and where find() found it.
  private w0 = 0;
  private w1 = 0;
  private w2 = 0;
  private w3 = 0;
  private foundSegment: Segment | null = null;
  private foundRecord = 0;

  /** `segmentRecords`: records per segment, a power of two (small ones for tests). */
  constructor(segmentRecords = SEGMENT_RECORDS) {
    assert(segmentRecords >= 2 && (segmentRecords & (segmentRecords - 1)) === 0, 'segment size is a power of two');
    this.segmentRecords = segmentRecords;
    this.indexMask = 2 * segmentRecords - 1;
  }

  /** Ids remembered and not expired. */
  get size(): number {
    return this.liveCount;
  }

  /** The seq the id was sequenced at, if it is in the window. */
  get(ingestId: string): number | undefined {
    this.hashOf(ingestId);
    return this.findLive() ? this.foundSegment!.seqs[this.foundRecord] : undefined;
  }

  /**
   * Remember an id sequenced at `seq` in `tick`. Ticks are remembered in ascending order (a
   * leader sequences in order, and rebuilds its window from the log in order), which is the
   * order they expire in. An id remembered again supersedes its earlier record.
   */
  remember(ingestId: string, seq: number, tick: number): void {
    this.hashOf(ingestId);
    if (this.findLive()) this.foundSegment!.superseded[this.foundRecord] = 1;
    else this.liveCount++;
    let s = this.segments[this.segments.length - 1];
    if (s === undefined || s.count === this.segmentRecords) this.segments.push((s = new Segment(this.segmentRecords)));
    const r = s.count++;
    const w = s.words;
    w[4 * r] = this.w0;
    w[4 * r + 1] = this.w1;
    w[4 * r + 2] = this.w2;
    w[4 * r + 3] = this.w3;
    s.seqs[r] = seq;
    s.ticks[r] = tick;
    // Into this segment's index: over an earlier record of the id here, or at the first free position.
    const mask = this.indexMask;
    let p = this.w0 & mask;
    for (;;) {
      const e = s.index[p]!;
      if (e === 0 || this.sameHash(s, e - 1)) break;
      p = (p + 1) & mask;
    }
    s.index[p] = r + 1;
  }

  /** Forget every id remembered in a tick <= `tick`. */
  expireThrough(tick: number): void {
    while (this.segments.length > 0) {
      const s = this.segments[0]!;
      while (this.expireAt < s.count && s.ticks[this.expireAt]! <= tick) {
        if (s.superseded[this.expireAt] === 0) this.liveCount--;
        this.expireAt++;
      }
      // A segment is dropped once every record in it expired and it takes no more records.
      if (this.expireAt < this.segmentRecords) return;
      this.segments.shift();
      this.expireAt = 0;
    }
  }

  /** Hash the id into w0..w3: XXH3-128 of its canonical msgpack string. */
  private hashOf(ingestId: string): void {
    if (ingestId === this.lastId) return;
    this.lastId = ingestId;
    const w = this.writer;
    w.reset();
    w.writeString(ingestId);
    hash128Raw(w.buf, 0, w.pos);
    this.w0 = hashResultWord(0);
    this.w1 = hashResultWord(1);
    this.w2 = hashResultWord(2);
    this.w3 = hashResultWord(3);
  }

  private sameHash(s: Segment, r: number): boolean {
    const w = s.words;
    return w[4 * r] === this.w0 && w[4 * r + 1] === this.w1 && w[4 * r + 2] === this.w2 && w[4 * r + 3] === this.w3;
  }

  /**
   * The latest record of the hashed id (newest segment first), into foundSegment/foundRecord;
   * false when there is none or it expired (the latest record decides: it is the newest).
   */
  private findLive(): boolean {
    for (let k = this.segments.length - 1; k >= 0; k--) {
      const s = this.segments[k]!;
      const index = s.index;
      const mask = this.indexMask;
      for (let p = this.w0 & mask; ; p = (p + 1) & mask) {
        const e = index[p]!;
        if (e === 0) break;
        if (this.sameHash(s, e - 1)) {
          const r = e - 1;
          // Expired: the expiry cursor passed it (segments before segments[0] are gone).
          if (k === 0 && r < this.expireAt) return false;
          this.foundSegment = s;
          this.foundRecord = r;
          return true;
        }
      }
    }
    return false;
  }
}

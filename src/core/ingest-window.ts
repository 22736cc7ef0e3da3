// The ingestIds a leader remembers for dedupe (DESIGN.md §5: an input retried within the window
// is answered with its first seq), without a heap object per id.
//
// A leader at 10,000 inputs/s with the default window of 1,200 ticks of 50 ms remembers 600,000
// ids. As a Map of strings to { seq, tick } records that was over a million objects in the old
// generation, which every full garbage collection marked: tens of milliseconds of pauses on the
// thread that sequences and answers ingress. Here an id is its XXH3-128 (of its canonical msgpack
// string, so distinct ids have distinct bytes) in a ring of typed arrays in insertion order, with
// an open-addressing index over the ring: no object per id, nothing for the collector to trace.
//
// Ids are compared by their 128-bit hash. Two different ids sharing one is not a practical
// accident; a client that crafts a collision (XXH3 is not a cryptographic hash) only gets one of
// its own inputs answered as a duplicate of another of its own.
import { CanonicalWriter } from './codec.js';
import { assert } from './errors.js';
import { hash128Raw, hashResultWord } from './hash.js';

const CAPACITY_MIN = 1024;

export class IngestWindow {
  /** Ring capacity (a power of two); records live at absolute positions [head, tail). */
  private capacity: number;
  /** The four 32-bit words of each record's hash. */
  private words: Uint32Array;
  private seqs: Float64Array;
  private ticks: Float64Array;
  /** 1 while the index points at the record (a record re-remembered later is superseded). */
  private live: Uint8Array;
  private head = 0;
  private tail = 0;
  /** Open addressing with linear probing, twice the capacity: ring slot + 1, or 0 for empty. */
  private index: Int32Array;
  private indexMask: number;
  private liveCount = 0;
  private readonly writer = new CanonicalWriter(64);
  /** The id hashed last: a leader looks an id up and then remembers it. */
  private lastId: string | null = null;
  // The hash of the last id looked up (hashOf).
  private w0 = 0;
  private w1 = 0;
  private w2 = 0;
  private w3 = 0;

  constructor(capacity = CAPACITY_MIN) {
    let c = CAPACITY_MIN;
    while (c < capacity) c *= 2;
    this.capacity = c;
    this.words = new Uint32Array(4 * c);
    this.seqs = new Float64Array(c);
    this.ticks = new Float64Array(c);
    this.live = new Uint8Array(c);
    this.index = new Int32Array(2 * c);
    this.indexMask = 2 * c - 1;
  }

  /** Ids remembered and not expired. */
  get size(): number {
    return this.liveCount;
  }

  /** The seq the id was sequenced at, if it is in the window. */
  get(ingestId: string): number | undefined {
    this.hashOf(ingestId);
    const at = this.find();
    return at < 0 ? undefined : this.seqs[this.index[at]! - 1];
  }

  /**
   * Remember an id sequenced at `seq` in `tick`. Ticks are remembered in ascending order (a
   * leader sequences in order, and rebuilds its window from the log in order), which is the
   * order they expire in. An id remembered again supersedes its earlier record.
   */
  remember(ingestId: string, seq: number, tick: number): void {
    this.hashOf(ingestId);
    if (this.tail - this.head === this.capacity) this.grow();
    const slot = this.tail & (this.capacity - 1);
    this.tail++;
    const w = this.words;
    w[4 * slot] = this.w0;
    w[4 * slot + 1] = this.w1;
    w[4 * slot + 2] = this.w2;
    w[4 * slot + 3] = this.w3;
    this.seqs[slot] = seq;
    this.ticks[slot] = tick;
    this.live[slot] = 1;
    const at = this.find();
    if (at >= 0) {
      // Supersede the earlier record: it expires without touching the index.
      this.live[this.index[at]! - 1] = 0;
      this.index[at] = slot + 1;
      return;
    }
    let p = this.w0 & this.indexMask;
    while (this.index[p] !== 0) p = (p + 1) & this.indexMask;
    this.index[p] = slot + 1;
    this.liveCount++;
  }

  /** Forget every id remembered in a tick <= `tick`. */
  expireThrough(tick: number): void {
    const mask = this.capacity - 1;
    while (this.head < this.tail) {
      const slot = this.head & mask;
      if (this.ticks[slot]! > tick) return;
      this.head++;
      if (this.live[slot] === 0) continue;
      this.live[slot] = 0;
      this.unindex(slot);
      this.liveCount--;
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

  /** The index position of the record whose hash is w0..w3, or -1. */
  private find(): number {
    const w = this.words;
    const index = this.index;
    const mask = this.indexMask;
    for (let p = this.w0 & mask; ; p = (p + 1) & mask) {
      const e = index[p]!;
      if (e === 0) return -1;
      const s = 4 * (e - 1);
      if (w[s] === this.w0 && w[s + 1] === this.w1 && w[s + 2] === this.w2 && w[s + 3] === this.w3) return p;
    }
  }

  /** Remove the index entry of a live ring slot, shifting later entries of its probe run back. */
  private unindex(slot: number): void {
    const index = this.index;
    const mask = this.indexMask;
    const target = slot + 1;
    let i = this.words[4 * slot]! & mask;
    for (let n = 0; index[i] !== target; n++) {
      assert(n < index.length, 'a live record is in the index');
      i = (i + 1) & mask;
    }
    index[i] = 0;
    // Backward-shift deletion: an entry further along the run moves into the hole unless its
    // home position lies cyclically in (hole, entry].
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const e = index[j]!;
      if (e === 0) return;
      const home = this.words[4 * (e - 1)]! & mask;
      const stays = i <= j ? i < home && home <= j : i < home || home <= j;
      if (stays) continue;
      index[i] = e;
      index[j] = 0;
      i = j;
    }
  }

  /** Double the ring (records keep their order) and rebuild the index. */
  private grow(): void {
    const old = { capacity: this.capacity, words: this.words, seqs: this.seqs, ticks: this.ticks, live: this.live, head: this.head, tail: this.tail };
    const c = old.capacity * 2;
    this.capacity = c;
    this.words = new Uint32Array(4 * c);
    this.seqs = new Float64Array(c);
    this.ticks = new Float64Array(c);
    this.live = new Uint8Array(c);
    this.index = new Int32Array(2 * c);
    this.indexMask = 2 * c - 1;
    this.head = 0;
    this.tail = 0;
    const oldMask = old.capacity - 1;
    for (let a = old.head; a < old.tail; a++) {
      const from = a & oldMask;
      const slot = this.tail++;
      for (let k = 0; k < 4; k++) this.words[4 * slot + k] = old.words[4 * from + k]!;
      this.seqs[slot] = old.seqs[from]!;
      this.ticks[slot] = old.ticks[from]!;
      this.live[slot] = old.live[from]!;
      if (old.live[from] === 0) continue;
      let p = this.words[4 * slot]! & this.indexMask;
      while (this.index[p] !== 0) p = (p + 1) & this.indexMask;
      this.index[p] = slot + 1;
    }
  }
}

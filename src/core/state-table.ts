// State tables and their incremental digest (DESIGN.md §4).
//
// A record hashes to h = XXH3-128(canonical [table, key, value]). A table's digest is the sum
// of its records' h modulo 2^128, and every record also falls into one of 4,096 buckets by a
// hash of its key, each bucket with its own sum. Only keys touched in a tick are rehashed when
// the tick closes: the cost per tick is O(keys changed), independent of the table's size, and
// the result does not depend on insertion order, key order inside a record, or how a record
// was built (the canonical encoding sorts keys and writes -0 as 0).
import type { z } from 'zod';
import { CanonicalWriter, withPath } from './codec.js';
import { PlayoutError, assert } from './errors.js';
import { HASH_RESULT, add128Words, fnv1a32, hash128Raw, hashResultWord, sub128Words, sumBytes } from './hash.js';
import { ReadOnlyViews } from './read-only-view.js';

export const BUCKETS = 4096;
const BUCKET_MASK = BUCKETS - 1;

/** Deeply read-only view of a record, as `get` returns it. */
export type ReadonlyDeep<T> = T extends (infer U)[]
  ? readonly ReadonlyDeep<U>[]
  : T extends Uint8Array
    ? Readonly<T>
    : T extends object
      ? { readonly [K in keyof T]: ReadonlyDeep<T[K]> }
      : T;

class Slot {
  value: unknown;
  /**
   * The record hash as of the last flush, as eight 16-bit limbs, least significant first (valid
   * when `hashed`). Limbs because they are small integers, which V8 keeps inside the object:
   * 32-bit words above 2^30 would each be boxed in a separate heap number, and a separate array
   * of words costs a cache miss per record in a large table (bench/core.bench.ts, digest time
   * at 1,000,000 records / at 10,000).
   */
  h0: number;
  h1: number;
  h2: number;
  h3: number;
  h4: number;
  h5: number;
  h6: number;
  h7: number;
  hashed: boolean;
  readonly bucket: number;
  dirty: boolean;
  alive: boolean;

  constructor(value: unknown, bucket: number) {
    this.value = value;
    this.h0 = 0;
    this.h1 = 0;
    this.h2 = 0;
    this.h3 = 0;
    this.h4 = 0;
    this.h5 = 0;
    this.h6 = 0;
    this.h7 = 0;
    this.hashed = false;
    this.bucket = bucket;
    this.dirty = false;
    this.alive = true;
  }
}

/**
 * The records of a table as they were when it was captured, read while the table goes on
 * changing (a node encodes a snapshot over many turns of its event loop while it keeps applying).
 * Capturing costs the sorted key list, which the table already keeps; after that, the first change
 * to a record keeps its encoded row ([key, record] in canonical msgpack, as a snapshot lists it),
 * so a capture costs O(records changed while it is held) instead of a copy of the whole state.
 * Rows rather than copies of the records: a copy is an object V8 has not seen, and encoding it in
 * the snapshot threw away the compiled record writers the node's hashing runs on. Release it when done.
 */
export class TableCapture {
  /** Keys in ascending UTF-16 code unit order, as at the capture. */
  readonly keys: readonly string[];
  /** Encoded rows as at the capture of the records changed or deleted since (and of records added since, unused). */
  readonly saved = new Map<string, Uint8Array>();
  released = false;

  constructor(
    private readonly table: StateTable<unknown>,
    keys: readonly string[],
  ) {
    this.keys = keys;
  }

  /** Write the row of `key` as at the capture, [key, record], to `w`. */
  writeRow(w: CanonicalWriter, key: string): void {
    assert(!this.released, `table ${this.table.name}: capture read after release`);
    const row = this.saved.get(key);
    if (row !== undefined) w.writeRaw(row);
    else writeRow(w, key, this.table.peek(key));
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.table.releaseCapture(this);
  }
}

/** [key, record] in canonical msgpack: a snapshot's row. */
function writeRow(w: CanonicalWriter, key: string, value: unknown): void {
  w.writeArrayHeader(2);
  w.writeString(key);
  w.writeValue(value);
}

/** Encodes the rows captures keep (TableCapture.saved). */
const rowWriter = new CanonicalWriter(4096);

export class StateTable<T = unknown> {
  readonly name: string;
  /** Validates records in checked mode; replaced when an upgrade declares the table anew. */
  schema: z.ZodType<T> | null;
  private readonly slots = new Map<string, Slot>();
  private dirty: string[] = [];
  private dirtySlots: Slot[] = [];
  /** Slots of records deleted since the last flush whose hash is still in the sums, to subtract at flush. */
  private removed: Slot[] = [];
  private sortedKeys: string[] | null = null;
  /** The canonical bytes of `[name, ` that start every record's hashed encoding. */
  private readonly prefix: Uint8Array;
  /** Table sum at [0..4); bucket b's sum at [4 + 4b .. 8 + 4b). */
  readonly sums = new Uint32Array(4 + BUCKETS * 4);
  /** Captures being read (see TableCapture); a change preserves the old value for each first. */
  private captures: TableCapture[] = [];
  /**
   * captures.length, which the writes check. A number field, so that what the writes read never
   * changes type: reading the array's length compiled a check of the array's kind into every
   * reducer that inlined a write, and the first capture (an array of objects instead of an empty
   * one) failed it and threw that code away, during a node's first snapshot.
   */
  private capturing = 0;
  /** Checked mode: `get` returns read-only views, so a write through them throws and is remembered. */
  frozenReads = false;
  /** Where read-only views record a write; the machine shares one between its tables and checks it after every reducer call. */
  readOnlyViews: ReadOnlyViews = new ReadOnlyViews();

  constructor(name: string, schema: z.ZodType<T> | null = null) {
    this.name = name;
    this.schema = schema;
    const w = new CanonicalWriter(16 + name.length * 3);
    w.writeArrayHeader(3);
    w.writeString(name);
    this.prefix = w.bytes();
  }

  get size(): number {
    return this.slots.size;
  }

  has(key: string): boolean {
    return this.slots.has(key);
  }

  /** The record, read-only. Use `mut` to change it. */
  get(key: string): ReadonlyDeep<T> | undefined {
    const slot = this.slots.get(key);
    if (slot === undefined) return undefined;
    if (this.frozenReads) return this.readOnlyViews.view(slot.value, `${this.name}["${key}"]`) as ReadonlyDeep<T>;
    return slot.value as ReadonlyDeep<T>;
  }

  /** The record, mutable; marks it changed in this tick. */
  mut(key: string): T | undefined {
    const slot = this.slots.get(key);
    if (slot === undefined) return undefined;
    // Changed in place by the caller: a capture keeps its row first.
    if (this.capturing !== 0) this.preserve(key, slot.value);
    if (!slot.dirty) this.markDirty(key, slot);
    return slot.value as T;
  }

  set(key: string, value: T): void {
    assert(typeof key === 'string', `table ${this.name}: keys are strings`);
    let slot = this.slots.get(key);
    if (slot === undefined) {
      slot = new Slot(value, fnv1a32(key) & BUCKET_MASK);
      this.slots.set(key, slot);
      this.sortedKeys = null;
    } else {
      // Replaced: a capture keeps its row first.
      if (this.capturing !== 0) this.preserve(key, slot.value);
      slot.value = value;
    }
    if (!slot.dirty) this.markDirty(key, slot);
  }

  delete(key: string): boolean {
    const slot = this.slots.get(key);
    if (slot === undefined) return false;
    if (this.capturing !== 0) this.preserve(key, slot.value);
    this.slots.delete(key);
    this.sortedKeys = null;
    slot.alive = false;
    if (slot.hashed) this.removed.push(slot);
    return true;
  }

  /** Capture the records as they are now (see TableCapture); release the capture when done with it. */
  capture(): TableCapture {
    const c = new TableCapture(this as StateTable<unknown>, this.keys());
    this.captures.push(c);
    this.capturing = this.captures.length;
    return c;
  }

  /** @internal TableCapture.release */
  releaseCapture(c: TableCapture): void {
    this.captures = this.captures.filter((x) => x !== c);
    this.capturing = this.captures.length;
  }

  /** Number of captures not yet released. */
  get capturesHeld(): number {
    return this.captures.length;
  }

  /**
   * Keep the row of a record before its first change for every capture that lacks it. The record
   * is as at the capture (this is its first change since), so it was hashed when its tick closed
   * and encodes.
   */
  private preserve(key: string, value: unknown): void {
    let row: Uint8Array | null = null;
    for (let i = 0; i < this.captures.length; i++) {
      const saved = this.captures[i]!.saved;
      if (saved.has(key)) continue;
      if (row === null) {
        rowWriter.reset();
        writeRow(rowWriter, key, value);
        row = rowWriter.bytes();
      }
      saved.set(key, row);
    }
  }

  private markDirty(key: string, slot: Slot): void {
    slot.dirty = true;
    this.dirty.push(key);
    this.dirtySlots.push(slot);
  }

  /** Keys in ascending UTF-16 code unit order. The array is shared: do not modify it. */
  keys(): readonly string[] {
    if (this.sortedKeys === null) this.sortedKeys = [...this.slots.keys()].sort();
    return this.sortedKeys;
  }

  /** [key, record] pairs in key order, read-only. */
  *entries(): IterableIterator<[string, ReadonlyDeep<T>]> {
    const keys = this.keys();
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      yield [key, this.get(key)!];
    }
  }

  *values(): IterableIterator<ReadonlyDeep<T>> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): IterableIterator<[string, ReadonlyDeep<T>]> {
    return this.entries();
  }

  /** Number of keys changed since the last flush. */
  get dirtyCount(): number {
    return this.dirty.length + this.removed.length;
  }

  /**
   * Fold every change since the last flush into the sums. Returns the number of records rehashed.
   * Cost: O(keys changed), one canonical encoding and one XXH3-128 per changed record, nothing
   * allocated per record (the hash stays in the wasm module's memory and its words go to the
   * slot and the sums).
   */
  flush(writer: CanonicalWriter, validate = false): number {
    const sums = this.sums;
    const removed = this.removed;
    for (let i = 0; i < removed.length; i++) {
      const s = removed[i]!;
      const w0 = (s.h0 | (s.h1 << 16)) >>> 0;
      const w1 = (s.h2 | (s.h3 << 16)) >>> 0;
      const w2 = (s.h4 | (s.h5 << 16)) >>> 0;
      const w3 = (s.h6 | (s.h7 << 16)) >>> 0;
      sub128Words(sums, 0, w0, w1, w2, w3);
      sub128Words(sums, 4 + s.bucket * 4, w0, w1, w2, w3);
      s.hashed = false;
    }
    removed.length = 0;
    const keys = this.dirty;
    const slots = this.dirtySlots;
    let rehashed = 0;
    for (let i = 0; i < keys.length; i++) {
      const slot = slots[i]!;
      slot.dirty = false;
      if (!slot.alive) continue;
      const key = keys[i]!;
      if (validate) this.validate(key, slot.value);
      this.rehash(writer, key, slot);
      const n0 = hashResultWord(0);
      const n1 = hashResultWord(1);
      const n2 = hashResultWord(2);
      const n3 = hashResultWord(3);
      const bucketAt = 4 + slot.bucket * 4;
      if (slot.hashed) {
        // Add (new - old) once to the table sum and to the bucket sum.
        let d = n0 - ((slot.h0 | (slot.h1 << 16)) >>> 0);
        const d0 = d >>> 0;
        d = n1 - ((slot.h2 | (slot.h3 << 16)) >>> 0) - (d < 0 ? 1 : 0);
        const d1 = d >>> 0;
        d = n2 - ((slot.h4 | (slot.h5 << 16)) >>> 0) - (d < 0 ? 1 : 0);
        const d2 = d >>> 0;
        const d3 = (n3 - ((slot.h6 | (slot.h7 << 16)) >>> 0) - (d < 0 ? 1 : 0)) >>> 0;
        add128Words(sums, 0, d0, d1, d2, d3);
        add128Words(sums, bucketAt, d0, d1, d2, d3);
      } else {
        add128Words(sums, 0, n0, n1, n2, n3);
        add128Words(sums, bucketAt, n0, n1, n2, n3);
        slot.hashed = true;
      }
      slot.h0 = n0 & 0xffff;
      slot.h1 = n0 >>> 16;
      slot.h2 = n1 & 0xffff;
      slot.h3 = n1 >>> 16;
      slot.h4 = n2 & 0xffff;
      slot.h5 = n2 >>> 16;
      slot.h6 = n3 & 0xffff;
      slot.h7 = n3 >>> 16;
      rehashed++;
    }
    keys.length = 0;
    slots.length = 0;
    return rehashed;
  }

  /** Forget the changes since the last flush without hashing them (replays that skip digests, for measurement). */
  discardChanges(): void {
    for (let i = 0; i < this.dirtySlots.length; i++) this.dirtySlots[i]!.dirty = false;
    this.dirty.length = 0;
    this.dirtySlots.length = 0;
    this.removed.length = 0;
  }

  /** XXH3-128 of canonical [table, key, value], 16 bytes. */
  recordHash(writer: CanonicalWriter, key: string, value: unknown): Uint8Array {
    this.hashRecord(writer, key, value);
    return HASH_RESULT.slice();
  }

  /** As recordHash, leaving the hash in HASH_RESULT. */
  private hashRecord(writer: CanonicalWriter, key: string, value: unknown): void {
    writer.reset();
    writer.writeRaw(this.prefix);
    writer.writeString(key);
    try {
      writer.writeValue(value);
    } catch (err) {
      throw withPath(err, value, `${this.name}["${key}"]`);
    }
    hash128Raw(writer.buf, 0, writer.pos);
  }

  /** Hash the slot's record into HASH_RESULT, rewriting -0 to 0 inside it (see CanonicalWriter.fixNegativeZero). */
  private rehash(writer: CanonicalWriter, key: string, slot: Slot): void {
    if (slot.value === 0) slot.value = 0;
    writer.fixNegativeZero = true;
    try {
      this.hashRecord(writer, key, slot.value);
    } finally {
      writer.fixNegativeZero = false;
    }
  }

  private validate(key: string, value: unknown): void {
    if (this.schema === null) return;
    const r = this.schema.safeParse(value);
    if (r.success) return;
    const issue = r.error.issues[0]!;
    const path = `${this.name}["${key}"]${issue.path.length ? '.' + issue.path.join('.') : ''}`;
    throw new PlayoutError('PLAYOUT_REDUCER_FAILED', `Reducer stored an invalid record at ${path}: ${issue.message}`, { path, expected: issue.message, received: null });
  }

  /** The table digest: the sum of every record hash, 16 bytes. */
  digest(): Uint8Array {
    return sumBytes(this.sums, 0);
  }

  bucketSum(bucket: number): Uint8Array {
    return sumBytes(this.sums, 4 + bucket * 4);
  }

  /** Every bucket sum, 4,096 × 16 bytes. */
  bucketSums(): Uint8Array {
    const out = new Uint8Array(BUCKETS * 16);
    for (let b = 0; b < BUCKETS; b++) out.set(sumBytes(this.sums, 4 + b * 4), b * 16);
    return out;
  }

  /** Keys in one bucket, in key order. */
  keysInBucket(bucket: number): string[] {
    return this.keys().filter((k) => (fnv1a32(k) & BUCKET_MASK) === bucket);
  }

  /** Recompute every sum from scratch, without changing the table. */
  recompute(writer: CanonicalWriter): Uint32Array {
    assert(this.dirty.length === 0 && this.removed.length === 0, `table ${this.name}: recompute after flush only`);
    const sums = new Uint32Array(4 + BUCKETS * 4);
    for (const [key, slot] of this.slots) {
      this.hashRecord(writer, key, slot.value);
      const w0 = hashResultWord(0);
      const w1 = hashResultWord(1);
      const w2 = hashResultWord(2);
      const w3 = hashResultWord(3);
      add128Words(sums, 0, w0, w1, w2, w3);
      add128Words(sums, 4 + slot.bucket * 4, w0, w1, w2, w3);
    }
    return sums;
  }

  /** Replace the content wholesale (snapshot restore). Sums are recomputed. */
  load(writer: CanonicalWriter, records: Iterable<readonly [string, unknown]>): void {
    assert(this.captures.length === 0, `table ${this.name}: load while captured`);
    this.slots.clear();
    this.dirty.length = 0;
    this.dirtySlots.length = 0;
    this.removed.length = 0;
    this.sortedKeys = null;
    this.sums.fill(0);
    for (const [key, value] of records) this.set(key, value as T);
    this.flush(writer);
  }

  /** The raw stored value, bypassing frozen reads (engine use: snapshots, diffs). */
  peek(key: string): unknown {
    return this.slots.get(key)?.value;
  }
}

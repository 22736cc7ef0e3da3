// Field-level differences between two shard states, found through the digest's bucket sums.
//
// Every table keeps a sum per bucket of 4,096 (DESIGN.md §4). Two states whose table sums
// differ are compared bucket by bucket; only keys in differing buckets are looked at, and only
// records whose canonical bytes differ are diffed field by field. The cost is O(buckets + keys
// in differing buckets), not O(state), apart from one pass over the key lists.
import { BUCKETS, CanonicalWriter, fnv1a32, hashEquals, toHex, type ShardMachine, type StateTable } from '../../core/index.js';

export interface FieldDiff {
  /** Path inside the record, e.g. `inventory.gold` or `trail[3].x`; '' for the whole record. */
  readonly path: string;
  /** The value on side A (expected) and side B (actual); `undefined` (JSON: absent) when missing. */
  readonly a: unknown;
  readonly b: unknown;
}

export interface RecordDiff {
  readonly table: string;
  readonly key: string;
  /** `changed`: on both sides with different values; `only-a` / `only-b`: missing on one side. */
  readonly status: 'changed' | 'only-a' | 'only-b';
  readonly fields: FieldDiff[];
  /** Fields beyond the limit that were not listed. */
  readonly fieldsMore: number;
}

export interface StateDiff {
  /** True when no table sum, rng state or table set differs. */
  readonly equal: boolean;
  readonly tables: { readonly table: string; readonly status: 'changed' | 'only-a' | 'only-b'; readonly bucketsDiffering: number; readonly digestA: string | null; readonly digestB: string | null }[];
  readonly records: RecordDiff[];
  /** Records beyond the limit that were not listed. */
  readonly recordsMore: number;
  readonly rng: { readonly a: number[]; readonly b: number[] } | null;
}

export interface DiffLimits {
  recordsMax?: number;
  fieldsMax?: number;
}

const writer = new CanonicalWriter(1 << 12);

/** Fold pending changes into the sums so tables can be compared between entries of a tick. */
export function flushTables(m: ShardMachine): void {
  if (m.head === 0) return;
  const tables = m.tables;
  for (const name in tables) tables[name]!.flush(writer);
}

/** Cheap equality of two states: table sets, table sums and rng state. Flush first. */
export function statesEqual(a: ShardMachine, b: ShardMachine): boolean {
  if (a.head === 0 || b.head === 0) return a.head === b.head;
  const ra = a.rngState;
  const rb = b.rngState;
  for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return false;
  const ta = a.tables;
  const tb = b.tables;
  let na = 0;
  for (const name in ta) {
    na++;
    const y = tb[name];
    if (y === undefined) return false;
    const sa = ta[name]!.sums;
    const sb = y.sums;
    if (sa[0] !== sb[0] || sa[1] !== sb[1] || sa[2] !== sb[2] || sa[3] !== sb[3]) return false;
  }
  let nb = 0;
  for (const _ in tb) nb++;
  return na === nb;
}

/** Differences between two flushed states, record by record and field by field. */
export function diffStates(a: ShardMachine, b: ShardMachine, limits: DiffLimits = {}): StateDiff {
  const recordsMax = limits.recordsMax ?? 100;
  const fieldsMax = limits.fieldsMax ?? 50;
  flushTables(a);
  flushTables(b);
  const ta: Readonly<Record<string, StateTable>> = a.head === 0 ? {} : a.tables;
  const tb: Readonly<Record<string, StateTable>> = b.head === 0 ? {} : b.tables;
  const names = [...new Set([...Object.keys(ta), ...Object.keys(tb)])].sort();
  const tables: StateDiff['tables'][number][] = [];
  const records: RecordDiff[] = [];
  let recordsMore = 0;
  const push = (r: RecordDiff): void => {
    if (records.length < recordsMax) records.push(r);
    else recordsMore++;
  };
  for (const name of names) {
    const x = ta[name];
    const y = tb[name];
    if (x === undefined || y === undefined) {
      const only = (x ?? y)!;
      const status = x === undefined ? 'only-b' : 'only-a';
      tables.push({ table: name, status, bucketsDiffering: BUCKETS, digestA: x ? toHex(x.digest()) : null, digestB: y ? toHex(y.digest()) : null });
      for (const key of only.keys()) {
        const v = only.peek(key);
        push({ table: name, key, status, fields: [{ path: '', a: x ? v : undefined, b: y ? v : undefined }], fieldsMore: 0 });
      }
      continue;
    }
    if (hashEquals(x.digest(), y.digest())) continue;
    const differing = new Uint8Array(BUCKETS);
    let bucketsDiffering = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      const o = 4 + bucket * 4;
      if (x.sums[o] !== y.sums[o] || x.sums[o + 1] !== y.sums[o + 1] || x.sums[o + 2] !== y.sums[o + 2] || x.sums[o + 3] !== y.sums[o + 3]) {
        differing[bucket] = 1;
        bucketsDiffering++;
      }
    }
    tables.push({ table: name, status: 'changed', bucketsDiffering, digestA: toHex(x.digest()), digestB: toHex(y.digest()) });
    const keys = new Set<string>();
    for (const key of x.keys()) if (differing[fnv1a32(key) & (BUCKETS - 1)] === 1) keys.add(key);
    for (const key of y.keys()) if (differing[fnv1a32(key) & (BUCKETS - 1)] === 1) keys.add(key);
    for (const key of [...keys].sort()) {
      const inA = x.has(key);
      const inB = y.has(key);
      const va = x.peek(key);
      const vb = y.peek(key);
      if (inA && inB) {
        if (hashEquals(x.recordHash(writer, key, va), y.recordHash(writer, key, vb))) continue;
        const fields: FieldDiff[] = [];
        const total = diffValues(va, vb, '', fields, fieldsMax);
        push({ table: name, key, status: 'changed', fields, fieldsMore: total - fields.length });
      } else {
        push({ table: name, key, status: inA ? 'only-a' : 'only-b', fields: [{ path: '', a: inA ? va : undefined, b: inB ? vb : undefined }], fieldsMore: 0 });
      }
    }
  }
  const rngA = a.head === 0 ? [] : [...a.rngState];
  const rngB = b.head === 0 ? [] : [...b.rngState];
  const rngDiffers = rngA.length !== rngB.length || rngA.some((v, i) => v !== rngB[i]);
  return {
    equal: tables.length === 0 && !rngDiffers,
    tables,
    records,
    recordsMore,
    rng: rngDiffers ? { a: rngA, b: rngB } : null,
  };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/**
 * Push the differing leaves of a and b (canonical values) into `out`, up to `max`; returns the
 * total number of differing leaves. Equality is canonical equality: -0 equals 0.
 */
export function diffValues(a: unknown, b: unknown, path: string, out: FieldDiff[], max: number): number {
  if (a === b) return 0;
  if (isPlainObject(a) && isPlainObject(b)) {
    let n = 0;
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) n += diffValues(k in a ? a[k] : undefined, k in b ? b[k] : undefined, join(path, k), out, max);
    return n;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    let n = 0;
    const length = Math.max(a.length, b.length);
    for (let i = 0; i < length; i++) n += diffValues(i < a.length ? a[i] : undefined, i < b.length ? b[i] : undefined, `${path}[${i}]`, out, max);
    return n;
  }
  if (a instanceof Uint8Array && b instanceof Uint8Array && hashEquals(a, b)) return 0;
  if (typeof a === 'number' && typeof b === 'number' && a === b) return 0;
  if (out.length < max) out.push({ path, a, b });
  return 1;
}

/** A JSON-friendly rendering of a value in a diff (bytes as hex, absent as undefined). */
export function jsonValue(v: unknown): unknown {
  if (v instanceof Uint8Array) return { hex: toHex(v) };
  if (Array.isArray(v)) return v.map(jsonValue);
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = jsonValue(v[k]);
    return out;
  }
  return v;
}

/** One-line rendering of a value for text output. */
export function showValue(v: unknown): string {
  if (v === undefined) return '(absent)';
  const s = JSON.stringify(jsonValue(v));
  return s.length > 120 ? `${s.slice(0, 117)}…` : s;
}

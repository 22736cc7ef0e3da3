import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CanonicalWriter,
  ENTRY_KINDS,
  EntrySchema,
  PlayoutError,
  ZERO_HASH,
  checkLink,
  decodeEntry,
  encodeCanonical,
  hash128,
  sealEntry,
  toHex,
  type EntryFields,
} from '../../src/core/index.js';
import { canonicalArb } from './support/arbitraries.js';
import { assertProperty } from './support/property.js';

const hashArb = fc.uint8Array({ minLength: 16, maxLength: 16 });
const uintArb = fc.oneof(fc.constantFrom(0, 1, 127, 128, 0xffff, 0x10000, 0xffffffff, Number.MAX_SAFE_INTEGER), fc.maxSafeNat());
const strOrNull = (max: number) => fc.option(fc.string({ minLength: 1, maxLength: max }), { nil: null });

const fieldsArb: fc.Arbitrary<EntryFields> = fc.record({
  shard: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/),
  seq: uintArb.map((n) => Math.max(1, n)),
  epoch: uintArb,
  tick: uintArb,
  kind: fc.constantFrom(...ENTRY_KINDS),
  type: strOrNull(128),
  version: fc.option(uintArb.map((n) => Math.max(1, n)), { nil: null }),
  origin: strOrNull(64),
  ingestId: strOrNull(256),
  payload: canonicalArb,
  digest: fc.option(hashArb, { nil: null }),
  prev: hashArb,
});

/** Body bytes written by hand, for entries sealEntry would never produce. */
function rawEntry(fields: unknown[]): Uint8Array {
  const w = new CanonicalWriter(64);
  w.writeValue(fields);
  const body = w.bytes();
  const out = new Uint8Array(body.length + 16);
  out.set(body);
  out.set(hash128(body), body.length);
  return out;
}

const validRaw = (): unknown[] => [1, 'shard-1', 5, 1, 2, 'input', 'player.move', 1, 'eu-fra', 'id-1', { x: 1 }, null, new Uint8Array(16)];

function errorOf(fn: () => unknown): PlayoutError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PlayoutError) return err;
    throw err;
  }
  throw new Error('expected a PlayoutError');
}

describe('entry encoding', () => {
  it('decodeEntry ∘ sealEntry gives back every field and the hash, from any offset of a larger buffer', () => {
    assertProperty(
      fc.property(fieldsArb, fc.nat({ max: 40 }), fc.nat({ max: 40 }), (f, before, after) => {
        const e = sealEntry(f);
        const framed = new Uint8Array(before + e.bytes.length + after).fill(0xee);
        framed.set(e.bytes, before);
        const d = decodeEntry(framed, before, e.bytes.length);
        expect(d.toJSON()).toEqual(e.toJSON());
        expect(toHex(d.hash)).toBe(toHex(hash128(e.bytes, 0, e.bytes.length - 16)));
        expect(toHex(d.bytes)).toBe(toHex(e.bytes));
        expect(toHex(encodeCanonical(d.payload))).toBe(toHex(encodeCanonical(f.payload)));
        const { bytes: _bytes, ...decoded } = d;
        expect(EntrySchema.parse(decoded)).toBeTruthy();
      }),
      { numRuns: 300 },
    );
  });

  it('decodes an entry that fills a Node Buffer (a Kafka record value) as a view of it, with interleaved shards', () => {
    assertProperty(
      fc.property(fc.array(fc.tuple(fieldsArb, fc.constantFrom('a', 'b', 'c', 'shard-1', 'shard-2')), { minLength: 1, maxLength: 12 }), (list) => {
        const sealed = list.map(([f, shard]) => sealEntry({ ...f, shard }));
        // Back to back in one Buffer, as kafkajs slices record values out of a fetch response.
        const all = Buffer.concat(sealed.map((e) => e.bytes));
        let at = 0;
        for (const e of sealed) {
          const value = all.subarray(at, at + e.bytes.length);
          at += e.bytes.length;
          const d = decodeEntry(value, 0, value.length);
          expect(d.toJSON()).toEqual(e.toJSON());
          expect(d.bytes.constructor).toBe(Uint8Array);
          // No copy: the entry views the record's memory.
          expect(d.bytes.buffer).toBe(all.buffer);
          expect(d.bytes.byteOffset).toBe(value.byteOffset);
          expect(toHex(d.bytes)).toBe(toHex(e.bytes));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('reads every msgpack form of a field alike (str 8/16, wider ints, floats), and refuses wrong values in any form', () => {
    // decodeEntry reads fields in the forms the canonical writer uses and hands any other form
    // to the general reader: both must give the same entry, or the same refusal.
    const str = (s: string, form: number): number[] => {
      const b = [...new TextEncoder().encode(s)];
      if (form === 0 && b.length < 32) return [0xa0 | b.length, ...b];
      if (form <= 1 && b.length < 256) return [0xd9, b.length, ...b];
      return [0xda, b.length >> 8, b.length & 0xff, ...b];
    };
    const uint = (n: number, form: number): number[] => {
      const be = (v: number, bytes: number): number[] => Array.from({ length: bytes }, (_, i) => Math.floor(v / 2 ** (8 * (bytes - 1 - i))) & 0xff);
      if (form === 0 && n < 128) return [n];
      if (form <= 1 && n < 256) return [0xcc, n];
      if (form <= 2 && n < 0x10000) return [0xcd, ...be(n, 2)];
      if (form <= 3 && n < 2 ** 32) return [0xce, ...be(n, 4)];
      if (form <= 4) return [0xcf, ...be(Math.floor(n / 2 ** 32), 4), ...be(n >>> 0, 4)];
      const f = new DataView(new ArrayBuffer(8));
      f.setFloat64(0, n);
      return [0xcb, ...new Uint8Array(f.buffer)];
    };
    const nilOr = <T,>(v: T | null, enc: (v: T) => number[]): number[] => (v === null ? [0xc0] : enc(v));
    const formArb = fc.nat({ max: 5 });
    assertProperty(
      fc.property(fieldsArb, fc.array(formArb, { minLength: 10, maxLength: 10 }), fc.nat({ max: 20 }), (f, forms, before) => {
        const body = [
          0x9d,
          ...uint(1, forms[0]!),
          ...str(f.shard, forms[1]! % 3),
          ...uint(f.seq, forms[2]!),
          ...uint(f.epoch, forms[3]!),
          ...uint(f.tick, forms[4]!),
          ...str(f.kind, forms[5]! % 3),
          ...nilOr(f.type, (t) => str(t, forms[6]! % 3)),
          ...nilOr(f.version, (v) => uint(v, forms[7]!)),
          ...nilOr(f.origin, (o) => str(o, forms[8]! % 3)),
          ...nilOr(f.ingestId, (i) => str(i, forms[9]! % 3)),
          ...encodeCanonical(f.payload),
          ...nilOr(f.digest, (d) => [0xc4, 16, ...d]),
          0xc4,
          16,
          ...f.prev,
        ];
        const bytes = new Uint8Array(before + body.length + 16);
        bytes.set(body, before);
        bytes.set(hash128(bytes, before, body.length), before + body.length);
        const d = decodeEntry(bytes, before, body.length + 16);
        const e = sealEntry(f);
        const { bytes: _b, hash: _h, ...fields } = e.toJSON();
        const { bytes: _db, hash: _dh, ...decoded } = d.toJSON();
        expect(decoded).toEqual(fields);
        // Wrong values, in the same forms: refused with the field named.
        const wrong = body.slice();
        wrong[1 + uint(1, forms[0]!).length + str(f.shard, forms[1]! % 3).length] = 0xc0; // seq: nil
        const wb = new Uint8Array(wrong.length + 16);
        wb.set(wrong);
        wb.set(hash128(wb, 0, wrong.length), wrong.length);
        const err = errorOf(() => decodeEntry(wb));
        expect(err.code).toBe('PLAYOUT_ENTRY_MALFORMED');
      }),
      { numRuns: 300 },
    );
    for (const [at, value, code] of [
      [0, 2, 'PLAYOUT_ENTRY_FORMAT_UNKNOWN'],
      [2, 0, 'PLAYOUT_ENTRY_MALFORMED'],
      [5, 'inputs', 'PLAYOUT_ENTRY_MALFORMED'],
      [5, 'Input', 'PLAYOUT_ENTRY_MALFORMED'],
      [6, 7, 'PLAYOUT_ENTRY_MALFORMED'],
      [7, -1, 'PLAYOUT_ENTRY_MALFORMED'],
      [8, 1.5, 'PLAYOUT_ENTRY_MALFORMED'],
      [11, new Uint8Array(15), 'PLAYOUT_ENTRY_MALFORMED'],
      [12, null, 'PLAYOUT_ENTRY_MALFORMED'],
    ] as const) {
      const raw = validRaw();
      raw[at] = value;
      expect(errorOf(() => decodeEntry(rawEntry(raw))).code, `field ${at} = ${String(value)}`).toBe(code);
    }
    const ok = decodeEntry(rawEntry(validRaw()));
    expect([ok.shard, ok.seq, ok.kind, ok.type, ok.origin, ok.ingestId]).toEqual(['shard-1', 5, 'input', 'player.move', 'eu-fra', 'id-1']);
  });

  it('seals the payload as readers decode it, so the leader applies what followers apply', () => {
    const e = sealEntry({ shard: 's', seq: 1, epoch: 1, tick: 0, kind: 'input', type: 't', version: 1, origin: null, ingestId: null, payload: { b: -0, a: new Uint8Array([1]) }, digest: null, prev: ZERO_HASH });
    const d = decodeEntry(e.bytes);
    expect(Object.is((e.payload as { b: number }).b, 0)).toBe(true);
    expect(e.payload).toEqual(d.payload);
  });

  it('changing any byte of an encoded entry is refused as a hash mismatch, named by the seq the caller expected', () => {
    assertProperty(
      fc.property(fieldsArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (f, at, mask) => {
        const bytes = sealEntry(f).bytes.slice();
        bytes[at % bytes.length]! ^= mask;
        const err = errorOf(() => decodeEntry(bytes, 0, bytes.length, f.seq));
        expect(err.code).toBe('PLAYOUT_ENTRY_HASH_MISMATCH');
        expect(err.seq).toBe(f.seq);
        expect(err.message).toContain(`entry ${f.seq}`);
      }),
      { numRuns: 300 },
    );
  });

  it('names the seq from the body when the caller gives none', () => {
    const bytes = sealEntry({ shard: 's', seq: 42, epoch: 1, tick: 0, kind: 'tick', type: null, version: null, origin: null, ingestId: null, payload: null, digest: null, prev: ZERO_HASH }).bytes.slice();
    bytes[bytes.length - 1]! ^= 1;
    expect(errorOf(() => decodeEntry(bytes)).seq).toBe(42);
  });

  it('refuses an entry of an unknown format version with its own code', () => {
    const raw = validRaw();
    raw[0] = 2;
    const err = errorOf(() => decodeEntry(rawEntry(raw)));
    expect(err.code).toBe('PLAYOUT_ENTRY_FORMAT_UNKNOWN');
    expect(err.path).toBe('format');
    expect(err.seq).toBe(5);
    expect(err.message).toContain('expected format 1, received number 2');
  });

  it.each([
    ['seq 0', 2, 0, 'seq'],
    ['a negative epoch', 3, -1, 'epoch'],
    ['a fractional tick', 4, 1.5, 'tick'],
    ['an unknown kind', 5, 'party', 'kind'],
    ['a numeric type', 6, 7, 'type'],
    ['a string version', 7, '1', 'version'],
    ['a 15-byte prev', 12, new Uint8Array(15), 'prev'],
    ['a string digest', 11, 'abc', 'digest'],
    ['a numeric shard', 1, 9, 'shard'],
  ])('refuses an entry with %s, naming the field', (_name, index, value, path) => {
    const raw = validRaw();
    raw[index] = value;
    const err = errorOf(() => decodeEntry(rawEntry(raw)));
    expect(err.code).toBe('PLAYOUT_ENTRY_MALFORMED');
    expect(err.path).toBe(path);
  });

  it('refuses a body with a missing field, a body that is not an array, and bytes that are not msgpack', () => {
    expect(errorOf(() => decodeEntry(rawEntry(validRaw().slice(0, 12)))).code).toBe('PLAYOUT_ENTRY_MALFORMED');
    const notArray = new CanonicalWriter(8);
    notArray.writeValue({ seq: 1 });
    const b = notArray.bytes();
    const framed = new Uint8Array(b.length + 16);
    framed.set(b);
    framed.set(hash128(b), b.length);
    expect(errorOf(() => decodeEntry(framed)).code).toBe('PLAYOUT_ENTRY_MALFORMED');
    const junk = new Uint8Array([0xc1, 0xc1, 0xc1]);
    const framedJunk = new Uint8Array(junk.length + 16);
    framedJunk.set(junk);
    framedJunk.set(hash128(junk), junk.length);
    expect(errorOf(() => decodeEntry(framedJunk)).code).toBe('PLAYOUT_ENTRY_MALFORMED');
  });

  it('refuses truncated bytes: too short to hold a hash, or cut anywhere', () => {
    expect(errorOf(() => decodeEntry(new Uint8Array(16), 0, 16, 3))).toMatchObject({ code: 'PLAYOUT_ENTRY_MALFORMED', seq: 3 });
    const e = sealEntry({ shard: 's', seq: 9, epoch: 1, tick: 0, kind: 'input', type: 't', version: 1, origin: null, ingestId: 'x', payload: { a: 'hello' }, digest: null, prev: ZERO_HASH });
    for (let cut = 17; cut < e.bytes.length; cut++) {
      const err = errorOf(() => decodeEntry(e.bytes, 0, cut, 9));
      expect(err.code).toBe('PLAYOUT_ENTRY_HASH_MISMATCH');
      expect(err.seq).toBe(9);
    }
  });

  it('checkLink tells a gap, a duplicate and a broken prev apart', () => {
    const a = sealEntry({ shard: 's', seq: 1, epoch: 1, tick: 0, kind: 'tick', type: null, version: null, origin: null, ingestId: null, payload: null, digest: null, prev: ZERO_HASH });
    const b = sealEntry({ shard: 's', seq: 2, epoch: 1, tick: 0, kind: 'tick', type: null, version: null, origin: null, ingestId: null, payload: null, digest: null, prev: a.hash });
    expect(() => checkLink(b, 1, a.hash)).not.toThrow();
    expect(errorOf(() => checkLink(b, 0, ZERO_HASH)).code).toBe('PLAYOUT_GAP');
    expect(errorOf(() => checkLink(b, 2, b.hash)).code).toBe('PLAYOUT_ENTRY_DUPLICATE');
    expect(errorOf(() => checkLink(b, 1, ZERO_HASH))).toMatchObject({ code: 'PLAYOUT_CHAIN_BROKEN', seq: 2, path: 'prev' });
  });
});

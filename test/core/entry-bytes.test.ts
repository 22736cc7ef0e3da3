import { describe, expect, it } from 'vitest';
import { ZERO_HASH, decodeEntry, sealEntry, toHex } from '../../src/core/index.js';

describe('decoded entries own their bytes', () => {
  it('keeps an entry intact when the Buffer it was read from is reused', () => {
    const entry = sealEntry({ shard: 's', seq: 1, epoch: 1, tick: 0, kind: 'input', type: 't', version: 1, origin: null, ingestId: 'a', payload: { x: 1 }, digest: null, prev: ZERO_HASH });
    // A reader's buffer holding one frame header byte, the entry, and room after it.
    const buf = Buffer.alloc(entry.bytes.length + 8);
    buf.set(entry.bytes, 1);
    const decoded = decodeEntry(buf, 1, entry.bytes.length);
    const hash = toHex(decoded.hash);
    buf.fill(0xee); // the reader moves on and overwrites its buffer
    expect(toHex(decoded.hash)).toBe(hash);
    expect(toHex(decoded.bytes)).toBe(toHex(entry.bytes));
    expect(decoded.payload).toEqual({ x: 1 });
  });
});

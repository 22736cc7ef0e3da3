import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ReducerRegistry, Sequencer, decodeEntry, defineReducer, isPlayoutError, type Entry } from '../../src/core/index.js';
import { FrameDecoder, FrameWriter, type Frame } from '../../src/adapters/http-frames.js';
import { z } from 'zod';

const r = defineReducer({ name: 'noop', version: 1, tables: {}, inputs: { 'x.y': { 1: z.object({ n: z.number() }) } }, init() {}, apply() {}, onTick() {} });

function log(n: number): Entry[] {
  const g = Sequencer.genesis({ shard: 's', reducer: r, seed: 1, tickMs: 10 });
  const seq = Sequencer.afterGenesis(new ReducerRegistry([r]), g, { region: 'eu-fra', dedupeWindowTicks: 4 });
  const out = [g];
  for (let i = 0; i < n; i++) {
    const res = seq.submit({ type: 'x.y', version: 1, payload: { n: i }, ingestId: `i${i}` });
    if (res.status === 'sequenced') out.push(res.entry);
  }
  return out;
}

describe('frames', () => {
  it('hands out batches that later frames written to the same writer never change', () => {
    const entries = log(600);
    const w = new FrameWriter(256);
    const taken: Buffer[] = [];
    // Small batches (copied out) and large ones (handed over) in turn.
    for (const [from, to] of [[0, 3], [3, 400], [400, 401], [401, 601]] as const) {
      for (const e of entries.slice(from, to)) w.entry(e.bytes);
      taken.push(w.take());
    }
    const d = new FrameDecoder(1 << 16);
    const seqs: number[] = [];
    for (const b of taken) {
      d.push(b);
      for (let f = d.next(); f !== null; f = d.next()) if (f.type === 'entry') seqs.push(f.entry.seq);
    }
    expect(seqs).toEqual(entries.map((e) => e.seq));
  });

  it('decodes frames split at any byte boundaries, and decoded entries stay intact after later pushes', () => {
    const entries = log(200);
    const w = new FrameWriter(64);
    for (const e of entries) w.entry(e.bytes);
    w.heartbeat({ region: 'eu-fra', shard: 's', head: 201, headHash: entries[200]!.hash, tick: 0, firstSeq: 1, epoch: 1, digest: null, quarantined: false, nowMs: 1 });
    const bytes = w.take();
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 40 }), (cuts) => {
        const d = new FrameDecoder(1 << 16);
        const frames: Frame[] = [];
        let at = 0;
        let i = 0;
        while (at < bytes.length) {
          const n = cuts[i++ % cuts.length]!;
          d.push(bytes.subarray(at, at + n));
          at += n;
          for (let f = d.next(); f !== null; f = d.next()) frames.push(f);
        }
        d.finish();
        const got = frames.flatMap((f) => (f.type === 'entry' ? [f.entry] : []));
        expect(got.map((e) => e.seq)).toEqual(entries.map((e) => e.seq));
        // Every entry's bytes still verify once the decoder's buffer has been reused.
        for (const e of got) expect(decodeEntry(e.bytes).hash).toEqual(e.hash);
        expect(frames[frames.length - 1]!.type).toBe('heartbeat');
      }),
      { seed: 42, numRuns: 50 },
    );
  });

  it('decodes runs of entry frames into a batch with nextEntries, stopping at other frames, split anywhere', () => {
    const entries = log(120);
    const w = new FrameWriter(64);
    const hb = { region: 'eu-fra', shard: 's', head: 121, headHash: entries[120]!.hash, tick: 0, firstSeq: 1, epoch: 1, digest: null, quarantined: false, nowMs: 1 };
    for (const e of entries.slice(0, 50)) w.entry(e.bytes);
    w.heartbeat(hb);
    for (const e of entries.slice(50)) w.entry(e.bytes);
    w.end({ code: 'PLAYOUT_RANGE_NOT_RETAINED', message: 'gone' });
    const bytes = w.take();
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 500 }), { minLength: 1, maxLength: 30 }), (cuts) => {
        const d = new FrameDecoder(1 << 16);
        const seen: (number | string)[] = [];
        let at = 0;
        let i = 0;
        while (at < bytes.length) {
          const n = cuts[i++ % cuts.length]!;
          d.push(bytes.subarray(at, at + n));
          at += n;
          const batch: Entry[] = [];
          for (let f = d.nextEntries(batch); f !== null; f = d.nextEntries(batch)) {
            seen.push(...batch.splice(0).map((e) => e.seq));
            seen.push(f.type === 'entry' ? f.entry.seq : f.type);
          }
          seen.push(...batch.map((e) => e.seq));
        }
        d.finish();
        expect(seen).toEqual([...entries.slice(0, 50).map((e) => e.seq), 'heartbeat', ...entries.slice(50).map((e) => e.seq), 'end']);
      }),
      { seed: 7, numRuns: 40 },
    );
  });

  it('nextEntries keeps the entries decoded before a bad frame, then throws', () => {
    const entries = log(5);
    const w = new FrameWriter();
    for (const e of entries) w.entry(e.bytes);
    const bytes = Uint8Array.from(w.take());
    // Flip a bit inside the fourth entry's body.
    let at = 0;
    for (let k = 0; k < 3; k++) at += 4 + new DataView(bytes.buffer).getUint32(at);
    bytes[at + 10] = bytes[at + 10]! ^ 0x01;
    const d = new FrameDecoder(1 << 16);
    d.push(bytes);
    const batch: Entry[] = [];
    expect(() => d.nextEntries(batch)).toThrow();
    expect(batch.map((e) => e.seq)).toEqual(entries.slice(0, 3).map((e) => e.seq));
  });

  it('refuses a flipped bit, a torn tail and an oversized length prefix', () => {
    const entries = log(3);
    const w = new FrameWriter();
    for (const e of entries) w.entry(e.bytes);
    const bytes = w.take();
    const flipped = Uint8Array.from(bytes);
    flipped[20] = flipped[20]! ^ 0x10;
    const d1 = new FrameDecoder(1 << 16);
    d1.push(flipped);
    const err = (() => {
      try {
        while (d1.next() !== null);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(isPlayoutError(err) && ['PLAYOUT_ENTRY_HASH_MISMATCH', 'PLAYOUT_ENTRY_MALFORMED'].includes(err.code)).toBe(true);
    const d2 = new FrameDecoder(1 << 16);
    d2.push(bytes.subarray(0, bytes.length - 3));
    while (d2.next() !== null);
    expect(() => d2.finish()).toThrow(expect.objectContaining({ code: 'PLAYOUT_FRAME_TOO_LARGE' }));
    const d3 = new FrameDecoder(1024);
    d3.push(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 1]));
    expect(() => d3.next()).toThrow(expect.objectContaining({ code: 'PLAYOUT_FRAME_TOO_LARGE' }));
  });
});

// IngestWindow against a plain Map model: the same answers for every id after any run of
// remember / get / expire, through ring growth, superseded ids and index deletions.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IngestWindow, Sequencer } from '../../src/core/index.js';
import { counter, registry } from '../kafka/fixtures/counter-log.js';
import { assertProperty } from './support/property.js';

type Op = { kind: 'remember'; id: number; ticks: number } | { kind: 'get'; id: number } | { kind: 'expire'; back: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('remember' as const), id: fc.nat({ max: 3000 }), ticks: fc.nat({ max: 59 }).map((n) => (n === 0 ? 1 : 0)) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('get' as const), id: fc.nat({ max: 3000 }) }) },
  // Ticks advance about every 60 ids and expiry keeps up to 40 ticks: the window holds a
  // couple of thousand ids, so index probe runs overlap and deletions shift entries back.
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('expire' as const), back: fc.nat({ max: 40 }) }) },
);

describe('IngestWindow', () => {
  it('answers as a Map of id → seq with the same expiry, through growth and superseded ids', () => {
    assertProperty(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 4000 }), fc.constantFrom('', 'ingest-', 'é-'), fc.constantFrom(4, 64, 1024, 1 << 16), (ops, prefix, segmentRecords) => {
        // Small segments: ids superseded across segments, segments dropped by expiry.
        const w = new IngestWindow(segmentRecords);
        const model = new Map<string, { seq: number; tick: number }>();
        let tick = 0;
        let seq = 1;
        const check = (id: string): void => expect(w.get(id)).toBe(model.get(id)?.seq);
        for (const op of ops) {
          if (op.kind === 'remember') {
            tick += op.ticks;
            const id = `${prefix}${op.id}`;
            w.remember(id, seq, tick);
            model.set(id, { seq, tick });
            seq++;
            check(id);
          } else if (op.kind === 'get') check(`${prefix}${op.id}`);
          else {
            const through = tick - op.back;
            w.expireThrough(through);
            for (const [id, r] of model) if (r.tick <= through) model.delete(id);
          }
          expect(w.size).toBe(model.size);
        }
        for (let id = 0; id <= 3000; id++) check(`${prefix}${id}`);
      }),
      { numRuns: 40 },
    );
  });

  it.each([
    [3001, 1 << 16],
    [997, 1 << 16],
    [997, 256],
  ])('agrees with the model over a sliding window where %i ids recur (segments of %i records)', (distinct, segmentRecords) => {
    // 60 ids a tick, a window of 20 ticks: about 1,300 live ids in an index of 2,048 or 4,096
    // positions, expired a few hundred at a time; 997 ids recur inside the window (superseded).
    const w = new IngestWindow(segmentRecords);
    const model = new Map<string, { seq: number; tick: number }>();
    let wrong = 0;
    for (let i = 0; i < 60_000; i++) {
      const tick = Math.floor(i / 60);
      const id = `x${(i * 7919) % distinct}`;
      w.remember(id, i + 1, tick);
      model.set(id, { seq: i + 1, tick });
      if (i % 100 === 0) {
        w.expireThrough(tick - 20);
        for (const [k, r] of model) if (r.tick <= tick - 20) model.delete(k);
      }
      if (i % 1000 === 999) for (let k = 0; k < distinct; k++) if (w.get(`x${k}`) !== model.get(`x${k}`)?.seq) wrong++;
    }
    expect(wrong).toBe(0);
    expect(w.size).toBe(model.size);
  });

  it('keeps 100,000 ids through growth and forgets them all when their ticks expire', () => {
    const w = new IngestWindow();
    for (let i = 0; i < 100_000; i++) w.remember(`id-${i}`, i + 1, Math.floor(i / 100));
    expect(w.size).toBe(100_000);
    expect(w.get('id-0')).toBe(1);
    expect(w.get('id-99999')).toBe(100_000);
    expect(w.get('id-100000')).toBeUndefined();
    w.expireThrough(499);
    expect(w.size).toBe(50_000);
    expect(w.get('id-49999')).toBeUndefined();
    expect(w.get('id-50000')).toBe(50_001);
    w.expireThrough(999);
    expect(w.size).toBe(0);
    expect(w.get('id-99999')).toBeUndefined();
  });
});

describe('Sequencer dedupe window', () => {
  it('answers a retry with the first seq through the close of tick T + window, and sequences it anew after', () => {
    const g = Sequencer.genesis({ shard: 'c-1', reducer: counter, seed: 1, tickMs: 50 });
    const s = Sequencer.afterGenesis(registry, g, { region: 'eu-fra', dedupeWindowTicks: 2 });
    const input = { type: 'counter.add', version: 1, payload: { key: 'k', by: 1 }, ingestId: 'retry-me' };
    const first = s.submit(input);
    expect(first.status).toBe('sequenced');
    const firstSeq = (first as { entry: { seq: number } }).entry.seq;
    // Sequenced in tick 0 with a window of 2: a duplicate until the close of tick 2 expires it.
    s.closeTick(null);
    expect(s.submit(input)).toEqual({ status: 'duplicate', seq: firstSeq });
    s.closeTick(null);
    expect(s.submit(input)).toEqual({ status: 'duplicate', seq: firstSeq });
    s.closeTick(null);
    const again = s.submit(input);
    expect(again.status).toBe('sequenced');
    expect((again as { entry: { seq: number } }).entry.seq).toBeGreaterThan(firstSeq);
  });

  it('adopts a window read ahead: ids of ticks before its own window are dropped, the rest answered as duplicates', () => {
    const g = Sequencer.genesis({ shard: 'c-1', reducer: counter, seed: 1, tickMs: 50 });
    const s = Sequencer.afterGenesis(registry, g, { region: 'eu-fra', dedupeWindowTicks: 2 });
    for (let t = 0; t < 10; t++) s.closeTick(null);
    // The sequencer is at tick 10: its window covers ticks 8 and 9 (and the open tick 10).
    const w = new IngestWindow();
    for (let t = 5; t < 10; t++) w.remember(`id-${t}`, 100 + t, t);
    s.adoptIngestWindow(w);
    expect(s.ingestIdsRemembered).toBe(2);
    expect(s.submit({ type: 'counter.add', version: 1, payload: { key: 'k', by: 1 }, ingestId: 'id-9' })).toEqual({ status: 'duplicate', seq: 109 });
    expect(s.submit({ type: 'counter.add', version: 1, payload: { key: 'k', by: 1 }, ingestId: 'id-8' })).toEqual({ status: 'duplicate', seq: 108 });
    expect(s.submit({ type: 'counter.add', version: 1, payload: { key: 'k', by: 1 }, ingestId: 'id-7' }).status).toBe('sequenced');
    expect(() => s.adoptIngestWindow(new IngestWindow())).toThrow(/adopted before/);
  });
});

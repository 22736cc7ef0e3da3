// readSnapshotHeader (what a store files a snapshot by) against decodeSnapshot, and skipMsgpack
// against msgpackr over any value: the header reader must agree with the full decoder on every
// field and refuse every damaged snapshot the full decoder refuses.
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { CanonicalWriter, ShardMachine, decodeSnapshot, encodeCapturedSnapshotSteps, encodeSnapshot, encodeSnapshotSteps, isPlayoutError, readSnapshotHeader, skipMsgpack } from '../../src/core/index.js';
import { buildLog, kvRegistry, planArb, replayDigests } from './support/kv-reducer.js';
import { assertProperty } from './support/property.js';

function codeOf(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (err) {
    return isPlayoutError(err) ? err.code : `not a PlayoutError: ${String(err)}`;
  }
}

describe('readSnapshotHeader', () => {
  it('reads every field but the tables as decodeSnapshot does, from any offset', () => {
    assertProperty(
      fc.property(planArb(10, 5), fc.nat({ max: 64 }), (plan, pad) => {
        const log = buildLog(plan);
        const bytes = encodeSnapshot(replayDigests(log.entries).machine.snapshot());
        const framed = new Uint8Array(pad + bytes.length + 3);
        framed.set(bytes, pad);
        const { tables: _tables, ...full } = decodeSnapshot(bytes);
        expect(readSnapshotHeader(framed, pad, bytes.length)).toEqual(full);
      }),
      { numRuns: 40 },
    );
  });

  it('refuses a flipped byte anywhere (tables included) and an unknown format', () => {
    // One plan, fixed: the property is over the damage.
    const log = buildLog(fc.sample(planArb(10, 5), { numRuns: 1, seed: 7 })[0]!);
    const snap = replayDigests(log.entries).machine.snapshot();
    const bytes = encodeSnapshot(snap);
    assertProperty(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), (at, mask) => {
        const bad = bytes.slice();
        bad[at % bad.length]! ^= mask;
        expect(codeOf(() => readSnapshotHeader(bad))).toBe('PLAYOUT_SNAPSHOT_CORRUPT');
      }),
      { numRuns: 200 },
    );
    expect(codeOf(() => readSnapshotHeader(encodeSnapshot({ ...snap, format: 2 } as typeof snap)))).toBe('PLAYOUT_SNAPSHOT_FORMAT_UNKNOWN');
    expect(codeOf(() => readSnapshotHeader(bytes.subarray(0, 10)))).toBe('PLAYOUT_SNAPSHOT_CORRUPT');
  });
});

describe('skipMsgpack', () => {
  const packr = new Packr({ useRecords: false, variableMapSize: true });
  it('ends where msgpackr ends any value (every form: ints, floats, strings, bins, arrays, maps, nested)', () => {
    const value = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        fc.integer(),
        fc.maxSafeInteger(),
        fc.double(),
        fc.string({ maxLength: 300 }),
        fc.constantFrom(null, true, false),
        fc.uint8Array({ maxLength: 300 }),
        fc.array(tie('v'), { maxLength: 20 }),
        fc.dictionary(fc.string({ maxLength: 8 }), tie('v'), { maxKeys: 20 }),
      ),
    })).v;
    assertProperty(
      fc.property(value, fc.nat({ max: 16 }), (v, pad) => {
        const enc = packr.pack(v);
        const framed = new Uint8Array(pad + enc.length + 5);
        framed.set(enc, pad);
        expect(skipMsgpack(framed, pad, framed.length)).toBe(pad + enc.length);
        if (enc.length > 1) expect(() => skipMsgpack(framed.subarray(0, pad + enc.length - 1), pad, pad + enc.length - 1)).toThrow();
      }),
      { numRuns: 500 },
    );
  });
});

describe('encodeSnapshotSteps', () => {
  it('gives the bytes of encodeSnapshot, whatever the step size, and yields between steps', () => {
    assertProperty(
      fc.property(planArb(10, 5), fc.integer({ min: 1, max: 50 }), (plan, rowsPerStep) => {
        const snap = replayDigests(buildLog(plan).entries).machine.snapshot();
        const rows = Object.values(snap.tables).reduce((a, t) => a + t.length, 0);
        const steps = encodeSnapshotSteps(snap, rowsPerStep);
        let yields = 0;
        let r = steps.next();
        while (r.done !== true) {
          yields++;
          r = steps.next();
        }
        expect(Buffer.from(r.value).equals(Buffer.from(encodeSnapshot(snap)))).toBe(true);
        expect(yields).toBe(Math.floor(rows / rowsPerStep));
      }),
      { numRuns: 60 },
    );
  });

  it('writes tables and header fields in every msgpack form encodeSnapshot uses (15, 16, 65,535 and 65,536 rows; bytes, arrays, null and object params)', () => {
    const base = replayDigests(buildLog(fc.sample(planArb(10, 5), { numRuns: 1, seed: 4 })[0]!).entries).machine.snapshot();
    const rows = (n: number, name: string): [string, unknown][] => Array.from({ length: n }, (_, i) => [`${name}${String(i).padStart(6, '0')}`, { i, tag: name, nested: { list: [i, -i, null, true] } }]);
    for (const params of [null, { worldSize: 64, names: ['a', 'b'] }]) {
      const snap = { ...base, params, tables: { a: rows(15, 'a'), b: rows(16, 'b'), c: rows(65_535, 'c'), d: rows(65_536, 'd'), e: [] } };
      const steps = encodeSnapshotSteps(snap, 4096);
      let r = steps.next();
      while (r.done !== true) r = steps.next();
      expect(Buffer.from(r.value).equals(Buffer.from(encodeSnapshot(snap)))).toBe(true);
      expect(decodeSnapshot(r.value).tables['d']!.length).toBe(65_536);
    }
  });

  it('names the path of a value that has no canonical form', () => {
    const snap = replayDigests(buildLog(fc.sample(planArb(10, 5), { numRuns: 1, seed: 3 })[0]!).entries).machine.snapshot();
    const table = Object.keys(snap.tables).find((t) => snap.tables[t]!.length > 0)!;
    snap.tables[table]![0]![1] = { bad: () => 1 };
    const steps = encodeSnapshotSteps(snap, 1);
    expect(() => {
      for (let r = steps.next(); r.done !== true; r = steps.next());
    }).toThrow(/snapshot\.tables\.\w+\[0\]\[1\]\.bad/);
  });
});

describe('encodeCapturedSnapshotSteps', () => {
  /** Encode a capture to the end, a step at a time, applying `between` entries to the machine after each step. */
  function drain(steps: Generator<void, Uint8Array, void>, between: () => void): Uint8Array {
    let r = steps.next();
    while (r.done !== true) {
      between();
      r = steps.next();
    }
    return r.value;
  }

  it('gives the bytes of the snapshot taken at the capture while the machine goes on applying (set, mut in place, delete, insert, upgrade)', () => {
    assertProperty(
      fc.property(planArb(12, 6), fc.nat(), fc.nat(), fc.integer({ min: 1, max: 8 }), fc.boolean(), (plan, at1, at2, rowsPerStep, upgrade) => {
        const log = buildLog(plan, upgrade ? { upgradeAtTick: Math.floor(plan.length / 2) } : {});
        // Tick boundaries after the first tick: where a node snapshots.
        const ticks = log.entries.map((e, i) => (e.kind === 'tick' && e.tick > 0 ? i : -1)).filter((i) => i >= 0);
        if (ticks.length === 0) return;
        const first = ticks[at1 % ticks.length]!;
        const second = ticks[Math.max(ticks.indexOf(first), at2 % ticks.length)]!;
        const m = new ShardMachine(kvRegistry());
        let next = 0;
        const applyTo = (end: number): void => {
          while (next <= end) m.apply(log.entries[next++]!);
        };
        applyTo(first);
        const expected1 = encodeSnapshot(m.snapshot());
        const c1 = m.captureSnapshot();
        const steps1 = encodeCapturedSnapshotSteps(c1, rowsPerStep);
        // The first capture is encoded while the machine applies up to the second, which is
        // captured while the first is still held, then the rest of the log.
        let bytes1: Uint8Array | null = null;
        let r = steps1.next();
        while (r.done !== true && next <= second) {
          applyTo(Math.min(second, next));
          r = steps1.next();
        }
        applyTo(second);
        const expected2 = encodeSnapshot(m.snapshot());
        const c2 = m.captureSnapshot();
        const applyOne = (): void => {
          if (next < log.entries.length) m.apply(log.entries[next++]!);
        };
        if (r.done === true) bytes1 = r.value;
        else bytes1 = drain(steps1, applyOne);
        const bytes2 = drain(encodeCapturedSnapshotSteps(c2, rowsPerStep), applyOne);
        applyTo(log.entries.length - 1);
        expect(Buffer.from(bytes1).equals(Buffer.from(expected1))).toBe(true);
        expect(Buffer.from(bytes2).equals(Buffer.from(expected2))).toBe(true);
        // Both released by the encoder: nothing is kept for them any more.
        for (const t of c1.tables) expect(t.capture.released).toBe(true);
        expect(c2.tables.every((t) => t.capture.released)).toBe(true);
        const restored = decodeSnapshot(bytes2);
        expect(ShardMachine.fromSnapshot(kvRegistry(), restored).lastDigest!.digest).toEqual(restored.digest);
      }),
      { numRuns: 80 },
    );
  });

  it('releases the capture when the encoding is abandoned, and refuses reads after release', () => {
    const log = buildLog(fc.sample(planArb(10, 5), { numRuns: 1, seed: 5 })[0]!);
    const m = replayDigests(log.entries).machine;
    const c = m.captureSnapshot();
    const steps = encodeCapturedSnapshotSteps(c, 1);
    steps.next();
    steps.return(new Uint8Array(0));
    for (const t of c.tables) expect(t.capture.released).toBe(true);
    const t = c.tables.find((x) => x.capture.keys.length > 0)!;
    expect(() => t.capture.writeRow(new CanonicalWriter(), t.capture.keys[0]!)).toThrow(/after release/);
  });
});

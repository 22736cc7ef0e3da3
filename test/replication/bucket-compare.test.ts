import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CanonicalWriter, StateTable, hash128, isPlayoutError } from '../../src/core/index.js';
import { BUCKETS_PER_QUERY_MAX, answerBuckets, answerRecords, checkBucketList, diffRecords, differingBuckets, tableSums, type TickState } from '../../src/replication/bucket-compare.js';

const writer = new CanonicalWriter(1 << 12);

function state(tables: Record<string, Record<string, unknown>>, tick = 9): TickState {
  const out: Record<string, StateTable> = {};
  for (const [name, records] of Object.entries(tables)) {
    const t = new StateTable(name);
    t.load(writer, Object.entries(records));
    out[name] = t;
  }
  const sums = Object.keys(out)
    .sort()
    .map((n) => out[n]!.digest());
  const joined = new Uint8Array(sums.length * 16);
  sums.forEach((s, i) => joined.set(s, i * 16));
  return { tick, seq: 100, digest: hash128(joined), tables: out };
}

/** Both rounds of the protocol, as the asking region runs them against `peer`. */
function nameDifferences(local: TickState, peer: TickState): string[] {
  const answer = answerBuckets(peer, { tick: local.tick, tableSums: tableSums(local) });
  const named: string[] = [];
  for (const t of answer.tables) {
    if (t.bucketSums === null) continue;
    const mine = local.tables[t.table]!;
    const buckets = differingBuckets(mine, t.bucketSums);
    for (let i = 0; i < buckets.length; i += BUCKETS_PER_QUERY_MAX) {
      const records = answerRecords(peer, { tick: local.tick, table: t.table, buckets: buckets.slice(i, i + BUCKETS_PER_QUERY_MAX) });
      for (const d of diffRecords(mine, records)) named.push(`${d.table}/${d.key}`);
    }
  }
  return named.sort();
}

describe('bucket protocol', () => {
  it('answers bucket sums only for the tables whose sum differs from the asker’s', () => {
    const a = state({ players: { p1: { x: 1 }, p2: { x: 2 } }, items: { i1: { y: 1 } } });
    const b = state({ players: { p1: { x: 1 }, p2: { x: 3 } }, items: { i1: { y: 1 } } });
    const answer = answerBuckets(b, { tick: 9, tableSums: tableSums(a) });
    expect(answer.tables.map((t) => [t.table, t.bucketSums === null])).toEqual([
      ['items', true],
      ['players', false],
    ]);
    expect(answer.tables.find((t) => t.table === 'players')!.bucketSums).toHaveLength(4096 * 16);
    expect(answerBuckets(b, { tick: 9, tableSums: null }).tables.every((t) => t.bucketSums !== null)).toBe(true);
  });

  it('names a changed, an added and a removed record in two round trips', () => {
    const local = state({ players: { p1: { x: 1 }, p2: { x: 2 }, p3: { x: 3 } }, items: { i1: { y: 1 } } });
    const peer = state({ players: { p1: { x: 1 }, p2: { x: 20 }, p4: { x: 4 } }, items: { i1: { y: 1 } } });
    expect(nameDifferences(local, peer)).toEqual(['players/p2', 'players/p3', 'players/p4']);
    const records = answerRecords(peer, { tick: 9, table: 'players', buckets: differingBuckets(local.tables['players']!, answerBuckets(peer, { tick: 9, tableSums: null }).tables[1]!.bucketSums!) });
    const diffs = diffRecords(local.tables['players']!, records);
    expect(diffs.find((d) => d.key === 'p3')).toMatchObject({ localPresent: true, peerPresent: false, local: { x: 3 }, peer: null });
    expect(diffs.find((d) => d.key === 'p2')).toMatchObject({ local: { x: 2 }, peer: { x: 20 } });
  });

  it('finds nothing when the states agree', () => {
    const s = { t: { a: { v: [1, 2] }, b: { v: { z: 1, y: -0 } } } };
    expect(nameDifferences(state(s), state(s))).toEqual([]);
  });

  it('names exactly the differing keys of random states (property)', () => {
    const records = fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), fc.record({ n: fc.integer({ min: -5, max: 5 }) }), { maxKeys: 60 });
    fc.assert(
      fc.property(records, records, (x, y) => {
        const expected = [...new Set([...Object.keys(x), ...Object.keys(y)])]
          .filter((k) => !(k in x) || !(k in y) || x[k]!.n !== y[k]!.n)
          .map((k) => `t/${k}`)
          .sort();
        expect(nameDifferences(state({ t: x }), state({ t: y }))).toEqual(expected);
      }),
      { seed: Number(process.env.PROPERTY_SEED ?? 4242), numRuns: 60 },
    );
  });

  it('refuses a bucket list that is empty, too long, unordered or out of range', () => {
    for (const bad of [[], Array.from({ length: BUCKETS_PER_QUERY_MAX + 1 }, (_, i) => i), [3, 2], [4096], [-1], [1.5]]) {
      let caught: unknown = null;
      try {
        checkBucketList(bad);
      } catch (err) {
        caught = err;
      }
      expect(isPlayoutError(caught, 'PLAYOUT_INVALID_ARGUMENT'), JSON.stringify(bad)).toBe(true);
    }
    expect(() => checkBucketList([0, 7, 4095])).not.toThrow();
  });

  it('refuses a question about another tick, an unknown table, or malformed bucket sums', () => {
    const s = state({ t: { a: { v: 1 } } });
    expect(() => answerBuckets(s, { tick: 8, tableSums: null })).toThrow(expect.objectContaining({ code: 'PLAYOUT_INVALID_ARGUMENT', path: 'tick' }));
    expect(() => answerRecords(s, { tick: 9, table: 'nope', buckets: [1] })).toThrow(expect.objectContaining({ code: 'PLAYOUT_INVALID_ARGUMENT', path: 'table' }));
    expect(() => differingBuckets(s.tables['t']!, new Uint8Array(10))).toThrow(expect.objectContaining({ code: 'PLAYOUT_INVALID_ARGUMENT', path: 'bucketSums' }));
  });
});

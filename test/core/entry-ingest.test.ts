// entryIngestOf (what a new leader reads of each entry to rebuild its dedupe window) against
// decodeEntry on a real log, and its refusals.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeEntry, entryIngestOf, isPlayoutError } from '../../src/core/index.js';
import { generateLogArray } from '../../src/games/treasure-hunt/index.js';
import { assertProperty } from './support/property.js';

describe('entryIngestOf', () => {
  it('reads seq, tick, kind and ingestId as decodeEntry does, for every entry kind of a real log', () => {
    assertProperty(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), (seed) => {
        const { entries } = generateLogArray({ seed, shard: 'hunt-1', entries: 300 });
        for (const e of entries) {
          const d = decodeEntry(e.bytes);
          expect(entryIngestOf(e.bytes)).toEqual({ seq: d.seq, tick: d.tick, kind: d.kind, ingestId: d.ingestId });
        }
      }),
      { numRuns: 5 },
    );
  });

  it('refuses bytes that are not a format 1 entry with PLAYOUT_ENTRY_MALFORMED', () => {
    const { entries } = generateLogArray({ seed: 1, shard: 'hunt-1', entries: 10 });
    const input = entries.find((e) => e.kind === 'input')!;
    for (const bad of [new Uint8Array(20), input.bytes.subarray(0, 30), Uint8Array.from([0x93, 1, 2, 3, ...new Uint8Array(16)])]) {
      let code: string | null = null;
      try {
        entryIngestOf(bad);
      } catch (err) {
        code = isPlayoutError(err) ? err.code : String(err);
      }
      expect(code).toBe('PLAYOUT_ENTRY_MALFORMED');
    }
  });
});

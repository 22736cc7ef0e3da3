import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { inputBatchOrNull, inputOrNull } from '../../src/adapters/http-server.js';
import { InputBatchSchema, InputSchema } from '../../src/adapters/http-schemas.js';

const SEED = 20241122;

describe('ingress envelope fast path', () => {
  const field = fc.oneof(fc.string({ maxLength: 3 }), fc.string({ minLength: 120, maxLength: 300 }), fc.integer({ min: -2, max: 3 }), fc.double(), fc.constant(null), fc.constant(undefined), fc.boolean(), fc.array(fc.integer(), { maxLength: 2 }));
  const envelope = fc.record(
    { type: field, version: field, payload: fc.anything({ maxDepth: 2 }), ingestId: field, extra: field },
    { requiredKeys: [] },
  );

  it(`accepts exactly what InputSchema accepts, with the same result (reproduce with seed=${SEED})`, () => {
    fc.assert(
      fc.property(fc.oneof(envelope, fc.anything({ maxDepth: 1 })), (v) => {
        const fast = inputOrNull(v);
        const slow = InputSchema.safeParse(v);
        expect(fast !== null, JSON.stringify(v)).toBe(slow.success);
        if (fast !== null && slow.success) expect(fast).toEqual(slow.data);
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it('accepts exactly what InputBatchSchema accepts', () => {
    fc.assert(
      fc.property(fc.oneof(fc.record({ inputs: fc.array(envelope, { maxLength: 3 }) }), fc.record({ inputs: fc.anything({ maxDepth: 1 }), other: fc.integer() }, { requiredKeys: ['inputs'] })), (v) => {
        const fast = inputBatchOrNull(v);
        const slow = InputBatchSchema.safeParse(v);
        expect(fast !== null).toBe(slow.success);
        if (fast !== null && slow.success) expect(fast).toEqual(slow.data);
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });
});

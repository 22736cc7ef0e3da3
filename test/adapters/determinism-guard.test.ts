import { describe, expect, it } from 'vitest';
import { GlobalsGuard } from '../../src/adapters/determinism-guard.js';
import { isPlayoutError } from '../../src/core/index.js';

const call = { reducer: 'r@1', call: 'apply' as const, inputType: 'x.y', seq: 42 };

describe('GlobalsGuard', () => {
  it('reports the violation when the reducer swallows it and then throws something else', () => {
    const guard = new GlobalsGuard();
    let thrown: unknown = null;
    try {
      guard.run(call, () => {
        try {
          Math.random();
        } catch {
          // a reducer hiding the violation …
        }
        throw new TypeError('… and failing later for another reason');
      });
    } catch (err) {
      thrown = err;
    }
    expect(isPlayoutError(thrown, 'PLAYOUT_DETERMINISM_VIOLATION')).toBe(true);
    expect((thrown as Error).message).toMatch(/r@1.*Math\.random.*apply\(x\.y\).*42/);
    expect(typeof Math.random()).toBe('number'); // restored
  });

  it('passes other errors through when nothing was violated', () => {
    expect(() => new GlobalsGuard().run(call, () => { throw new RangeError('plain'); })).toThrow(RangeError);
  });
});

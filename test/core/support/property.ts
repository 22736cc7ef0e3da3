// Property runs that always say how to reproduce them.
//
// The seed comes from SEED when set (to replay a failure), otherwise it is fresh for every
// run; on failure the error starts with `reproduce with seed=…` and keeps fast-check's own
// counterexample and shrink path.
import fc from 'fast-check';

const envSeed = process.env.SEED === undefined ? null : Number(process.env.SEED);

export function freshSeed(): number {
  return envSeed ?? ((Math.random() * 0x7fffffff) | 0);
}

export function assertProperty<Ts>(property: fc.IProperty<Ts>, params: fc.Parameters<Ts> = {}): void {
  const seed = params.seed ?? freshSeed();
  try {
    fc.assert(property, { ...params, seed });
  } catch (err) {
    if (err instanceof Error) err.message = `reproduce with seed=${seed} (SEED=${seed} npx vitest run <this file>)\n${err.message}`;
    throw err;
  }
}

/** For seeded loops outside fast-check: runs fn with a seed and names it on failure. */
export function withSeed<T>(fn: (seed: number) => T, seed = freshSeed()): T {
  try {
    return fn(seed);
  } catch (err) {
    if (err instanceof Error) err.message = `reproduce with seed=${seed} (SEED=${seed} npx vitest run <this file>)\n${err.message}`;
    throw err;
  }
}

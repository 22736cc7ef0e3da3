// The shard's seeded random generator. Its state is part of the shard state: it is hashed
// into every tick digest and saved in snapshots, so two regions that drew a different number
// of values disagree at that tick.
import { xoroshiro128plus, xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import type { JumpableRandomGenerator } from 'pure-rand/types/JumpableRandomGenerator';
import { PlayoutError } from './errors.js';

export type RngState = readonly number[];

export class Rng {
  private gen: JumpableRandomGenerator;

  private constructor(gen: JumpableRandomGenerator) {
    this.gen = gen;
  }

  static fromSeed(seed: number): Rng {
    return new Rng(xoroshiro128plus(seed | 0));
  }

  static fromState(state: RngState): Rng {
    if (!Array.isArray(state) || state.length !== 4 || !state.every((v) => Number.isInteger(v))) {
      throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot restore the random generator: expected 4 integers, received ${JSON.stringify(state)}`, {
        path: 'rng',
        expected: '4 int32',
        received: JSON.stringify(state),
      });
    }
    return new Rng(xoroshiro128plusFromState(state));
  }

  state(): RngState {
    return this.gen.getState();
  }

  /** Uniform integer in [min, max], both included. */
  int(min: number, max: number): number {
    return uniformInt(this.gen, min, max);
  }

  /** Uniform float in [0, 1) with 53 random bits, built from two 32-bit draws. */
  float(): number {
    const hi = (this.gen.next() >>> 0) >>> 5; // 27 bits
    const lo = (this.gen.next() >>> 0) >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** true with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('rng.pick of an empty array');
    return items[this.int(0, items.length - 1)]!;
  }
}

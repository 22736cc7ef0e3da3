// A small reducer for the replication simulations. Its state makes the invariants checkable
// from the state itself: `applied` counts how many times each ingestId was applied (exactly
// once everywhere, or a replication bug), `counters` sums the inputs, and onTick draws from the
// shard's rng so that the rng state is exercised by every digest.
import { z } from 'zod';
import { defineReducer, type Reducer } from '../../src/core/index.js';

export const TALLY_KEYS = 8;

const Counter = z.object({ n: z.number().int() });
const Applied = z.object({ count: z.number().int(), seq: z.number().int() });
const AddV1 = z.object({ key: z.string().min(1).max(16), by: z.number().int().min(-1000).max(1000) });

export interface TallyOptions {
  /**
   * A different build of the same reducer (name and version unchanged): at this tick its
   * onTick writes a wrong value to counters["k3"]. Deterministic, so replaying the log in
   * that region reproduces it — the desync a region running a bad build would show.
   */
  wrongAtTick?: number | null;
}

export function tallyReducer(options: TallyOptions = {}): Reducer {
  const wrongAtTick = options.wrongAtTick ?? null;
  return defineReducer({
    name: 'tally',
    version: 1,
    tables: { counters: Counter, applied: Applied, draws: Counter },
    inputs: { add: { 1: AddV1 } },
    init(ctx) {
      for (let i = 0; i < TALLY_KEYS; i++) ctx.tables.counters.set(`k${i}`, { n: ctx.rng.int(0, 100) });
    },
    apply(ctx, input) {
      if (input.payload.by === 0) return { rejected: 'TALLY_ZERO', reason: 'adding zero is refused (a rejection is data)' };
      const c = ctx.tables.counters.mut(input.payload.key);
      if (c === undefined) ctx.tables.counters.set(input.payload.key, { n: input.payload.by });
      else c.n += input.payload.by;
      const id = input.ingestId ?? `seq-${input.seq}`;
      const a = ctx.tables.applied.mut(id);
      if (a === undefined) ctx.tables.applied.set(id, { count: 1, seq: input.seq });
      else a.count++;
    },
    onTick(ctx) {
      const k = `d${ctx.rng.int(0, 15)}`;
      const d = ctx.tables.draws.mut(k);
      if (d === undefined) ctx.tables.draws.set(k, { n: 1 });
      else d.n++;
      if (wrongAtTick !== null && ctx.tick === wrongAtTick) {
        const c = ctx.tables.counters.mut('k3');
        if (c !== undefined) c.n += 1_000_000;
      }
    },
  });
}

import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ReducerRegistry, Sequencer, ShardMachine, defineReducer, toHex, encodeSnapshot, decodeSnapshot } from '../../src/core/index.js';
import { GlobalsGuard } from '../../src/adapters/determinism-guard.js';

const Counter = z.object({ n: z.number().int() });
const counter = defineReducer({
  name: 'counter',
  version: 1,
  tables: { counters: Counter },
  inputs: { 'counter.add': { 1: z.object({ key: z.string(), by: z.number().int() }) } },
  init(ctx) {
    ctx.tables.counters.set('a', { n: ctx.rng.int(0, 10) });
  },
  apply(ctx, input) {
    const c = ctx.tables.counters.mut(input.payload.key);
    if (!c) ctx.tables.counters.set(input.payload.key, { n: input.payload.by });
    else c.n += input.payload.by;
  },
  onTick(ctx) {
    if (ctx.tick % 3 === 0) ctx.tables.counters.delete('b');
  },
});

describe('smoke', () => {
  it('sequences, applies, digests and snapshots', () => {
    const registry = new ReducerRegistry([counter]);
    const g = Sequencer.genesis({ shard: 's1', reducer: counter, seed: 42, tickMs: 50 });
    const seq = Sequencer.afterGenesis(registry, g, { region: 'eu-fra', dedupeWindowTicks: 10 });
    const leader = new ShardMachine(registry, { checked: { guard: new GlobalsGuard(), fullDigestEveryTicks: 1 } });
    leader.apply(g);
    const log = [g];
    for (let t = 0; t < 10; t++) {
      for (let i = 0; i < 5; i++) {
        const r = seq.submit({ type: 'counter.add', version: 1, payload: { key: i % 2 ? 'a' : 'b', by: i }, ingestId: `t${t}i${i}` });
        if (r.status === 'sequenced') {
          leader.apply(r.entry);
          log.push(r.entry);
        }
      }
      const tick = seq.closeTick(leader.lastDigest?.digest ?? null);
      leader.apply(tick);
      log.push(tick);
    }
    const follower = new ShardMachine(registry);
    const digests: string[] = [];
    const f2 = new ShardMachine(registry, { onTick: (d) => digests.push(toHex(d.digest)) });
    for (const e of log) {
      follower.apply(e);
      f2.apply(e);
    }
    expect(follower.firstMismatch).toBeNull();
    expect(toHex(follower.lastDigest!.digest)).toBe(toHex(leader.lastDigest!.digest));
    const snap = decodeSnapshot(encodeSnapshot(leader.snapshot()));
    const restored = ShardMachine.fromSnapshot(registry, snap);
    expect(toHex(restored.lastDigest!.digest)).toBe(toHex(leader.lastDigest!.digest));
    expect(digests).toHaveLength(10);
  });
});

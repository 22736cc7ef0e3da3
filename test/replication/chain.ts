// Test support: real hash-chained logs of the tally reducer, sealed by the Sequencer.
import { ReducerRegistry, Sequencer, ShardMachine, sealEntry, type Entry } from '../../src/core/index.js';
import { tallyReducer } from '../sim/tally-reducer.js';

export const SHARD = 'sim-1';

/** A log of `ticks` ticks with `inputsPerTick` inputs each (seq 1 is the genesis). */
export function makeLog(ticks: number, inputsPerTick = 2, seed = 7, reducer = tallyReducer()): Entry[] {
  const registry = new ReducerRegistry([reducer]);
  const g = Sequencer.genesis({ shard: SHARD, reducer, seed, tickMs: 50 });
  const seq = Sequencer.afterGenesis(registry, g, { region: 'eu-fra', dedupeWindowTicks: 100 });
  const m = new ShardMachine(registry);
  m.apply(g);
  const log = [g];
  let n = 0;
  for (let t = 0; t < ticks; t++) {
    for (let i = 0; i < inputsPerTick; i++) {
      const r = seq.submit({ type: 'add', version: 1, payload: { key: `k${n % 8}`, by: (n % 9) + 1 }, ingestId: `i${n++}` });
      if (r.status !== 'sequenced') throw new Error('unexpected duplicate');
      m.apply(r.entry);
      log.push(r.entry);
    }
    const tick = seq.closeTick(m.lastDigest?.digest ?? null);
    m.apply(tick);
    log.push(tick);
  }
  return log;
}

/** The same entry with another payload, resealed (its own hash is valid; it is not the original). */
export function forge(e: Entry, prev: Uint8Array = e.prev): Entry {
  return sealEntry({ shard: e.shard, seq: e.seq, epoch: e.epoch, tick: e.tick, kind: e.kind, type: e.type, version: e.version, origin: e.origin, ingestId: e.ingestId, payload: e.kind === 'input' ? { key: 'k0', by: 999 } : e.payload, digest: e.digest, prev });
}

/** A re-chained forgery of a run: every entry forged, each linked to the forged one before it. */
export function forgeRun(run: readonly Entry[]): Entry[] {
  const out: Entry[] = [];
  let prev = run[0]!.prev;
  for (const e of run) {
    const f = forge(e, prev);
    out.push(f);
    prev = f.hash;
  }
  return out;
}

// The simulated regions' twin of ShardHost.rewindToDurable: after an append that failed once its
// entries were applied, the machine starts again from what the store holds.
import type { ReducerRegistry } from '../../src/core/reducer.js';
import { ShardMachine, type MachineOptions } from '../../src/core/shard-machine.js';
import { decodeSnapshot } from '../../src/core/snapshot.js';
import type { LogStore } from '../../src/ports/log-store.js';

/** The latest stored snapshot at or below `seq` restored (a fresh machine without one); the caller replays the log after it, up to `seq`. */
export function machineAtOrBelow(store: LogStore, shard: string, registry: ReducerRegistry, seq: number, options: MachineOptions): ShardMachine {
  const latest = store
    .snapshots(shard)
    .filter((s) => s.seq <= seq)
    .sort((a, b) => b.tick - a.tick)[0];
  const snap = latest === undefined ? null : store.snapshot(shard, latest.tick);
  return snap !== null ? ShardMachine.fromSnapshot(registry, decodeSnapshot(snap.bytes), options) : new ShardMachine(registry, options);
}

// Time travel: the state of a shard at the end of any retained tick, from the nearest
// snapshot at or below it plus a replay of the entries after it (DESIGN.md §5, `GET
// /v1/shards/:shard/state?tick=`; `playout diff`). Reads only through the LogStore port, so it
// works on a node's lmdb store, a read-only copy of it, or the simulated twin.
import { PlayoutError, ShardMachine, decodeSnapshot, type MachineOptions, type ReducerRegistry } from '../core/index.js';
import type { LogStore } from '../ports/log-store.js';
import { checkShardId, checkUint } from './lmdb-store-rules.js';

export interface RetainedTicks {
  /** Oldest tick whose end state can be computed. */
  readonly tickMin: number;
  /** Newest tick the log may have closed (the head's tick; closed only if the head is its tick entry). */
  readonly tickMax: number;
}

/** The ticks `stateAt` can reach, or null when the store holds nothing of the shard. */
export function retainedTicks(store: LogStore, shard: string): RetainedTicks | null {
  const head = store.head(shard);
  if (head === null) return null;
  if (store.firstSeq(shard) === 1) return { tickMin: 0, tickMax: head.tick };
  const oldest = store.snapshots(shard)[0];
  return { tickMin: oldest === undefined ? head.tick : oldest.tick, tickMax: head.tick };
}

function notRetained(shard: string, tick: number, retained: RetainedTicks): PlayoutError {
  return new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `Cannot compute the state of shard "${shard}" at tick ${tick}: the store retains ticks ${retained.tickMin}–${retained.tickMax}`, {
    shard,
    tick,
    path: 'tick',
    expected: `${retained.tickMin}–${retained.tickMax}`,
    received: String(tick),
  });
}

/**
 * The machine holding the state of `shard` right after the tick entry that closes `tick`
 * (its `lastDigest` is that tick's digest). Throws PLAYOUT_SHARD_NOT_FOUND when the store holds
 * nothing of the shard, PLAYOUT_TICK_NOT_RETAINED when the tick is older than the oldest
 * retained snapshot (and the log no longer starts at genesis) or not yet closed by the log.
 * A corrupt snapshot or entry fails with its own code; nothing corrupt is applied.
 */
export function stateAt(store: LogStore, registry: ReducerRegistry, shard: string, tick: number, options: MachineOptions = {}): ShardMachine {
  checkShardId(shard);
  checkUint('tick', tick);
  const retained = retainedTicks(store, shard);
  if (retained === null) {
    throw new PlayoutError('PLAYOUT_SHARD_NOT_FOUND', `Cannot compute the state of shard "${shard}" at tick ${tick}: the store holds no such shard`, { shard, tick, path: 'shard', received: shard });
  }
  if (tick < retained.tickMin || tick > retained.tickMax) throw notRetained(shard, tick, retained);
  const snap = store.snapshot(shard, tick);
  let machine: ShardMachine;
  let seqFrom: number;
  if (snap !== null) {
    machine = ShardMachine.fromSnapshot(registry, decodeSnapshot(snap.bytes), options);
    if (snap.tick === tick) return machine;
    seqFrom = snap.seq + 1;
  } else {
    machine = new ShardMachine(registry, options);
    seqFrom = 1;
  }
  const firstSeq = store.firstSeq(shard);
  if (firstSeq === null || seqFrom < firstSeq) throw notRetained(shard, tick, retained);
  for (const entry of store.iterate(shard, seqFrom)) {
    machine.apply(entry);
    if (entry.kind === 'tick' && entry.tick === tick) return machine;
  }
  throw notRetained(shard, tick, retained);
}

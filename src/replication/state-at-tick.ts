// Time travel over a local store: the shard's state at any retained tick, rebuilt from the
// nearest snapshot at or below it plus a replay of the log. Serves `GET /v1/shards/:shard/state`
// and `/buckets` for past ticks, and gives the desync detector this region's own state at the
// first diverging tick (the live machine has moved on by the time the leader's digest arrives).
import { PlayoutError, assert } from '../core/errors.js';
import type { ReducerRegistry } from '../core/reducer.js';
import { ShardMachine, type MachineOptions } from '../core/shard-machine.js';
import { decodeSnapshot } from '../core/snapshot.js';
import type { LogStore } from '../ports/log-store.js';
import type { TickState } from './bucket-compare.js';

/** A ShardMachine positioned right after tick `tick` closed. */
export function stateAtTick(store: LogStore, registry: ReducerRegistry, shard: string, tick: number, options: MachineOptions = {}): ShardMachine {
  if (!Number.isInteger(tick) || tick < 0) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot rebuild shard "${shard}" at tick ${String(tick)}: expected an integer >= 0`, { path: 'tick', expected: 'integer >= 0', received: String(tick), shard });
  }
  const snap = store.snapshot(shard, tick);
  let machine: ShardMachine;
  let seqFrom: number;
  if (snap !== null) {
    machine = ShardMachine.fromSnapshot(registry, decodeSnapshot(snap.bytes), options);
    if (snap.tick === tick) return machine;
    seqFrom = snap.seq + 1;
  } else {
    const first = store.firstSeq(shard);
    if (first !== 1) throw notRetained(store, shard, tick, 'no snapshot at or below it and the log does not start at genesis');
    machine = new ShardMachine(registry, options);
    seqFrom = 1;
  }
  for (const entry of store.iterate(shard, seqFrom)) {
    machine.apply(entry);
    if (entry.kind === 'tick' && machine.lastDigest !== null && machine.lastDigest.tick === tick) return machine;
  }
  throw notRetained(store, shard, tick, 'the log ends before it closes');
}

/** The bucket protocol's view of a machine at a tick boundary. */
export function tickStateOf(machine: ShardMachine): TickState {
  const d = machine.lastDigest;
  assert(d !== null && machine.atTickBoundary, 'a tick state is read at a tick boundary');
  return { tick: d.tick, seq: d.seq, digest: d.digest, tables: machine.tables };
}

function notRetained(store: LogStore, shard: string, tick: number, why: string): PlayoutError {
  const head = store.head(shard);
  return new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `Cannot rebuild shard "${shard}" at tick ${tick}: ${why} (log holds seqs ${store.firstSeq(shard) ?? '-'}..${head?.seq ?? '-'}, open tick ${head?.tick ?? '-'})`, {
    shard,
    tick,
    expected: 'a retained tick',
    received: String(tick),
  });
}

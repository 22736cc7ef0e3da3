// Time travel over a log store: the shard's state at any retained tick, rebuilt from the
// nearest snapshot at or below it plus a replay of the log (DESIGN §5). Reads only through the
// LogStore port, so one function serves a node's lmdb store (`GET /v1/shards/:shard/state` and
// `/buckets` for past ticks), a read-only copy of a store (`playout diff`), the simulated twin,
// and the desync detector, which needs this region's own state at the first diverging tick
// (the live machine has moved on by the time the leader's digest arrives).
import { PlayoutError, assert, describe } from '../core/errors.js';
import { ShardIdSchema } from '../core/entry.js';
import type { ReducerRegistry } from '../core/reducer.js';
import { ShardMachine, type MachineOptions } from '../core/shard-machine.js';
import { decodeSnapshot } from '../core/snapshot.js';
import type { LogStore } from '../ports/log-store.js';
import type { TickState } from './bucket-compare.js';

export interface RetainedTicks {
  /** Oldest tick whose end state can be computed. */
  readonly tickMin: number;
  /** Newest tick the log may have closed (the head's tick; closed only if the head is its tick entry). */
  readonly tickMax: number;
}

/** The ticks `stateAtTick` can reach, or null when the store holds nothing of the shard. */
export function retainedTicks(store: LogStore, shard: string): RetainedTicks | null {
  const head = store.head(shard);
  if (head === null) return null;
  if (store.firstSeq(shard) === 1) return { tickMin: 0, tickMax: head.tick };
  const oldest = store.snapshots(shard)[0];
  return { tickMin: oldest === undefined ? head.tick : oldest.tick, tickMax: head.tick };
}

/**
 * A ShardMachine positioned right after tick `tick` closed (its `lastDigest` is that tick's
 * digest). Throws PLAYOUT_SHARD_ID_INVALID / PLAYOUT_INVALID_ARGUMENT for a bad shard or tick,
 * PLAYOUT_SHARD_NOT_FOUND when the store holds nothing of the shard, PLAYOUT_TICK_NOT_RETAINED
 * when the tick is older than the oldest retained snapshot (and the log no longer starts at
 * genesis) or not yet closed by the log. A corrupt snapshot or entry fails with its own code;
 * nothing corrupt is applied.
 */
export function stateAtTick(store: LogStore, registry: ReducerRegistry, shard: string, tick: number, options: MachineOptions = {}): ShardMachine {
  if (!ShardIdSchema.safeParse(shard).success) {
    throw new PlayoutError('PLAYOUT_SHARD_ID_INVALID', `Cannot rebuild shard ${describe(shard)}: expected [a-z0-9][a-z0-9._-]{0,63}`, { path: 'shard', expected: '[a-z0-9][a-z0-9._-]{0,63}', received: describe(shard) });
  }
  if (!Number.isSafeInteger(tick) || tick < 0) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot rebuild shard "${shard}" at tick ${String(tick)}: expected an integer >= 0`, { path: 'tick', expected: 'integer >= 0', received: String(tick), shard });
  }
  if (store.head(shard) === null) {
    throw new PlayoutError('PLAYOUT_SHARD_NOT_FOUND', `Cannot rebuild shard "${shard}" at tick ${tick}: the store holds no entry of it`, { shard, tick, path: 'shard', expected: 'a shard with entries', received: shard });
  }
  const snap = store.snapshot(shard, tick);
  let machine: ShardMachine;
  let seqFrom: number;
  if (snap !== null) {
    machine = ShardMachine.fromSnapshot(registry, decodeSnapshot(snap.bytes), options);
    if (snap.tick === tick) return machine;
    seqFrom = snap.seq + 1;
  } else {
    if (store.firstSeq(shard) !== 1) throw notRetained(store, shard, tick, 'no snapshot at or below it and the log does not start at genesis');
    machine = new ShardMachine(registry, options);
    seqFrom = 1;
  }
  const first = store.firstSeq(shard);
  // A snapshot older than the retained log (retention cut between two snapshots) cannot be continued.
  if (first === null || seqFrom < first) throw notRetained(store, shard, tick, `the snapshot at or below it ends at seq ${seqFrom - 1}, below the retained log`);
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
  const retained = retainedTicks(store, shard);
  const held = retained === null ? 'nothing' : `ticks ${retained.tickMin}–${retained.tickMax}`;
  return new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `Cannot rebuild shard "${shard}" at tick ${tick}: ${why} (the store retains ${held}; log seqs ${store.firstSeq(shard) ?? '-'}..${head?.seq ?? '-'})`, {
    shard,
    tick,
    path: 'tick',
    expected: retained === null ? 'a retained tick' : `${retained.tickMin}–${retained.tickMax}`,
    received: String(tick),
  });
}

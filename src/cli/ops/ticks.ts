// Shared plumbing of the operators: grouping a source's entries into ticks, starting a machine
// where a source starts, and keeping restorable points while replaying.
import { ShardMachine, decodeSnapshot, encodeSnapshot, type Entry, type MachineOptions, type ReducerRegistry } from '../../core/index.js';
import type { EntryStream, ReplaySource } from '../../adapters/replay-source.js';

/** The entries of one tick, in seq order; a closed tick ends with its `tick` entry. */
export interface TickGroup {
  readonly tick: number;
  readonly entries: Entry[];
  readonly closed: boolean;
}

/** Group a stream's entries by tick. The last group is open when the log ends inside a tick. */
export async function* tickGroups(stream: AsyncIterable<Entry[]>): AsyncGenerator<TickGroup, void, undefined> {
  let entries: Entry[] = [];
  let tick = -1;
  for await (const batch of stream) {
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i]!;
      if (entries.length > 0 && e.tick !== tick) {
        // A tick ended without its tick entry: the machine refuses the next entry with the
        // exact reason, so hand over what we have as an open group.
        yield { tick, entries, closed: false };
        entries = [];
      }
      tick = e.tick;
      entries.push(e);
      if (e.kind === 'tick') {
        yield { tick, entries, closed: true };
        entries = [];
      }
    }
  }
  if (entries.length > 0) yield { tick, entries, closed: false };
}

/** A machine positioned where the source starts: before genesis, or at its snapshot. */
export function startMachine(source: ReplaySource, registry: ReducerRegistry, options: MachineOptions = {}): ShardMachine {
  // Tools never read the outputs reducers emit for clients: do not keep them.
  const o: MachineOptions = { keepOutputs: false, ...options };
  const snapshot = source.freshSnapshot();
  return snapshot === null ? new ShardMachine(registry, o) : ShardMachine.fromSnapshot(registry, snapshot, o);
}

/** Apply a whole tick group. */
export function applyGroup(m: ShardMachine, g: TickGroup): void {
  const entries = g.entries;
  for (let i = 0; i < entries.length; i++) m.apply(entries[i]!);
}

/**
 * A restorable point: an encoded snapshot (a deep copy: a live snapshot shares record objects
 * with the machine) or "the source's start" (null), plus the tick groups applied since, so a
 * tick can be re-run entry by entry without reading the source again. Memory is bounded by
 * about 2 × `everyEntries` entries and two encoded states; the cost is one snapshot encoding
 * per `everyEntries` entries (an O(state) copy amortised over many O(1) applies).
 */
export class Checkpoints {
  readonly everyEntries: number;
  private entriesSince = 0;
  private bytes: Uint8Array | null = null;
  /** Tick of the checkpoint (last tick closed in it), or null for the source's start. */
  tick: number | null = null;
  readonly since: TickGroup[] = [];
  private older: { bytes: Uint8Array | null; tick: number | null; since: TickGroup[] } | null = null;

  constructor(everyEntries = 2048) {
    this.everyEntries = Math.max(1, everyEntries);
  }

  /** Record a group applied to `m`; take a new checkpoint at the first tick boundary after N entries. */
  record(m: ShardMachine, g: TickGroup): void {
    this.since.push(g);
    this.entriesSince += g.entries.length;
    if (g.closed && m.atTickBoundary && m.lastDigest !== null && this.entriesSince >= this.everyEntries) {
      // Keep the previous checkpoint too: a divergence is found one tick late (the tick entry
      // of T+1 carries T's digest), so the newest checkpoint may already be past it.
      this.older = { bytes: this.bytes, tick: this.tick, since: this.since.slice() };
      this.bytes = encodeSnapshot(m.snapshot());
      this.tick = m.lastDigest.tick;
      this.since.length = 0;
      this.entriesSince = 0;
    }
  }

  /** The newest checkpoint whose tick is at most `tickMax` (null tick: the source's start). */
  at(tickMax: number): Checkpoint | null {
    if (this.tick === null || this.tick <= tickMax) return { bytes: this.bytes, tick: this.tick, since: this.since };
    const o = this.older;
    if (o !== null && (o.tick === null || o.tick <= tickMax)) return { bytes: o.bytes, tick: o.tick, since: [...o.since, ...this.since] };
    return null;
  }
}

export interface Checkpoint {
  /** Encoded snapshot, or null for the source's start. */
  readonly bytes: Uint8Array | null;
  readonly tick: number | null;
  /** Tick groups applied after it. */
  readonly since: TickGroup[];
}

/**
 * A new machine at a checkpoint. Each call decodes its own copy: a restored machine adopts the
 * snapshot's record objects and mutates them.
 */
export function machineAt(source: ReplaySource, registry: ReducerRegistry, cp: Checkpoint, options: MachineOptions = {}): ShardMachine {
  return cp.bytes === null ? startMachine(source, registry, options) : ShardMachine.fromSnapshot(registry, decodeSnapshot(cp.bytes), { keepOutputs: false, ...options });
}

/** Read a whole stream, closing it even when the consumer stops early. */
export async function* groupsOf(stream: EntryStream): AsyncGenerator<TickGroup, void, undefined> {
  try {
    yield* tickGroups(stream);
  } finally {
    await stream.close();
  }
}

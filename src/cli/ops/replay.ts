// replay: apply a source's entries to a fresh machine and report the tick digests.
import { GlobalsGuard } from '../../adapters/determinism-guard.js';
import type { ReadProgress, ReplaySource, SourceInfo } from '../../adapters/replay-source.js';
import { PlayoutError, ShardMachine, toHex, type MachineOptions, type Snapshot, type TickDigest } from '../../core/index.js';
import type { Build } from './builds.js';
import { startMachine } from './ticks.js';

export interface ReplayOptions {
  build: Build;
  /** Stop once this tick has closed. */
  toTick?: number | null;
  /** Start from this snapshot instead of the source's start; entries up to its seq are skipped. */
  fromSnapshot?: Snapshot | null;
  /** Checked mode: poisoned globals, frozen reads, a full digest recomputation every N ticks. */
  check?: boolean;
  fullDigestEveryTicks?: number;
  /** Report the digest of every Nth tick (and always the last). 0: none. */
  digestEveryTicks?: number;
  onDigest?: ((d: TickDigestOut) => void) | null;
  onProgress?: ((p: ReadProgress, entries: number) => void) | null;
}

export interface TickDigestOut {
  readonly tick: number;
  readonly seq: number;
  readonly digest: string;
  readonly reducerVersion: number;
}

export interface ReplayResult {
  readonly source: SourceInfo;
  readonly build: string;
  readonly start: { readonly from: 'genesis' | 'snapshot'; readonly tick: number | null; readonly seq: number };
  readonly entries: number;
  readonly ticks: number;
  readonly lastSeq: number;
  readonly final: TickDigestOut | null;
  /** Tick digests the log carries that differ from this replay (the leader's view of the same tick). */
  readonly mismatches: { readonly count: number; readonly first: { readonly tick: number; readonly seq: number; readonly recorded: string; readonly replayed: string } | null };
  readonly checked: boolean;
  readonly elapsedMs: number;
  readonly entriesPerSecond: number;
}

export async function replay(source: ReplaySource, options: ReplayOptions): Promise<ReplayResult> {
  const t0 = performance.now();
  const every = options.digestEveryTicks ?? 1;
  const onDigest = options.onDigest ?? null;
  const toTick = options.toTick ?? null;
  let last: TickDigest | null = null;
  let ticks = 0;
  const machineOptions: MachineOptions = {
    keepOutputs: false,
    checked: options.check ? { guard: new GlobalsGuard(), fullDigestEveryTicks: options.fullDigestEveryTicks ?? 100 } : null,
    onTick: (d) => {
      last = d;
      ticks++;
      if (onDigest !== null && every > 0 && d.tick % every === 0) onDigest(out(d));
    },
  };
  const snap = options.fromSnapshot ?? null;
  if (snap !== null && snap.shard !== source.info.shard) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot start ${source.info.spec} from a snapshot of shard "${snap.shard}": the source holds shard "${source.info.shard}"`, {
      path: '--from-snapshot',
      expected: source.info.shard,
      received: snap.shard,
    });
  }
  if (snap !== null && source.snapshot !== null && snap.seq < source.snapshot.seq) {
    throw new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `Cannot start ${source.info.spec} from the snapshot at tick ${snap.tick}: the source's entries start after tick ${source.snapshot.tick}`, {
      path: '--from-snapshot',
      tick: snap.tick,
      expected: `a snapshot at tick >= ${source.snapshot.tick}`,
      received: `tick ${snap.tick}`,
    });
  }
  const m = snap !== null ? ShardMachine.fromSnapshot(options.build.registry, snap, machineOptions) : startMachine(source, options.build.registry, machineOptions);
  const skipTo = snap?.seq ?? 0;
  if (toTick !== null && m.lastDigest !== null && m.lastDigest.tick >= toTick) {
    throw new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `Cannot replay ${source.info.spec} to tick ${toTick}: it starts after tick ${m.lastDigest.tick}`, {
      path: '--to-tick',
      tick: toTick,
      expected: `> ${m.lastDigest.tick}`,
      received: String(toTick),
    });
  }
  let entries = 0;
  let nextProgressAt = 0;
  let reached = false;
  const stream = await source.read();
  try {
    outer: for await (const batch of stream) {
      for (let i = 0; i < batch.length; i++) {
        const e = batch[i]!;
        if (e.seq <= skipTo) continue;
        m.apply(e);
        entries++;
        if (toTick !== null && e.kind === 'tick' && e.tick >= toTick) {
          reached = true;
          break outer;
        }
      }
      if (options.onProgress && entries >= nextProgressAt) {
        options.onProgress(stream.progress(), entries);
        nextProgressAt = entries + 8192;
      }
    }
  } finally {
    await stream.close();
  }
  if (toTick !== null && !reached) {
    const lastTick: number | null = (last as TickDigest | null)?.tick ?? m.lastDigest?.tick ?? null;
    throw new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `Cannot replay ${source.info.spec} to tick ${toTick}: the log ends ${lastTick === null ? 'before its first tick closes' : `after tick ${lastTick}`}`, {
      path: '--to-tick',
      tick: toTick,
      expected: `<= ${lastTick ?? 'none'}`,
      received: String(toTick),
    });
  }
  const final = last as TickDigest | null;
  if (onDigest !== null && final !== null && every > 0 && final.tick % every !== 0) onDigest(out(final));
  const elapsedMs = performance.now() - t0;
  const fm = m.firstMismatch;
  return {
    source: source.info,
    build: options.build.name,
    start: snap !== null ? { from: 'snapshot', tick: snap.tick, seq: snap.seq } : source.snapshot !== null ? { from: 'snapshot', tick: source.snapshot.tick, seq: source.snapshot.seq } : { from: 'genesis', tick: null, seq: 1 },
    entries,
    ticks,
    lastSeq: m.head,
    final: final === null ? null : out(final),
    mismatches: { count: m.mismatches, first: fm === null ? null : { tick: fm.tick, seq: fm.seq, recorded: toHex(fm.expected), replayed: toHex(fm.actual) } },
    checked: options.check === true,
    elapsedMs,
    entriesPerSecond: elapsedMs > 0 ? (entries * 1000) / elapsedMs : 0,
  };
}

function out(d: TickDigest): TickDigestOut {
  return { tick: d.tick, seq: d.seq, digest: toHex(d.digest), reducerVersion: d.reducerVersion };
}

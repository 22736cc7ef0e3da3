// diff: the state of two sides at one tick, record by record and field by field.
import type { ReplaySource, SourceInfo } from '../../adapters/replay-source.js';
import { PlayoutError, ShardMachine, toHex, type ReducerRegistry } from '../../core/index.js';
import type { Build } from './builds.js';
import { diffStates, type DiffLimits, type StateDiff } from './state-diff.js';
import { applyGroup, groupsOf, startMachine } from './ticks.js';

export interface DiffSide {
  readonly source: ReplaySource;
  readonly build: Build;
}

export interface DiffResult {
  readonly tick: number;
  readonly a: { readonly source: SourceInfo; readonly build: string; readonly seq: number; readonly digest: string };
  readonly b: { readonly source: SourceInfo; readonly build: string; readonly seq: number; readonly digest: string };
  readonly equal: boolean;
  readonly diff: StateDiff;
  readonly elapsedMs: number;
}

/**
 * The state right after tick `tick` closed: from the nearest snapshot a store holds, or from a
 * fixture's own snapshot when it is at that tick, else replayed from the source's start.
 */
export async function stateAt(source: ReplaySource, registry: ReducerRegistry, tick: number): Promise<ShardMachine> {
  if (source.stateAt !== undefined) return source.stateAt(registry, tick);
  const snap = source.snapshot;
  if (snap !== null && tick < snap.tick) {
    throw new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `Cannot rebuild tick ${tick} from ${source.info.spec}: its entries start after tick ${snap.tick}`, {
      path: '--tick',
      tick,
      expected: `>= ${snap.tick}`,
      received: String(tick),
    });
  }
  if (snap !== null && tick === snap.tick) return ShardMachine.fromSnapshot(registry, source.freshSnapshot()!, { keepOutputs: false });
  const m = startMachine(source, registry);
  for await (const g of groupsOf(await source.read())) {
    applyGroup(m, g);
    if (g.closed && g.tick === tick) return m;
  }
  throw new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `Cannot rebuild tick ${tick} from ${source.info.spec}: the log ends ${m.lastDigest === null ? 'before its first tick closes' : `after tick ${m.lastDigest.tick}`}`, {
    path: '--tick',
    tick,
    expected: `<= ${m.lastDigest?.tick ?? 'none'}`,
    received: String(tick),
  });
}

export async function diff(a: DiffSide, b: DiffSide, tick: number, limits: DiffLimits = {}): Promise<DiffResult> {
  const t0 = performance.now();
  const [ma, mb] = await Promise.all([stateAt(a.source, a.build.registry, tick), stateAt(b.source, b.build.registry, tick)]);
  const d = diffStates(ma, mb, limits);
  const da = ma.lastDigest!;
  const db = mb.lastDigest!;
  return {
    tick,
    a: { source: a.source.info, build: a.build.name, seq: da.seq, digest: toHex(da.digest) },
    b: { source: b.source.info, build: b.build.name, seq: db.seq, digest: toHex(db.digest) },
    equal: d.equal,
    diff: d,
    elapsedMs: performance.now() - t0,
  };
}

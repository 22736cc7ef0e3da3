// generateLog: a whole treasure-hunt shard log, produced the way a real leader produces it.
//
//   genesis (Sequencer.genesis)
//   per tick T: the load generator's inputs → Sequencer.submit (bad ones refused, retries
//               deduplicated), [an upgrade entry when T = upgradeAtTick], then
//               Sequencer.closeTick(leader digest of T-1)
//
// where the leader digest comes from a ShardMachine applying every entry as it is produced.
// Entries are yielded one at a time and nothing is kept behind them (the machine's state is
// bounded by the world, the Sequencer's dedupe memory by its window), so a 10-million-entry
// log streams to a file in constant memory.
//
// Recording with another registry (e.g. the buggy `treasureHuntNondeterministicV1`) gives a
// log whose tick entries carry that build's digests: replaying it with the real reducer shows
// where the two disagree.
import { z } from 'zod';
import { PlayoutError, Sequencer, ShardIdSchema, ShardMachine, isPlayoutError, type CheckedOptions, type Entry, type ReducerRegistry, type TickDigest } from '../../core/index.js';
import { LoadGenerator, type LoadIntent } from './load.js';
import { TreasureHuntParamsSchema, type TreasureHuntParamsInput } from './schemas.js';
import { TREASURE_HUNT, treasureHuntRegistry } from './treasure-hunt.js';
import { worldViewOf } from './world-view.js';

export interface GenerateLogOptions {
  seed: number;
  /** Shard id (default "hunt-1"). */
  shard?: string;
  players?: number;
  inputsPerTick?: number;
  /** Stop after this many ticks … */
  ticks?: number | null;
  /** … or once the log holds at least this many entries (it always ends with a tick entry). */
  entries?: number | null;
  /** Genesis params of the world (worldSize, itemsInitial …). */
  params?: TreasureHuntParamsInput | null;
  /** Sequence an `upgrade` to reducer version 2 in this tick (after its inputs); v2 rules run from the next tick. */
  upgradeAtTick?: number | null;
  /** The registry the leader records with (default `treasureHuntRegistry()`). */
  registry?: ReducerRegistry;
  /** Reducer version at genesis (default 1). */
  reducerVersion?: number;
  tickMs?: number;
  /** Region stamped as `origin` on inputs (default "eu-fra"). */
  region?: string;
  epoch?: number;
  dedupeWindowTicks?: number;
  invalidRate?: number;
  retryRate?: number;
  questEveryTicks?: number;
  guildSize?: number;
  /** Steer the simulated players with the leader's state (the treasure radar; default true). */
  radar?: boolean;
  /** The leader machine in checked mode (slower; for tests). */
  checked?: CheckedOptions | null;
  /** The leader's digest of every tick, as it closes. */
  onTickDigest?: ((digest: TickDigest) => void) | null;
}

export interface GenerateLogSummary {
  entries: number;
  ticks: number;
  /** Input entries sequenced. */
  inputs: number;
  /** Inputs the Sequencer refused (never in the log), by error code. */
  refused: Record<string, number>;
  /** Retries deduplicated by ingestId. */
  duplicates: number;
  /** Inputs the leader's reducer rejected as data. */
  rejected: number;
  /** Inputs produced by the load generator, by intent. */
  produced: Record<LoadIntent, number>;
  lastDigest: TickDigest | null;
  headSeq: number;
  headHash: Uint8Array;
}

const OptionsSchema = z.object({
  seed: z.number().int().min(0).max(0xffffffff),
  shard: ShardIdSchema.default('hunt-1'),
  players: z.number().int().min(1).max(1_000_000).default(200),
  inputsPerTick: z.number().int().min(0).max(1_000_000).default(50),
  ticks: z.number().int().min(1).nullable().default(null),
  entries: z.number().int().min(1).nullable().default(null),
  upgradeAtTick: z.number().int().min(0).nullable().default(null),
  reducerVersion: z.number().int().min(1).default(1),
  tickMs: z.number().int().min(1).max(3_600_000).default(50),
  region: z.string().min(1).max(64).default('eu-fra'),
  epoch: z.number().int().min(1).default(1),
  dedupeWindowTicks: z.number().int().min(0).default(100),
  invalidRate: z.number().min(0).max(1).default(0),
  retryRate: z.number().min(0).max(1).default(0),
  questEveryTicks: z.number().int().min(0).default(50),
  guildSize: z.number().int().min(1).default(4),
  radar: z.boolean().default(true),
});

/** Yields the entries of a generated shard log; returns a summary. */
export function* generateLog(options: GenerateLogOptions): Generator<Entry, GenerateLogSummary, void> {
  const { registry: givenRegistry, checked, onTickDigest, ...rest } = options;
  const parsed = OptionsSchema.safeParse(rest);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path.join('.');
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `generateLog: ${path}: ${issue.message}`, { path, expected: issue.message });
  }
  const o = parsed.data;
  const params = worldParams(options.params);
  if (o.ticks === null && o.entries === null) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', 'generateLog: expected `ticks` or `entries`, received neither', { path: 'ticks', expected: 'ticks or entries' });
  }
  const registry = givenRegistry ?? treasureHuntRegistry();
  const reducer = registry.get(TREASURE_HUNT, o.reducerVersion);
  if (o.upgradeAtTick !== null) registry.get(TREASURE_HUNT, 2);

  const summary: GenerateLogSummary = {
    entries: 0,
    ticks: 0,
    inputs: 0,
    refused: {},
    duplicates: 0,
    rejected: 0,
    produced: { valid: 0, rejected: 0, invalid: 0, retry: 0 },
    lastDigest: null,
    headSeq: 0,
    headHash: new Uint8Array(16),
  };
  const leader = new ShardMachine(registry, { checked: checked ?? null, onTick: onTickDigest ?? null });
  leader.keepRejections = 1;
  let rejectionsSeen = 0;
  const genesis = Sequencer.genesis({ shard: o.shard, reducer, seed: o.seed, tickMs: o.tickMs, epoch: o.epoch, params });
  leader.apply(genesis);
  summary.entries++;
  yield genesis;

  const sequencer = Sequencer.afterGenesis(registry, genesis, { region: o.region, dedupeWindowTicks: o.dedupeWindowTicks });
  const load = new LoadGenerator({
    seed: o.seed,
    players: o.players,
    inputsPerTick: o.inputsPerTick,
    params,
    guildSize: o.guildSize,
    digV2FromTick: o.upgradeAtTick === null ? (o.reducerVersion >= 2 ? 0 : null) : o.upgradeAtTick + 1,
    invalidRate: o.invalidRate,
    retryRate: o.retryRate,
    questEveryTicks: o.questEveryTicks,
  });
  const view = o.radar ? worldViewOf(leader.tables) : null;

  for (let tick = 0; ; tick++) {
    const inputs = load.next(tick, view);
    for (let i = 0; i < inputs.length; i++) {
      const input = inputs[i]!;
      let entry: Entry;
      try {
        const result = sequencer.submit(input);
        if (result.status === 'duplicate') {
          summary.duplicates++;
          continue;
        }
        entry = result.entry;
      } catch (err) {
        // What an ingress answers with a 400: the input never reaches the log.
        if (!isPlayoutError(err) || !err.code.startsWith('PLAYOUT_INPUT_')) throw err;
        summary.refused[err.code] = (summary.refused[err.code] ?? 0) + 1;
        continue;
      }
      leader.apply(entry);
      // Outputs are for connected clients; a generator has none, and keeping them would grow memory.
      leader.takeOutputs();
      if (leader.rejections.length > 0 && leader.rejections[leader.rejections.length - 1]!.seq === entry.seq) rejectionsSeen++;
      summary.inputs++;
      summary.entries++;
      yield entry;
    }
    if (o.upgradeAtTick === tick) {
      const up = sequencer.upgrade(2);
      leader.apply(up);
      summary.entries++;
      yield up;
    }
    const close = sequencer.closeTick(leader.lastDigest?.digest ?? null);
    leader.apply(close);
    leader.takeOutputs();
    summary.entries++;
    summary.ticks++;
    summary.lastDigest = leader.lastDigest;
    summary.headSeq = close.seq;
    summary.headHash = close.hash;
    yield close;
    if ((o.ticks !== null && summary.ticks >= o.ticks) || (o.entries !== null && summary.entries >= o.entries)) break;
  }
  summary.rejected = rejectionsSeen;
  summary.produced = { ...load.produced };
  return summary;
}

/** The world params as given (defaults stay implicit in the log), validated, without undefined keys. */
function worldParams(params: TreasureHuntParamsInput | null | undefined): TreasureHuntParamsInput {
  const given: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined) given[k] = v;
  const r = TreasureHuntParamsSchema.safeParse(given);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const path = ['params', ...issue.path].join('.');
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `generateLog: ${path}: ${issue.message}`, { path, expected: issue.message });
  }
  return given as TreasureHuntParamsInput;
}

/** The whole log in memory (for tests and small fixtures). */
export function generateLogArray(options: GenerateLogOptions): { entries: Entry[]; summary: GenerateLogSummary } {
  const entries: Entry[] = [];
  const it = generateLog(options);
  for (;;) {
    const r = it.next();
    if (r.done) return { entries, summary: r.value };
    entries.push(r.value);
  }
}

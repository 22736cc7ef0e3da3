import { z } from 'zod';
import { ShardIdSchema } from '../../core/index.js';
import { flag, intArg, parseArgv, validateArgs, type ArgSpec } from '../args.js';
import { EXIT_FINDING, EXIT_OK, type Command } from '../command.js';
import { buildList, buildNamed, openNamed, readSnapshotFile, sourcesHelp } from '../ops/open.js';
import { sourceLine, toJson } from '../ops/render.js';
import { replay, type TickDigestOut } from '../ops/replay.js';
import { ProgressBar, formatRate } from '../progress.js';

const SPEC: ArgSpec = {
  positionals: ['SOURCE'],
  positionalsRequired: 1,
  values: ['shard', 'to-tick', 'from-snapshot', 'every', 'build', 'full-digest-every'],
  switches: ['check', 'json', 'quiet', 'no-progress'],
};

const Args = z.strictObject({
  SOURCE: z.string().min(1),
  shard: ShardIdSchema.optional(),
  toTick: intArg('a tick').optional(),
  fromSnapshot: z.string().min(1).optional(),
  every: intArg('a number of ticks').optional(),
  build: z.string().min(1).optional(),
  fullDigestEvery: intArg('a number of ticks', 1).optional(),
  check: flag,
  json: flag,
  quiet: flag,
  noProgress: flag,
});

const command: Command = {
  name: 'replay',
  summary: 'replay a shard from a fixture, a store, a region or Kafka and print its tick digests',
  help: `playout replay SOURCE [options]

Replays a shard's log from SOURCE (a fixture, a store, a region or Kafka; see below) with
this engine's reducers and prints the digest of every tick, the final digest and the speed.
Exits 1 when a digest the log carries (the leader's) differs from the replay — run
\`playout verify\` to localise it — and 2 on bad input.

Options:
  --shard S               the shard to replay (required for a store holding several)
  --to-tick T             stop once tick T has closed
  --from-snapshot FILE    start from a snapshot file (or a fixture's leading snapshot);
                          entries up to its seq are skipped
  --check                 checked mode: the clock, Math.random, timers and crypto throw inside
                          reducers, records from get() are frozen, and the incremental digest is
                          compared with a full recomputation every --full-digest-every ticks (100)
  --every N               print the digest of every Nth tick (default 1; 0: only the final one)
  --quiet                 print only the summary
  --build NAME|MODULE     the reducers to replay with (default: the registered game builds)
${buildList()}
  --json                  one JSON document on stdout
  --no-progress           no progress bar (it is only ever drawn on a terminal)

${sourcesHelp()}

Example:
  playout replay replay-fixtures/hunt-small.plog --to-tick 20
  playout replay .data/eu-fra --shard hunt-1 --check --every 100
  PLAYOUT_PEER_TOKEN=… playout replay http://127.0.0.1:7101 --shard hunt-1 --to-tick 500
`,
  async run(argv, io) {
    const a = validateArgs('replay', parseArgv('replay', argv, SPEC), Args);
    const build = await buildNamed(a.build, io.cwd);
    const source = await openNamed(a.SOURCE, a.shard, io.cwd);
    try {
      const fromSnapshot = a.fromSnapshot === undefined ? null : await readSnapshotFile(a.fromSnapshot, io.cwd);
      const every = a.quiet ? 0 : (a.every ?? 1);
      const digests: TickDigestOut[] = [];
      const bar = ProgressBar.for(io, 'replaying', !a.noProgress);
      if (!a.json) io.stdout.write(`replay ${sourceLine(source.info)} [build ${build.name}${a.check ? ', checked' : ''}]\n`);
      const r = await replay(source, {
        build,
        toTick: a.toTick ?? null,
        fromSnapshot,
        check: a.check,
        fullDigestEveryTicks: a.fullDigestEvery ?? 100,
        digestEveryTicks: every,
        onDigest: (d) => {
          if (a.json) digests.push(d);
          else {
            bar?.done();
            io.stdout.write(`tick ${String(d.tick).padStart(7)}  seq ${String(d.seq).padStart(9)}  digest ${d.digest}${d.reducerVersion !== source.info.reducerVersion ? `  v${d.reducerVersion}` : ''}\n`);
          }
        },
        onProgress: bar === null ? null : (p, n) => bar.update(p, n),
      });
      bar?.done();
      if (a.json) io.stdout.write(toJson({ ...r, digests }));
      else {
        const f = r.final;
        io.stdout.write(
          `final: ${f === null ? 'no tick closed' : `tick ${f.tick}, seq ${f.seq}, digest ${f.digest}, reducer version ${f.reducerVersion}`}\n` +
            `${r.entries.toLocaleString('en-US')} entries, ${r.ticks.toLocaleString('en-US')} ticks in ${(r.elapsedMs / 1000).toFixed(2)} s (${formatRate(r.entriesPerSecond)} entries/s), starting ${r.start.from === 'genesis' ? 'at genesis' : `after the snapshot at tick ${r.start.tick}`}\n`,
        );
        if (r.mismatches.first !== null) {
          const m = r.mismatches.first;
          io.stdout.write(`DESYNC: the log records digest ${m.recorded} for tick ${m.tick}, this replay computes ${m.replayed} (${r.mismatches.count} tick(s) differ); run \`playout verify ${a.SOURCE}\` to localise\n`);
        }
      }
      return r.mismatches.count > 0 ? EXIT_FINDING : EXIT_OK;
    } finally {
      await source.close();
    }
  },
};
export default command;

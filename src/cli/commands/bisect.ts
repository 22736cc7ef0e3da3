import { z } from 'zod';
import { PlayoutError, ShardIdSchema } from '../../core/index.js';
import { flag, intArg, parseArgv, validateArgs, type ArgSpec } from '../args.js';
import { EXIT_FINDING, EXIT_OK, type Command } from '../command.js';
import { bisect } from '../ops/bisect.js';
import { buildList, recordersFor, withTwoSides, sourcesHelp } from '../ops/open.js';
import { renderBisect, toJson } from '../ops/render.js';
import { ProgressBar } from '../progress.js';

const SPEC: ArgSpec = {
  positionals: ['A', 'B'],
  positionalsRequired: 1,
  values: ['shard', 'build', 'reducer-b', 'recorded-by', 'checkpoint-every', 'records-max'],
  switches: ['json', 'no-progress'],
};

const Args = z.strictObject({
  A: z.string().min(1),
  B: z.string().min(1).optional(),
  shard: ShardIdSchema.optional(),
  build: z.string().min(1).optional(),
  reducerB: z.string().min(1).optional(),
  recordedBy: z.string().min(1).optional(),
  checkpointEvery: intArg('a number of entries', 1).optional(),
  recordsMax: intArg('a number of records', 1).optional(),
  json: flag,
  noProgress: flag,
});

const command: Command = {
  name: 'bisect',
  summary: 'first diverging tick, entry and record between two sources or two builds',
  help: `playout bisect A [B] [options]

Replays two sides in lockstep and finds the first tick whose digests differ, then re-runs
that tick entry by entry on both sides (from the nearest checkpoints, or from the start when
a build keeps state outside its tables) to name the first entry after which the states differ
and the differing records, field by field, found through the digest's bucket sums.

The sides are two sources (two captures, two regions' stores), or one log under two builds:
give one SOURCE and --reducer-b. When the replays agree but a log records digests they do not
compute (two captures recorded by different builds), that log is verified against the known
builds (see \`playout verify\`). Exit codes: 0 agree, 1 difference found, 2 bad input.

Options:
  --shard S                 the shard (for stores holding several)
  --build NAME|MODULE       side A's reducers (default: the registered game builds)
  --reducer-b NAME|MODULE   side B's reducers (default: the same as A)
${buildList()}
  --recorded-by B[,B…]      builds to try as a log's recorder (default: the known builds)
  --checkpoint-every N      for that verify: a restorable snapshot every N entries (2048)
  --records-max N           list at most N differing records (default 100)
  --json                    one JSON document on stdout
  --no-progress             no progress bar (only ever drawn on a terminal)

${sourcesHelp()}

Examples:
  playout bisect replay-fixtures/hunt-desync-a.plog --reducer-b treasure-hunt-nondeterministic
  playout bisect replay-fixtures/hunt-desync-a.plog replay-fixtures/hunt-desync-b.plog
`,
  async run(argv, io) {
    const a = validateArgs('bisect', parseArgv('bisect', argv, SPEC), Args);
    return withTwoSides('bisect', a, io.cwd, async ({ sourceA, sourceB, buildA, buildB }) => {
      if (sourceB.info.shard !== sourceA.info.shard) {
        throw new PlayoutError('PLAYOUT_SHARD_NOT_FOUND', `playout bisect: A holds shard "${sourceA.info.shard}" and B holds "${sourceB.info.shard}"`, { path: 'B', expected: sourceA.info.shard, received: sourceB.info.shard });
      }
      const recorders = await recordersFor(sourceB, buildB, a.recordedBy, io.cwd);
      const bar = ProgressBar.for(io, 'bisecting', !a.noProgress);
      const r = await bisect(
        { source: sourceA, build: buildA },
        { source: sourceB, build: buildB },
        { checkpointEveryEntries: a.checkpointEvery, limits: { recordsMax: a.recordsMax ?? 100 }, recorders, onProgress: bar === null ? null : (p, n) => bar.update(p, n) },
      );
      bar?.done();
      io.stdout.write(a.json ? toJson(r) : renderBisect(r));
      return r.agree ? EXIT_OK : EXIT_FINDING;
    });
  },
};
export default command;

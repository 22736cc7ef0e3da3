import { z } from 'zod';
import { ShardIdSchema } from '../../core/index.js';
import { flag, intArg, parseArgv, validateArgs, type ArgSpec } from '../args.js';
import { EXIT_FINDING, EXIT_OK, type Command } from '../command.js';
import { diff } from '../ops/diff.js';
import { buildList, withTwoSides, sourcesHelp } from '../ops/open.js';
import { renderDiff, toJson } from '../ops/render.js';

const SPEC: ArgSpec = {
  positionals: ['A', 'B'],
  positionalsRequired: 1,
  values: ['tick', 'shard', 'build', 'reducer-b', 'records-max', 'fields-max'],
  switches: ['json'],
};

const Args = z.strictObject({
  A: z.string().min(1),
  B: z.string().min(1).optional(),
  tick: intArg('a tick'),
  shard: ShardIdSchema.optional(),
  build: z.string().min(1).optional(),
  reducerB: z.string().min(1).optional(),
  recordsMax: intArg('a number of records', 1).optional(),
  fieldsMax: intArg('a number of fields', 1).optional(),
  json: flag,
});

const command: Command = {
  name: 'diff',
  summary: 'field-level state diff of two sources (or two builds) at a tick',
  help: `playout diff A [B] --tick T [options]

Rebuilds the state of both sides right after tick T closed (from a snapshot at T, or by
replaying) and prints every record that differs, field by field (table, key, field, A, B),
found through the digest's bucket sums. The sides are two sources, or one source under two
builds (--reducer-b). Exit codes: 0 equal, 1 different, 2 bad input (including a tick
the sources do not hold).

Options:
  --tick T                  the tick (required)
  --shard S                 the shard (for stores holding several)
  --build NAME|MODULE       side A's reducers (default: the registered game builds)
  --reducer-b NAME|MODULE   side B's reducers (default: the same as A)
${buildList()}
  --records-max N           list at most N records (default 100)
  --fields-max N            list at most N fields per record (default 50)
  --json                    one JSON document on stdout

${sourcesHelp()}

Example:
  playout diff replay-fixtures/hunt-desync-a.plog --reducer-b treasure-hunt-nondeterministic --tick 120
`,
  async run(argv, io) {
    const a = validateArgs('diff', parseArgv('diff', argv, SPEC), Args);
    return withTwoSides('diff', a, io.cwd, async ({ sourceA, sourceB, buildA, buildB }) => {
      const r = await diff({ source: sourceA, build: buildA }, { source: sourceB, build: buildB }, a.tick, { recordsMax: a.recordsMax ?? 100, fieldsMax: a.fieldsMax ?? 50 });
      io.stdout.write(a.json ? toJson(r) : renderDiff(r));
      return r.equal ? EXIT_OK : EXIT_FINDING;
    });
  },
};
export default command;

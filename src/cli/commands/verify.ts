import { z } from 'zod';
import { ShardIdSchema } from '../../core/index.js';
import { flag, intArg, parseArgv, validateArgs, type ArgSpec } from '../args.js';
import { EXIT_FINDING, EXIT_OK, type Command } from '../command.js';
import { buildList, buildNamed, openNamed, recordersFor, sourcesHelp } from '../ops/open.js';
import { renderVerify, toJson } from '../ops/render.js';
import { verify } from '../ops/verify.js';
import { ProgressBar } from '../progress.js';

const SPEC: ArgSpec = {
  positionals: ['SOURCE'],
  positionalsRequired: 1,
  values: ['shard', 'build', 'recorded-by', 'checkpoint-every', 'records-max'],
  switches: ['json', 'no-progress'],
};

const Args = z.strictObject({
  SOURCE: z.string().min(1),
  shard: ShardIdSchema.optional(),
  build: z.string().min(1).optional(),
  recordedBy: z.string().min(1).optional(),
  checkpointEvery: intArg('a number of entries', 1).optional(),
  recordsMax: intArg('a number of records', 1).optional(),
  json: flag,
  noProgress: flag,
});

const command: Command = {
  name: 'verify',
  summary: 'replay and compare with the digests recorded in the log; localise a desync',
  help: `playout verify SOURCE [options]

Replays SOURCE and compares every tick digest with the one the log carries (each tick entry
carries the leader's digest of the tick before). On a mismatch it prints the first diverging
tick, then localises it: the log holds one digest per tick, not the recorder's records, so
verify looks for a build that reproduces the recording — every recorded digest up to the
desync — among --recorded-by or the known builds running the same reducer version with other
code, and replays it next to this one entry by entry through the tick. That names the entry
after which the states first differ and the differing records field by field (expected =
recorded, actual = this build). Without such a build it lists the tick's entries with the
records each changed here, and checks this build against itself (restored snapshot, checked
mode). Exit codes: 0 agree, 1 desync found, 2 bad input.

Options:
  --shard S                 the shard (required for a store holding several)
  --build NAME|MODULE       this engine's reducers (default: the registered game builds)
  --recorded-by B[,B…]      builds to try as the recorder (default: every known build that
                            runs the log's reducer version with other code)
${buildList()}
  --checkpoint-every N      keep a restorable snapshot every N entries (default 2048)
  --records-max N           list at most N differing records (default 100)
  --json                    one JSON document on stdout
  --no-progress             no progress bar (only ever drawn on a terminal)

${sourcesHelp()}

Example:
  playout verify replay-fixtures/hunt-desync-b.plog
  playout verify replay-fixtures/hunt-desync-b.plog --recorded-by treasure-hunt-nondeterministic --json
`,
  async run(argv, io) {
    const a = validateArgs('verify', parseArgv('verify', argv, SPEC), Args);
    const build = await buildNamed(a.build, io.cwd);
    const source = await openNamed(a.SOURCE, a.shard, io.cwd);
    try {
      const recorders = await recordersFor(source, build, a.recordedBy, io.cwd);
      const bar = ProgressBar.for(io, 'verifying', !a.noProgress);
      const r = await verify(source, {
        build,
        recorders,
        checkpointEveryEntries: a.checkpointEvery,
        limits: { recordsMax: a.recordsMax ?? 100 },
        onProgress: bar === null ? null : (p, n) => bar.update(p, n),
      });
      bar?.done();
      io.stdout.write(a.json ? toJson(r) : renderVerify(r));
      return r.agree ? EXIT_OK : EXIT_FINDING;
    } finally {
      await source.close();
    }
  },
};
export default command;

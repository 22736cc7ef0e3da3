import { z } from 'zod';
import { ShardIdSchema } from '../../core/index.js';
import { flag, parseArgv, validateArgs, type ArgSpec } from '../args.js';
import { EXIT_BAD_INPUT, EXIT_OK, type Command } from '../command.js';
import { inspect } from '../ops/inspect.js';
import { openNamed, sourcesHelp } from '../ops/open.js';
import { renderInspect, toJson } from '../ops/render.js';

const SPEC: ArgSpec = { positionals: ['SOURCE'], positionalsRequired: 1, values: ['shard'], switches: ['json'] };

const Args = z.strictObject({
  SOURCE: z.string().min(1),
  shard: ShardIdSchema.optional(),
  json: flag,
});

const command: Command = {
  name: 'inspect',
  summary: 'header, entry counts, ticks, epochs, sizes, gaps and chain status of a source',
  help: `playout inspect SOURCE [options]

Reads SOURCE (a fixture, a store, a region or Kafka; see below) without replaying it and prints
its header (shard, reducer, seed, writer), entry counts by kind, input type and origin, the
ticks, epochs and upgrades, entry sizes, seq gaps, and the state of the hash chain. Damage is
listed rather than fatal: every corrupt entry, broken link and gap is reported with its seq;
a torn or truncated file stops the read at the first entry not read. Exit codes: 0 intact,
2 damaged or unreadable (the report is still printed, the first problem also on stderr).

Options:
  --shard S    the shard (for stores holding several)
  --json       one JSON document on stdout

${sourcesHelp()}

Example:
  playout inspect replay-fixtures/hunt-100k.plog
`,
  async run(argv, io) {
    const a = validateArgs('inspect', parseArgv('inspect', argv, SPEC), Args);
    const source = await openNamed(a.SOURCE, a.shard, io.cwd);
    try {
      const r = await inspect(source);
      io.stdout.write(a.json ? toJson(r) : renderInspect(r));
      if (!r.chain.ok) {
        const p = r.chain.problems[0];
        io.stderr.write(`playout inspect: ${p?.code ?? 'PLAYOUT_FIXTURE_CORRUPT'}: ${p?.message ?? 'the source is damaged'}\n`);
        return EXIT_BAD_INPUT;
      }
      return EXIT_OK;
    } finally {
      await source.close();
    }
  },
};
export default command;

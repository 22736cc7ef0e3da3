import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { PlayoutError, ShardIdSchema } from '../../core/index.js';
import { flag, intArg, parseArgv, validateArgs, type ArgSpec } from '../args.js';
import { EXIT_OK, type Command, type CommandIo } from '../command.js';
import { capture, checkCaptureTarget } from '../ops/capture.js';
import { openNamed, sourcesHelp } from '../ops/open.js';
import { sourceLine, toJson } from '../ops/render.js';
import { ProgressBar, formatRate } from '../progress.js';

const SPEC: ArgSpec = {
  positionals: ['SOURCE'],
  positionalsRequired: 1,
  values: ['shard', 'out', 'to-tick', 'token-env', 'description'],
  switches: ['from-snapshot', 'force', 'json', 'no-progress'],
};

const Args = z.strictObject({
  SOURCE: z.string().min(1),
  shard: ShardIdSchema.optional(),
  out: z.string({ error: 'expected the fixture to write, FILE.plog or FILE.plog.gz' }).regex(/\.plog(\.gz)?$/, 'expected a file name ending in .plog or .plog.gz'),
  toTick: intArg('a tick').optional(),
  tokenEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'expected an environment variable name').optional(),
  description: z.string().max(4096).optional(),
  fromSnapshot: flag,
  force: flag,
  json: flag,
  noProgress: flag,
});

const command: Command = {
  name: 'capture',
  summary: 'save a shard from a region, Kafka, a store or a fixture (plus the snapshot before it) as a .plog fixture',
  help: `playout capture SOURCE --shard S --out FILE.plog[.gz] [options]

Saves a shard's log from SOURCE as a .plog fixture (docs/plog.md) that replay, verify, bisect,
diff and inspect read like any other, from any SOURCE (see below; a fixture too, e.g. to
cut it at a tick). Every entry is checked (hash, seq, link) before it is written. The file is
written under a temporary name and renamed into place once complete and on disk: an
interrupted capture leaves no fixture behind. A name ending in .gz is gzip-compressed.

Options:
  --shard S               the shard to capture (required unless the source holds one shard)
  --out FILE              the fixture to write (.plog or .plog.gz); an existing file is refused
  --force                 replace --out if it exists
  --to-tick T             stop once tick T has closed
  --from-snapshot         when a region's log no longer reaches genesis (its retention
                          truncated it), start from the region's snapshot that its log continues
                          (the fixture then begins with that snapshot); without it such a region
                          is refused with PLAYOUT_RANGE_NOT_RETAINED
  --description TEXT      free text stored in the header (default: where it was captured from)
  --json                  one JSON document on stdout
  --no-progress           no progress bar (it is only ever drawn on a terminal)
  --token-env NAME        read an http(s):// source's token from NAME instead of
                          PLAYOUT_PEER_TOKEN / PLAYOUT_ADMIN_TOKEN

${sourcesHelp()}

Exit codes: 0 captured; 2 bad input (unreachable node, wrong token, unknown shard, a gap or a
corrupt entry in the source, an existing --out), with a one-line reason.

Examples:
  PLAYOUT_PEER_TOKEN=… playout capture http://127.0.0.1:7101 --shard hunt-1 --out hunt-1.plog.gz
  PLAYOUT_PEER_TOKEN=… playout capture http://127.0.0.1:7102 --shard hunt-1 --from-snapshot --to-tick 5000 --out jnb.plog
  playout capture kafka://localhost:29092/playout.log --shard hunt-1 --out from-kafka.plog
  playout capture .data/demo/eu-fra --shard hunt-1 --to-tick 200 --out first-200.plog
`,
  async run(argv, io) {
    const a = validateArgs('capture', parseArgv('capture', argv, SPEC), Args);
    const out = isAbsolute(a.out) ? a.out : resolve(io.cwd, a.out);
    // Refuse a bad --out before connecting to anything.
    await checkCaptureTarget(out, a.force);
    // A live node keeps truncating below its snapshots while it is read: when it cut the log past
    // the snapshot this capture started from, open the source again (it then starts from a newer
    // snapshot), a few times, instead of failing a capture the user asked to start from a snapshot.
    for (let attempt = 1; ; attempt++) {
      try {
        return await captureOnce(a, out, io);
      } catch (err) {
        if (!a.fromSnapshot || attempt >= CAPTURE_ATTEMPTS || !(err instanceof PlayoutError) || err.code !== 'PLAYOUT_RANGE_NOT_RETAINED') throw err;
        io.stderr.write(`capture: ${err.message}; opening the source again (attempt ${attempt + 1} of ${CAPTURE_ATTEMPTS})\n`);
      }
    }
  },
};
export default command;

const CAPTURE_ATTEMPTS = 3;

async function captureOnce(a: z.infer<typeof Args>, out: string, io: CommandIo): Promise<number> {
  const source = await openNamed(a.SOURCE, a.shard, io.cwd, { env: io.env, tokenEnv: a.tokenEnv ?? null, fromSnapshot: a.fromSnapshot });
  try {
    const bar = ProgressBar.for(io, 'capturing', !a.noProgress);
    if (!a.json) io.stdout.write(`capture ${sourceLine(source.info)}\n`);
    const r = await capture(source, {
      out,
      toTick: a.toTick ?? null,
      force: a.force,
      description: a.description ?? null,
      onProgress: bar === null ? null : (p, n) => bar.update(p, n),
    });
    bar?.done();
    if (a.json) io.stdout.write(toJson(r));
    else {
      const rate = r.elapsedMs > 0 ? (r.entries * 1000) / r.elapsedMs : 0;
      io.stdout.write(
        `wrote ${r.out}: ${r.entries.toLocaleString('en-US')} entries (seq ${r.firstSeq}–${r.lastSeq ?? r.firstSeq - 1}), ${r.ticksClosed.toLocaleString('en-US')} ticks closed${r.lastTick === null ? '' : ` up to tick ${r.lastTick}`}, ` +
          `${r.start.from === 'genesis' ? 'from genesis' : `after the snapshot at tick ${r.start.tick} (seq ${r.start.seq})`}; ${r.bytes.toLocaleString('en-US')} bytes${r.compressed ? ' (gzip)' : ''} in ${(r.elapsedMs / 1000).toFixed(2)} s (${formatRate(rate)} entries/s)\n`,
      );
    }
    return EXIT_OK;
  } finally {
    await source.close();
  }
}


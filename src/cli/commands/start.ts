// playout start --region regions/eu-fra.yaml: run one region node until SIGINT/SIGTERM.
import { z } from 'zod';
import { EXIT_BAD_INPUT, EXIT_OK, type Command, type CommandIo } from '../command.js';
import { PlayoutError } from '../../core/errors.js';
import type { ReducerRegistry } from '../../core/reducer.js';
import { LmdbLogStore } from '../../adapters/lmdb-store.js';
import { treasureHuntRegistry } from '../../games/treasure-hunt/index.js';
import { loadRegionConfig } from '../../node/region-config.js';
import { RegionNode } from '../../node/region-node.js';
import { loadBuild } from '../ops/builds.js';

const HELP = `playout start --region FILE [--build NAME|MODULE] [--log-level LEVEL]

Run one region node: open its store, resume its shards, lead or follow them, and serve the /v1
HTTP API (OpenAPI document at GET /v1/openapi.json) until SIGINT or SIGTERM.

Tokens are read from the environment variables the config names (tokens.<scope>.env).

Options:
  --region FILE      the region config (YAML), e.g. regions/eu-fra.yaml
  --build SPEC       the reducers to run: a build name or a module exporting a ReducerRegistry
                     (default: the built-in games)
  --log-level LEVEL  override the config's log level (fatal, error, warn, info, debug, trace, silent)
  --stop-on-stdin-close
                     also shut down when stdin closes (for supervisors such as playout demo: the
                     node cannot outlive a supervisor that died without stopping it)

Example:
  PLAYOUT_INGEST_TOKEN=… PLAYOUT_PEER_TOKEN=… PLAYOUT_ADMIN_TOKEN=… \\
    playout start --region regions/eu-fra.yaml
`;

const ArgsSchema = z.strictObject({
  stopOnStdinClose: z.boolean(),
  region: z.string().min(1),
  build: z.string().min(1).nullable(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).nullable(),
});

export function parseStartArgs(argv: readonly string[]): z.infer<typeof ArgsSchema> {
  const raw: Record<string, string | boolean | null> = { region: null, build: null, logLevel: null, stopOnStdinClose: false };
  const names: Record<string, string> = { '--region': 'region', '--build': 'build', '--log-level': 'logLevel' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--stop-on-stdin-close') {
      raw.stopOnStdinClose = true;
      continue;
    }
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, null];
    const key = names[flag];
    if (key === undefined) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `playout start: unknown argument ${a}; expected --region, --build or --log-level`, { path: 'argv', expected: '--region FILE', received: a });
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `playout start: ${flag} needs a value`, { path: flag, expected: 'a value', received: 'nothing' });
    raw[key] = value;
  }
  const r = ArgsSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const flag = Object.entries(names).find(([, k]) => k === issue.path[0])?.[0] ?? String(issue.path[0]);
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `playout start: ${flag}: expected ${issue.message}, received ${raw[issue.path[0] as string] ?? 'nothing'}`, { path: flag, expected: issue.message, received: String(raw[issue.path[0] as string] ?? 'nothing') });
  }
  return r.data;
}

/** Run a node until `stop` resolves; returns the node's exit code. */
export async function runNode(argv: readonly string[], io: CommandIo, stop: Promise<unknown>): Promise<number> {
  const args = parseStartArgs(argv);
  const config = loadRegionConfig(args.region, io.env);
  if (args.logLevel !== null) config.log.level = args.logLevel;
  const registry: ReducerRegistry = args.build === null ? treasureHuntRegistry() : (await loadBuild(args.build, io.cwd)).registry;
  const store = await LmdbLogStore.open(config.store.path);
  let node: RegionNode;
  try {
    node = await RegionNode.start({ config, registry, store });
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  const stdinClosed =
    args.stopOnStdinClose
      ? new Promise<void>((resolve) => {
          process.stdin.on('end', resolve).on('close', resolve).on('error', resolve).resume();
        })
      : new Promise<void>(() => undefined);
  await Promise.race([stop, stdinClosed]);
  await node.close();
  return EXIT_OK;
}

const command: Command = {
  name: 'start',
  summary: 'run one region node from a region config file',
  help: HELP,
  async run(argv, io) {
    if (argv.length === 0) {
      io.stderr.write('playout start: --region FILE is required (see playout start --help)\n');
      return EXIT_BAD_INPUT;
    }
    const stop = new Promise<void>((resolve) => {
      const onSignal = (): void => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        resolve();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });
    return runNode(argv, io, stop);
  },
};
export default command;

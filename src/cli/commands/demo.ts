// playout demo (npm start): three regions on this machine, simulated treasure hunters, a live
// summary, optional chaos, and a verdict (exit 0 only when every check passes).
import { resolve } from 'node:path';
import { z } from 'zod';
import { EXIT_FINDING, EXIT_OK, type Command, type CommandIo } from '../command.js';
import { PlayoutError } from '../../core/errors.js';
import { DemoCluster } from '../../node/demo-cluster.js';

const HELP = `playout demo [--duration SECONDS] [--chaos] [--seed N] [--rate INPUTS_PER_TICK] [--players N]
             [--regions DIR] [--data DIR]

Start the three regions of regions/ (eu-fra, af-jnb, us-sfo) as separate node processes on
loopback, each with its embedded store under .data/demo/ (wiped at start), run the seeded
treasure-hunt load generator against each shard's leader, and print a live summary per region:
head, applied, tick, lag, digest agreement with the leader, repairs.

With --chaos, links between regions are cut and restored at random (through a fault-injecting
proxy in front of every peer link: resets and silent hangs), and the follower that leads no
shard is killed with SIGKILL once and restarted.

On Ctrl-C or after --duration the load stops, every link heals, the regions converge, and the
verdict is checked from the regions' own logs: identical digests at every common tick, every
acknowledged input in every log exactly once at its seq, no input sequenced twice.
Exit code 0 when all hold, 1 otherwise.

Options:
  --duration S   run S seconds (default: until Ctrl-C)
  --chaos        cut links and kill a follower
  --seed N       seed of the load and of the chaos (default 1)
  --rate N       inputs per tick per shard (default 10)
  --players N    simulated players per shard (default 200)
  --regions DIR  region configs (default ./regions)
  --data DIR     stores and logs (default ./.data/demo)

Examples:
  npm start
  playout demo --duration 60 --chaos
`;

const ArgsSchema = z.strictObject({
  duration: z.coerce.number<string>().positive().max(86_400).nullable(),
  chaos: z.boolean(),
  seed: z.coerce.number<string>().int().min(0).max(0x7fffffff),
  rate: z.coerce.number<string>().int().min(1).max(5_000),
  players: z.coerce.number<string>().int().min(1).max(100_000),
  regions: z.string().min(1),
  data: z.string().min(1),
});

export function parseDemoArgs(argv: readonly string[]): z.infer<typeof ArgsSchema> {
  const raw: Record<string, unknown> = { duration: null, chaos: false, seed: '1', rate: '10', players: '200', regions: 'regions', data: '.data/demo' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, null];
    const key = flag.replace(/^--/, '');
    if (!flag.startsWith('--') || !(key in raw)) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `playout demo: unknown argument ${a}; see playout demo --help`, { path: 'argv', expected: Object.keys(raw).map((k) => `--${k}`).join(', '), received: a });
    }
    if (key === 'chaos') {
      raw.chaos = true;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `playout demo: ${flag} needs a value`, { path: flag, expected: 'a value', received: 'nothing' });
    raw[key] = value;
  }
  const r = ArgsSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const key = String(issue.path[0]);
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `playout demo: --${key}: expected ${issue.message.replace(/^Invalid input: /, '')}, received ${String(raw[key])}`, { path: `--${key}`, expected: issue.message, received: String(raw[key]) });
  }
  return r.data;
}

export async function runDemo(argv: readonly string[], io: CommandIo, stop: Promise<void>): Promise<number> {
  const args = parseDemoArgs(argv);
  const demo = new DemoCluster({
    regionsDir: resolve(io.cwd, args.regions),
    dataDir: resolve(io.cwd, args.data),
    durationS: args.duration,
    chaos: args.chaos,
    seed: args.seed,
    inputsPerTick: args.rate,
    players: args.players,
    // The same node binary, flags (a TypeScript loader when run from source) and CLI script.
    playout: { execPath: process.execPath, args: [...process.execArgv, process.argv[1]!] },
    print: (text) => io.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    tty: io.stdout.isTTY === true,
    stop,
  });
  try {
    await demo.start();
    const verdict = await demo.run();
    io.stdout.write(`\n${verdict.lines.join('\n')}\n`);
    return verdict.ok ? EXIT_OK : EXIT_FINDING;
  } finally {
    await demo.close();
  }
}

const command: Command = {
  name: 'demo',
  summary: 'three regions on this machine with simulated treasure hunters',
  help: HELP,
  async run(argv, io) {
    const stop = new Promise<void>((resolve) => {
      const onSignal = (): void => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        resolve();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });
    return runDemo(argv, io, stop);
  },
};
export default command;

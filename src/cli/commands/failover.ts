import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { PlayoutError, RegionIdSchema, ShardIdSchema } from '../../core/index.js';
import { RegionConfigSchema } from '../../node/region-config.js';
import { flag, intArg, parseArgv, validateArgs, type ArgSpec } from '../args.js';
import { EXIT_FINDING, EXIT_OK, type Command, type CommandIo } from '../command.js';
import { executeFailoverOp, failoverStatusOp, planFailoverOp, renderPlan, renderResult, renderStatus, type FailoverOpsOptions } from '../ops/failover.js';
import { HttpFailoverClient } from '../../adapters/http-failover-client.js';
import { toJson } from '../ops/render.js';

const SPEC: ArgSpec = {
  positionals: ['ACTION'],
  positionalsRequired: 1,
  values: ['shard', 'to', 'config', 'regions', 'token-env', 'timeout-ms', 'promote-timeout-ms', 'list-max'],
  switches: ['accept-loss', 'json'],
};

const RegionUrl = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}=https?:\/\/\S+$/, 'REGION=URL');

const Args = z
  .strictObject({
    ACTION: z.enum(['plan', 'execute', 'status'], 'plan, execute or status'),
    shard: ShardIdSchema,
    to: RegionIdSchema.optional(),
    config: z.string().min(1).optional(),
    regions: z
      .string()
      .transform((s) => s.split(',').map((p) => p.trim()).filter((p) => p.length > 0))
      .pipe(z.array(RegionUrl).min(1, 'at least one REGION=URL'))
      .optional(),
    tokenEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name').optional(),
    timeoutMs: intArg('milliseconds', 1).default(5_000),
    promoteTimeoutMs: intArg('milliseconds', 1).default(60_000),
    listMax: intArg('entries', 0).default(1_000),
    acceptLoss: flag,
    json: flag,
  })
  .refine((a) => a.ACTION === 'status' || a.to !== undefined, { message: 'expected --to REGION for plan and execute', path: ['to'] })
  .refine((a) => (a.config === undefined) !== (a.regions === undefined), { message: 'expected exactly one of --config FILE or --regions REGION=URL,…', path: ['regions'] });

const help = `playout failover ACTION --shard S [options]

Moves a shard's leadership to another region (DESIGN.md §6), talking to the region nodes
over their /v1 failover routes with an admin token.

  plan     --to R     reads every region's epoch, head, hash and last agreed tick and prints what
                      the switch would do and exactly which seqs (with their ingestIds) would be
                      lost; changes nothing. Exit 1 when execute would refuse, with the reason.
  execute  --to R     fences the next epoch on a majority (the old leader stops and reports its
                      final head), catches the target up to the highest fenced head, appends the
                      epoch entry at a tick boundary, and tells every region to follow it. Refuses
                      without a majority, and without the old leader unless --accept-loss (then
                      prints the window that may be lost). Exit 1 when refused.
  status              the epoch history (epoch, leader, first seq, time) and every region's fence.

Regions (one of):
  --config FILE              a region config (regions/eu-fra.yaml): that region and its peers
  --regions R=URL,R=URL,…    the nodes' base URLs

Options:
  --shard S                  the shard
  --to R                     the target region (plan, execute)
  --accept-loss              proceed without the old leader; the lost window is printed
  --token-env NAME           environment variable holding an admin token (default: the config's
                             tokens.admin.env, else PLAYOUT_ADMIN_TOKEN)
  --timeout-ms N             per-request timeout (default 5000)
  --promote-timeout-ms N     time the target may take to catch up and start (default 60000)
  --list-max N               lost entries listed at most (default 1000)
  --json                     one JSON document on stdout

Examples:
  PLAYOUT_ADMIN_TOKEN=… playout failover plan --shard hunt-1 --to af-jnb --config regions/eu-fra.yaml
  PLAYOUT_ADMIN_TOKEN=… playout failover execute --shard hunt-1 --to af-jnb --regions eu-fra=http://127.0.0.1:7101,af-jnb=http://127.0.0.1:7102,us-sfo=http://127.0.0.1:7103
`;

function invalid(path: string, message: string, expected: string, received: string): PlayoutError {
  return new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `playout failover: ${message}`, { path, expected, received });
}

/** Regions and URLs from a region config: the region itself (its listen address) and its peers. */
function regionsOfConfig(file: string, cwd: string): { regions: { region: string; url: string }[]; tokenEnv: string } {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(resolve(cwd, file), 'utf8'));
  } catch (err) {
    throw invalid('--config', `cannot read ${file}: ${(err as Error).message}`, 'a readable region config', file);
  }
  const r = RegionConfigSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new PlayoutError('PLAYOUT_CONFIG_INVALID', `playout failover: ${file}: ${issue.path.join('.')}: ${issue.message}`, { path: issue.path.join('.'), expected: issue.message, received: file });
  }
  const c = r.data;
  // A node listening on every interface is reached on loopback from its own machine.
  const host = c.listen.host === '0.0.0.0' || c.listen.host === '::' ? '127.0.0.1' : c.listen.host.includes(':') ? `[${c.listen.host}]` : c.listen.host;
  return { regions: [{ region: c.region, url: `http://${host}:${c.listen.port}` }, ...c.peers.map((p) => ({ region: p.region, url: p.url }))], tokenEnv: c.tokens.admin.env };
}

function opsOptions(a: z.output<typeof Args>, io: CommandIo): { ops: FailoverOpsOptions; close: () => Promise<void> } {
  let regions: { region: string; url: string }[];
  let tokenEnv = a.tokenEnv ?? 'PLAYOUT_ADMIN_TOKEN';
  if (a.config !== undefined) {
    const c = regionsOfConfig(a.config, io.cwd);
    regions = c.regions;
    tokenEnv = a.tokenEnv ?? c.tokenEnv;
  } else {
    regions = a.regions!.map((p) => {
      const eq = p.indexOf('=');
      return { region: p.slice(0, eq), url: p.slice(eq + 1) };
    });
  }
  const seen = new Set<string>();
  for (const r of regions) {
    if (seen.has(r.region)) throw invalid('--regions', `region ${r.region} is listed twice`, 'each region once', `${r.region} twice`);
    seen.add(r.region);
  }
  const token = io.env[tokenEnv];
  if (token === undefined || token === '') throw invalid('--token-env', `environment variable ${tokenEnv} must hold an admin token of the regions`, `${tokenEnv} set`, 'unset');
  const clients = regions.map((r) => new HttpFailoverClient({ region: r.region, url: r.url, token: token.split(',')[0]!.trim(), requestTimeoutMs: a.timeoutMs }));
  return {
    ops: {
      shard: a.shard,
      clients,
      requestTimeoutMs: a.timeoutMs,
      promoteTimeoutMs: a.promoteTimeoutMs,
      listEntriesMax: a.listMax,
      // Unique per execution: promises are made to it, and a retried request must not be taken for another failover.
      newFailoverId: () => `fo-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`,
    },
    close: async () => {
      await Promise.all(clients.map((c) => c.close()));
    },
  };
}

const command: Command = {
  name: 'failover',
  summary: 'plan, execute or show the status of a leadership change',
  help,
  async run(argv, io) {
    const a = validateArgs('failover', parseArgv('failover', argv, SPEC), Args);
    const { ops, close } = opsOptions(a, io);
    try {
      if (a.ACTION === 'status') {
        const s = await failoverStatusOp(ops);
        io.stdout.write(a.json ? toJson(s) : renderStatus(s));
        return EXIT_OK;
      }
      if (a.ACTION === 'plan') {
        const p = await planFailoverOp(ops, a.to!, a.acceptLoss);
        io.stdout.write(a.json ? toJson(p) : renderPlan(p));
        return p.refusal === null ? EXIT_OK : EXIT_FINDING;
      }
      const r = await executeFailoverOp(ops, a.to!, a.acceptLoss);
      io.stdout.write(a.json ? toJson(r) : renderResult(r));
      if (!r.ok) io.stderr.write(`playout failover: ${r.error!.code}: ${r.error!.message}\n`);
      return r.ok ? EXIT_OK : EXIT_FINDING;
    } finally {
      await close();
    }
  },
};
export default command;

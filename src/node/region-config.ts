// Region config: what one node serves, where it listens, who its peers are, and its limits.
//
// A config is a YAML file (regions/eu-fra.yaml …) validated by `RegionConfigSchema`. Secrets are
// never in the file: `tokens` names the environment variable of each scope, and loading fails
// with PLAYOUT_CONFIG_INVALID when one is unset, rather than starting a node anyone can write to.
// Relative store paths resolve against the config file's folder, so a config works from any cwd.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import { z } from 'zod';
import { PlayoutError, describe } from '../core/errors.js';
import { RegionIdSchema, ShardIdSchema } from '../core/entry.js';
import { ACK_MODES, ReducerRefSchema, expectedOf } from '../adapters/http-schemas.js';
import { KafkaNodeConfigSchema } from './kafka-config.js';

export { ACK_MODES, ReducerRefSchema, type AckMode } from '../adapters/http-schemas.js';

const uint = z.number().int().nonnegative();
const posInt = z.number().int().positive();

export const ShardConfigSchema = z.strictObject({
  id: ShardIdSchema,
  reducer: ReducerRefSchema,
  /** The region that sequences the shard in its first epoch. */
  leader: RegionIdSchema,
  seed: z.number().int().min(0).max(0xffffffff),
  tickMs: z.number().int().min(1).max(3_600_000),
  /** `leader`: acknowledge inputs once durable at the leader; `quorum`: at a majority of regions. */
  ack: z.enum(ACK_MODES).default('leader'),
  /** Genesis parameters handed to the reducer (world size …). */
  params: z.unknown().default(null),
});
export type ShardConfig = z.infer<typeof ShardConfigSchema>;

export const PeerConfigSchema = z.strictObject({
  region: RegionIdSchema,
  url: z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL' }),
});
export type PeerConfig = z.infer<typeof PeerConfigSchema>;

const EnvName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name, e.g. PLAYOUT_PEER_TOKEN');

export const TOKEN_SCOPES = ['ingest', 'peer', 'admin'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

export const TokensConfigSchema = z.strictObject({
  ingest: z.strictObject({ env: EnvName }),
  peer: z.strictObject({ env: EnvName }),
  admin: z.strictObject({ env: EnvName }),
});

export const LimitsConfigSchema = z.strictObject({
  /** Largest HTTP request body (an input batch). */
  bodyBytesMax: posInt.default(1 << 20),
  /** Largest replication frame (one entry plus framing); bigger frames are refused as torn. */
  frameBytesMax: posInt.default(1 << 20),
  /** Most entries in one response of GET …/entries. */
  rangeEntriesMax: posInt.default(50_000),
  /** Most bytes in one response of GET …/entries (at least one entry is always sent). */
  rangeBytesMax: posInt.default(8 << 20),
  /** Early (out-of-order) entries a follower holds while it repairs a gap. */
  bufferedEntriesMax: posInt.default(100_000),
  /** Replication streams a node serves at once. */
  openStreamsMax: posInt.default(64),
  /** Inputs in one POST …/inputs batch. */
  batchInputsMax: posInt.default(1_000),
  /** Inputs sequenced but not yet acknowledged per shard before ingress answers 503. */
  pendingInputsMax: posInt.default(100_000),
});

export const RepairConfigSchema = z.strictObject({
  /** No progress for this long while a peer reports a higher head → request the range. */
  delayMs: posInt.default(500),
  backoffMsMin: posInt.default(100),
  // A healed link is used again within a second (bench/http-heal.bench.ts); retrying a dead
  // link once a second costs one connection attempt.
  backoffMsMax: posInt.default(1_000),
  /** Most entries requested in one repair. */
  batchEntriesMax: posInt.default(50_000),
  /** Resync a quarantined shard from a healthy peer's snapshot without waiting for an operator. */
  autoResync: z.boolean().default(true),
  /** Time allowed for one peer request. */
  requestTimeoutMs: posInt.default(5_000),
});

export const SnapshotsConfigSchema = z.strictObject({
  everyTicks: posInt.default(200),
  /** Snapshots kept per shard; entries below the oldest kept one may be truncated. */
  kept: posInt.default(5),
  /** Keep at least this many entries below the head, for peers catching up. */
  retainEntriesMin: uint.default(1_000_000),
});

export const ReplicationConfigSchema = z.strictObject({
  /** Heartbeats on idle streams (sender's head and latest digest). */
  heartbeatMs: posInt.default(250),
  /** A stream silent for this long is considered dead and reopened. */
  streamIdleMs: posInt.default(3_000),
  /**
   * Longest wait between attempts to reopen a stream. Short: an attempt against a dead link
   * costs one connection attempt, and the wait is what a healed link loses before it is used
   * (bench/http-heal.bench.ts).
   */
  reconnectMsMax: posInt.default(100),
  /** An ingestId is remembered for this many ticks. */
  dedupeWindowTicks: posInt.default(1_200),
  /** An input not acknowledged within this (e.g. no quorum) is answered 502, to be retried with its ingestId. */
  ackTimeoutMs: posInt.default(10_000),
  /** Every peer's status is polled this often (heads and digests of peers not streamed from; shard discovery). */
  statusPollMs: posInt.default(1_000),
  /**
   * Under ack mode `leader`, a follower stores the entries streamed to it within this long in one
   * append (one fsync); it applies them on receipt. 0: an append per batch received.
   */
  followerCommitHoldMs: uint.max(1_000).default(20),
});

export const RegionConfigSchema = z.strictObject({
  region: RegionIdSchema,
  listen: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535),
  }),
  store: z.strictObject({ path: z.string().min(1) }),
  peers: z.array(PeerConfigSchema).default([]),
  shards: z.array(ShardConfigSchema).default([]),
  tokens: TokensConfigSchema,
  limits: LimitsConfigSchema.default(LimitsConfigSchema.parse({})),
  repair: RepairConfigSchema.default(RepairConfigSchema.parse({})),
  snapshots: SnapshotsConfigSchema.default(SnapshotsConfigSchema.parse({})),
  replication: ReplicationConfigSchema.default(ReplicationConfigSchema.parse({})),
  /**
   * Serve HTTPS instead of HTTP (peers then use https:// URLs). `caFile` is the CA bundle this
   * node trusts for its peers' certificates (a private cluster CA); without it, the system's.
   * Paths resolve against the config file's folder.
   */
  tls: z
    .strictObject({ certFile: z.string().min(1), keyFile: z.string().min(1), caFile: z.string().min(1).nullable().default(null) })
    .nullable()
    .default(null),
  /** Run reducers in checked mode (poisoned globals, frozen reads, periodic full digests). */
  checked: z.boolean().default(false),
  log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).default({ level: 'info' }),
  /** Optional Kafka transport (docs/kafka.md, "Region config"). */
  kafka: KafkaNodeConfigSchema.optional(),
});

/** The config as written in the file. */
export type RegionConfigInput = z.input<typeof RegionConfigSchema>;

/** A loaded config: defaults filled, store path absolute, tokens read from the environment. */
export type RegionConfig = z.output<typeof RegionConfigSchema> & {
  /** Resolved token values per scope (each may list several comma-separated tokens, for rotation). */
  secrets: Record<TokenScope, string[]>;
  /** Where the config came from, for messages. */
  source: string;
};

/** Tokens shorter than this are refused: a guessable token is worse than a loud error. */
export const TOKEN_LENGTH_MIN = 16;

export function parseRegionConfig(raw: unknown, env: NodeJS.ProcessEnv, source = 'region config', baseDir = process.cwd(), lineOf: ((path: PropertyKey[]) => number | null) | null = null): RegionConfig {
  const r = RegionConfigSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const path = formatPath(issue.path);
    let received: unknown = raw;
    for (const k of issue.path) received = (received as Record<PropertyKey, unknown> | null | undefined)?.[k];
    const line = lineOf?.(issue.path) ?? null;
    const where = line === null ? source : `${source}:${line}`;
    const receivedText = issue.code === 'unrecognized_keys' ? `unknown key(s) ${issue.keys.join(', ')}` : describe(received);
    const expected = expectedOf(issue);
    throw new PlayoutError('PLAYOUT_CONFIG_INVALID', `Cannot load ${where}: ${path || '(root)'}: expected ${expected}, received ${receivedText}`, {
      path: path || '(root)',
      expected,
      received: receivedText,
    });
  }
  const c = r.data;
  const fail = (path: string, expected: string, received: string): never => {
    throw new PlayoutError('PLAYOUT_CONFIG_INVALID', `Cannot load ${source}: ${path}: expected ${expected}, received ${received}`, { path, expected, received });
  };
  const peerRegions = new Set<string>();
  c.peers.forEach((p, i) => {
    if (p.region === c.region) fail(`peers[${i}].region`, `a region other than this node's (${c.region})`, p.region);
    if (peerRegions.has(p.region)) fail(`peers[${i}].region`, 'each peer region listed once', `${p.region} twice`);
    peerRegions.add(p.region);
  });
  const shardIds = new Set<string>();
  c.shards.forEach((s, i) => {
    if (shardIds.has(s.id)) fail(`shards[${i}].id`, 'each shard listed once', `${s.id} twice`);
    shardIds.add(s.id);
    if (s.leader !== c.region && !peerRegions.has(s.leader)) {
      fail(`shards[${i}].leader`, `this region or a peer (${[c.region, ...peerRegions].join(', ')})`, s.leader);
    }
  });
  const secrets = {} as Record<TokenScope, string[]>;
  for (const scope of TOKEN_SCOPES) {
    const name = c.tokens[scope].env;
    const value = env[name];
    if (value === undefined || value === '') fail(`tokens.${scope}.env`, `environment variable ${name} to hold the ${scope} token`, 'unset');
    const tokens = value!.split(',').map((t) => t.trim()).filter((t) => t.length > 0);
    const short = tokens.find((t) => t.length < TOKEN_LENGTH_MIN);
    if (tokens.length === 0 || short !== undefined) {
      fail(`tokens.${scope}.env`, `${name} to hold tokens of at least ${TOKEN_LENGTH_MIN} characters (comma-separated for rotation)`, `a token of ${short?.length ?? 0} characters`);
    }
    secrets[scope] = tokens;
  }
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const tls = c.tls === null ? null : { certFile: abs(c.tls.certFile), keyFile: abs(c.tls.keyFile), caFile: c.tls.caFile === null ? null : abs(c.tls.caFile) };
  return { ...c, store: { path: abs(c.store.path) }, tls, secrets, source };
}

/** Read, parse and validate a YAML region config. Errors name the file, the line and the field. */
export function loadRegionConfig(file: string, env: NodeJS.ProcessEnv = process.env): RegionConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PlayoutError('PLAYOUT_CONFIG_INVALID', `Cannot read region config ${file}: ${(err as Error).message}`, { path: file, expected: 'a readable YAML file', received: (err as NodeJS.ErrnoException).code ?? 'error', cause: err });
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0]?.line ?? null;
    throw new PlayoutError('PLAYOUT_CONFIG_INVALID', `Cannot parse ${file}${line === null ? '' : `:${line}`}: ${e.message.split('\n')[0]}`, { path: '(yaml)', expected: 'valid YAML', received: e.code });
  }
  return parseRegionConfig(doc.toJS(), env, file, dirname(resolve(file)), (path) => lineOfPath(doc, lines, path));
}

function lineOfPath(doc: Document, lines: LineCounter, path: PropertyKey[]): number | null {
  // The deepest node that exists on the path: a missing key points at its parent.
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as unknown[], true);
    if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
  }
  return null;
}

function formatPath(path: PropertyKey[]): string {
  let out = '';
  for (const k of path) out += typeof k === 'number' ? `[${k}]` : out === '' ? String(k) : `.${String(k)}`;
  return out;
}

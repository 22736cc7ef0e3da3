// The zod schemas of the /v1 HTTP API: request bodies, query strings and JSON responses.
// The server validates with them and `openApiDocument()` is generated from them, so the
// document cannot drift from what the server accepts.
import { AnnounceAnswerSchema, AnnounceRequestSchema, EpochsAnswerSchema, FenceGrantSchema, FenceRequestSchema, FenceStateSchema, PromoteAnswerSchema, PromoteRequestSchema, RegionFailoverStatusSchema, ReleaseAnswerSchema, ReleaseRequestSchema } from '../ports/failover-client.js';
import { z } from 'zod';
import { ShardIdSchema, RegionIdSchema } from '../core/entry.js';

const uint = z.number().int().nonnegative();

/** What a zod issue expected, without zod's "Invalid input: … received …" wrapping (our messages add the received value). */
export function expectedOf(issue: { message: string }): string {
  return issue.message.replace(/^Invalid (input|option|string|number)?:?\s*/i, '').replace(/^expected /, '').replace(/, received .*$/, '') || issue.message;
}
const hex128 = z.string().regex(/^[0-9a-f]{32}$/, '32 lowercase hex digits');
/** Query-string integers arrive as text. */
const qUint = z.coerce.number<string>().int().nonnegative();
/** The longest a GET /v1/shards/:shard/applied waits. */
export const APPLIED_WAIT_MS_MAX = 30_000;

export const ACK_MODES = ['leader', 'quorum'] as const;
export type AckMode = (typeof ACK_MODES)[number];

/** `name@version`, e.g. `treasure-hunt@1`. */
export const ReducerRefSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,63}@[1-9][0-9]{0,5}$/, 'reducer as name@version, e.g. treasure-hunt@1')
  .transform((s) => {
    const at = s.lastIndexOf('@');
    return { name: s.slice(0, at), version: Number(s.slice(at + 1)) };
  });

export const ShardParamsSchema = z.strictObject({ shard: ShardIdSchema });

export const InputSchema = z.strictObject({
  type: z.string().min(1).max(128),
  version: z.number().int().min(1),
  payload: z.unknown(),
  /** The client's idempotency key: the same key within the dedupe window is sequenced once. */
  ingestId: z.string().min(1).max(256).nullable().default(null),
});
export type InputRequest = z.infer<typeof InputSchema>;

export const InputBatchSchema = z.strictObject({ inputs: z.array(InputSchema).min(1) });

export const InputResultSchema = z.strictObject({
  status: z.enum(['sequenced', 'duplicate']),
  seq: uint,
  /** The tick the input was sequenced in (null for a duplicate answered from the dedupe window). */
  tick: uint.nullable(),
});
export type InputResult = z.infer<typeof InputResultSchema>;
export const InputBatchResultSchema = z.strictObject({ results: z.array(InputResultSchema) });

export const CreateShardSchema = z.strictObject({
  id: ShardIdSchema,
  reducer: ReducerRefSchema,
  seed: z.number().int().min(0).max(0xffffffff),
  tickMs: z.number().int().min(1).max(3_600_000),
  ack: z.enum(ACK_MODES).default('leader'),
  params: z.unknown().default(null),
});
export type CreateShardRequest = z.infer<typeof CreateShardSchema>;

export const DurableReportSchema = z.strictObject({
  region: RegionIdSchema,
  /** Highest seq the reporting region holds durably … */
  seq: uint,
  /** … and that entry's hash, so a report from a forked history is refused. */
  hash: hex128,
  digestTick: uint.nullable(),
  digest: hex128.nullable(),
});
export type DurableReport = z.infer<typeof DurableReportSchema>;

export const StreamQuerySchema = z.strictObject({ from: qUint.pipe(z.number().min(1)) });
export const EntriesQuerySchema = z.strictObject({
  from: qUint.pipe(z.number().min(1)),
  to: qUint.pipe(z.number().min(1)).optional(),
  format: z.enum(['frames', 'json']).default('frames'),
});
export const DigestsQuerySchema = z.strictObject({ fromTick: qUint, toTick: qUint.optional() });
export const TickQuerySchema = z.strictObject({ tick: qUint.optional() });
/** `seq` to wait for, `timeoutMs` how long at most (answered with `reached: false` then). */
export const AppliedQuerySchema = z.strictObject({ seq: qUint.pipe(z.number().min(1)), timeoutMs: qUint.pipe(z.number().max(APPLIED_WAIT_MS_MAX)).default(5_000) });
export const AppliedAnswerSchema = z.strictObject({
  shard: z.string(),
  seq: uint,
  /** The shard's applied head when the answer left. */
  applied: uint,
  /** applied >= seq. */
  reached: z.boolean(),
  /** Quarantined shards apply nothing until resynced: a wait for them ends at its timeout. */
  quarantined: z.boolean(),
});
export type AppliedAnswer = z.infer<typeof AppliedAnswerSchema>;
/**
 * One line of GET /v1/shards/:shard/applied/watch (NDJSON): the shard's applied head here, sent
 * when the watch opens, whenever it moves, and every heartbeat.
 */
export const AppliedWatchLineSchema = z.strictObject({
  shard: z.string(),
  applied: uint,
  quarantined: z.boolean(),
});
export type AppliedWatchLine = z.infer<typeof AppliedWatchLineSchema>;
/** `sums=players:<hex>,items:<hex>`: the asker's table sums; buckets come back only for tables that differ. */
export const BucketsQuerySchema = z.strictObject({
  tick: qUint.optional(),
  sums: z
    .string()
    .regex(/^([A-Za-z0-9_.-]+:[0-9a-f]{32})(,[A-Za-z0-9_.-]+:[0-9a-f]{32})*$/, 'table:hex pairs separated by commas')
    .optional(),
});
export const RecordsQuerySchema = z.strictObject({
  tick: qUint.optional(),
  table: z.string().min(1).max(128),
  buckets: z
    .string()
    .regex(/^\d{1,4}(,\d{1,4}){0,63}$/, 'up to 64 bucket numbers separated by commas')
    .transform((s) => s.split(',').map(Number)),
});
export const StateQuerySchema = z.strictObject({ tick: qUint.optional(), table: z.string().min(1).optional() });
export const ResyncSchema = z.strictObject({ from: RegionIdSchema.optional() }).default({});

export const DigestRowSchema = z.strictObject({ tick: uint, seq: uint, digest: hex128 });
export const DigestsResultSchema = z.strictObject({ shard: z.string(), digests: z.array(DigestRowSchema) });

export const PeerStatusSchema = z.strictObject({
  region: z.string(),
  /** Highest seq the peer was last known to hold. */
  head: uint.nullable(),
  lagEntries: uint.nullable(),
  /** How long this node has been behind the peer's known head (0 when level or ahead). */
  lagMs: uint.nullable(),
  digestTick: uint.nullable(),
  digest: hex128.nullable(),
  /** Whether the peer's latest digest equals ours at that tick (null when we cannot compare yet). */
  agrees: z.boolean().nullable(),
  lastHeardMs: uint.nullable(),
});

export const ShardStatusSchema = z.strictObject({
  shard: z.string(),
  role: z.enum(['leader', 'follower']),
  leader: z.string(),
  epoch: uint,
  ack: z.enum(ACK_MODES),
  reducer: z.string(),
  head: uint,
  headHash: hex128.nullable(),
  /** Tick of the entry at head. */
  headTick: uint,
  applied: uint,
  firstSeq: uint.nullable(),
  /** The open tick. */
  tick: uint,
  digestTick: uint.nullable(),
  digest: hex128.nullable(),
  lastAgreedTick: uint.nullable(),
  peers: z.array(PeerStatusSchema),
  repairs: z.strictObject({ requests: uint, entries: uint, failures: uint, bootstraps: uint }),
  quarantine: z
    .strictObject({ firstDivergingTick: uint, expected: hex128.nullable(), actual: hex128.nullable(), sinceMs: uint, records: z.array(z.string()), reason: z.string() })
    .nullable(),
  stopped: z.strictObject({ code: z.string(), message: z.string() }).nullable(),
  /** Resyncs from a peer's snapshot after a desync (automatic or commanded). */
  resyncs: uint,
  pendingInputs: uint,
  inputs: z.strictObject({ sequenced: uint, duplicates: uint, rejected: uint }),
  /** The failover fence: the established epoch, its leader, a pending promise (docs/failover.md). */
  fence: FenceStateSchema,
  /** Divergent suffixes this region truncated into quarantine report files (nothing is dropped silently). */
  quarantineReports: z.array(
    z.strictObject({ file: z.string(), seqFrom: uint, seqTo: uint, entries: uint, inputs: uint, epoch: uint.nullable(), leader: z.string().nullable(), atMs: uint, reason: z.string() }),
  ),
  /** The shard's Kafka transport (docs/kafka.md); absent when the region has no `kafka` section. */
  kafka: z
    .strictObject({
      /** Leader: highest seq Kafka acknowledged (null before the first), and the durable entries not yet acknowledged. */
      published: uint.nullable(),
      publishLagEntries: uint.nullable(),
      /** Follower: per consumed topic, the partition holding the shard, the last offset handed over, and the records behind. */
      consumed: z.array(z.strictObject({ topic: z.string(), partition: uint, offset: z.string().nullable(), highWatermark: z.string().nullable(), lagOffsets: uint.nullable() })),
    })
    .optional(),
});
export type ShardStatus = z.infer<typeof ShardStatusSchema>;
export type PeerStatus = z.infer<typeof PeerStatusSchema>;

export const NodeStatusSchema = z.strictObject({
  region: z.string(),
  version: z.string(),
  nowMs: uint,
  uptimeMs: uint,
  shards: z.array(ShardStatusSchema),
});
export type NodeStatus = z.infer<typeof NodeStatusSchema>;

export const ErrorBodySchema = z.object({
  code: z.string(),
  message: z.string(),
  retriable: z.boolean(),
  path: z.string().nullable(),
  expected: z.string().nullable(),
  received: z.string().nullable(),
  seq: uint.nullable(),
  tick: uint.nullable(),
  shard: z.string().nullable(),
  /** For 416: the range the node holds. */
  available: z.strictObject({ from: uint, to: uint }).nullable().optional(),
  /** For 421: the region that leads the shard, and its URL when known. */
  leader: z.strictObject({ region: z.string(), url: z.string().nullable() }).nullable().optional(),
});

export const FailoverPlanQuerySchema = z.strictObject({
  to: RegionIdSchema,
  acceptLoss: z.enum(['true', 'false']).optional(),
});

/** Everything in the OpenAPI document: route → schemas. */
interface RouteDoc {
  method: 'get' | 'post';
  path: string;
  summary: string;
  scopes: readonly string[] | null;
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  response?: z.ZodType;
  responseType?: string;
}

export const ROUTE_DOCS: readonly RouteDoc[] = [
  { method: 'get', path: '/healthz', summary: 'Liveness: 200 while the process serves requests', scopes: null },
  { method: 'get', path: '/metrics', summary: 'Prometheus metrics', scopes: null, responseType: 'text/plain' },
  { method: 'get', path: '/v1/openapi.json', summary: 'This document', scopes: null },
  { method: 'get', path: '/v1/status', summary: 'Per shard: role, epoch, leader, head, applied, tick, lag per peer, last agreed tick, repairs, quarantine', scopes: ['peer', 'admin'], response: NodeStatusSchema },
  { method: 'post', path: '/v1/shards', summary: 'Create a shard led by this region (appends its genesis)', scopes: ['admin'], body: CreateShardSchema, response: ShardStatusSchema },
  { method: 'post', path: '/v1/shards/{shard}/inputs', summary: 'Submit one input or {inputs: [...]}; acknowledged once durable (ack mode leader or quorum)', scopes: ['ingest'], params: ShardParamsSchema, body: z.union([InputSchema, InputBatchSchema]), response: z.union([InputResultSchema, InputBatchResultSchema]) },
  { method: 'get', path: '/v1/shards/{shard}/stream', summary: 'Long-lived stream of length-prefixed frames (entries from `from`, heartbeats)', scopes: ['peer'], params: ShardParamsSchema, query: StreamQuerySchema, responseType: 'application/vnd.playout.frames' },
  { method: 'get', path: '/v1/shards/{shard}/entries', summary: 'Entries [from, to], paged by size; 416 with the available range when not held', scopes: ['peer'], params: ShardParamsSchema, query: EntriesQuerySchema, responseType: 'application/vnd.playout.frames' },
  { method: 'get', path: '/v1/shards/{shard}/digests', summary: 'Tick digests in [fromTick, toTick]', scopes: ['peer'], params: ShardParamsSchema, query: DigestsQuerySchema, response: DigestsResultSchema },
  { method: 'get', path: '/v1/shards/{shard}/applied', summary: 'Read-your-writes barrier: answers once this region has applied `seq` (an input\'s seq from its acknowledgement), or after `timeoutMs` with reached: false', scopes: ['ingest', 'peer'], params: ShardParamsSchema, query: AppliedQuerySchema, response: AppliedAnswerSchema },
  { method: 'get', path: '/v1/shards/{shard}/applied/watch', summary: 'Long-lived NDJSON stream of the shard\'s applied head here (AppliedWatchLine): a line when it opens, whenever the head moves (the latest only, for a slow reader), and every heartbeat; counts as an open stream', scopes: ['ingest', 'peer'], params: ShardParamsSchema, response: AppliedWatchLineSchema, responseType: 'application/x-ndjson' },
  { method: 'get', path: '/v1/shards/{shard}', summary: 'One shard\'s status row', scopes: ['peer'], params: ShardParamsSchema, response: ShardStatusSchema },
  { method: 'get', path: '/v1/shards/{shard}/buckets', summary: 'Bucket protocol round 1: digest and table sums at a tick, with the 4,096 bucket sums of tables whose sum differs from `sums` (msgpack with Accept: application/msgpack, else JSON with hex)', scopes: ['peer'], params: ShardParamsSchema, query: BucketsQuerySchema },
  { method: 'get', path: '/v1/shards/{shard}/records', summary: 'Bucket protocol round 2: the records of up to 64 buckets of a table at a tick', scopes: ['peer'], params: ShardParamsSchema, query: RecordsQuerySchema },
  { method: 'get', path: '/v1/shards/{shard}/snapshot', summary: 'Encoded snapshot at or below a tick (latest by default)', scopes: ['peer'], params: ShardParamsSchema, query: TickQuerySchema, responseType: 'application/vnd.playout.snapshot' },
  { method: 'get', path: '/v1/shards/{shard}/state', summary: 'State at any retained tick (time travel: nearest snapshot plus replay)', scopes: ['peer'], params: ShardParamsSchema, query: StateQuerySchema },
  { method: 'post', path: '/v1/shards/{shard}/durable', summary: 'A follower reports the seq it holds durably (quorum acks, lag)', scopes: ['peer'], params: ShardParamsSchema, body: DurableReportSchema },
  { method: 'post', path: '/v1/shards/{shard}/resync', summary: 'Resync a shard from a healthy peer\'s snapshot', scopes: ['admin'], params: ShardParamsSchema, body: ResyncSchema, response: ShardStatusSchema },
  { method: 'get', path: '/v1/shards/{shard}/failover', summary: 'Failover status: head, hash, epoch of the head, fence, epoch history, peers (docs/failover.md)', scopes: ['peer', 'admin'], params: ShardParamsSchema, response: RegionFailoverStatusSchema },
  { method: 'get', path: '/v1/shards/{shard}/epochs', summary: 'The epoch history and the fence', scopes: ['peer', 'admin'], params: ShardParamsSchema, response: EpochsAnswerSchema },
  { method: 'get', path: '/v1/shards/{shard}/failover-plan', summary: 'What a failover to `to` would do and lose, read from every region (changes nothing)', scopes: ['admin'], params: ShardParamsSchema, query: FailoverPlanQuerySchema },
  { method: 'post', path: '/v1/shards/{shard}/fence', summary: 'Promise an epoch to a candidate (409 PLAYOUT_FENCE_CONFLICT); a leader stops sequencing and answers its final head', scopes: ['admin'], params: ShardParamsSchema, body: FenceRequestSchema, response: FenceGrantSchema },
  { method: 'post', path: '/v1/shards/{shard}/fence/release', summary: 'Give back the promise of a refused failover', scopes: ['admin'], params: ShardParamsSchema, body: ReleaseRequestSchema, response: ReleaseAnswerSchema },
  { method: 'post', path: '/v1/shards/{shard}/promote', summary: 'Catch up to the highest fenced head, append the epoch entry, lead (503 PLAYOUT_FAILOVER_INCOMPLETE past timeoutMs)', scopes: ['admin'], params: ShardParamsSchema, body: PromoteRequestSchema, response: PromoteAnswerSchema },
  { method: 'post', path: '/v1/shards/{shard}/epoch', summary: 'Announce an established epoch: reconcile (quarantine a divergent suffix) and follow its leader', scopes: ['admin'], params: ShardParamsSchema, body: AnnounceRequestSchema, response: AnnounceAnswerSchema },
];

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const s = z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'any' }) as Record<string, unknown>;
  delete s.$schema;
  return s;
}

/** The OpenAPI 3.0 document of the API, generated from the zod schemas above. */
export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTE_DOCS) {
    const parameters: unknown[] = [];
    for (const [where, schema] of [['path', r.params], ['query', r.query]] as const) {
      if (!schema) continue;
      const js = jsonSchema(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, prop] of Object.entries(js.properties ?? {})) {
        parameters.push({ name, in: where, required: where === 'path' || (js.required ?? []).includes(name), schema: prop });
      }
    }
    const op: Record<string, unknown> = {
      summary: r.summary,
      parameters,
      security: r.scopes === null ? [] : [{ bearer: r.scopes }],
      responses: {
        '200': r.response
          ? { description: 'OK', content: { [r.responseType ?? 'application/json']: { schema: jsonSchema(r.response, 'output') } } }
          : { description: 'OK', content: { [r.responseType ?? 'application/json']: {} } },
        default: { description: 'A PlayoutError', content: { 'application/json': { schema: jsonSchema(ErrorBodySchema, 'output') } } },
      },
    };
    if (r.body) op.requestBody = { required: true, content: { 'application/json': { schema: jsonSchema(r.body, 'input') } } };
    (paths[r.path] ??= {})[r.method] = op;
  }
  return {
    openapi: '3.0.3',
    info: { title: 'playout region node', version, description: 'Replication, ingress and inspection API of one playout region node (DESIGN.md §5).' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Scopes: ingest, peer, admin (admin may call every route).' } } },
    paths,
  };
}

// The /v1 HTTP API of a region node (DESIGN §5), on fastify.
//
// This file is transport only: authentication, validation of every query and body with zod,
// limits, framing, and mapping PlayoutError codes to HTTP statuses. What the routes do is the
// node's (`NodeService`, implemented by RegionNode), so the same logic serves tests that call
// it directly.
//
// Order of checks on every request: route exists → token and scope (onRequest, before the body
// is even read) → body size (fastify's bodyLimit) → body and query schema → the node. A request
// refused at any step has changed nothing.
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { PlayoutError, describe, type ErrorCode } from '../core/errors.js';
import { decodeEntry } from '../core/entry.js';
import { encodeCanonical } from '../core/codec.js';
import { fromHex, toHex } from '../core/hash.js';
import type { BucketsAnswer, RecordsAnswer } from '../ports/peer-client.js';
import { TokenAuthenticator, type Scope } from './http-auth.js';
import {
  AnnounceRequestSchema,
  FenceRequestSchema,
  PromoteRequestSchema,
  ReleaseRequestSchema,
  type AnnounceAnswer,
  type AnnounceRequest,
  type EpochsAnswer,
  type FenceGrant,
  type FenceRequest,
  type PromoteAnswer,
  type PromoteRequest,
  type RegionFailoverStatus,
  type ReleaseAnswer,
  type ReleaseRequest,
} from '../ports/failover-client.js';
import { FRAMES_CONTENT_TYPE, FRAME_HEADER_BYTES, FrameWriter, type Heartbeat } from './http-frames.js';
import {
  AppliedQuerySchema,
  BucketsQuerySchema,
  RecordsQuerySchema,
  CreateShardSchema,
  DigestsQuerySchema,
  DurableReportSchema,
  EntriesQuerySchema,
  FailoverPlanQuerySchema,
  InputBatchSchema,
  InputSchema,
  ResyncSchema,
  ShardParamsSchema,
  StateQuerySchema,
  StreamQuerySchema,
  TickQuerySchema,
  expectedOf,
  openApiDocument,
  type AppliedAnswer,
  type AppliedWatchLine,
  type CreateShardRequest,
  type DurableReport,
  type InputRequest,
  type InputResult,
  type NodeStatus,
  type ShardStatus,
} from './http-schemas.js';

/** What a stream or range reader needs from one shard of the node. */
export interface ShardFeed {
  readonly shard: string;
  /** Highest durable seq (0 when empty). */
  head(): number;
  /** Lowest retained seq, or null when empty. */
  firstSeq(): number | null;
  rangeRaw(seqFrom: number, seqTo: number, bytesMax: number): Uint8Array[];
  heartbeat(): Heartbeat;
  /** Called after every durable append; returns the unsubscribe function. */
  onAppend(listener: () => void): () => void;
}

export interface NodeService {
  readonly region: string;
  readonly version: string;
  /** Throws PLAYOUT_SHARD_NOT_FOUND. */
  feed(shard: string): ShardFeed;
  status(): NodeStatus;
  /** Resolves once every input is acknowledged (durable per the shard's ack mode). `pathOf(i)` prefixes error paths. */
  submit(shard: string, inputs: readonly InputRequest[], pathOf: (index: number) => string): Promise<InputResult[]>;
  createShard(req: CreateShardRequest): Promise<ShardStatus>;
  digests(shard: string, tickFrom: number, tickTo: number): { tick: number; seq: number; digest: string }[];
  shardStatus(shard: string): ShardStatus;
  /** Bucket protocol round 1 at `tick` (null: the latest closed tick). */
  buckets(shard: string, tick: number | null, tableSums: Record<string, Uint8Array> | null): Promise<BucketsAnswer>;
  /** Bucket protocol round 2. */
  records(shard: string, tick: number | null, table: string, buckets: readonly number[]): Promise<RecordsAnswer>;
  snapshot(shard: string, tick: number | null): { tick: number; seq: number; bytes: Uint8Array };
  state(shard: string, tick: number | null, table: string | null): Promise<unknown>;
  reportDurable(shard: string, report: DurableReport): void;
  /** Resolves once the shard's applied head reaches `seq` here, or after `timeoutMs` (reached: false). */
  waitApplied(shard: string, seq: number, timeoutMs: number): Promise<AppliedAnswer>;
  /**
   * The shard's applied head now (`current()`), and `listener` called whenever it moves until
   * `unsubscribe`. Throws PLAYOUT_SHARD_NOT_FOUND.
   */
  watchApplied(shard: string, listener: (line: AppliedWatchLine) => void): { current: () => AppliedWatchLine; unsubscribe: () => void };
  resync(shard: string, from: string | null): Promise<ShardStatus>;
  metricsText(): Promise<{ contentType: string; body: string }>;
  /** The URL of a peer region, for 421 answers. */
  peerUrl(region: string): string | null;
  /** The failover routes (docs/failover.md); absent on services without failover. */
  readonly failover?: FailoverService;
}

/** The failover side of a node (src/node/shard-failover.ts), one method per route. */
export interface FailoverService {
  status(shard: string): RegionFailoverStatus;
  epochs(shard: string): EpochsAnswer;
  fence(shard: string, req: FenceRequest): Promise<FenceGrant>;
  release(shard: string, req: ReleaseRequest): Promise<ReleaseAnswer>;
  promote(shard: string, req: PromoteRequest): Promise<PromoteAnswer>;
  announce(shard: string, req: AnnounceRequest): Promise<AnnounceAnswer>;
  plan(shard: string, to: string, acceptLoss: boolean): Promise<unknown>;
}

export interface HttpLimits {
  bodyBytesMax: number;
  rangeEntriesMax: number;
  rangeBytesMax: number;
  openStreamsMax: number;
  batchInputsMax: number;
  /** Most digest rows in one answer. */
  digestRowsMax?: number;
}

export interface HttpServerOptions {
  service: NodeService;
  auth: TokenAuthenticator;
  limits: HttpLimits;
  heartbeatMs: number;
  /** pino options for fastify's logger, or false. */
  logger: boolean | Record<string, unknown>;
  /** Serve HTTPS with this key and certificate (PEM), or plain HTTP when null. */
  https?: { key: Buffer; cert: Buffer } | null;
}

const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  PLAYOUT_INVALID_ARGUMENT: 400,
  PLAYOUT_INPUT_INVALID: 400,
  PLAYOUT_INPUT_TYPE_UNKNOWN: 400,
  PLAYOUT_BODY_MALFORMED: 400,
  PLAYOUT_SHARD_ID_INVALID: 400,
  PLAYOUT_REDUCER_UNKNOWN: 400,
  PLAYOUT_UNAUTHENTICATED: 401,
  PLAYOUT_FORBIDDEN: 403,
  PLAYOUT_SHARD_NOT_FOUND: 404,
  PLAYOUT_ROUTE_NOT_FOUND: 404,
  PLAYOUT_SHARD_EXISTS: 409,
  PLAYOUT_FORK: 409,
  PLAYOUT_BODY_TOO_LARGE: 413,
  PLAYOUT_RANGE_NOT_RETAINED: 416,
  PLAYOUT_TICK_NOT_RETAINED: 416,
  PLAYOUT_NOT_LEADER: 421,
  PLAYOUT_TOO_MANY_STREAMS: 429,
  PLAYOUT_PEER_UNAVAILABLE: 502,
  PLAYOUT_OVERLOADED: 503,
  PLAYOUT_SHARD_QUARANTINED: 503,
  PLAYOUT_SHARD_STOPPED: 503,
  PLAYOUT_SEQUENCER_FENCED: 503,
  PLAYOUT_FENCE_CONFLICT: 409,
  PLAYOUT_FAILOVER_TARGET_UNFIT: 409,
  PLAYOUT_FAILOVER_IN_PROGRESS: 503,
  PLAYOUT_FAILOVER_INCOMPLETE: 503,
  PLAYOUT_FAILOVER_NO_MAJORITY: 503,
  PLAYOUT_FAILOVER_LOSS_UNACCEPTED: 409,
};

/** Extra fields some errors carry to the client (the available range, the leader), and an HTTP status or headers of their own (307 + Location). */
export class HttpPlayoutError extends PlayoutError {
  readonly extra: Record<string, unknown>;
  readonly httpStatus: number | null;
  readonly headers: Readonly<Record<string, string>>;
  constructor(err: PlayoutError, extra: Record<string, unknown>, http: { status?: number; headers?: Readonly<Record<string, string>> } = {}) {
    super(err.code, err.message, { path: err.path, expected: err.expected, received: err.received, seq: err.seq, tick: err.tick, shard: err.shard, cause: err });
    this.extra = extra;
    this.httpStatus = http.status ?? null;
    this.headers = http.headers ?? {};
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), ...this.extra };
  }
}

export function rangeNotAvailable(shard: string, seqFrom: number, seqTo: number, firstSeq: number | null, head: number): HttpPlayoutError {
  const held = firstSeq === null ? 'nothing' : `[${firstSeq}, ${head}]`;
  return new HttpPlayoutError(
    new PlayoutError('PLAYOUT_RANGE_NOT_RETAINED', `Cannot serve entries [${seqFrom}, ${seqTo}] of shard "${shard}": this node holds ${held}`, {
      shard,
      expected: `a range within ${held}`,
      received: `[${seqFrom}, ${seqTo}]`,
    }),
    { available: firstSeq === null ? null : { from: firstSeq, to: head } },
  );
}

function parse<S extends z.ZodType>(schema: S, value: unknown, where: string, what: string): z.output<S> {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  let path = where;
  for (const k of issue.path) path += typeof k === 'number' ? `[${k}]` : `.${String(k)}`;
  let received: unknown = value;
  for (const k of issue.path) received = (received as Record<PropertyKey, unknown> | null | undefined)?.[k];
  const receivedText = issue.code === 'unrecognized_keys' ? `unknown key(s) ${issue.keys.join(', ')}` : describe(received);
  const expected = expectedOf(issue);
  throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot ${what}: ${path}: expected ${expected}, received ${receivedText}`, { path, expected, received: receivedText });
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Token scopes that may call the route; absent: open (health, metrics, OpenAPI). */
    scopes?: readonly Scope[];
    /** What the route does, for error messages ("submit inputs"). */
    action?: string;
  }
}

export function buildHttpServer(opts: HttpServerOptions): FastifyInstance {
  const { service, auth, limits } = opts;
  const digestRowsMax = limits.digestRowsMax ?? 100_000;
  const app = Fastify({
    ...(opts.https ? { https: opts.https } : {}),
    logger: opts.logger,
    // Peers poll status and report durable heads several times a second: one log line per
    // request would drown the lines that matter. Refusals and failures are logged below.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: limits.bodyBytesMax,
    // Streams and long catch-ups must not be cut by fastify's own timers; peers detect
    // dead streams from missing heartbeats instead.
    requestTimeout: 0,
    connectionTimeout: 0,
    keepAliveTimeout: 10_000,
    forceCloseConnections: true,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
  });
  // JSON only: fastify would hand a text/plain body to the routes as a string.
  app.removeContentTypeParser('text/plain');
  let openStreams = 0;
  const closers = new Set<() => void>();

  app.addHook('onRequest', async (req) => {
    const scopes = req.routeOptions.config.scopes;
    if (scopes === undefined) return;
    auth.check(req.headers.authorization, scopes, req.routeOptions.config.action ?? `${req.method} ${req.routeOptions.url}`);
  });

  app.setNotFoundHandler((req, reply) => {
    const err = new PlayoutError('PLAYOUT_ROUTE_NOT_FOUND', `No route ${req.method} ${req.url.split('?')[0]}: see GET /v1/openapi.json`, { received: `${req.method} ${req.url.split('?')[0]}` });
    void reply.code(404).send(err.toJSON());
  });

  app.setErrorHandler((error: unknown, req, reply) => {
    const err = toPlayoutError(error);
    if (err === null) {
      // Not an operating error: a bug. Log it with its stack; the client learns only that.
      req.log.error({ err: error }, 'internal error');
      void reply.code(500).send({ code: 'INTERNAL', message: `Internal error in ${req.method} ${req.routeOptions.url ?? req.url}: ${(error as Error)?.message ?? String(error)}`, retriable: false });
      return;
    }
    const status = err instanceof HttpPlayoutError && err.httpStatus !== null ? err.httpStatus : err.code === 'PLAYOUT_BODY_MALFORMED' && err.path === 'headers.content-type' ? 415 : (STATUS_OF[err.code] ?? 500);
    if (err instanceof HttpPlayoutError) for (const [k, v] of Object.entries(err.headers)) void reply.header(k, v);
    // A redirect or a wait while a shard is between two epochs is an answer, not a failure: every
    // client request during a switchover gets one, and logging each with its stack would slow the
    // very regions that are taking over.
    const routed = err instanceof HttpPlayoutError && err.httpStatus !== null;
    if (status >= 500 && !routed) req.log.error({ err: error }, err.message);
    else req.log.debug({ code: err.code, path: err.path }, err.message);
    if ((err.code === 'PLAYOUT_TOO_MANY_STREAMS' || err.retriable) && !reply.hasHeader('retry-after')) void reply.header('retry-after', '1');
    void reply.code(status).send(err.toJSON());
  });

  // --- open routes --------------------------------------------------------------------------
  app.get('/healthz', async () => ({ ok: true, region: service.region }));
  app.get('/metrics', async (_req, reply) => {
    const m = await service.metricsText();
    return reply.type(m.contentType).send(m.body);
  });
  const openapi = openApiDocument(service.version);
  app.get('/v1/openapi.json', async () => openapi);

  // --- status, shards -----------------------------------------------------------------------
  app.get('/v1/status', { config: { scopes: ['peer'], action: 'read status' } }, async () => service.status());

  app.post('/v1/shards', { config: { scopes: ['admin'], action: 'create a shard' } }, async (req, reply) => {
    const body = parse(CreateShardSchema, req.body, 'body', 'create a shard');
    const status = await service.createShard(body);
    return reply.code(201).send(status);
  });

  app.post('/v1/shards/:shard/inputs', { config: { scopes: ['ingest'], action: 'submit inputs' } }, async (req) => {
    const { shard } = parse(ShardParamsSchema, req.params, 'params', 'submit inputs');
    const body = req.body as Record<string, unknown> | null;
    if (body !== null && typeof body === 'object' && !Array.isArray(body) && 'inputs' in body) {
      // The hot path: a plain check of the envelope; zod runs only to name what is wrong.
      const batch = inputBatchOrNull(body) ?? parse(InputBatchSchema, body, 'body', 'submit inputs');
      if (batch.inputs.length > limits.batchInputsMax) {
        throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot submit inputs: body.inputs: expected at most ${limits.batchInputsMax} inputs, received ${batch.inputs.length}`, {
          path: 'body.inputs',
          expected: `at most ${limits.batchInputsMax} inputs`,
          received: `${batch.inputs.length} inputs`,
        });
      }
      const results = await service.submit(shard, batch.inputs, (i) => `body.inputs[${i}].`);
      return { results };
    }
    const input = inputOrNull(body) ?? parse(InputSchema, body, 'body', 'submit an input');
    const [result] = await service.submit(shard, [input], () => 'body.');
    return result;
  });

  app.post('/v1/shards/:shard/durable', { config: { scopes: ['peer'], action: 'report a durable head' } }, async (req, reply) => {
    const { shard } = parse(ShardParamsSchema, req.params, 'params', 'report a durable head');
    const report = parse(DurableReportSchema, req.body, 'body', 'report a durable head');
    service.reportDurable(shard, report);
    return reply.code(204).send();
  });

  app.post('/v1/shards/:shard/resync', { config: { scopes: ['admin'], action: 'resync a shard' } }, async (req) => {
    const { shard } = parse(ShardParamsSchema, req.params, 'params', 'resync a shard');
    const body = parse(ResyncSchema, req.body ?? {}, 'body', 'resync a shard');
    return service.resync(shard, body.from ?? null);
  });

  // --- replication reads ----------------------------------------------------------------------
  app.get('/v1/shards/:shard/entries', { config: { scopes: ['peer'], action: 'read entries' } }, async (req, reply) => {
    const { shard } = parse(ShardParamsSchema, req.params, 'params', 'read entries');
    const q = parse(EntriesQuerySchema, req.query, 'query', 'read entries');
    const feed = service.feed(shard);
    const head = feed.head();
    const first = feed.firstSeq();
    const to = q.to ?? head;
    if (to < q.from) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot read entries: query.to: expected >= from (${q.from}), received ${to}`, { path: 'query.to', expected: `>= ${q.from}`, received: String(to) });
    }
    if (first === null || q.from < first || q.from > head) throw rangeNotAvailable(shard, q.from, to, first, head);
    const last = Math.min(to, head, q.from + limits.rangeEntriesMax - 1);
    const raw = feed.rangeRaw(q.from, last, limits.rangeBytesMax);
    if (raw.length === 0) throw rangeNotAvailable(shard, q.from, to, feed.firstSeq(), feed.head());
    const served = q.from + raw.length - 1;
    void reply.header('x-playout-from', String(q.from)).header('x-playout-to', String(served)).header('x-playout-head', String(head)).header('x-playout-first', String(first));
    if (q.format === 'json') {
      return { shard, from: q.from, to: served, head, entries: raw.map((b, i) => decodeEntry(b, 0, b.length, q.from + i).toJSON()) };
    }
    const w = new FrameWriter(Math.max(1 << 16, raw.reduce((n, b) => n + b.length + 5, 0)));
    for (const b of raw) w.entry(b);
    return reply.type(FRAMES_CONTENT_TYPE).send(w.take());
  });

  app.get('/v1/shards/:shard/stream', { config: { scopes: ['peer'], action: 'open a replication stream' } }, async (req, reply) => {
    const { shard } = parse(ShardParamsSchema, req.params, 'params', 'open a replication stream');
    const q = parse(StreamQuerySchema, req.query, 'query', 'open a replication stream');
    const feed = service.feed(shard);
    const head = feed.head();
    const first = feed.firstSeq();
    // from = head+1 is the live tail: valid even before anything new is appended.
    if (q.from > head + 1 || (first !== null && q.from < first) || (first === null && q.from !== 1)) {
      throw rangeNotAvailable(shard, q.from, head + 1, first, head);
    }
    if (openStreams >= limits.openStreamsMax) {
      throw new PlayoutError('PLAYOUT_TOO_MANY_STREAMS', `Cannot open a replication stream of shard "${shard}": this node already serves ${openStreams} streams (limit ${limits.openStreamsMax})`, {
        shard,
        expected: `fewer than ${limits.openStreamsMax} open streams`,
        received: String(openStreams),
      });
    }
    openStreams++;
    reply.hijack();
    serveStream(reply.raw, feed, q.from, Math.min(limits.rangeBytesMax, 1 << 20), opts.heartbeatMs, closers, () => openStreams--);
  });

  app.get('/v1/shards/:shard/applied', { config: { scopes: ['ingest', 'peer'], action: 'wait for an applied seq' } }, async (req) => {
    const { shard } = parse(ShardParamsSchema, req.params, 'params', 'wait for an applied seq');
    const q = parse(AppliedQuerySchema, req.query, 'query', 'wait for an applied seq');
    return service.waitApplied(shard, q.seq, q.timeoutMs);
  });

  app.get('/v1/shards/:shard/applied/watch', { config: { scopes: ['ingest', 'peer'], action: 'watch the applied head' } }, async (req, reply) => {
    const { shard } = parse(ShardParamsSchema, req.params, 'params', 'watch the applied head');
    if (openStreams >= limits.openStreamsMax) {
      throw new PlayoutError('PLAYOUT_TOO_MANY_STREAMS', `Cannot watch the applied head of shard "${shard}": this node already serves ${openStreams} streams (limit ${limits.openStreamsMax})`, {
        shard,
        expected: `fewer than ${limits.openStreamsMax} open streams`,
        received: String(openStreams),
      });
    }
    let send: ((line: AppliedWatchLine) => void) | null = null;
    // Throws for an unknown shard before anything is sent (a 404 like any other route).
    const watch = service.watchApplied(shard, (line) => send?.(line));
    openStreams++;
    reply.hijack();
    send = serveAppliedWatch(reply.raw, watch, opts.heartbeatMs, closers, () => openStreams--);
  });

  app.get('/v1/shards/:shard/digests', { config: { scopes: ['peer'], action: 'read digests' } }, async (req) => {
    const { shard } = parse(ShardParamsSchema, req.params, 'params', 'read digests');
    const q = parse(DigestsQuerySchema, req.query, 'query', 'read digests');
    const toTick = Math.min(q.toTick ?? q.fromTick + digestRowsMax - 1, q.fromTick + digestRowsMax - 1);
    if (toTick < q.fromTick) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot read digests: query.toTick: expected >= fromTick (${q.fromTick}), received ${toTick}`, { path: 'query.toTick', expected: `>= ${q.fromTick}`, received: String(toTick) });
    }
    return { shard, digests: service.digests(shard, q.fromTick, toTick) };
  });

  app.get('/v1/shards/:shard', { config: { scopes: ['peer'], action: 'read the status of a shard' } }, async (req) => {
    const { shard } = parse(ShardParamsSchema, req.params, 'params', 'read the status of a shard');
    return service.shardStatus(shard);
  });

  app.get('/v1/shards/:shard/buckets', { config: { scopes: ['peer'], action: 'read bucket sums' } }, async (req, reply) => {
    const { shard } = parse(ShardParamsSchema, req.params, 'params', 'read bucket sums');
    const q = parse(BucketsQuerySchema, req.query, 'query', 'read bucket sums');
    let sums: Record<string, Uint8Array> | null = null;
    if (q.sums !== undefined) {
      sums = {};
      for (const pair of q.sums.split(',')) {
        const [table, hex] = pair.split(':') as [string, string];
        sums[table] = fromHex(hex);
      }
    }
    return sendData(reply, req.headers.accept, await service.buckets(shard, q.tick ?? null, sums));
  });

  app.get('/v1/shards/:shard/records', { config: { scopes: ['peer'], action: 'read the records of buckets' } }, async (req, reply) => {
    const { shard } = parse(ShardParamsSchema, req.params, 'params', 'read the records of buckets');
    const q = parse(RecordsQuerySchema, req.query, 'query', 'read the records of buckets');
    for (let i = 0; i < q.buckets.length; i++) {
      const b = q.buckets[i]!;
      if (b > 4095 || (i > 0 && b <= q.buckets[i - 1]!)) {
        throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot read the records of buckets: query.buckets[${i}]: expected ascending bucket numbers 0–4095, received ${b}`, { path: `query.buckets[${i}]`, expected: 'ascending 0–4095', received: String(b) });
      }
    }
    return sendData(reply, req.headers.accept, await service.records(shard, q.tick ?? null, q.table, q.buckets));
  });

  app.get('/v1/shards/:shard/snapshot', { config: { scopes: ['peer'], action: 'read a snapshot' } }, async (req, reply) => {
    const { shard } = parse(ShardParamsSchema, req.params, 'params', 'read a snapshot');
    const q = parse(TickQuerySchema, req.query, 'query', 'read a snapshot');
    const s = service.snapshot(shard, q.tick ?? null);
    return reply.type('application/vnd.playout.snapshot').header('x-playout-tick', String(s.tick)).header('x-playout-seq', String(s.seq)).send(Buffer.from(s.bytes.buffer, s.bytes.byteOffset, s.bytes.byteLength));
  });

  app.get('/v1/shards/:shard/state', { config: { scopes: ['peer'], action: 'read state' } }, async (req) => {
    const { shard } = parse(ShardParamsSchema, req.params, 'params', 'read state');
    const q = parse(StateQuerySchema, req.query, 'query', 'read state');
    return service.state(shard, q.tick ?? null, q.table ?? null);
  });

  // --- failover (docs/failover.md): reads with a peer token, changes with an admin token -------------
  // The service may set up its failover side after the server is built: looked up per request.
  const fo = {
    get(): FailoverService {
      if (service.failover === undefined) throw new PlayoutError('PLAYOUT_ROUTE_NOT_FOUND', `Region ${service.region} serves no failover routes`, { received: 'a failover route' });
      return service.failover;
    },
    status: (shard: string) => fo.get().status(shard),
    epochs: (shard: string) => fo.get().epochs(shard),
    plan: (shard: string, to: string, acceptLoss: boolean) => fo.get().plan(shard, to, acceptLoss),
    fence: (shard: string, r: FenceRequest) => fo.get().fence(shard, r),
    release: (shard: string, r: ReleaseRequest) => fo.get().release(shard, r),
    promote: (shard: string, r: PromoteRequest) => fo.get().promote(shard, r),
    announce: (shard: string, r: AnnounceRequest) => fo.get().announce(shard, r),
  };
  {
    app.get('/v1/shards/:shard/failover', { config: { scopes: ['peer', 'admin'], action: 'read the failover status' } }, async (req) => {
      const { shard } = parse(ShardParamsSchema, req.params, 'params', 'read the failover status');
      return fo.status(shard);
    });
    app.get('/v1/shards/:shard/epochs', { config: { scopes: ['peer', 'admin'], action: 'read the epochs' } }, async (req) => {
      const { shard } = parse(ShardParamsSchema, req.params, 'params', 'read the epochs');
      return fo.epochs(shard);
    });
    app.get('/v1/shards/:shard/failover-plan', { config: { scopes: ['admin'], action: 'plan a failover' } }, async (req) => {
      const { shard } = parse(ShardParamsSchema, req.params, 'params', 'plan a failover');
      const q = parse(FailoverPlanQuerySchema, req.query, 'query', 'plan a failover');
      return fo.plan(shard, q.to, q.acceptLoss === 'true');
    });
    app.post('/v1/shards/:shard/fence', { config: { scopes: ['admin'], action: 'fence a shard' } }, async (req) => {
      const { shard } = parse(ShardParamsSchema, req.params, 'params', 'fence a shard');
      return fo.fence(shard, parse(FenceRequestSchema, req.body, 'body', 'fence a shard'));
    });
    app.post('/v1/shards/:shard/fence/release', { config: { scopes: ['admin'], action: 'release a fence' } }, async (req) => {
      const { shard } = parse(ShardParamsSchema, req.params, 'params', 'release a fence');
      return fo.release(shard, parse(ReleaseRequestSchema, req.body, 'body', 'release a fence'));
    });
    app.post('/v1/shards/:shard/promote', { config: { scopes: ['admin'], action: 'promote a region' } }, async (req) => {
      const { shard } = parse(ShardParamsSchema, req.params, 'params', 'promote a region');
      return fo.promote(shard, parse(PromoteRequestSchema, req.body, 'body', 'promote a region'));
    });
    app.post('/v1/shards/:shard/epoch', { config: { scopes: ['admin'], action: 'announce an epoch' } }, async (req) => {
      const { shard } = parse(ShardParamsSchema, req.params, 'params', 'announce an epoch');
      return fo.announce(shard, parse(AnnounceRequestSchema, req.body, 'body', 'announce an epoch'));
    });
  }

  app.addHook('onClose', async () => {
    for (const close of [...closers]) close();
  });
  return app;
}

/**
 * The envelope of one input, checked without zod (what InputSchema accepts; null when it would
 * refuse). Ingress runs this for every input: zod's parse of a 100-input batch was 5 % of a
 * leader's CPU at 10,000 inputs/s (bench/http-latency.bench.ts profile).
 */
export function inputOrNull(v: unknown): InputRequest | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  for (const k in o) if (k !== 'type' && k !== 'version' && k !== 'payload' && k !== 'ingestId') return null;
  const { type, version, ingestId } = o;
  if (typeof type !== 'string' || type.length < 1 || type.length > 128) return null;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) return null;
  if (ingestId !== undefined && ingestId !== null && (typeof ingestId !== 'string' || ingestId.length < 1 || ingestId.length > 256)) return null;
  // `payload` is z.unknown() in InputSchema: an absent payload is accepted (as undefined) alike.
  return { type, version, payload: o.payload, ingestId: (ingestId as string | null | undefined) ?? null };
}

export function inputBatchOrNull(v: unknown): { inputs: InputRequest[] } | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  for (const k in o) if (k !== 'inputs') return null;
  const list = o.inputs;
  if (!Array.isArray(list) || list.length === 0) return null;
  const inputs: InputRequest[] = new Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const input = inputOrNull(list[i]);
    if (input === null) return null;
    inputs[i] = input;
  }
  return { inputs };
}

/** JSON.stringify replacer: bytes as hex (Buffers arrive here already turned into {type, data} by their toJSON). */
export function bytesAsHex(_key: string, v: unknown): unknown {
  if (v instanceof Uint8Array) return toHex(v);
  const b = v as { type?: unknown; data?: unknown } | null;
  if (b !== null && typeof b === 'object' && b.type === 'Buffer' && Array.isArray(b.data)) return toHex(Uint8Array.from(b.data as number[]));
  return v;
}

/** Binary-carrying answers: canonical msgpack for peers that ask for it, JSON (bytes as hex) for people. */
function sendData(reply: FastifyReply, accept: string | undefined, value: unknown): FastifyReply {
  if (accept !== undefined && accept.includes('application/msgpack')) {
    const bytes = encodeCanonical(value, 'answer');
    return reply.type('application/msgpack').send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }
  return reply.type('application/json').send(JSON.stringify(value, bytesAsHex));
}

/**
 * Serve one replication stream: catch up from the store in chunks, then follow appends.
 * Backpressure: at most STREAM_AHEAD_CHUNKS chunks are buffered per stream (so that the next
 * chunk is read and framed while the peer still decodes the last one); beyond that the stream
 * waits for 'drain' and then reads on from its cursor, so a slow peer costs a cursor, not memory.
 */
const STREAM_AHEAD_CHUNKS = 2;

function serveStream(res: ServerResponse, feed: ShardFeed, from: number, chunkBytes: number, heartbeatMs: number, closers: Set<() => void>, onClosed: () => void): void {
  res.writeHead(200, { 'content-type': FRAMES_CONTENT_TYPE, 'cache-control': 'no-store', 'x-playout-head': String(feed.head()), 'x-playout-from': String(from) });
  const w = new FrameWriter(1 << 16);
  let next = from;
  let closed = false;
  let blocked = false;

  const close = (): void => {
    if (closed) return;
    closed = true;
    unsubscribe();
    clearInterval(timer);
    closers.delete(close);
    res.off('drain', onDrain);
    onClosed();
    if (!res.destroyed) res.destroy();
  };
  const flush = (): void => {
    if (w.length === 0) return;
    // A write past the socket's high-water mark returns false and arms 'drain' (emitted once
    // everything buffered is handed to the kernel); keep writing until the ahead limit.
    res.write(w.take());
    // Out now: Node's response corks the socket on a write and uncorks it on the next tick, after
    // whatever else this turn does (a leader applies the batch it just streamed).
    res.socket?.uncork();
    if (res.writableLength >= chunkBytes * STREAM_AHEAD_CHUNKS) blocked = true;
  };
  const pump = (): void => {
    while (!closed && !blocked) {
      const head = feed.head();
      if (next > head) break;
      const chunk = feed.rangeRaw(next, head, chunkBytes);
      if (chunk.length === 0) {
        // Truncated below our cursor while we were blocked: the peer must repair or bootstrap.
        w.end({ code: 'PLAYOUT_RANGE_NOT_RETAINED', message: `entry ${next} of shard "${feed.shard}" is no longer retained (first ${feed.firstSeq()})` });
        flush();
        res.end();
        close();
        return;
      }
      let bytes = 0;
      for (let i = 0; i < chunk.length; i++) bytes += FRAME_HEADER_BYTES + chunk[i]!.length;
      w.reserve(bytes);
      for (let i = 0; i < chunk.length; i++) w.entry(chunk[i]!);
      next += chunk.length;
      flush();
    }
  };
  const onDrain = (): void => {
    blocked = false;
    pump();
  };
  const heartbeat = (): void => {
    if (closed || blocked) return;
    w.heartbeat(feed.heartbeat());
    flush();
  };
  res.on('drain', onDrain);
  res.on('close', close);
  res.on('error', close);
  const unsubscribe = feed.onAppend(pump);
  const timer = setInterval(heartbeat, heartbeatMs);
  closers.add(close);
  // The backlog first, then the heartbeat: a follower that reconnects after a link healed sees
  // entries from its head on before it learns how far behind it is, and so does not also ask
  // for the same range as a repair (bench/http-heal.bench.ts). This first heartbeat goes out
  // even behind a backlog that filled the ahead limit (later ones wait for 'drain'): it tells
  // the follower how far behind it is, so that it puts its durable log first.
  pump();
  if (!closed) {
    w.heartbeat(feed.heartbeat());
    flush();
  }
}

/** Lines a slow watcher may have buffered before the next ones are dropped (only the latest head matters). */
const WATCH_BUFFERED_BYTES_MAX = 16 << 10;

/**
 * Serve one applied-head watch: a line now, one per move of the head, one per heartbeat. A
 * reader that does not keep up gets the latest head once its buffer drains, not every move.
 * Returns the function that sends a line.
 */
function serveAppliedWatch(res: ServerResponse, watch: { current: () => AppliedWatchLine; unsubscribe: () => void }, heartbeatMs: number, closers: Set<() => void>, onClosed: () => void): (line: AppliedWatchLine) => void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  let closed = false;
  let behind = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    watch.unsubscribe();
    clearInterval(timer);
    closers.delete(close);
    res.off('drain', onDrain);
    onClosed();
    if (!res.destroyed) res.destroy();
  };
  const send = (line: AppliedWatchLine): void => {
    if (closed) return;
    if (res.writableLength >= WATCH_BUFFERED_BYTES_MAX) {
      behind = true;
      return;
    }
    res.write(`${JSON.stringify(line)}\n`);
    // Out now, not after whatever else this turn does (see serveStream).
    res.socket?.uncork();
  };
  const onDrain = (): void => {
    if (!behind) return;
    behind = false;
    send(watch.current());
  };
  res.on('drain', onDrain);
  res.on('close', close);
  res.on('error', close);
  const timer = setInterval(() => send(watch.current()), heartbeatMs);
  closers.add(close);
  send(watch.current());
  return send;
}

function toPlayoutError(error: unknown): PlayoutError | null {
  if (error instanceof PlayoutError) return error;
  const e = error as { code?: string; statusCode?: number; message?: string };
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PlayoutError('PLAYOUT_BODY_TOO_LARGE', `Cannot accept the request body: ${e.message}`, { path: 'body', expected: 'a body within the limit', received: 'a larger body' });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new PlayoutError('PLAYOUT_BODY_MALFORMED', `Cannot read the request body: expected content-type application/json, received another (${e.message})`, { path: 'headers.content-type', expected: 'application/json', received: 'unsupported' });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new PlayoutError('PLAYOUT_BODY_MALFORMED', `Cannot read the request body: ${e.message}`, { path: 'body', expected: 'a JSON body', received: 'malformed' });
    default:
      break;
  }
  if (error instanceof SyntaxError || (e.statusCode === 400 && typeof e.message === 'string' && /JSON|proto|constructor/i.test(e.message))) {
    return new PlayoutError('PLAYOUT_BODY_MALFORMED', `Cannot read the request body: ${e.message}`, { path: 'body', expected: 'a JSON body', received: 'malformed' });
  }
  if (e.statusCode === 413) return new PlayoutError('PLAYOUT_BODY_TOO_LARGE', `Cannot accept the request body: ${e.message}`, { path: 'body' });
  if (e.statusCode === 415) return new PlayoutError('PLAYOUT_BODY_MALFORMED', `Cannot read the request body: ${e.message}`, { path: 'headers.content-type', expected: 'application/json' });
  return null;
}

export type { FastifyInstance, FastifyReply, FastifyRequest };

// The failover routes of a region node (src/ports/failover-client.ts) served by fastify over a
// simulated region (test/sim/failover-region.ts): the twin the CLI and its undici client are tested
// against until the node serves the real routes. Same conventions as src/adapters/http-server.ts:
// bearer tokens by scope (reads: peer, changes: admin), bodies validated with the port's zod
// schemas, errors as PlayoutError JSON with the HTTP status of their code.
import Fastify, { type FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { PlayoutError, isPlayoutError, type ErrorCode } from '../../src/core/errors.js';
import { TokenAuthenticator, type Scope } from '../../src/adapters/http-auth.js';
import { AnnounceRequestSchema, FenceRequestSchema, PromoteRequestSchema, ReleaseRequestSchema } from '../../src/ports/failover-client.js';
import { SHARD, type FoRegion } from './failover-region.js';

/** HTTP status of the failover codes (the node adds them to its STATUS_OF table). */
export const FAILOVER_STATUS_OF: Partial<Record<ErrorCode, number>> = {
  PLAYOUT_INVALID_ARGUMENT: 400,
  PLAYOUT_UNAUTHENTICATED: 401,
  PLAYOUT_FORBIDDEN: 403,
  PLAYOUT_SHARD_NOT_FOUND: 404,
  PLAYOUT_FENCE_CONFLICT: 409,
  PLAYOUT_FORK: 409,
  PLAYOUT_FAILOVER_TARGET_UNFIT: 409,
  PLAYOUT_SHARD_STOPPED: 503,
  PLAYOUT_FAILOVER_IN_PROGRESS: 503,
  PLAYOUT_FAILOVER_INCOMPLETE: 503,
  PLAYOUT_PEER_UNAVAILABLE: 502,
};

export interface TwinTokens {
  peer: string;
  admin: string;
}

/**
 * Serve `region`'s failover routes on 127.0.0.1 (a free port). The region runs on the cluster's
 * manual clock: the caller keeps the simulation running while requests are in flight.
 */
export async function serveFailoverTwin(region: FoRegion, tokens: TwinTokens): Promise<{ app: FastifyInstance; url: string }> {
  const auth = new TokenAuthenticator({ ingest: [], peer: [tokens.peer], admin: [tokens.admin] });
  const app = Fastify({ logger: false });
  app.setErrorHandler((error: unknown, _req, reply) => {
    const err = isPlayoutError(error) ? error : new PlayoutError('PLAYOUT_INVALID_ARGUMENT', (error as Error).message);
    void reply.code(FAILOVER_STATUS_OF[err.code] ?? 500).send(err.toJSON());
  });
  const guard = (scope: Scope, what: string) => async (req: { headers: { authorization?: string }; params: unknown }) => {
    auth.check(req.headers.authorization, [scope], what);
    const shard = (req.params as { shard: string }).shard;
    if (shard !== SHARD) throw new PlayoutError('PLAYOUT_SHARD_NOT_FOUND', `Region ${region.name} holds no shard "${shard}"`, { shard, expected: SHARD, received: shard });
  };
  const body = <S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> => {
    const r = schema.safeParse(value);
    if (r.success) return r.data;
    const issue = r.error.issues[0]!;
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot ${what}: body.${issue.path.join('.')}: ${issue.message}`, { path: `body.${issue.path.join('.')}`, expected: issue.message, received: 'invalid' });
  };
  // Every answer crosses the region's incarnation: a crashed region does not answer.
  const live = (): void => {
    if (!region.up) throw new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `Region ${region.name} is down`);
  };
  app.get('/v1/shards/:shard/failover', { preHandler: guard('peer', 'read the failover status') }, async () => (live(), region.status()));
  app.get('/v1/shards/:shard/epochs', { preHandler: guard('peer', 'read the epochs') }, async () => (live(), region.epochsAnswer()));
  app.get('/v1/shards/:shard/entries', { preHandler: guard('peer', 'read entries') }, async (req) => {
    live();
    const q = req.query as { from?: string; to?: string };
    const from = Number(q.from);
    const to = Number(q.to ?? q.from);
    return { shard: SHARD, from, to, head: region.head, entries: region.entryRows(from, to) };
  });
  app.post('/v1/shards/:shard/fence', { preHandler: guard('admin', 'fence a shard') }, async (req) => (live(), region.fenceRequest(body(FenceRequestSchema, req.body, 'fence a shard'))));
  app.post('/v1/shards/:shard/fence/release', { preHandler: guard('admin', 'release a fence') }, async (req) => (live(), region.releaseRequest(body(ReleaseRequestSchema, req.body, 'release a fence'))));
  app.post('/v1/shards/:shard/promote', { preHandler: guard('admin', 'promote a region') }, async (req) => (live(), region.promoteRequest(body(PromoteRequestSchema, req.body, 'promote a region'))));
  app.post('/v1/shards/:shard/epoch', { preHandler: guard('admin', 'announce an epoch') }, async (req) => (live(), region.announceRequest(body(AnnounceRequestSchema, req.body, 'announce an epoch'))));
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url: address };
}

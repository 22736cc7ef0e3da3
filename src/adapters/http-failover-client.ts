// FailoverClient over HTTP (undici): the failover routes of one region node (the list is in
// src/ports/failover-client.ts), with an admin-scope bearer token. Every answer is validated
// against the port's zod schema before it is returned, so a node speaking another version of
// the protocol is reported as such rather than misread.
//
// Errors: no answer (refused, reset, timeout) → PLAYOUT_PEER_UNAVAILABLE; an answer carrying one of
// our codes keeps it (PLAYOUT_FENCE_CONFLICT, PLAYOUT_FAILOVER_INCOMPLETE …, whatever the HTTP
// status); anything else → PLAYOUT_PEER_UNAVAILABLE naming the status.
import { Pool, type Dispatcher } from 'undici';
import { z } from 'zod';
import { ERROR_CODES, PlayoutError, type ErrorCode } from '../core/errors.js';
import {
  AnnounceAnswerSchema,
  EntryRowSchema,
  EpochsAnswerSchema,
  FenceGrantSchema,
  PromoteAnswerSchema,
  RegionFailoverStatusSchema,
  ReleaseAnswerSchema,
  type AnnounceAnswer,
  type AnnounceRequest,
  type EntryRow,
  type EpochsAnswer,
  type FailoverClient,
  type FailoverRequestOptions,
  type FenceGrant,
  type FenceRequest,
  type PromoteAnswer,
  type PromoteRequest,
  type RegionFailoverStatus,
  type ReleaseAnswer,
  type ReleaseRequest,
} from '../ports/failover-client.js';

export interface HttpFailoverClientOptions {
  readonly region: string;
  /** The node's base URL, e.g. http://127.0.0.1:7101 */
  readonly url: string;
  /** An admin-scope token of that region. */
  readonly token: string;
  readonly requestTimeoutMs: number;
}

export class HttpFailoverClient implements FailoverClient {
  readonly region: string;
  readonly url: string;
  private readonly pool: Pool;
  private readonly auth: string;
  private readonly timeoutMs: number;

  constructor(o: HttpFailoverClientOptions) {
    this.region = o.region;
    this.url = o.url.replace(/\/+$/, '');
    this.auth = `Bearer ${o.token}`;
    this.timeoutMs = o.requestTimeoutMs;
    // Promote may run for the whole catch-up: undici's own timers stay off and the per-request
    // AbortSignal bounds each call instead.
    this.pool = new Pool(new URL(this.url).origin, { connections: 2, headersTimeout: 0, bodyTimeout: 0, connectTimeout: Math.min(o.requestTimeoutMs, 10_000) });
  }

  private async call<S extends z.ZodType>(method: 'GET' | 'POST', path: string, body: unknown, schema: S, what: string, o: FailoverRequestOptions | undefined): Promise<z.output<S>> {
    const timeout = AbortSignal.timeout(o?.timeoutMs ?? this.timeoutMs);
    const signal = o?.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
    const base = new URL(this.url);
    let res: Dispatcher.ResponseData;
    try {
      res = await this.pool.request({
        method,
        path: base.pathname.replace(/\/+$/, '') + path,
        headers: body === undefined ? { authorization: this.auth, accept: 'application/json' } : { authorization: this.auth, accept: 'application/json', 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
        signal,
      });
    } catch (err) {
      const e = err as { code?: string; name?: string; message?: string };
      throw new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `Cannot ${what} at region ${this.region} (${this.url}): ${e.code ?? e.name ?? 'error'}${e.message ? ` (${e.message})` : ''}`, { expected: 'an answer', received: e.code ?? e.name ?? 'error', cause: err });
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `Cannot ${what} at region ${this.region}: the answer was cut (${(err as Error).message})`, { expected: 'a whole answer', received: 'a cut body', cause: err });
    }
    let parsed: unknown = null;
    try {
      parsed = text.length === 0 ? null : JSON.parse(text);
    } catch {
      // described below by the status
    }
    if (res.statusCode < 200 || res.statusCode >= 300) {
      const p = parsed as Record<string, unknown> | null;
      const code = typeof p?.code === 'string' && p.code in ERROR_CODES ? (p.code as ErrorCode) : null;
      const message = typeof p?.message === 'string' ? p.message : text.slice(0, 200);
      if (code === null) throw new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `Cannot ${what} at region ${this.region}: HTTP ${res.statusCode}: ${message}`, { expected: '2xx', received: String(res.statusCode) });
      const str = (k: string): string | null => (typeof p?.[k] === 'string' ? (p[k] as string) : null);
      throw new PlayoutError(code, `Region ${this.region} refused to ${what}: ${message}`, { path: str('path'), expected: str('expected'), received: str('received'), shard: str('shard') });
    }
    const r = schema.safeParse(parsed);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      throw new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `Cannot ${what} at region ${this.region}: its answer does not match the failover protocol at ${issue.path.join('.') || '(root)'}: ${issue.message} (is the node another playout version?)`, {
        path: issue.path.join('.'),
        expected: issue.message,
        received: 'another shape',
      });
    }
    return r.data;
  }

  private shardPath(shard: string, tail: string): string {
    return `/v1/shards/${encodeURIComponent(shard)}${tail}`;
  }

  status(shard: string, o?: FailoverRequestOptions): Promise<RegionFailoverStatus> {
    return this.call('GET', this.shardPath(shard, '/failover'), undefined, RegionFailoverStatusSchema, `read the failover status of shard "${shard}"`, o);
  }

  epochs(shard: string, o?: FailoverRequestOptions): Promise<EpochsAnswer> {
    return this.call('GET', this.shardPath(shard, '/epochs'), undefined, EpochsAnswerSchema, `read the epochs of shard "${shard}"`, o);
  }

  async entries(shard: string, seqFrom: number, seqTo: number, o?: FailoverRequestOptions): Promise<EntryRow[]> {
    const EntriesSchema = EntryRowSchema.array();
    const answer = await this.call('GET', this.shardPath(shard, `/entries?from=${seqFrom}&to=${seqTo}&format=json`), undefined, EntriesPageSchema, `read entries [${seqFrom}, ${seqTo}] of shard "${shard}"`, o);
    // The entries route answers every field of an entry; a row keeps what an operator reads.
    return EntriesSchema.parse(answer.entries.map((e) => ({ seq: e.seq, epoch: e.epoch, tick: e.tick, kind: e.kind, type: e.type, version: e.version, origin: e.origin, ingestId: e.ingestId, payload: e.payload, hash: e.hash })));
  }

  fence(shard: string, request: FenceRequest, o?: FailoverRequestOptions): Promise<FenceGrant> {
    return this.call('POST', this.shardPath(shard, '/fence'), request, FenceGrantSchema, `fence shard "${shard}" at epoch ${request.epoch}`, o);
  }

  release(shard: string, request: ReleaseRequest, o?: FailoverRequestOptions): Promise<ReleaseAnswer> {
    return this.call('POST', this.shardPath(shard, '/fence/release'), request, ReleaseAnswerSchema, `release the fence of shard "${shard}" at epoch ${request.epoch}`, o);
  }

  promote(shard: string, request: PromoteRequest, o?: FailoverRequestOptions): Promise<PromoteAnswer> {
    return this.call('POST', this.shardPath(shard, '/promote'), request, PromoteAnswerSchema, `promote shard "${shard}" to epoch ${request.epoch}`, o);
  }

  announce(shard: string, request: AnnounceRequest, o?: FailoverRequestOptions): Promise<AnnounceAnswer> {
    return this.call('POST', this.shardPath(shard, '/epoch'), request, AnnounceAnswerSchema, `announce epoch ${request.record.epoch} of shard "${shard}"`, o);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

/** The JSON page of GET …/entries?format=json (src/adapters/http-server.ts). */
const EntriesPageSchema = z.object({
  entries: z.array(
    z.object({
      seq: z.number(),
      epoch: z.number(),
      tick: z.number(),
      kind: z.string(),
      type: z.string().nullable(),
      version: z.number().nullable(),
      origin: z.string().nullable(),
      ingestId: z.string().nullable(),
      payload: z.unknown(),
      hash: z.string(),
    }),
  ),
});

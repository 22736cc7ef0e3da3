// Where ingress goes around a failover (DESIGN.md §6): as data the node's HTTP layer turns into a
// response. A client is sent to the leader before, during and after a switch:
//
//   this region leads, nothing promised since          → accept
//   another region leads (or is being promoted)        → 307 Temporary Redirect to it when its URL
//                                                          is known (method and body are kept: the
//                                                          client re-sends the same POST with the
//                                                          same ingestId), else 421 Misdirected
//                                                          Request naming the region
//   this region is the candidate being promoted,       → 503 PLAYOUT_FAILOVER_IN_PROGRESS with
//   or no leader is known                                 Retry-After (the node may hold the request
//                                                          until it leads, up to its ack timeout)
//
// 307 rather than 308: the redirect lasts only as long as the epoch. Nothing is sequenced on any
// answer but `accept`, so a client that follows the redirect cannot have its input twice.
import { PlayoutError } from '../core/errors.js';
import type { FenceState } from '../ports/failover-client.js';

export type IngressRoute =
  | { readonly kind: 'accept' }
  | {
      readonly kind: 'redirect';
      readonly status: 307 | 421;
      /** The region to send inputs to, and its base URL (null: unknown, hence 421). */
      readonly leader: string;
      readonly url: string | null;
      /** Response headers (`location` for 307). */
      readonly headers: Readonly<Record<string, string>>;
      /** The response body: `{...error.toJSON(), leader: {region, url}}`. */
      readonly error: PlayoutError;
      /** True while the leader is a candidate still being promoted. */
      readonly pending: boolean;
    }
  | {
      readonly kind: 'wait';
      readonly status: 503;
      readonly candidate: string | null;
      readonly retryAfterMs: number;
      readonly headers: Readonly<Record<string, string>>;
      readonly error: PlayoutError;
    };

export interface IngressContext {
  readonly region: string;
  readonly fence: FenceState;
  /** Base URL of a region (`http://127.0.0.1:7102`), or null when unknown. */
  readonly urlOf: (region: string) => string | null;
  /** The request path, kept in the Location header (`/v1/shards/hunt-1/inputs`). */
  readonly path: string;
  /** How long a client should wait before retrying while no region sequences. */
  readonly retryAfterMs: number;
}

export function routeIngress(ctx: IngressContext): IngressRoute {
  const { fence, region } = ctx;
  const p = fence.promise;
  const target = p !== null ? p.candidate : fence.leader;
  if (p === null && target === region) return { kind: 'accept' };
  if (target === null || target === region) {
    const error = new PlayoutError(
      'PLAYOUT_FAILOVER_IN_PROGRESS',
      target === null
        ? `Cannot accept inputs for shard "${fence.shard}" at region ${region}: no leader is known for it yet; retry in ${ctx.retryAfterMs} ms`
        : `Cannot accept inputs for shard "${fence.shard}" at region ${region} yet: it is being promoted to lead epoch ${p!.epoch} (failover ${p!.failoverId}); retry in ${ctx.retryAfterMs} ms`,
      { shard: fence.shard, expected: 'a region that sequences the shard', received: region },
    );
    return { kind: 'wait', status: 503, candidate: target, retryAfterMs: ctx.retryAfterMs, headers: { 'retry-after': String(Math.max(1, Math.ceil(ctx.retryAfterMs / 1000))) }, error };
  }
  const url = ctx.urlOf(target);
  const pending = p !== null;
  const error = new PlayoutError(
    'PLAYOUT_NOT_LEADER',
    pending
      ? `Cannot accept inputs for shard "${fence.shard}" at region ${region}: it is fenced for a failover to ${target} (epoch ${p!.epoch}); send them to ${target}`
      : `Cannot accept inputs for shard "${fence.shard}" at region ${region}: region ${target} leads it (epoch ${fence.epoch})`,
    { shard: fence.shard, expected: target, received: region },
  );
  if (url === null) return { kind: 'redirect', status: 421, leader: target, url: null, headers: {}, error, pending };
  return { kind: 'redirect', status: 307, leader: target, url, headers: { location: url.replace(/\/+$/, '') + ctx.path }, error, pending };
}

// Bearer tokens by scope (DESIGN §9).
//
// `ingest` submits inputs, `peer` reads replication data and reports durable heads, `admin`
// may call everything (create shards, resync) — an operator's token must not stop working on
// the peer routes it uses to look at a region.
//
// Tokens are compared in constant time: both sides are hashed to 32 bytes first, so neither
// the length nor a common prefix of a secret leaks through response timing, and every
// configured token is compared on every request (no early exit on the first match).
import { hash, timingSafeEqual } from 'node:crypto';
import { PlayoutError } from '../core/errors.js';

export const SCOPES = ['ingest', 'peer', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

function digest(token: string): Buffer {
  // One-shot: a Hash object per request cost more than the hashing itself.
  return hash('sha256', token, 'buffer');
}

export class TokenAuthenticator {
  private readonly tokens: { scope: Scope; hash: Buffer }[] = [];

  constructor(secrets: Readonly<Record<Scope, readonly string[]>>) {
    for (const scope of SCOPES) for (const t of secrets[scope] ?? []) this.tokens.push({ scope, hash: digest(t) });
  }

  /** The scopes a presented token grants (empty when it matches none). */
  scopesOf(token: string): Set<Scope> {
    const presented = digest(token);
    const scopes = new Set<Scope>();
    for (const t of this.tokens) if (timingSafeEqual(presented, t.hash)) scopes.add(t.scope);
    return scopes;
  }

  /**
   * Check an Authorization header against the scopes a route accepts. Throws
   * PLAYOUT_UNAUTHENTICATED (401) for no or an unknown token, PLAYOUT_FORBIDDEN (403) for a
   * valid token of another scope.
   */
  check(authorization: string | undefined, allowed: readonly Scope[], what: string): Scope {
    const m = authorization === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (m === null) {
      throw new PlayoutError('PLAYOUT_UNAUTHENTICATED', `Cannot ${what}: expected an Authorization: Bearer <token> header, received ${authorization === undefined ? 'none' : 'a header of another form'}`, {
        path: 'headers.authorization',
        expected: 'Bearer <token>',
        received: authorization === undefined ? 'none' : 'malformed',
      });
    }
    const scopes = this.scopesOf(m[1]!);
    if (scopes.size === 0) {
      throw new PlayoutError('PLAYOUT_UNAUTHENTICATED', `Cannot ${what}: the bearer token is not a token of this region`, { path: 'headers.authorization', expected: 'a configured token', received: 'an unknown token' });
    }
    if (scopes.has('admin')) return 'admin';
    for (const s of allowed) if (scopes.has(s)) return s;
    throw new PlayoutError('PLAYOUT_FORBIDDEN', `Cannot ${what}: expected a token of scope ${allowed.join(' or ')}, received a token of scope ${[...scopes].join(', ')}`, {
      path: 'headers.authorization',
      expected: allowed.join(' | '),
      received: [...scopes].join(', '),
    });
  }
}

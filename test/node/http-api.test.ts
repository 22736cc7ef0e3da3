// The /v1 API of a region node over real HTTP: auth by scope, limits, refused bodies, ranges,
// the stream's frames, the bucket protocol, time travel, OpenAPI, metrics. Every refused
// request is checked to have changed nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeSnapshot } from '../../src/core/snapshot.js';
import { FrameDecoder, type Frame } from '../../src/adapters/http-frames.js';
import { HttpPeerClient, rangeNotRetainedOf } from '../../src/adapters/http-peer-client.js';
import type { AppliedWatchLine } from '../../src/adapters/http-schemas.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isPlayoutError } from '../../src/core/errors.js';
import { TOKENS, adminClient, startInProcessCluster, waitFor, type InProcessCluster } from '../helpers/cluster.js';

let cluster: InProcessCluster;
let leaderUrl = '';
let followerUrl = '';

beforeAll(async () => {
  cluster = await startInProcessCluster({
    regions: ['eu-fra', 'af-jnb'],
    shards: [{ id: 'hunt-1', leader: 'eu-fra', tickMs: 10 }],
    overrides: { limits: { bodyBytesMax: 4096, rangeEntriesMax: 20, batchInputsMax: 10 }, snapshots: { everyTicks: 10, kept: 1000, retainEntriesMin: 1_000_000 } },
  });
  leaderUrl = cluster.nodes.get('eu-fra')!.url;
  followerUrl = cluster.nodes.get('af-jnb')!.url;
  const join = await call('POST', leaderUrl, '/v1/shards/hunt-1/inputs', TOKENS.ingest, { type: 'player.join', version: 1, payload: { player: 'p1', name: 'Ada', x: 5, y: 5 }, ingestId: 'j1' });
  expect(join.status).toBe(200);
  await waitFor('30 ticks and a snapshot', () => cluster.nodes.get('eu-fra')!.status().shards[0]!.tick > 30);
  const head = cluster.nodes.get('eu-fra')!.status().shards[0]!.head;
  await waitFor('the follower to catch up', () => {
    const s = cluster.nodes.get('af-jnb')!.status().shards[0]!;
    return s.applied >= head && s.head >= head;
  });
});
afterAll(async () => cluster?.close());

async function call(method: string, url: string, path: string, token: string | null, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown>; headers: Headers; bytes: Uint8Array }> {
  const h: Record<string, string> = { ...headers };
  if (token !== null) h.authorization = `Bearer ${token}`;
  let payload: string | undefined;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  const res = await fetch(url + path, { method, headers: h, body: payload });
  const bytes = new Uint8Array(await res.arrayBuffer());
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  } catch {
    // binary body
  }
  return { status: res.status, json, headers: res.headers, bytes };
}

const headOf = (): number => cluster.nodes.get('eu-fra')!.status().shards[0]!.head;
const inputsOf = (): number => cluster.nodes.get('eu-fra')!.status().shards[0]!.inputs.sequenced;
const move = { type: 'player.move', version: 1, payload: { player: 'p1', x: 6, y: 5 } };

describe('auth', () => {
  it.each([
    ['no token', null, 401, 'PLAYOUT_UNAUTHENTICATED'],
    ['an unknown token', 'not-a-token-of-this-region-0000', 401, 'PLAYOUT_UNAUTHENTICATED'],
    ['a peer token', TOKENS.peer, 403, 'PLAYOUT_FORBIDDEN'],
  ])('refuses inputs with %s and sequences nothing', async (_what, token, status, code) => {
    const before = inputsOf();
    const r = await call('POST', leaderUrl, '/v1/shards/hunt-1/inputs', token, move);
    expect(r.status).toBe(status);
    expect(r.json.code).toBe(code);
    expect(inputsOf()).toBe(before);
  });

  it('refuses a malformed Authorization header', async () => {
    const r = await call('GET', leaderUrl, '/v1/status', null, undefined, { authorization: 'Basic abc' });
    expect(r.status).toBe(401);
    expect(r.json.path).toBe('headers.authorization');
  });

  it.each([
    ['GET', '/v1/status', TOKENS.ingest],
    ['GET', '/v1/shards/hunt-1/entries?from=1', TOKENS.ingest],
    ['GET', '/v1/shards/hunt-1/stream?from=1', TOKENS.ingest],
    ['POST', '/v1/shards', TOKENS.peer],
    ['POST', '/v1/shards/hunt-1/resync', TOKENS.peer],
  ])('refuses %s %s to a token of the wrong scope', async (method, path, token) => {
    const r = await call(method, followerUrl, path, token, method === 'POST' ? {} : undefined);
    expect(r.status).toBe(403);
    expect(r.json.code).toBe('PLAYOUT_FORBIDDEN');
  });

  it('lets the admin token read and write, and leaves health, metrics and OpenAPI open', async () => {
    expect((await call('GET', leaderUrl, '/v1/status', TOKENS.admin)).status).toBe(200);
    expect((await call('GET', leaderUrl, '/healthz', null)).status).toBe(200);
    const metrics = await call('GET', leaderUrl, '/metrics', null);
    expect(metrics.status).toBe(200);
    expect(new TextDecoder().decode(metrics.bytes)).toMatch(/playout_shard_head\{.*shard="hunt-1".*\} \d+/);
    const doc = (await call('GET', leaderUrl, '/v1/openapi.json', null)).json as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe('3.0.3');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/shards/{shard}/inputs', '/v1/shards/{shard}/stream', '/v1/shards/{shard}/entries', '/v1/status']));
  });
});

describe('bodies and limits', () => {
  it('refuses a body over the limit with 413 and sequences nothing', async () => {
    const before = inputsOf();
    const r = await call('POST', leaderUrl, '/v1/shards/hunt-1/inputs', TOKENS.ingest, { ...move, payload: { ...move.payload, pad: 'x'.repeat(5000) } });
    expect(r.status).toBe(413);
    expect(r.json.code).toBe('PLAYOUT_BODY_TOO_LARGE');
    expect(inputsOf()).toBe(before);
  });

  it.each([
    ['invalid JSON', '{"type": "player.move",', 'application/json', 400, 'PLAYOUT_BODY_MALFORMED'],
    ['a prototype-poisoning body', '{"__proto__": {"x": 1}, "type": "player.move", "version": 1, "payload": {}}', 'application/json', 400, 'PLAYOUT_BODY_MALFORMED'],
    ['a text body', 'hello', 'text/plain', 415, 'PLAYOUT_BODY_MALFORMED'],
    ['an unknown field', JSON.stringify({ ...move, colour: 'red' }), 'application/json', 400, 'PLAYOUT_INVALID_ARGUMENT'],
    ['a version that is not an integer', JSON.stringify({ ...move, version: 'one' }), 'application/json', 400, 'PLAYOUT_INVALID_ARGUMENT'],
    ['an empty batch', JSON.stringify({ inputs: [] }), 'application/json', 400, 'PLAYOUT_INVALID_ARGUMENT'],
    ['a batch over the limit', JSON.stringify({ inputs: Array.from({ length: 11 }, () => move) }), 'application/json', 400, 'PLAYOUT_INVALID_ARGUMENT'],
  ])('refuses %s with its code and sequences nothing', async (_what, body, type, status, code) => {
    const before = inputsOf();
    const r = await call('POST', leaderUrl, '/v1/shards/hunt-1/inputs', TOKENS.ingest, body, { 'content-type': type });
    expect(r.status, JSON.stringify(r.json)).toBe(status);
    expect(r.json.code).toBe(code);
    expect(inputsOf()).toBe(before);
  });

  it('names the path of a bad field', async () => {
    const r = await call('POST', leaderUrl, '/v1/shards/hunt-1/inputs', TOKENS.ingest, { ...move, ingestId: '' });
    expect(r.status).toBe(400);
    expect(r.json.path).toBe('body.ingestId');
  });

  it('answers 404 for an unknown shard or route and 307 to the leader at a follower', async () => {
    expect((await call('POST', leaderUrl, '/v1/shards/nope/inputs', TOKENS.ingest, move)).json.code).toBe('PLAYOUT_SHARD_NOT_FOUND');
    expect((await call('GET', leaderUrl, '/v1/nothing', TOKENS.admin)).json.code).toBe('PLAYOUT_ROUTE_NOT_FOUND');
    // 307 keeps the method and body: the client re-sends the same input (same ingestId) to the leader.
    const res = await fetch(`${followerUrl}/v1/shards/hunt-1/inputs`, { method: 'POST', redirect: 'manual', headers: { authorization: `Bearer ${TOKENS.ingest}`, 'content-type': 'application/json' }, body: JSON.stringify(move) });
    expect(res.status).toBe(307);
    expect(res.headers.get('location')).toBe(`${leaderUrl}/v1/shards/hunt-1/inputs`);
    expect(await res.json()).toMatchObject({ code: 'PLAYOUT_NOT_LEADER', leader: { region: 'eu-fra', url: leaderUrl } });
  });

  it('refuses a durable report from another history as a fork', async () => {
    const r = await call('POST', leaderUrl, '/v1/shards/hunt-1/durable', TOKENS.peer, { region: 'af-jnb', seq: 2, hash: '0'.repeat(32), digestTick: null, digest: null });
    expect(r.status).toBe(409);
    expect(r.json.code).toBe('PLAYOUT_FORK');
  });
});

describe('replication reads', () => {
  it('serves an exact range, paged by the entry limit, and 416 with the available range', async () => {
    const client = adminClient('eu-fra', leaderUrl);
    try {
      const page = await client.entries('hunt-1', 3, 200);
      expect(page.length).toBe(20);
      expect(page[0]!.seq).toBe(3);
      expect(page[19]!.seq).toBe(22);
      const head = headOf();
      const err = await client.entries('hunt-1', head + 10, head + 20).catch((e: unknown) => e);
      expect(isPlayoutError(err, 'PLAYOUT_RANGE_NOT_RETAINED')).toBe(true);
      expect(rangeNotRetainedOf(err)).toMatchObject({ firstSeq: 1 });
      const json = await call('GET', leaderUrl, '/v1/shards/hunt-1/entries?from=1&to=2&format=json', TOKENS.peer);
      expect((json.json.entries as { kind: string }[]).map((e) => e.kind)).toEqual(['genesis', 'tick']);
      const bad = await call('GET', leaderUrl, '/v1/shards/hunt-1/entries?from=zero', TOKENS.peer);
      expect(bad.status).toBe(400);
      expect(bad.json.path).toBe('query.from');
    } finally {
      await client.close();
    }
  });

  it('streams entries from a seq, then heartbeats with the head and digest', async () => {
    const ctl = new AbortController();
    const res = await fetch(`${leaderUrl}/v1/shards/hunt-1/stream?from=5`, { headers: { authorization: `Bearer ${TOKENS.peer}` }, signal: ctl.signal });
    expect(res.status).toBe(200);
    const decoder = new FrameDecoder(1 << 20);
    const frames: Frame[] = [];
    const reader = res.body!.getReader();
    while (!frames.some((f) => f.type === 'heartbeat') || frames.filter((f) => f.type === 'entry').length < 10) {
      const { value, done } = await reader.read();
      if (done) break;
      decoder.push(value);
      for (let f = decoder.next(); f !== null; f = decoder.next()) frames.push(f);
    }
    ctl.abort();
    const entries = frames.flatMap((f) => (f.type === 'entry' ? [f.entry.seq] : []));
    expect(entries.slice(0, 3)).toEqual([5, 6, 7]);
    const hb = frames.find((f) => f.type === 'heartbeat');
    expect(hb?.type === 'heartbeat' && hb.heartbeat.region === 'eu-fra' && hb.heartbeat.head >= 5).toBe(true);
  });

  it('serves digests, a snapshot that restores, state at a past tick, and the bucket protocol', async () => {
    const client = adminClient('af-jnb', followerUrl);
    try {
      const digests = await client.digests('hunt-1', 0, 20);
      expect(digests.map((d) => d.tick)).toEqual(Array.from({ length: 21 }, (_, i) => i));
      const leaderDigests = await adminClient('eu-fra', leaderUrl).digests('hunt-1', 0, 20);
      expect(digests).toEqual(leaderDigests);
      const snap = await client.snapshot('hunt-1', 25);
      expect(snap.tick).toBe(20);
      expect(decodeSnapshot(snap.bytes).digest).toEqual(digests[20]!.digest);
      const state = await call('GET', followerUrl, '/v1/shards/hunt-1/state?tick=12&table=players', TOKENS.peer);
      expect(state.json).toMatchObject({ tick: 12 });
      expect(Object.keys(state.json.tables as object)).toEqual(['players']);
      const b = await client.buckets('hunt-1', { tick: 12, tableSums: null });
      expect(b.digest).toEqual(digests[12]!.digest);
      const players = b.tables.find((t) => t.table === 'players')!;
      const nonEmpty: number[] = [];
      for (let i = 0; i < 4096 && nonEmpty.length < 3; i++) if (players.bucketSums!.subarray(i * 16, i * 16 + 16).some((x) => x !== 0)) nonEmpty.push(i);
      const recs = await client.records('hunt-1', { tick: 12, table: 'players', buckets: nonEmpty });
      expect(recs.records.map((r) => r[0])).toContain('p1');
      const notYet = await call('GET', followerUrl, '/v1/shards/hunt-1/state?tick=999999', TOKENS.peer);
      expect(notYet.status).toBe(416);
      expect(notYet.json.code).toBe('PLAYOUT_TICK_NOT_RETAINED');
    } finally {
      await client.close();
    }
  });

  it('creates a shard over the API that the other region discovers and follows', async () => {
    const r = await call('POST', leaderUrl, '/v1/shards', TOKENS.admin, { id: 'hunt-9', reducer: 'treasure-hunt@1', seed: 9, tickMs: 20 });
    expect(r.status, JSON.stringify(r.json)).toBe(201);
    expect(r.json).toMatchObject({ shard: 'hunt-9', role: 'leader', leader: 'eu-fra' });
    const again = await call('POST', leaderUrl, '/v1/shards', TOKENS.admin, { id: 'hunt-9', reducer: 'treasure-hunt@1', seed: 9, tickMs: 20 });
    expect(again.status).toBe(409);
    const unknown = await call('POST', leaderUrl, '/v1/shards', TOKENS.admin, { id: 'hunt-8', reducer: 'chess@1', seed: 9, tickMs: 20 });
    expect(unknown.status).toBe(400);
    expect(unknown.json.code).toBe('PLAYOUT_REDUCER_UNKNOWN');
    await waitFor('af-jnb to follow hunt-9', () => cluster.nodes.get('af-jnb')!.shards.get('hunt-9')?.host.durableSeq ?? 0 > 3);
  });
});

describe('read-your-writes barrier (GET /v1/shards/:shard/applied)', () => {
  it('answers once the other region has applied an acknowledged input, and at its timeout for a seq not yet sequenced', async () => {
    const ack = await call('POST', leaderUrl, '/v1/shards/hunt-1/inputs', TOKENS.ingest, { ...move, ingestId: 'ryw-1' });
    expect(ack.status).toBe(200);
    const seq = ack.json.seq as number;
    const r = await call('GET', followerUrl, `/v1/shards/hunt-1/applied?seq=${seq}&timeoutMs=10000`, TOKENS.ingest);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json).toMatchObject({ shard: 'hunt-1', seq, reached: true, quarantined: false });
    expect(r.json.applied as number).toBeGreaterThanOrEqual(seq);
    // What the answer says is true at the follower.
    expect(cluster.nodes.get('af-jnb')!.status().shards.find((s) => s.shard === 'hunt-1')!.applied).toBeGreaterThanOrEqual(seq);

    const far = headOf() + 1_000_000;
    const t = await call('GET', followerUrl, `/v1/shards/hunt-1/applied?seq=${far}&timeoutMs=100`, TOKENS.peer);
    expect(t.status).toBe(200);
    expect(t.json).toMatchObject({ seq: far, reached: false });
    expect(t.json.applied as number).toBeLessThan(far);
  });

  it('answers a wait that is still open when the seq gets applied', async () => {
    const before = cluster.nodes.get('af-jnb')!.status().shards.find((s) => s.shard === 'hunt-1')!.applied;
    // Ticks close every 10 ms, so seq before + 5 is applied soon without any input.
    const r = await call('GET', followerUrl, `/v1/shards/hunt-1/applied?seq=${before + 5}&timeoutMs=20000`, TOKENS.ingest);
    expect(r.json).toMatchObject({ seq: before + 5, reached: true });
  });

  it.each([
    ['seq=0', 'query.seq'],
    ['seq=abc', 'query.seq'],
    ['seq=5&timeoutMs=30001', 'query.timeoutMs'],
    ['seq=5&timeoutMs=-1', 'query.timeoutMs'],
    ['seq=5&wait=1', 'query'],
  ])('refuses ?%s with 400 naming %s', async (query, path) => {
    const r = await call('GET', followerUrl, `/v1/shards/hunt-1/applied?${query}`, TOKENS.ingest);
    expect(r.status).toBe(400);
    expect(r.json.code).toBe('PLAYOUT_INVALID_ARGUMENT');
    expect(String(r.json.path)).toContain(path);
  });

  it('refuses no token (401) and an unknown shard (404)', async () => {
    expect((await call('GET', followerUrl, '/v1/shards/hunt-1/applied?seq=1', null)).status).toBe(401);
    const r = await call('GET', followerUrl, '/v1/shards/nope/applied?seq=1', TOKENS.ingest);
    expect(r.status).toBe(404);
    expect(r.json.code).toBe('PLAYOUT_SHARD_NOT_FOUND');
  });
});

describe('applied-head watch (GET /v1/shards/:shard/applied/watch)', () => {
  const client = (token: string): HttpPeerClient => new HttpPeerClient({ region: 'af-jnb', url: followerUrl, token, requestTimeoutMs: 10_000, frameBytesMax: 1 << 20 });

  it('sends the head when it opens, then each move: an acknowledged input shows up applied in the other region', async () => {
    const c = client(TOKENS.ingest);
    const lines: AppliedWatchLine[] = [];
    const ac = new AbortController();
    const done = c.watchApplied('hunt-1', (l) => lines.push(l), { signal: ac.signal });
    await waitFor('the first line', () => lines.length > 0);
    const ack = await call('POST', leaderUrl, '/v1/shards/hunt-1/inputs', TOKENS.ingest, { ...move, ingestId: 'watch-1' });
    expect(ack.status).toBe(200);
    const seq = ack.json.seq as number;
    expect(lines[0]!.applied).toBeLessThan(seq);
    await waitFor('a line at or beyond the input', () => lines.some((l) => l.applied >= seq));
    // What the watch says is true at the follower, in order, never going back.
    expect(cluster.nodes.get('af-jnb')!.status().shards.find((s) => s.shard === 'hunt-1')!.applied).toBeGreaterThanOrEqual(seq);
    for (let i = 1; i < lines.length; i++) expect(lines[i]!.applied).toBeGreaterThanOrEqual(lines[i - 1]!.applied);
    expect(lines.every((l) => l.shard === 'hunt-1' && l.quarantined === false)).toBe(true);
    ac.abort();
    await done;
    await c.close();
  });

  it('refuses no token and an unknown token (401), and an unknown shard (404)', async () => {
    expect((await call('GET', followerUrl, '/v1/shards/hunt-1/applied/watch', null)).status).toBe(401);
    const unknown = await call('GET', followerUrl, '/v1/shards/hunt-1/applied/watch', 'not-a-token');
    expect(unknown.status).toBe(401);
    expect(unknown.json.code).toBe('PLAYOUT_UNAUTHENTICATED');
    const c = client(TOKENS.peer);
    const err = await c.watchApplied('nope', () => undefined, { signal: AbortSignal.timeout(5_000) }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isPlayoutError(err) && err.code).toBe('PLAYOUT_SHARD_NOT_FOUND');
    await c.close();
  });

  it('counts as an open stream: refused with 429 at the limit, open again once one closes', async () => {
    // Open watches stay open (their bodies unread, their connections held) until aborted.
    const open: AbortController[] = [];
    let refused: { status: number; json: Record<string, unknown>; headers: Headers } | null = null;
    // The node's limit is 64 open streams (watches and replication streams together).
    for (let i = 0; i < 100 && refused === null; i++) {
      const ac = new AbortController();
      const res = await fetch(`${followerUrl}/v1/shards/hunt-1/applied/watch`, { headers: { authorization: `Bearer ${TOKENS.ingest}` }, signal: ac.signal });
      if (res.status === 200) open.push(ac);
      else refused = { status: res.status, json: (await res.json()) as Record<string, unknown>, headers: res.headers };
    }
    expect(refused?.status).toBe(429);
    expect(refused?.json.code).toBe('PLAYOUT_TOO_MANY_STREAMS');
    expect(refused?.headers.get('retry-after')).toBe('1');
    expect(open.length).toBeGreaterThan(0);
    open.pop()!.abort();
    await waitFor('a watch to open again', async () => {
      const ac = new AbortController();
      const res = await fetch(`${followerUrl}/v1/shards/hunt-1/applied/watch`, { headers: { authorization: `Bearer ${TOKENS.ingest}` }, signal: ac.signal });
      if (res.status === 200) open.push(ac);
      else await res.arrayBuffer();
      return res.status === 200;
    });
    for (const ac of open) ac.abort();
  });

  it('rejects a malformed line from a region with PLAYOUT_BODY_MALFORMED naming the line', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write('{"shard":"hunt-1","applied":5,"quarantined":false}\n{"shard":"hunt-1","applied":-1,"quarantined":false}\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const c = new HttpPeerClient({ region: 'xx-bad', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: TOKENS.ingest, requestTimeoutMs: 5_000, frameBytesMax: 1 << 20 });
    const lines: AppliedWatchLine[] = [];
    const err = await c.watchApplied('hunt-1', (l) => lines.push(l), { signal: AbortSignal.timeout(5_000) }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(lines).toEqual([{ shard: 'hunt-1', applied: 5, quarantined: false }]);
    expect(isPlayoutError(err) && { code: err.code, path: err.path }).toEqual({ code: 'PLAYOUT_BODY_MALFORMED', path: 'lines[1]' });
    await c.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
});

describe('read-your-writes barrier limits', () => {
  it('refuses a wait beyond 10,000 open ones (PLAYOUT_OVERLOADED, 503) and rejects the open ones when the shard stops', async () => {
    // hunt-9 (created above) is followed by af-jnb; stopping it here leaves hunt-1 to the other tests.
    const host = cluster.nodes.get('af-jnb')!.shards.get('hunt-9')!.host;
    const far = host.durableSeq + 1_000_000;
    const open = Array.from({ length: 10_000 }, () => host.waitApplied(far, 60_000));
    const settled = open.map((p) => p.then(() => 'answered', (err: unknown) => (isPlayoutError(err) ? err.code : String(err))));
    const over = await call('GET', followerUrl, `/v1/shards/hunt-9/applied?seq=${far}&timeoutMs=1000`, TOKENS.ingest);
    expect(over.status).toBe(503);
    expect(over.json.code).toBe('PLAYOUT_OVERLOADED');
    host.stop(new Error('stopped by the test'));
    const codes = new Set(await Promise.all(settled));
    expect([...codes]).toEqual(['PLAYOUT_SHARD_STOPPED']);
  });
});

describe('state of a follower inside its commit hold', () => {
  it('serves the latest tick it applied once its log holds it, not an error (a follower applies entries before storing them)', async () => {
    // A 1 s hold (the longest allowed) and 10 ms ticks: the follower's applied head is almost
    // always ahead of its durable one.
    const held = await startInProcessCluster({
      regions: ['eu-fra', 'af-jnb'],
      shards: [{ id: 'hunt-1', leader: 'eu-fra', tickMs: 10 }],
      overrides: { replication: { followerCommitHoldMs: 1_000 } },
    });
    try {
      const follower = held.nodes.get('af-jnb')!;
      const host = follower.shards.get('hunt-1')!.host;
      await waitFor('the follower to apply ticks it does not hold yet', () => host.latestDigest !== null && host.latestDigest.seq > host.durableSeq);
      const latest = host.latestDigest!;
      const state = await call('GET', follower.url, '/v1/shards/hunt-1/state', TOKENS.peer);
      expect(state.status).toBe(200);
      expect(state.json.tick).toBeGreaterThanOrEqual(latest.tick);
      expect(host.durableSeq).toBeGreaterThanOrEqual(latest.seq);
      const atTick = await call('GET', follower.url, `/v1/shards/hunt-1/state?tick=${latest.tick}`, TOKENS.peer);
      expect(atTick.json).toMatchObject({ tick: latest.tick });
    } finally {
      await held.close();
    }
  });
});

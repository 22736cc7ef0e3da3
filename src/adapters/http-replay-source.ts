// A running region node as a replay SOURCE: `http(s)://host:port[/prefix]`, read over its /v1
// API (`GET /v1/status`, `/v1/shards/:shard/entries`, `/snapshot`) with a bearer token.
//
//   PLAYOUT_PEER_TOKEN=… playout replay http://127.0.0.1:7101 --shard hunt-1
//   PLAYOUT_PEER_TOKEN=… playout verify 'http://127.0.0.1:7101?from-snapshot' --shard hunt-1
//
// The token comes from the environment, never from the URL (URLs end up in shell histories and
// process lists): PLAYOUT_PEER_TOKEN, else PLAYOUT_ADMIN_TOKEN, or the variable a command's
// `--token-env` names. A peer token suffices: every route used here is a peer route.
//
// The log read is the node's durable log as it stands when the source is opened (its head then),
// so a live shard gives a consistent prefix and a read always ends. Ranges are read page by page:
// the node caps each answer (limits.rangeEntriesMax, rangeBytesMax) and says where it stopped,
// and the next page is requested while the current one is being replayed. Every entry is checked
// by its hash (the peer client), its seq and its link to the one before (chainedStream), like
// any other source.
//
// A node that truncated its log below a snapshot (retention) no longer holds genesis: such a
// source starts from the node's snapshot that its retained log continues, when allowed
// (`fromSnapshot`, the `--from-snapshot` switch of `capture`, or `?from-snapshot` in the URL),
// and is refused with PLAYOUT_RANGE_NOT_RETAINED otherwise.
import { ENTRY_FORMAT, HASH_NAME, PlayoutError, decodeSnapshot, toHex, type Entry, type Snapshot } from '../core/index.js';
import { HttpPeerClient, rangeNotRetainedOf } from './http-peer-client.js';
import type { NodeStatus } from './http-schemas.js';
import { chooseShard, pagedSource, startOf, type OpenOptions, type ReplaySource, type SourceInfo } from './replay-source.js';

/** Token variables tried in order when no `tokenEnv` is given. */
export const HTTP_SOURCE_TOKEN_ENVS = ['PLAYOUT_PEER_TOKEN', 'PLAYOUT_ADMIN_TOKEN'] as const;

export interface HttpSourceUrl {
  /** Base URL without query: `http://127.0.0.1:7101` or `https://host/prefix`. */
  readonly base: string;
  /** `?from-snapshot` was given. */
  readonly fromSnapshot: boolean;
}

function badUrl(spec: string, why: string): PlayoutError {
  return new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot open source ${spec}: ${why}`, { path: 'SOURCE', expected: 'http(s)://host:port[/prefix][?from-snapshot]', received: spec });
}

/** Parse `http(s)://host:port[/prefix][?from-snapshot]`; PLAYOUT_INVALID_ARGUMENT otherwise. */
export function parseHttpSourceUrl(spec: string): HttpSourceUrl {
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw badUrl(spec, 'it is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badUrl(spec, `expected an http:// or https:// URL, received ${url.protocol}//`);
  if (url.hostname === '') throw badUrl(spec, 'it names no host');
  if (url.username !== '' || url.password !== '') throw badUrl(spec, 'credentials do not belong in the URL; put the token in PLAYOUT_PEER_TOKEN');
  if (url.hash !== '') throw badUrl(spec, `unexpected fragment ${url.hash}`);
  let fromSnapshot = false;
  for (const [k, v] of url.searchParams) {
    if (k === 'from-snapshot' && (v === '' || v === 'true')) fromSnapshot = true;
    else throw badUrl(spec, `unknown query parameter "${k}${v === '' ? '' : `=${v}`}"; the only one is ?from-snapshot`);
  }
  const path = url.pathname.replace(/\/+$/, '');
  return { base: `${url.origin}${path}`, fromSnapshot };
}

/** The bearer token for a node, from the environment. */
export function httpSourceToken(spec: string, env: Readonly<Record<string, string | undefined>>, tokenEnv: string | null | undefined): string {
  const names = tokenEnv == null ? HTTP_SOURCE_TOKEN_ENVS : [tokenEnv];
  for (const n of names) {
    const v = env[n];
    if (v !== undefined && v !== '') return v;
  }
  throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot open source ${spec}: set ${names.join(' or ')} to a peer or admin token of that region`, {
    path: names[0]!,
    expected: 'a bearer token in the environment',
    received: 'unset',
  });
}

/** Why a request to the node failed, in the words of this source (the code stays the node's). */
function reworded(spec: string, err: unknown): unknown {
  if (!(err instanceof PlayoutError)) return err;
  const hint =
    err.code === 'PLAYOUT_UNAUTHENTICATED' || err.code === 'PLAYOUT_FORBIDDEN'
      ? ' (the token must be a peer or admin token of that region)'
      : err.code === 'PLAYOUT_PEER_UNAVAILABLE'
        ? ' (is the node running, and is the URL its listen address?)'
        : err.code === 'PLAYOUT_ROUTE_NOT_FOUND'
          ? ' (is this the base URL of a playout node?)'
          : '';
  return new PlayoutError(err.code, `Cannot read source ${spec}: ${err.message}${hint}`, { seq: err.seq, tick: err.tick, shard: err.shard, path: err.path, expected: err.expected, received: err.received, cause: err });
}

export interface HttpSourceOptions {
  /** Per-request timeout (connect, headers, body). */
  requestTimeoutMs?: number;
  /** Largest entry frame accepted from the node. */
  frameBytesMax?: number;
}

export async function openHttpSource(spec: string, _location: string, options: OpenOptions, http: HttpSourceOptions = {}): Promise<ReplaySource> {
  const url = parseHttpSourceUrl(spec);
  const token = httpSourceToken(spec, options.env ?? {}, options.tokenEnv);
  const fromSnapshot = options.fromSnapshot === true || url.fromSnapshot;
  const client = new HttpPeerClient({
    region: url.base.replace(/^https?:\/\//, ''),
    url: url.base,
    token,
    requestTimeoutMs: http.requestTimeoutMs ?? 30_000,
    frameBytesMax: http.frameBytesMax ?? 64 << 20,
    connections: 2,
  });
  try {
    let status: NodeStatus;
    try {
      status = await client.nodeStatus();
    } catch (err) {
      throw reworded(spec, err);
    }
    const shard = chooseShard(`region ${status.region} (${spec})`, status.shards.map((s) => s.shard), options.shard);
    const row = status.shards.find((s) => s.shard === shard)!;
    let head = row.head;
    const timeoutMs = http.requestTimeoutMs ?? 30_000;
    if (row.firstSeq === null || head === 0) {
      throw new PlayoutError('PLAYOUT_SHARD_NOT_FOUND', `Cannot read shard "${shard}" from region ${status.region} (${spec}): it holds no entry of it yet`, { shard, path: '--shard', expected: 'a shard with entries', received: 'an empty log' });
    }
    const where = `shard "${shard}" of region ${status.region} (${spec})`;
    const fetchRange = async (from: number, to: number, signal?: AbortSignal): Promise<Entry[]> => {
      try {
        const timeout = AbortSignal.timeout(timeoutMs);
        return await client.entries(shard, from, to, { signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]) });
      } catch (err) {
        const held = rangeNotRetainedOf(err);
        if (held !== null) {
          throw new PlayoutError('PLAYOUT_RANGE_NOT_RETAINED', `Cannot read ${where}: the node no longer holds entry ${from} (it holds ${held.firstSeq === null ? 'nothing' : `[${held.firstSeq}, ${held.head}]`}): its retention truncated the log while it was read; open the source again${fromSnapshot ? '' : ' with --from-snapshot (capture) or ?from-snapshot in the URL'}`, {
            shard,
            seq: from,
            expected: `a node holding ${from}`,
            received: held.firstSeq === null ? 'nothing' : `[${held.firstSeq}, ${held.head}]`,
            cause: err,
          });
        }
        throw reworded(spec, err);
      }
    };

    let snapshot: Snapshot | null = null;
    let genesis: Entry | null = null;
    let retained = row.firstSeq;
    if (retained === 1) {
      try {
        genesis = (await fetchRange(1, 1))[0] ?? null;
      } catch (err) {
        // Truncated between the status and this read: with --from-snapshot, start from a snapshot after all.
        if (!fromSnapshot || !(err instanceof PlayoutError) || err.code !== 'PLAYOUT_RANGE_NOT_RETAINED') throw err;
        const now = await client.status(shard).catch((e: unknown) => Promise.reject(reworded(spec, e)));
        retained = now.firstSeq ?? 1;
        head = Math.max(head, now.head);
      }
    }
    if (genesis === null && !fromSnapshot) {
      throw new PlayoutError('PLAYOUT_RANGE_NOT_RETAINED', `Cannot replay ${where} from genesis: the node holds entries [${retained}, ${head}] only (its log was truncated below a snapshot); start from the node's snapshot with --from-snapshot (capture) or ?from-snapshot in the URL`, {
        shard,
        seq: 1,
        path: 'SOURCE',
        expected: 'a log from seq 1, or --from-snapshot',
        received: `[${retained}, ${head}]`,
      });
    }
    if (genesis === null) {
      snapshot = await continuedSnapshot(client, spec, where, shard, retained, head, fetchRange);
      // A snapshot taken since the status was read may end past that head: read up to it at least.
      head = Math.max(head, snapshot.seq);
    }
    const firstSeq = snapshot === null ? 1 : snapshot.seq + 1;
    const start = startOf(where, shard, genesis, snapshot);
    const info: SourceInfo = {
      spec,
      kind: 'http',
      location: url.base,
      shard,
      ...start,
      engineVersion: status.version,
      entryFormat: ENTRY_FORMAT,
      hash: HASH_NAME,
      createdBy: null,
      description: `region ${status.region}, ${row.role} (leader ${row.leader}), head ${head} when opened`,
      firstSeq,
      snapshot: snapshot === null ? null : { tick: snapshot.tick, seq: snapshot.seq, digest: toHex(snapshot.digest) },
      bytes: null,
    };
    const last = head;
    return pagedSource(info, snapshot, where, Math.max(0, last - firstSeq + 1), (signal) => pages(fetchRange, firstSeq, last, signal), () => client.close());
  } catch (err) {
    await client.close();
    throw err;
  }
}

type FetchRange = (from: number, to: number, signal?: AbortSignal) => Promise<Entry[]>;

/** The pages of [from, to], each requested while the one before is being consumed. */
async function* pages(fetchRange: FetchRange, from: number, to: number, signal: AbortSignal): AsyncGenerator<Entry[], void, undefined> {
  const request = (seq: number): Promise<Entry[]> | null => {
    if (seq > to) return null;
    const p = fetchRange(seq, to, signal);
    // Consumed below; a pass closed early must not leave an unhandled rejection behind.
    p.catch(() => undefined);
    return p;
  };
  let pending = request(from);
  while (pending !== null) {
    const page = await pending;
    if (signal.aborted) return;
    pending = page.length === 0 ? null : request(page[page.length - 1]!.seq + 1);
    if (page.length > 0) yield page;
  }
}

/**
 * The node's snapshot that its retained log continues, preferring the oldest (the most entries
 * left to replay and verify): the one at or below the tick before the first retained entry,
 * else the one at or below that entry's tick, else the latest.
 */
async function continuedSnapshot(client: HttpPeerClient, spec: string, where: string, shard: string, firstSeq: number, head: number, fetchRange: FetchRange): Promise<Snapshot> {
  const probe = (await fetchRange(firstSeq, firstSeq))[0]!;
  const ticks = [...(probe.tick > 0 ? [probe.tick - 1] : []), probe.tick, null];
  for (const tick of ticks) {
    let s: { tick: number; seq: number; bytes: Uint8Array };
    try {
      s = await client.snapshot(shard, tick);
    } catch (err) {
      if (err instanceof PlayoutError && err.code === 'PLAYOUT_TICK_NOT_RETAINED') continue;
      throw reworded(spec, err);
    }
    if (s.seq + 1 < firstSeq) continue;
    const snapshot = decodeSnapshot(s.bytes);
    if (snapshot.shard !== shard || snapshot.seq !== s.seq || snapshot.tick !== s.tick) {
      throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot read ${where}: the node sent a snapshot of shard "${snapshot.shard}" at tick ${snapshot.tick}, seq ${snapshot.seq} for shard "${shard}" at tick ${s.tick}, seq ${s.seq}`, {
        shard,
        tick: s.tick,
        expected: `shard "${shard}" tick ${s.tick} seq ${s.seq}`,
        received: `shard "${snapshot.shard}" tick ${snapshot.tick} seq ${snapshot.seq}`,
      });
    }
    return snapshot;
  }
  throw new PlayoutError('PLAYOUT_RANGE_NOT_RETAINED', `Cannot start ${where} from a snapshot: the node holds entries [${firstSeq}, ${head}] and no snapshot they continue`, {
    shard,
    seq: firstSeq,
    expected: `a snapshot at seq >= ${firstSeq - 1}`,
    received: 'none',
  });
}

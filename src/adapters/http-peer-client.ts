// PeerClient over HTTP (undici): what a region node asks of another region through its /v1 API.
//
// Every failure becomes a PlayoutError: the network and 5xx answers are
// PLAYOUT_PEER_UNAVAILABLE (retriable), a peer's own PlayoutError keeps its code, and 416 is
// PLAYOUT_RANGE_NOT_RETAINED carrying what the peer holds (`rangeNotRetainedOf`). Bytes from a
// peer are verified before they are returned: entries by their hash and contiguity, snapshots
// by their trailing hash.
import { Pool, type Dispatcher } from 'undici';
import { decodeCanonical } from '../core/codec.js';
import type { Entry } from '../core/entry.js';
import { ERROR_CODES, PlayoutError, describe, type ErrorCode } from '../core/errors.js';
import { HASH_BYTES, fromHex, hash128, hashEquals, toHex } from '../core/hash.js';
import type { EntrySource, PeerShardStatus } from '../ports/entry-source.js';
import type { StoredDigest } from '../ports/log-store.js';
import type { BucketsAnswer, BucketsQuery, PeerClient, PeerSnapshot, RangeNotRetained, RecordsAnswer, RecordsQuery, RequestOptions } from '../ports/peer-client.js';
import { FrameDecoder } from './http-frames.js';
import { HttpEntrySource, type HttpEntrySourceOptions } from './http-entry-source.js';
import { AppliedWatchLineSchema, type AppliedAnswer, type AppliedWatchLine, type DurableReport, type InputRequest, type InputResult, type NodeStatus, type ShardStatus } from './http-schemas.js';

export interface HttpPeerClientOptions {
  /** The peer's region id and base URL (`http://127.0.0.1:7102`). */
  region: string;
  url: string;
  /** Bearer token sent with every request (the peer's `peer` scope, or `admin`). */
  token: string;
  /** Default timeout of one request (connect, headers and body). */
  requestTimeoutMs: number;
  frameBytesMax: number;
  /** Stream options (idle timeout, reconnect backoff). */
  stream?: Partial<Omit<HttpEntrySourceOptions, 'region' | 'url' | 'token' | 'frameBytesMax'>>;
  /** Connections to the peer for requests (streams use their own). */
  connections?: number;
  /** CA certificates (PEM) trusted for an https:// peer; default: the system's. */
  ca?: Buffer | null;
}

/** An error carrying what a peer holds, from a 416 answer. */
export class RangeNotRetainedError extends PlayoutError {
  readonly available: RangeNotRetained;
  constructor(message: string, available: RangeNotRetained, details: { shard: string; expected: string; received: string }) {
    super('PLAYOUT_RANGE_NOT_RETAINED', message, details);
    this.available = available;
  }
}

/** What the peer holds, when `err` is a 416 answer; else null. */
export function rangeNotRetainedOf(err: unknown): RangeNotRetained | null {
  return err instanceof RangeNotRetainedError ? err.available : null;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED', 'UND_ERR_ABORTED', 'ABORT_ERR']);

export function peerUnavailable(region: string, what: string, err: unknown): PlayoutError {
  if (err instanceof PlayoutError) return err;
  const e = err as { code?: string; name?: string; message?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code ?? e.name ?? 'error';
  return new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `Cannot ${what} from region ${region}: ${code}${e.message ? ` (${e.message})` : ''}`, {
    expected: 'an answer',
    received: NETWORK_CODES.has(code) || e.name === 'AbortError' || e.name === 'TimeoutError' ? code : String(code),
    cause: err,
  });
}

/** Turn a peer's error answer into a PlayoutError with the peer's code when it is one of ours. */
export async function errorFromResponse(region: string, what: string, statusCode: number, body: Dispatcher.ResponseData['body']): Promise<PlayoutError> {
  let parsed: Record<string, unknown> | null = null;
  try {
    const text = await body.text();
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: a proxy or a crash page; described by the status below
  }
  const code = typeof parsed?.code === 'string' && parsed.code in ERROR_CODES ? (parsed.code as ErrorCode) : null;
  const message = typeof parsed?.message === 'string' ? parsed.message : `HTTP ${statusCode}`;
  if (code === null || (statusCode >= 500 && code !== 'PLAYOUT_SHARD_QUARANTINED' && code !== 'PLAYOUT_SHARD_STOPPED' && code !== 'PLAYOUT_OVERLOADED')) {
    return new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `Cannot ${what} from region ${region}: HTTP ${statusCode}: ${message}`, { expected: '2xx', received: String(statusCode) });
  }
  const str = (k: string): string | null => (typeof parsed?.[k] === 'string' ? (parsed[k] as string) : null);
  const num = (k: string): number | null => (typeof parsed?.[k] === 'number' ? (parsed[k] as number) : null);
  return new PlayoutError(code, `Region ${region} refused to ${what}: ${message}`, { path: str('path'), expected: str('expected'), received: str('received'), seq: num('seq'), tick: num('tick'), shard: str('shard') });
}

export class HttpPeerClient implements PeerClient {
  readonly region: string;
  readonly url: string;
  private readonly options: HttpPeerClientOptions;
  private readonly pool: Pool;
  private readonly auth: string;
  private source: HttpEntrySource | null = null;

  constructor(options: HttpPeerClientOptions) {
    this.options = options;
    this.region = options.region;
    this.url = options.url.replace(/\/+$/, '');
    this.auth = `Bearer ${options.token}`;
    this.pool = new Pool(new URL(this.url).origin, {
      connections: options.connections ?? 8,
      keepAliveTimeout: 4_000,
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: options.requestTimeoutMs,
      connectTimeout: Math.min(options.requestTimeoutMs, 5_000),
      ...(options.ca ? { connect: { ca: options.ca } } : {}),
    });
  }

  private async get(path: string, what: string, options: RequestOptions | undefined, accept = 'application/json'): Promise<Dispatcher.ResponseData> {
    let res: Dispatcher.ResponseData;
    try {
      res = await this.pool.request({
        method: 'GET',
        path: new URL(this.url + path).pathname + new URL(this.url + path).search,
        headers: { authorization: this.auth, accept },
        signal: options?.signal ?? AbortSignal.timeout(this.options.requestTimeoutMs),
      });
    } catch (err) {
      throw peerUnavailable(this.region, what, err);
    }
    return res;
  }

  private async json<T>(path: string, what: string, options?: RequestOptions): Promise<T> {
    const res = await this.get(path, what, options);
    if (res.statusCode !== 200) throw await errorFromResponse(this.region, what, res.statusCode, res.body);
    try {
      return (await res.body.json()) as T;
    } catch (err) {
      throw peerUnavailable(this.region, what, err);
    }
  }

  private async msgpack<T>(path: string, what: string, options?: RequestOptions): Promise<T> {
    const res = await this.get(path, what, options, 'application/msgpack');
    if (res.statusCode !== 200) throw await errorFromResponse(this.region, what, res.statusCode, res.body);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await res.body.arrayBuffer());
    } catch (err) {
      throw peerUnavailable(this.region, what, err);
    }
    try {
      return decodeCanonical(bytes) as T;
    } catch (err) {
      throw new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot ${what} from region ${this.region}: the answer is not msgpack`, { cause: err });
    }
  }

  private async post(path: string, body: unknown, what: string, options?: RequestOptions, token = this.auth): Promise<Dispatcher.ResponseData> {
    try {
      return await this.pool.request({
        method: 'POST',
        path: new URL(this.url + path).pathname,
        headers: { authorization: token, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: options?.signal ?? AbortSignal.timeout(this.options.requestTimeoutMs),
      });
    } catch (err) {
      throw peerUnavailable(this.region, what, err);
    }
  }

  // --- PeerClient ----------------------------------------------------------------------------

  async status(shard: string, options?: RequestOptions): Promise<PeerShardStatus> {
    const s = await this.json<ShardStatus>(`/v1/shards/${encodeURIComponent(shard)}`, `read the status of shard "${shard}"`, options);
    return peerShardStatusOf(this.region, s);
  }

  /** Every shard's status at the peer (one request for all shards). */
  async nodeStatus(options?: RequestOptions): Promise<NodeStatus> {
    return this.json<NodeStatus>('/v1/status', 'read the status', options);
  }

  async entries(shard: string, seqFrom: number, seqTo: number, options?: RequestOptions & { readonly bytesMax?: number }): Promise<Entry[]> {
    const what = `read entries [${seqFrom}, ${seqTo}] of shard "${shard}"`;
    const res = await this.get(`/v1/shards/${encodeURIComponent(shard)}/entries?from=${seqFrom}&to=${seqTo}`, what, options, 'application/vnd.playout.frames');
    if (res.statusCode === 416) {
      const body = (await res.body.json().catch(() => null)) as { available?: { from: number; to: number } | null; message?: string } | null;
      const head = Number(res.headers['x-playout-head'] ?? body?.available?.to ?? 0);
      const available: RangeNotRetained = { firstSeq: body?.available?.from ?? null, head: Number.isFinite(head) ? head : 0 };
      throw new RangeNotRetainedError(`Region ${this.region} does not hold entry ${seqFrom} of shard "${shard}": it holds ${available.firstSeq === null ? 'nothing' : `[${available.firstSeq}, ${available.head}]`}`, available, {
        shard,
        expected: `a peer holding ${seqFrom}`,
        received: available.firstSeq === null ? 'nothing' : `[${available.firstSeq}, ${available.head}]`,
      });
    }
    if (res.statusCode !== 200) throw await errorFromResponse(this.region, what, res.statusCode, res.body);
    const decoder = new FrameDecoder(this.options.frameBytesMax, `range answer of region ${this.region}`);
    const out: Entry[] = [];
    let expected = seqFrom;
    try {
      for await (const chunk of res.body) {
        decoder.push(chunk as Buffer);
        for (let f = decoder.next(); f !== null; f = decoder.next()) {
          if (f.type !== 'entry') continue;
          const e = f.entry;
          if (e.seq !== expected || e.shard !== shard || e.seq > seqTo) {
            throw new PlayoutError('PLAYOUT_RANGE_REFUSED', `Region ${this.region} answered ${what} with entry ${e.seq} of shard "${e.shard}" where ${expected} of "${shard}" was due`, {
              shard,
              seq: e.seq,
              expected: String(expected),
              received: String(e.seq),
            });
          }
          out.push(e);
          expected++;
        }
      }
      decoder.finish();
    } catch (err) {
      res.body.destroy();
      if (err instanceof PlayoutError) throw err;
      throw peerUnavailable(this.region, what, err);
    }
    return out;
  }

  stream(): EntrySource {
    if (this.source === null) {
      this.source = new HttpEntrySource({
        region: this.region,
        url: this.url,
        token: this.options.token,
        frameBytesMax: this.options.frameBytesMax,
        ca: this.options.ca ?? null,
        ...this.options.stream,
      });
    }
    return this.source;
  }

  async digests(shard: string, tickFrom: number, tickTo: number, options?: RequestOptions): Promise<StoredDigest[]> {
    const r = await this.json<{ digests: { tick: number; seq: number; digest: string }[] }>(`/v1/shards/${encodeURIComponent(shard)}/digests?fromTick=${tickFrom}&toTick=${tickTo}`, `read digests of shard "${shard}"`, options);
    return r.digests.map((d) => ({ tick: d.tick, seq: d.seq, digest: fromHex(d.digest) }));
  }

  async buckets(shard: string, query: BucketsQuery, options?: RequestOptions): Promise<BucketsAnswer> {
    let q = `tick=${query.tick}`;
    if (query.tableSums !== null) {
      q += `&sums=${encodeURIComponent(
        Object.entries(query.tableSums)
          .map(([t, s]) => `${t}:${toHex(s)}`)
          .join(','),
      )}`;
    }
    const a = await this.msgpack<BucketsAnswer>(`/v1/shards/${encodeURIComponent(shard)}/buckets?${q}`, `read bucket sums of shard "${shard}" at tick ${query.tick}`, options);
    if (a === null || typeof a !== 'object' || a.tick !== query.tick || !Array.isArray(a.tables)) {
      throw new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Region ${this.region} answered bucket sums of tick ${query.tick} with ${describe(a)}`, { expected: `buckets of tick ${query.tick}` });
    }
    return a;
  }

  async records(shard: string, query: RecordsQuery, options?: RequestOptions): Promise<RecordsAnswer> {
    const a = await this.msgpack<RecordsAnswer>(
      `/v1/shards/${encodeURIComponent(shard)}/records?tick=${query.tick}&table=${encodeURIComponent(query.table)}&buckets=${query.buckets.join(',')}`,
      `read records of shard "${shard}" at tick ${query.tick}`,
      options,
    );
    if (a === null || typeof a !== 'object' || a.tick !== query.tick || a.table !== query.table || !Array.isArray(a.records)) {
      throw new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Region ${this.region} answered records of tick ${query.tick} with ${describe(a)}`, { expected: `records of table ${query.table} at tick ${query.tick}` });
    }
    return a;
  }

  async snapshot(shard: string, tickMax: number | null, options?: RequestOptions): Promise<PeerSnapshot> {
    const what = `read a snapshot of shard "${shard}"${tickMax === null ? '' : ` at or below tick ${tickMax}`}`;
    const res = await this.get(`/v1/shards/${encodeURIComponent(shard)}/snapshot${tickMax === null ? '' : `?tick=${tickMax}`}`, what, options, 'application/vnd.playout.snapshot');
    if (res.statusCode !== 200) throw await errorFromResponse(this.region, what, res.statusCode, res.body);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await res.body.arrayBuffer());
    } catch (err) {
      throw peerUnavailable(this.region, what, err);
    }
    const tick = Number(res.headers['x-playout-tick']);
    const seq = Number(res.headers['x-playout-seq']);
    if (bytes.length <= HASH_BYTES || !hashEquals(hash128(bytes, 0, bytes.length - HASH_BYTES), bytes.subarray(bytes.length - HASH_BYTES))) {
      throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Region ${this.region} sent a snapshot of shard "${shard}" whose bytes fail their hash`, { shard, tick: Number.isFinite(tick) ? tick : null });
    }
    if (!Number.isSafeInteger(tick) || !Number.isSafeInteger(seq)) {
      throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Region ${this.region} sent a snapshot of shard "${shard}" without its tick and seq headers`, { shard });
    }
    return { tick, seq, bytes };
  }

  // --- beyond the port: ingress and durable reports -------------------------------------------

  /** Report the seq this region holds durably to the shard's leader (quorum acks, lag). */
  async reportDurable(shard: string, report: DurableReport, options?: RequestOptions): Promise<void> {
    const what = `report durable seq ${report.seq} of shard "${shard}"`;
    const res = await this.post(`/v1/shards/${encodeURIComponent(shard)}/durable`, report, what, options);
    if (res.statusCode !== 204 && res.statusCode !== 200) throw await errorFromResponse(this.region, what, res.statusCode, res.body);
    await res.body.dump();
  }

  /** Submit inputs (needs an `ingest` or `admin` token). */
  /**
   * Read-your-writes: resolves once this region has applied `seq` of the shard (reached: true),
   * or after `timeoutMs` (reached: false). The request itself times out `requestTimeoutMs` later.
   */
  async waitApplied(shard: string, seq: number, timeoutMs: number, options?: RequestOptions): Promise<AppliedAnswer> {
    return this.json<AppliedAnswer>(`/v1/shards/${encodeURIComponent(shard)}/applied?seq=${seq}&timeoutMs=${timeoutMs}`, `wait for seq ${seq} of shard "${shard}" to be applied`, {
      signal: options?.signal ?? AbortSignal.timeout(timeoutMs + this.options.requestTimeoutMs),
    });
  }

  /**
   * Follow the shard's applied head at this region (GET /v1/shards/:shard/applied/watch): `onLine`
   * gets each line as it arrives (the head when the watch opens, each move, each heartbeat).
   * Resolves when `signal` aborts it or the region ends it; rejects when it cannot be opened, a
   * line is malformed (PLAYOUT_BODY_MALFORMED) or the connection fails.
   */
  async watchApplied(shard: string, onLine: (line: AppliedWatchLine) => void, options: { signal: AbortSignal }): Promise<void> {
    const what = `watch the applied head of shard "${shard}"`;
    const res = await this.get(`/v1/shards/${encodeURIComponent(shard)}/applied/watch`, what, options, 'application/x-ndjson');
    if (res.statusCode !== 200) throw await errorFromResponse(this.region, what, res.statusCode, res.body);
    let rest = '';
    let lines = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        rest += chunk.toString('utf8');
        for (let nl = rest.indexOf('\n'); nl >= 0; nl = rest.indexOf('\n')) {
          const text = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          onLine(watchLineOf(this.region, what, text, lines++));
        }
        // A line is about 60 bytes: a peer sending more without a newline is not speaking NDJSON.
        if (rest.length > WATCH_LINE_BYTES_MAX) throw watchLineMalformed(this.region, what, lines, `a line longer than ${WATCH_LINE_BYTES_MAX} bytes`);
      }
    } catch (err) {
      if (err instanceof PlayoutError) throw err;
      if (options.signal.aborted) return;
      throw peerUnavailable(this.region, what, err);
    }
  }

  async submit(shard: string, inputs: readonly InputRequest[], options?: RequestOptions & { token?: string }): Promise<InputResult[]> {
    const what = `submit ${inputs.length} input(s) to shard "${shard}"`;
    const body = inputs.length === 1 ? inputs[0] : { inputs };
    const res = await this.post(`/v1/shards/${encodeURIComponent(shard)}/inputs`, body, what, options, options?.token === undefined ? this.auth : `Bearer ${options.token}`);
    if (res.statusCode !== 200) throw await errorFromResponse(this.region, what, res.statusCode, res.body);
    const r = (await res.body.json()) as InputResult | { results: InputResult[] };
    return 'results' in r ? r.results : [r];
  }

  async close(): Promise<void> {
    await this.source?.close();
    await this.pool.close();
  }
}

const WATCH_LINE_BYTES_MAX = 4096;

function watchLineMalformed(region: string, what: string, index: number, received: string): PlayoutError {
  return new PlayoutError('PLAYOUT_BODY_MALFORMED', `Cannot ${what} from region ${region}: lines[${index}]: expected {shard, applied, quarantined}, received ${received}`, {
    path: `lines[${index}]`,
    expected: '{shard, applied, quarantined}',
    received,
  });
}

function watchLineOf(region: string, what: string, text: string, index: number): AppliedWatchLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw watchLineMalformed(region, what, index, `not JSON (${JSON.stringify(text.slice(0, 80))})`);
  }
  const r = AppliedWatchLineSchema.safeParse(value);
  if (!r.success) throw watchLineMalformed(region, what, index, describe(value));
  return r.data;
}

/** The port's view of a shard row of GET /v1/status. */
export function peerShardStatusOf(regionId: string, s: ShardStatus): PeerShardStatus {
  return {
    region: regionId,
    shard: s.shard,
    head: s.head,
    headHash: s.headHash === null ? null : fromHex(s.headHash),
    tick: s.headTick,
    firstSeq: s.firstSeq,
    epoch: s.epoch,
    digest: s.digestTick === null || s.digest === null ? null : { tick: s.digestTick, digest: fromHex(s.digest) },
    quarantined: s.quarantine !== null,
  };
}

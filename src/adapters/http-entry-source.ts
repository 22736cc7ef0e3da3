// EntrySource over HTTP: GET /v1/shards/:shard/stream?from=N of one peer region, one
// long-lived response per followed shard, decoded frame by frame (src/adapters/http-frames.ts).
//
// The stream reconnects by itself, from the seq after the last entry it delivered, with
// exponential backoff and jitter. A stream silent for `idleMs` (no entry, no heartbeat) is
// treated as dead: a link that hangs without a reset (a Toxiproxy `timeout`, a half-open TCP
// connection) is noticed within that time instead of never. Entries failing their hash are
// never delivered: the stream reports the error and reconnects from the last good seq.
import { Pool } from 'undici';
import { PlayoutError } from '../core/errors.js';
import type { Entry } from '../core/entry.js';
import type { EntrySource, EntrySourceHandler } from '../ports/entry-source.js';
import { FRAMES_CONTENT_TYPE, FrameDecoder } from './http-frames.js';
import { errorFromResponse, peerUnavailable } from './http-peer-client.js';

export interface HttpEntrySourceOptions {
  region: string;
  url: string;
  token: string;
  frameBytesMax: number;
  /** A stream silent for this long is reopened (heartbeats arrive every heartbeatMs). */
  idleMs: number;
  backoffMsMin: number;
  backoffMsMax: number;
  connectTimeoutMs: number;
  /** CA certificates (PEM) trusted for an https:// peer; default: the system's. */
  ca: Buffer | null;
}

const DEFAULTS = { idleMs: 3_000, backoffMsMin: 100, backoffMsMax: 5_000, connectTimeoutMs: 2_000, ca: null };

export class HttpEntrySource implements EntrySource {
  readonly name: string;
  readonly options: HttpEntrySourceOptions;
  readonly pool: Pool;
  handler: EntrySourceHandler | null = null;
  private readonly streams = new Map<string, ShardStream>();
  closed = false;
  /** Streams (re)opened, for metrics and tests. */
  connects = 0;

  constructor(options: Partial<HttpEntrySourceOptions> & Pick<HttpEntrySourceOptions, 'region' | 'url' | 'token' | 'frameBytesMax'>) {
    this.options = { ...DEFAULTS, ...options };
    this.name = `http:${options.region}`;
    this.pool = new Pool(new URL(options.url).origin, {
      // One connection per followed shard, held for as long as it streams.
      connections: null,
      headersTimeout: this.options.idleMs,
      bodyTimeout: this.options.idleMs,
      connectTimeout: this.options.connectTimeoutMs,
      keepAliveTimeout: 1_000,
      ...(this.options.ca ? { connect: { ca: this.options.ca } } : {}),
    });
  }

  async start(handler: EntrySourceHandler): Promise<void> {
    this.handler = handler;
  }

  follow(shard: string, seqFrom: number): void {
    if (this.closed) return;
    const s = this.streams.get(shard);
    if (s !== undefined) {
      s.reposition(seqFrom);
      return;
    }
    const stream = new ShardStream(this, shard, seqFrom);
    this.streams.set(shard, stream);
    void stream.run();
  }

  unfollow(shard: string): void {
    const s = this.streams.get(shard);
    if (s === undefined) return;
    this.streams.delete(shard);
    s.stop();
  }

  /** Drop the current connection of a shard's stream (it reconnects), e.g. when a repair shows it stalled. */
  reconnect(shard: string): void {
    this.streams.get(shard)?.reposition(null);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.streams.values()) s.stop();
    this.streams.clear();
    await this.pool.destroy();
  }
}

class ShardStream {
  private readonly source: HttpEntrySource;
  private readonly shard: string;
  /** The seq to ask for when (re)connecting. */
  private next: number;
  private abort: AbortController | null = null;
  private stopped = false;
  private failures = 0;
  private wake: (() => void) | null = null;

  constructor(source: HttpEntrySource, shard: string, seqFrom: number) {
    this.source = source;
    this.shard = shard;
    this.next = seqFrom;
  }

  /** Restart from `seqFrom` (null: from where it is) without waiting for a backoff. */
  reposition(seqFrom: number | null): void {
    if (seqFrom !== null) this.next = seqFrom;
    this.failures = 0;
    this.abort?.abort();
    this.wake?.();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    this.wake?.();
  }

  async run(): Promise<void> {
    const { options, pool } = this.source;
    const path = `/v1/shards/${encodeURIComponent(this.shard)}/stream`;
    while (!this.stopped && !this.source.closed) {
      const abort = new AbortController();
      this.abort = abort;
      const from = this.next;
      let err: unknown = null;
      try {
        this.source.connects++;
        const res = await pool.request({
          method: 'GET',
          path: `${path}?from=${from}`,
          headers: { authorization: `Bearer ${options.token}`, accept: FRAMES_CONTENT_TYPE },
          signal: abort.signal,
        });
        if (res.statusCode !== 200) {
          err = await errorFromResponse(options.region, `open the stream of shard "${this.shard}" from ${from}`, res.statusCode, res.body);
        } else {
          await this.read(res.body, abort);
        }
      } catch (e) {
        err = e;
      }
      if (this.stopped || this.source.closed) return;
      // Only reposition() and stop() abort: a reposition reconnects at once from `next`.
      if (abort.signal.aborted) continue;
      const error = err === null ? new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `The stream of shard "${this.shard}" from region ${options.region} ended`, { shard: this.shard }) : err instanceof PlayoutError ? err : peerUnavailable(options.region, `stream shard "${this.shard}"`, err);
      this.source.handler?.onError(error, this.shard);
      this.failures++;
      const backoff = Math.min(options.backoffMsMax, options.backoffMsMin * 2 ** Math.min(this.failures - 1, 16));
      // Full jitter: peers reconnecting after the same outage do not all come back at once.
      await this.sleep(backoff / 2 + Math.random() * (backoff / 2));
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = null;
        resolve();
      };
    });
  }

  private async read(body: AsyncIterable<unknown> & { destroy(err?: Error): unknown }, abort: AbortController): Promise<void> {
    const { options } = this.source;
    const decoder = new FrameDecoder(options.frameBytesMax, `stream of shard "${this.shard}" from region ${options.region}`);
    try {
      for await (const chunk of body) {
        if (abort.signal.aborted) break;
        decoder.push(chunk as Buffer);
        let batch: Entry[] = [];
        try {
          for (let f = decoder.nextEntries(batch); f !== null; f = decoder.nextEntries(batch)) {
            if (f.type === 'entry') {
              batch.push(f.entry);
            } else if (f.type === 'heartbeat') {
              if (batch.length > 0) {
                this.deliver(batch);
                batch = [];
              }
              this.failures = 0;
              if (f.heartbeat.shard === this.shard) this.source.handler?.onHeartbeat(f.heartbeat);
            } else {
              const code = f.end.code === 'PLAYOUT_RANGE_NOT_RETAINED' ? 'PLAYOUT_RANGE_NOT_RETAINED' : 'PLAYOUT_PEER_UNAVAILABLE';
              throw new PlayoutError(code, `Region ${options.region} closed the stream of shard "${this.shard}": ${f.end.code}: ${f.end.message}`, { shard: this.shard, received: f.end.code });
            }
          }
        } finally {
          // Entries decoded before a bad frame are good: deliver them before reporting it.
          if (batch.length > 0) {
            this.failures = 0;
            this.deliver(batch);
          }
        }
      }
      if (!abort.signal.aborted) decoder.finish();
    } finally {
      body.destroy();
    }
  }

  private deliver(batch: Entry[]): void {
    this.next = batch[batch.length - 1]!.seq + 1;
    this.source.handler?.onEntries(this.shard, batch, this.source.options.region);
  }
}

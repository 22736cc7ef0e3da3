// A client of a shard around a failover, for tests and benchmarks: the treasure-hunt load
// generator at a steady rate, submitted in batches over HTTP the way a well-behaved client does
// it — it follows a 307 to the leader (same method, same body, same ingestIds), waits as told by
// a 503 Retry-After while the shard is between two epochs, and retries anything not acknowledged
// with the same ingestIds. It records every acknowledged input (ingestId → seq) and which region
// acknowledged it, so that a test can check that none was lost.
import { LoadGenerator } from '../../src/games/treasure-hunt/index.js';
import { TOKENS } from './cluster.js';

export interface FailoverLoadOptions {
  shard: string;
  /** Base URL of the region first sent to. */
  url: string;
  /** Region name per base URL (to tell who acknowledged). */
  regionOf: (url: string) => string;
  seed: number;
  /** Other regions' base URLs, tried in turn when the current one does not answer (a region lost). */
  fallbackUrls?: readonly string[];
  /** Inputs per batch, and batches per second. */
  batchInputs: number;
  batchesPerSecond: number;
  /** Batches in flight at most. */
  inflightMax?: number;
}

export class FailoverLoad {
  /** ingestId → seq, for every acknowledged input. */
  readonly acked = new Map<string, number>();
  /** Acknowledged inputs per region. */
  readonly ackedBy = new Map<string, number>();
  /** Time (Date.now) of the first acknowledgement by each region. */
  readonly firstAckAtMs = new Map<string, number>();
  /** When the load started (Date.now()). */
  readonly startedAtMs = Date.now();
  redirects = 0;
  waits = 0;
  failures = 0;
  private url: string;
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly gen: LoadGenerator;
  private tick = 0;
  private readonly o: FailoverLoadOptions;

  constructor(o: FailoverLoadOptions) {
    this.o = o;
    this.url = o.url;
    this.gen = new LoadGenerator({ seed: o.seed, players: 200, inputsPerTick: o.batchInputs });
    const inflight = o.inflightMax ?? 4;
    const periodMs = (1000 / o.batchesPerSecond) * inflight;
    for (let i = 0; i < inflight; i++) this.loops.push(this.loop(periodMs, i * (periodMs / inflight)));
  }

  get currentUrl(): string {
    return this.url;
  }

  private async loop(periodMs: number, offsetMs: number): Promise<void> {
    await sleep(offsetMs);
    let next = Date.now();
    while (this.running) {
      const batch = this.gen.next(this.tick++).map((i) => ({ type: i.type, version: i.version, payload: i.payload, ingestId: i.ingestId }));
      await this.submit(batch);
      next += periodMs;
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      else next = Date.now();
    }
  }

  /** Submit one batch until it is acknowledged (or the load stops). */
  private async submit(batch: { type: string; version: number; payload: unknown; ingestId: string | null }[]): Promise<void> {
    const body = JSON.stringify({ inputs: batch });
    while (this.running || this.draining) {
      const url = this.url;
      let res: Response;
      try {
        res = await fetch(`${url}/v1/shards/${this.o.shard}/inputs`, { method: 'POST', redirect: 'manual', headers: { authorization: `Bearer ${TOKENS.ingest}`, 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(15_000) });
      } catch {
        this.failures++;
        // The region does not answer: try the next one (a follower redirects to its leader).
        const all = [this.o.url, ...(this.o.fallbackUrls ?? [])];
        if (this.url === url && all.length > 1) this.url = all[(all.indexOf(url) + 1) % all.length]!;
        await sleep(50);
        continue;
      }
      if (res.status === 200) {
        const r = (await res.json()) as { results: { status: string; seq: number }[] };
        const region = this.o.regionOf(url);
        r.results.forEach((x, k) => {
          const id = batch[k]!.ingestId;
          if (id !== null) this.acked.set(id, x.seq);
        });
        this.ackedBy.set(region, (this.ackedBy.get(region) ?? 0) + batch.length);
        if (!this.firstAckAtMs.has(region)) this.firstAckAtMs.set(region, Date.now());
        return;
      }
      const text = await res.text();
      if (res.status === 307) {
        const location = res.headers.get('location');
        if (location !== null) {
          this.redirects++;
          this.url = new URL(location).origin;
          continue;
        }
      }
      if (res.status === 503) {
        this.waits++;
        await sleep(Math.min(Number(res.headers.get('retry-after') ?? 1) * 1000, 100));
        continue;
      }
      // Not acknowledged (an ack timeout, a leader that stopped mid-request): the same ingestIds again.
      this.failures++;
      if (res.status === 421) {
        const leader = (JSON.parse(text) as { leader?: { url?: string | null } }).leader;
        if (leader?.url) this.url = leader.url;
      }
      await sleep(50);
    }
  }

  private draining = false;

  /** Stop generating; batches in flight are retried until acknowledged (or `drainMs` passes). */
  async stop(drainMs = 20_000): Promise<void> {
    this.draining = true;
    this.running = false;
    const t = setTimeout(() => (this.draining = false), drainMs);
    await Promise.all(this.loops);
    clearTimeout(t);
    this.draining = false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

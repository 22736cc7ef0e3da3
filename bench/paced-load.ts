// The fixed-rate ingress load the node benchmarks send: treasure-hunt batches made up front (the
// sender's own CPU must not bend the rate), each sent at its slot on a schedule from the start,
// without waiting for the answers of earlier ones.
import type { InputRequest } from '../src/adapters/http-schemas.js';
import { LoadGenerator } from '../src/games/treasure-hunt/index.js';

/** `count` batches of `batchSize` inputs from a seeded load generator, as ingress requests. */
export function inputBatches(seed: number, batchSize: number, count: number): InputRequest[][] {
  const gen = new LoadGenerator({ seed, players: 2_000, inputsPerTick: batchSize });
  return Array.from({ length: count }, (_, t) => gen.next(t).map((i) => ({ type: i.type, version: i.version, payload: i.payload, ingestId: i.ingestId })));
}

export interface PacedLoad {
  /** When the first batch was due. */
  readonly startMs: number;
  /** Inputs sent so far. */
  sent(): number;
  /** Stop sending; resolves once every request sent has settled. */
  stop(): Promise<void>;
}

/** Sends `batches` at `ratePerS` inputs/s through `submit` (which must not reject) until stopped or out of batches. */
export function pacedLoad(batches: readonly InputRequest[][], ratePerS: number, submit: (batch: InputRequest[]) => Promise<void>): PacedLoad {
  const startMs = performance.now();
  let running = true;
  let sent = 0;
  const done = (async () => {
    const inflight = new Set<Promise<void>>();
    for (let k = 0; running; k++) {
      const batch = batches[k];
      if (batch === undefined) break;
      const wait = startMs + (sent * 1000) / ratePerS - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      sent += batch.length;
      const p = submit(batch);
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    await Promise.all(inflight);
  })();
  return {
    startMs,
    sent: () => sent,
    stop: () => {
      running = false;
      return done;
    },
  };
}

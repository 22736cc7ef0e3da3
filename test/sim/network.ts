// SimNetwork: the links between regions in a simulation. Every message is delivered after a
// delay drawn from its link's range (so messages overtake each other: reordering), may be
// lost or delivered twice, and is dropped when its link is cut at send or delivery time
// (partitions). One seeded Rng draws every decision, so a seed replays exactly.
import { Rng } from '../../src/core/rng.js';
import type { ManualClock } from './clock.js';

export interface LinkFaults {
  /** Delivery delay, uniform in [delayMsMin, delayMsMax]. */
  delayMsMin: number;
  delayMsMax: number;
  /** Probability that a message is lost. */
  lossRate: number;
  /** Probability that a message is delivered twice (independent delays). */
  duplicateRate: number;
}

export const CALM_LINK: LinkFaults = { delayMsMin: 5, delayMsMax: 5, lossRate: 0, duplicateRate: 0 };

export type Handler<M> = (from: string, message: M) => void;

export interface NetworkCounters {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  cut: number;
}

export class SimNetwork<M> {
  readonly clock: ManualClock;
  readonly rng: Rng;
  private readonly handlers = new Map<string, Handler<M>>();
  private readonly faults = new Map<string, LinkFaults>();
  private readonly down = new Set<string>();
  private defaults: LinkFaults;
  readonly counters: NetworkCounters = { sent: 0, delivered: 0, lost: 0, duplicated: 0, cut: 0 };

  constructor(clock: ManualClock, seed: number, defaults: LinkFaults = CALM_LINK) {
    this.clock = clock;
    this.rng = Rng.fromSeed(seed);
    this.defaults = defaults;
  }

  listen(region: string, handler: Handler<M>): void {
    this.handlers.set(region, handler);
  }

  /** A region that crashed: messages to it are dropped until it listens again. */
  unlisten(region: string): void {
    this.handlers.delete(region);
  }

  setDefaults(faults: LinkFaults): void {
    this.defaults = faults;
  }

  /** Faults of the link a→b (one direction). */
  setLink(from: string, to: string, faults: LinkFaults): void {
    this.faults.set(key(from, to), faults);
  }

  /** Cut both directions between a and b. */
  cut(a: string, b: string): void {
    this.down.add(key(a, b));
    this.down.add(key(b, a));
  }

  heal(a: string, b: string): void {
    this.down.delete(key(a, b));
    this.down.delete(key(b, a));
  }

  /** Cut `region` from every other region. */
  isolate(region: string, others: readonly string[]): void {
    for (const o of others) if (o !== region) this.cut(region, o);
  }

  /** Forget per-link faults (every link uses the defaults again). */
  clearLinks(): void {
    this.faults.clear();
  }

  healAll(): void {
    this.down.clear();
  }

  isCut(from: string, to: string): boolean {
    return this.down.has(key(from, to));
  }

  send(from: string, to: string, message: M): void {
    this.counters.sent++;
    if (this.isCut(from, to)) {
      this.counters.cut++;
      return;
    }
    const f = this.faults.get(key(from, to)) ?? this.defaults;
    if (f.lossRate > 0 && this.rng.chance(f.lossRate)) {
      this.counters.lost++;
      return;
    }
    this.schedule(from, to, message, f);
    if (f.duplicateRate > 0 && this.rng.chance(f.duplicateRate)) {
      this.counters.duplicated++;
      this.schedule(from, to, message, f);
    }
  }

  private schedule(from: string, to: string, message: M, f: LinkFaults): void {
    const delay = f.delayMsMax > f.delayMsMin ? this.rng.int(f.delayMsMin, f.delayMsMax) : f.delayMsMin;
    this.clock.after(delay, () => {
      // A link cut while the message was in flight loses it, like a reset TCP connection.
      if (this.isCut(from, to)) {
        this.counters.cut++;
        return;
      }
      const h = this.handlers.get(to);
      if (h === undefined) {
        this.counters.lost++;
        return;
      }
      this.counters.delivered++;
      h(from, message);
    });
  }
}

function key(from: string, to: string): string {
  return `${from}>${to}`;
}

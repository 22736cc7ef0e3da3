// A one-shard leader for behaviour tests: a Sequencer and a checked ShardMachine, driven one
// input at a time, with the rejection (if any) of every input.
import { GlobalsGuard } from '../../../src/adapters/determinism-guard.js';
import { Sequencer, ShardMachine, type Entry, type ReducerRegistry, type StateTable, type TickDigest } from '../../../src/core/index.js';
import { TREASURE_HUNT, treasureHuntRegistry, type Item, type Player, type Position, type TreasureHuntParamsInput } from '../../../src/games/treasure-hunt/index.js';

export interface Outcome {
  seq: number;
  rejected: string | null;
  reason: string | null;
}

export const SMALL_WORLD: TreasureHuntParamsInput = {
  worldSize: 256,
  itemsInitial: 60,
  spawnPerTick: 0,
  cellSize: 16,
  digRadius: 4,
  reach: 6,
  pickupRadius: 3,
  speed: 8,
  powerUpTicks: 30,
  lootTicks: 20,
};

export class Harness {
  readonly registry: ReducerRegistry;
  readonly machine: ShardMachine;
  readonly sequencer: Sequencer;
  readonly log: Entry[] = [];
  readonly digests: TickDigest[] = [];
  private ingest = 0;

  constructor(params: TreasureHuntParamsInput = SMALL_WORLD, options: { seed?: number; reducerVersion?: number; registry?: ReducerRegistry } = {}) {
    this.registry = options.registry ?? treasureHuntRegistry();
    this.machine = new ShardMachine(this.registry, { checked: { guard: new GlobalsGuard(), fullDigestEveryTicks: 1 }, onTick: (d) => this.digests.push(d) });
    const genesis = Sequencer.genesis({ shard: 'hunt-test', reducer: this.registry.get(TREASURE_HUNT, options.reducerVersion ?? 1), seed: options.seed ?? 1, tickMs: 50, params });
    this.push(genesis);
    this.sequencer = Sequencer.afterGenesis(this.registry, genesis, { region: 'eu-fra', dedupeWindowTicks: 10 });
  }

  private push(entry: Entry): void {
    this.machine.apply(entry);
    this.log.push(entry);
  }

  get tick(): number {
    return this.sequencer.tick;
  }

  /** Sequence and apply one input; throws what the Sequencer throws for a bad one. */
  input(type: string, payload: unknown, version = 1): Outcome {
    const r = this.sequencer.submit({ type, version, payload, ingestId: `t${this.ingest++}` });
    if (r.status !== 'sequenced') throw new Error('unexpected duplicate');
    this.push(r.entry);
    const last = this.machine.rejections[this.machine.rejections.length - 1];
    if (last !== undefined && last.seq === r.entry.seq) return { seq: r.entry.seq, rejected: last.code, reason: last.reason };
    return { seq: r.entry.seq, rejected: null, reason: null };
  }

  /** Close the open tick. */
  closeTick(): TickDigest {
    this.push(this.sequencer.closeTick(this.machine.lastDigest?.digest ?? null));
    return this.machine.lastDigest!;
  }

  /** Close ticks until `tick` is the open one. */
  advanceTo(tick: number): void {
    while (this.sequencer.tick < tick) this.closeTick();
  }

  upgrade(version: number): void {
    this.push(this.sequencer.upgrade(version));
  }

  table<T>(name: string): StateTable<T> {
    return this.machine.tables[name] as StateTable<T>;
  }

  player(id: string): Player | undefined {
    return this.table<Player>('players').peek(id) as Player | undefined;
  }

  position(id: string): Position | undefined {
    return this.table<Position>('positions').peek(id) as Position | undefined;
  }

  item(id: string): Item | undefined {
    return this.table<Item>('items').peek(id) as Item | undefined;
  }

  items(): [string, Item][] {
    const t = this.table<Item>('items');
    return t.keys().map((k) => [k, t.peek(k) as Item]);
  }

  /** An item of `kind` with no other item within `clearance` (so proximity tests are unambiguous). */
  isolated(kind: Item['kind'], clearance = 12, margin = 16): [string, Item] {
    const all = this.items();
    const size = (this.table<{ worldSize: number }>('meta').peek('rules') as { worldSize: number }).worldSize;
    for (const [id, it] of all) {
      if (it.kind !== kind || it.x < margin || it.y < margin || it.x >= size - margin || it.y >= size - margin) continue;
      if (all.every(([o, other]) => o === id || (other.x - it.x) ** 2 + (other.y - it.y) ** 2 > clearance * clearance)) return [id, it];
    }
    throw new Error(`no isolated ${kind} in this world; change the seed`);
  }
}

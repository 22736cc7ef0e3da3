// A pure, seeded load generator for treasure-hunt: the input stream of N simulated players, for
// fixtures, benchmarks and the demo. Same options and same seed → the same inputs, byte for
// byte, with the same ingestIds (randomness comes from the core `Rng`, never Math.random).
//
// The players behave like players: they join in guilds near a guild home, walk (never faster
// than the world's speed), steer with the treasure radar (a `WorldView` of the leader's state,
// when the caller has one) towards buried items, which guild members then dig together,
// pick up power-ups and loot lying nearby, accept and walk quests, leave (dropping their coins)
// and come back later. Live ops publish a quest now and then and re-publish (patch) one.
// Without a view, players wander and dig where they stand.
//
// Only when asked (`invalidRate` > 0) does it mix in deliberately bad inputs, each marked with
// its `intent`: inputs the reducer rejects as data (unknown player, dig too far …) and inputs
// the Sequencer refuses before they reach the log (schema violations, unknown types, a v2
// payload before the upgrade). `retryRate` > 0 re-sends earlier inputs with their ingestId,
// as clients retrying after a lost acknowledgement do.
import { PlayoutError, Rng, describe, type InputSubmission } from '../../core/index.js';
import { dist2 } from './geo.js';
import { POWER_KINDS, type Rules, type TreasureHuntParamsInput } from './schemas.js';
import { resolveRules } from './treasure-hunt.js';
import type { WorldView } from './world-view.js';

/** What the generator meant an input to be. */
export type LoadIntent =
  /** A valid input (the reducer may still find nothing to dig). */
  | 'valid'
  /** Sequenced, then rejected by the reducer as data. */
  | 'rejected'
  /** Refused by the Sequencer (PLAYOUT_INPUT_*); never in the log. */
  | 'invalid'
  /** An earlier input sent again with its ingestId; deduplicated by the Sequencer. */
  | 'retry';

export interface LoadInput extends InputSubmission {
  intent: LoadIntent;
}

export interface LoadOptions {
  seed: number;
  /** Simulated players (ids p000000 … zero-padded so key order is number order). */
  players: number;
  /** Inputs produced per tick. */
  inputsPerTick: number;
  /** The genesis params of the world (worldSize, speed, reach … ; defaults as the reducer's). */
  params?: TreasureHuntParamsInput | null;
  /** Players per guild; a guild starts near one home and digs the same treasure. */
  guildSize?: number;
  /** First tick that may carry `item.dig` v2 payloads (the tick after the upgrade entry), or null. */
  digV2FromTick?: number | null;
  /** Fraction [0, 1] of deliberately bad inputs (default 0: none). */
  invalidRate?: number;
  /** Fraction [0, 1] of retried inputs (default 0). */
  retryRate?: number;
  /** Live ops publish a quest every this many ticks (0: never). */
  questEveryTicks?: number;
  /** Per-mille chance that an online player's input is `player.leave`. */
  leavePerMille?: number;
  /** Prefix of every ingestId (default `lg<seed>`), so two generators never collide. */
  ingestPrefix?: string;
}

interface Guild {
  homeX: number;
  homeY: number;
  target: string | null;
  targetX: number;
  targetY: number;
}

interface KnownQuest {
  id: string;
  waypoints: { x: number; y: number }[];
  radius: number;
  endTick: number;
}

class SimPlayer {
  readonly id: string;
  readonly guild: Guild;
  online = false;
  awayUntilTick = 0;
  x = 0;
  y = 0;
  /** Blind digs left at a target (without a view the generator cannot see it vanish). */
  digsLeft = 0;
  quest: KnownQuest | null = null;
  questStep = 0;
  inputs = 0;
  constructor(id: string, guild: Guild) {
    this.id = id;
    this.guild = guild;
  }
}

const RECENT_MAX = 64;

export class LoadGenerator {
  readonly options: Required<Omit<LoadOptions, 'params' | 'digV2FromTick'>> & { digV2FromTick: number | null };
  readonly rules: Rules;
  private readonly rng: Rng;
  private readonly players: SimPlayer[] = [];
  private readonly quests: KnownQuest[] = [];
  private readonly recent: LoadInput[] = [];
  private questsPublished = 0;
  private opsInputs = 0;
  private badInputs = 0;
  private readonly radar: number;
  /** Within the tick being generated (the view shows the state at its start): digs sent per item, and surface items claimed. */
  private readonly digsThisTick = new Map<string, number>();
  private readonly claimedThisTick = new Set<string>();
  /** Inputs produced so far, by intent. */
  readonly produced: Record<LoadIntent, number> = { valid: 0, rejected: 0, invalid: 0, retry: 0 };

  constructor(options: LoadOptions) {
    const o = options;
    checkInt('players', o.players, 1, 1_000_000);
    checkInt('inputsPerTick', o.inputsPerTick, 0, 1_000_000);
    if (o.guildSize !== undefined) checkInt('guildSize', o.guildSize, 1, 1_000_000);
    if (o.questEveryTicks !== undefined) checkInt('questEveryTicks', o.questEveryTicks, 0, 1_000_000_000);
    if (o.leavePerMille !== undefined) checkInt('leavePerMille', o.leavePerMille, 0, 1000);
    if (o.digV2FromTick != null) checkInt('digV2FromTick', o.digV2FromTick, 0, Number.MAX_SAFE_INTEGER);
    checkRate('invalidRate', o.invalidRate ?? 0);
    checkRate('retryRate', o.retryRate ?? 0);
    checkInt('seed', o.seed, -0x80000000, 0xffffffff);
    this.options = {
      seed: o.seed,
      players: o.players,
      inputsPerTick: o.inputsPerTick,
      guildSize: o.guildSize ?? 4,
      digV2FromTick: o.digV2FromTick ?? null,
      invalidRate: o.invalidRate ?? 0,
      retryRate: o.retryRate ?? 0,
      questEveryTicks: o.questEveryTicks ?? 50,
      leavePerMille: o.leavePerMille ?? 8,
      ingestPrefix: o.ingestPrefix ?? `lg${o.seed >>> 0}`,
    };
    this.rules = resolveRules(o.params ?? null);
    // A different stream from the shard's own rng (seeded with the same seed by generateLog):
    // players must not walk the exact path of the item spawner.
    this.rng = Rng.fromSeed((o.seed ^ 0x5bd1e995) | 0);
    this.radar = Math.max(4 * this.rules.cellSize, 8 * this.rules.digRadius);
    const guilds: Guild[] = [];
    const guildCount = Math.ceil(o.players / this.options.guildSize);
    for (let g = 0; g < guildCount; g++) {
      guilds.push({ homeX: this.rng.int(0, this.rules.worldSize - 1), homeY: this.rng.int(0, this.rules.worldSize - 1), target: null, targetX: 0, targetY: 0 });
    }
    for (let i = 0; i < o.players; i++) this.players.push(new SimPlayer(playerId(i), guilds[Math.floor(i / this.options.guildSize)]!));
  }

  /** The inputs of one tick. `view` is the leader's world as of now (optional). */
  next(tick: number, view: WorldView | null = null): LoadInput[] {
    const out: LoadInput[] = [];
    const o = this.options;
    this.digsThisTick.clear();
    this.claimedThisTick.clear();
    if (o.questEveryTicks > 0 && tick > 0 && tick % o.questEveryTicks === 0) out.push(this.publishQuest(tick));
    while (out.length < o.inputsPerTick) {
      if (o.invalidRate > 0 && this.rng.float() < o.invalidRate) {
        out.push(this.badInput(tick));
        continue;
      }
      if (o.retryRate > 0 && this.recent.length > 0 && this.rng.float() < o.retryRate) {
        const again = this.recent[this.rng.int(0, this.recent.length - 1)]!;
        out.push(this.count({ type: again.type, version: again.version, payload: again.payload, ingestId: again.ingestId, intent: 'retry' }));
        continue;
      }
      const input = this.playerInput(tick, view);
      if (this.recent.length >= RECENT_MAX) this.recent.shift();
      this.recent.push(input);
      out.push(input);
    }
    return out;
  }

  private count(input: LoadInput): LoadInput {
    this.produced[input.intent]++;
    return input;
  }

  private submission(p: SimPlayer, type: string, version: number, payload: unknown, intent: LoadIntent = 'valid'): LoadInput {
    return this.count({ type, version, payload, ingestId: `${this.options.ingestPrefix}.${p.id}.${p.inputs++}`, intent });
  }

  private pickPlayer(tick: number): SimPlayer {
    const n = this.players.length;
    let p = this.players[this.rng.int(0, n - 1)]!;
    for (let tries = 0; tries < 8 && !p.online && p.awayUntilTick > tick; tries++) p = this.players[this.rng.int(0, n - 1)]!;
    return p;
  }

  private playerInput(tick: number, view: WorldView | null): LoadInput {
    const p = this.pickPlayer(tick);
    const r = this.rules;
    if (!p.online) {
      p.online = true;
      p.x = this.clamp(p.guild.homeX + this.rng.int(-2 * r.cellSize, 2 * r.cellSize));
      p.y = this.clamp(p.guild.homeY + this.rng.int(-2 * r.cellSize, 2 * r.cellSize));
      p.quest = null;
      p.questStep = 0;
      return this.submission(p, 'player.join', 1, { player: p.id, name: `hunter ${p.id.slice(1)}`, x: p.x, y: p.y });
    }
    if (this.rng.int(0, 999) < this.options.leavePerMille) {
      p.online = false;
      p.awayUntilTick = tick + this.rng.int(3, 60);
      return this.submission(p, 'player.leave', 1, { player: p.id });
    }
    if (view !== null) {
      const surface = view.nearestSurface(p.x, p.y, r.pickupRadius);
      if (surface !== null && !this.claimedThisTick.has(surface.id)) {
        this.claimedThisTick.add(surface.id);
        return this.submission(p, 'item.pickup', 1, { player: p.id, item: surface.id });
      }
    }
    if (p.quest !== null) {
      if (p.quest.endTick < tick) {
        p.quest = null;
      } else if (p.questStep >= p.quest.waypoints.length) {
        // Live ops shortened the quest below the step reached: the reducer completes it on the next move.
        p.quest = null;
        return this.wander(p);
      } else {
        const wp = p.quest.waypoints[p.questStep]!;
        return this.moveToward(p, wp.x, wp.y, () => {
          // Mirrors the reducer: arriving within the radius reaches the waypoint.
          if (dist2(p.x, p.y, wp.x, wp.y) <= p.quest!.radius * p.quest!.radius && ++p.questStep >= p.quest!.waypoints.length) p.quest = null;
        });
      }
    } else if (this.quests.length > 0 && this.rng.int(0, 99) < 3) {
      const q = this.quests[this.rng.int(0, this.quests.length - 1)]!;
      if (q.endTick >= tick) {
        p.quest = q;
        p.questStep = 0;
        return this.submission(p, 'quest.accept', 1, { player: p.id, quest: q.id });
      }
    }
    const g = p.guild;
    if (view !== null) {
      if (g.target !== null) {
        // Gone, or dug open earlier in this tick (a guild digs one item together).
        const seen = view.item(g.target);
        if (seen === null || (this.digsThisTick.get(g.target) ?? 0) >= seen.hp) g.target = null;
      }
      if (g.target === null || dist2(p.x, p.y, g.targetX, g.targetY) > 4 * this.radar * this.radar) {
        const seen = view.nearestBuried(p.x, p.y, this.radar);
        if (seen !== null && (this.digsThisTick.get(seen.id) ?? 0) < seen.hp) {
          g.target = seen.id;
          g.targetX = seen.x;
          g.targetY = seen.y;
        }
      }
      if (g.target !== null) {
        if (dist2(p.x, p.y, g.targetX, g.targetY) <= r.reach * r.reach) return this.dig(p, tick, g.target, g.targetX, g.targetY);
        return this.moveToward(p, g.targetX, g.targetY, null);
      }
      return this.wander(p);
    }
    // Blind: dig where we stand a few times, then walk on.
    if (p.digsLeft > 0) {
      p.digsLeft--;
      return this.dig(p, tick, null, p.x, p.y);
    }
    if (this.rng.int(0, 9) < 3) p.digsLeft = this.rng.int(1, 4);
    return this.wander(p);
  }

  private dig(p: SimPlayer, tick: number, item: string | null, x: number, y: number): LoadInput {
    if (item !== null) this.digsThisTick.set(item, (this.digsThisTick.get(item) ?? 0) + 1);
    const v2From = this.options.digV2FromTick;
    if (item !== null && v2From !== null && tick >= v2From && this.rng.int(0, 1) === 1) return this.submission(p, 'item.dig', 2, { player: p.id, item });
    return this.submission(p, 'item.dig', 1, { player: p.id, x, y });
  }

  private moveToward(p: SimPlayer, tx: number, ty: number, arrived: (() => void) | null): LoadInput {
    const s = this.rules.speed;
    const d2 = dist2(p.x, p.y, tx, ty);
    if (d2 <= s * s) {
      p.x = tx;
      p.y = ty;
    } else {
      // Math.sqrt is correctly rounded (IEEE 754), so this is reproducible everywhere; the
      // loop absorbs the last ulp so a move never exceeds the speed limit.
      const d = Math.sqrt(d2);
      let nx = p.x + Math.trunc(((tx - p.x) * s) / d);
      let ny = p.y + Math.trunc(((ty - p.y) * s) / d);
      while (dist2(p.x, p.y, nx, ny) > s * s) {
        nx -= Math.sign(nx - p.x);
        ny -= Math.sign(ny - p.y);
      }
      p.x = nx;
      p.y = ny;
    }
    if (arrived !== null) arrived();
    return this.submission(p, 'player.move', 1, { player: p.id, x: p.x, y: p.y });
  }

  private wander(p: SimPlayer): LoadInput {
    const k = Math.floor(this.rules.speed * 0.7);
    p.x = this.clamp(p.x + this.rng.int(-k, k));
    p.y = this.clamp(p.y + this.rng.int(-k, k));
    return this.submission(p, 'player.move', 1, { player: p.id, x: p.x, y: p.y });
  }

  private clamp(v: number): number {
    return v < 0 ? 0 : v >= this.rules.worldSize ? this.rules.worldSize - 1 : v;
  }

  private publishQuest(tick: number): LoadInput {
    const rng = this.rng;
    const r = this.rules;
    const live = this.quests.filter((q) => q.endTick >= tick);
    // Now and then live ops patch a running quest (new waypoints, same id) instead of adding one.
    const patch = live.length > 0 && rng.int(0, 2) === 0;
    const id = patch ? live[rng.int(0, live.length - 1)]!.id : `q${++this.questsPublished}`;
    const home = this.players[rng.int(0, this.players.length - 1)]!.guild;
    const waypoints: { x: number; y: number }[] = [];
    let x = home.homeX;
    let y = home.homeY;
    const n = rng.int(2, 6);
    for (let i = 0; i < n; i++) {
      x = this.clamp(x + rng.int(-3 * r.cellSize, 3 * r.cellSize));
      y = this.clamp(y + rng.int(-3 * r.cellSize, 3 * r.cellSize));
      waypoints.push({ x, y });
    }
    const radius = rng.int(2, 6);
    const durationTicks = rng.int(100, 400);
    const power = rng.int(0, 3) === 0 ? null : POWER_KINDS[rng.int(0, POWER_KINDS.length - 1)]!;
    const payload = { quest: id, name: `Live event ${id}`, waypoints, radius, rewardCoins: rng.int(10, 60), rewardScore: rng.int(10, 40), power, durationTicks };
    const known: KnownQuest = { id, waypoints, radius, endTick: tick + durationTicks };
    const at = this.quests.findIndex((q) => q.id === id);
    if (at >= 0) {
      this.quests[at] = known;
      for (const p of this.players) if (p.quest?.id === id) p.quest = known;
    } else {
      this.quests.push(known);
    }
    if (this.quests.length > 32) this.quests.splice(0, this.quests.length - 32);
    return this.count({ type: 'quest.publish', version: 1, payload, ingestId: `${this.options.ingestPrefix}.ops.${this.opsInputs++}`, origin: 'live-ops', intent: 'valid' });
  }

  /** An online player near a random index, or null (a bounded probe, not a scan). */
  private someOnline(): SimPlayer | null {
    const n = this.players.length;
    const start = this.rng.int(0, n - 1);
    for (let i = 0; i < Math.min(n, 64); i++) {
      const p = this.players[(start + i) % n]!;
      if (p.online) return p;
    }
    return null;
  }

  /** A deliberately bad input; it does not change the generator's model of the world. */
  private badInput(tick: number): LoadInput {
    const rng = this.rng;
    const r = this.rules;
    const ingestId = `${this.options.ingestPrefix}.bad.${this.badInputs++}`;
    const online = this.someOnline();
    const bad = (type: string, version: number, payload: unknown, intent: LoadIntent): LoadInput => this.count({ type, version, payload, ingestId, intent });
    switch (rng.int(0, 9)) {
      case 0:
        return bad('player.move', 1, { player: `ghost${rng.int(0, 999)}`, x: 1, y: 1 }, 'rejected');
      case 1:
        if (online !== null) {
          const far = r.reach + 5;
          const x = online.x + far < r.worldSize ? online.x + far : online.x - far;
          return bad('item.dig', 1, { player: online.id, x, y: online.y }, 'rejected');
        }
        return bad('item.dig', 1, { player: 'ghost', x: 0, y: 0 }, 'rejected');
      case 2:
        if (online !== null) return bad('player.join', 1, { player: online.id, name: 'twice', x: online.x, y: online.y }, 'rejected');
        return bad('player.leave', 1, { player: 'ghost' }, 'rejected');
      case 3:
        if (online !== null) return bad('item.pickup', 1, { player: online.id, item: 'i99999999' }, 'rejected');
        return bad('quest.accept', 1, { player: 'ghost', quest: 'q0' }, 'rejected');
      case 4:
        return bad('player.move', 1, { player: online?.id ?? 'p000000', x: r.worldSize + 10, y: 0 }, 'rejected');
      case 5:
        return bad('player.move', 1, { player: 'p000000', x: -5, y: 3 }, 'invalid');
      case 6:
        return bad('player.move', 1, { player: 'p000000', x: 1.5, y: 3 }, 'invalid');
      case 7:
        return bad('player.teleport', 1, { player: 'p000000', x: 1, y: 1 }, 'invalid');
      case 8: {
        const v2From = this.options.digV2FromTick;
        // A v2 payload the running reducer does not declare, or, after the upgrade, a v2 payload with a v1 body.
        if (v2From === null || tick < v2From) return bad('item.dig', 2, { player: 'p000000', item: 'i00000001' }, 'invalid');
        return bad('item.dig', 2, { player: 'p000000', x: 1, y: 1 }, 'invalid');
      }
      default:
        return bad('player.join', 1, { player: 'p000000', name: 'x', x: 1, y: 1, admin: true }, 'invalid');
    }
  }
}

function checkInt(path: string, v: number, min: number, max: number): void {
  if (Number.isInteger(v) && v >= min && v <= max) return;
  throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `LoadGenerator: ${path} must be an integer in [${min}, ${max}], received ${describe(v)}`, { path, expected: `integer in [${min}, ${max}]`, received: describe(v) });
}

function checkRate(path: string, v: number): void {
  if (typeof v === 'number' && v >= 0 && v <= 1) return;
  throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `LoadGenerator: ${path} must be a number in [0, 1], received ${describe(v)}`, { path, expected: 'number in [0, 1]', received: describe(v) });
}

export function playerId(index: number): string {
  return 'p' + String(index).padStart(6, '0');
}

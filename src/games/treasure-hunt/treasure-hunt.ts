// treasure-hunt: the example game of playout (DESIGN.md §2, §4).
//
// Players join, move and leave a square world; treasure (coins, gems, chests) lies buried in
// it, indexed by geo cell; digging within a radius wears an item down and opens it; a chest's
// loot is split between everyone who dug it, in proportion to their work; leaving drops the
// coins carried as loot on the ground; power-ups (shovel, boots, magnet) decay over ticks;
// a top-10 leaderboard; quests with waypoint lists are published as inputs by live ops (the
// hot-patched rules of a live event).
//
// Cost: every input and every tick touch O(1) records (a few cells for a proximity query);
// nothing iterates players or items. Expiries are scheduled in a `timers` table keyed by tick,
// and the leaderboard is updated in place when a score changes (see `raiseScore`), so the
// per-tick cost, and the digest's, does not grow with the state.
//
// Tables (records in schemas.ts): players (profile, score, coins, power-up, quest), positions
// ({x, y}: moves, most of the traffic, touch only this small record), items, cells (the geo
// index, see geo.ts), quests, meta ('rules' = resolved genesis params, 'counters'),
// leaderboard ('top10'), timers ('t<tick>': what expires in that tick).
//
// Versions: reducer 1 accepts `item.dig` v1 payloads (dig a spot) only; reducer 2, switched to
// by an `upgrade` entry, also accepts v2 payloads (dig a named item) and pays the player who
// opens a chest a finisher bonus of one point. Rejections are data (`{ rejected, reason }`).
import { PlayoutError, defineReducer, type Reducer, ReducerRegistry, type ReducerContext, type Rejection, type InputOf, type StateTable } from '../../core/index.js';
import { BURIED, dist2, indexItem, nearestItem, unindexItem } from './geo.js';
import {
  INPUTS_V1,
  INPUTS_V2,
  POWER_KINDS,
  TABLES,
  TreasureHuntParamsSchema,
  type Counters,
  type Item,
  type Leaderboard,
  type Player,
  type PowerKind,
  type RejectionCode,
  type Rules,
  type Timer,
} from './schemas.js';

export const TREASURE_HUNT = 'treasure-hunt';
const LEADERBOARD_KEY = 'top10';
const LEADERBOARD_SIZE = 10;

type Tables = typeof TABLES;
type Ctx = ReducerContext<Tables>;
type Input = InputOf<typeof INPUTS_V2>;

/**
 * How a chest's loot is split between its diggers. The correct split reads the diggers from
 * the item record (sorted by player id) and uses integer arithmetic; the buggy build below
 * replaces it.
 */
interface LootSplitter {
  reset(ctx: Ctx): void;
  recordWork(ctx: Ctx, itemId: string, player: string, work: number): void;
  /** Calls award(player, coins) for every digger; the shares sum to `value`. */
  split(ctx: Ctx, itemId: string, item: Item, award: (player: string, coins: number) => void): void;
}

/** Cumulative floor split in player-id order: share_i = ⌊value·W_i/W⌋ − ⌊value·W_{i−1}/W⌋, W_i the work of diggers 1…i. */
const keyOrderSplitter: LootSplitter = {
  reset() {},
  recordWork() {},
  split(_ctx, _itemId, item, award) {
    const diggers = item.diggers;
    let total = 0;
    for (let i = 0; i < diggers.length; i++) total += diggers[i]![1];
    let cum = 0;
    let given = 0;
    for (let i = 0; i < diggers.length; i++) {
      cum += diggers[i]![1];
      const upTo = Math.floor((item.value * cum) / total);
      award(diggers[i]![0], upTo - given);
      given = upTo;
    }
  },
};

export function resolveRules(params: unknown): Rules {
  const parsed = TreasureHuntParamsSchema.safeParse(params ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = `payload.params${issue.path.length ? '.' + issue.path.join('.') : ''}`;
    throw new PlayoutError('PLAYOUT_GENESIS_INVALID', `Cannot start treasure-hunt: ${path}: ${issue.message}`, { path, expected: issue.message });
  }
  const p = parsed.data;
  const itemsMax = p.itemsMax ?? Math.max(Math.floor(p.itemsInitial * 1.25), p.itemsInitial + 100);
  return {
    worldSize: p.worldSize,
    itemsInitial: p.itemsInitial,
    itemsMax,
    spawnPerTick: p.spawnPerTick,
    cellSize: p.cellSize,
    digRadius: p.digRadius,
    reach: p.reach,
    pickupRadius: p.pickupRadius,
    speed: p.speed,
    powerUpTicks: p.powerUpTicks,
    lootTicks: p.lootTicks,
  };
}

function rules(ctx: Ctx): Rules {
  return ctx.tables.meta.get('rules') as Rules;
}

function counters(ctx: Ctx): Counters {
  return ctx.tables.meta.mut('counters') as Counters;
}

function reject(code: RejectionCode, reason: string): Rejection {
  return { rejected: code, reason };
}

function itemId(n: number): string {
  return 'i' + String(n).padStart(8, '0');
}

/** Power-up strength 3, 2, 1 over thirds of its duration, 0 once expired: the decay needs no per-tick work. */
export function powerLevel(p: { readonly power: PowerKind | null; readonly powerUntilTick: number }, tick: number, powerUpTicks: number): number {
  if (p.power === null || p.powerUntilTick <= tick) return 0;
  return Math.ceil((3 * (p.powerUntilTick - tick)) / powerUpTicks);
}

function speedOf(p: Player | Readonly<Player>, tick: number, r: Rules): number {
  return p.power === 'boots' ? r.speed + ((r.speed * powerLevel(p, tick, r.powerUpTicks)) >> 1) : r.speed;
}
function pickupRadiusOf(p: Player | Readonly<Player>, tick: number, r: Rules): number {
  return p.power === 'magnet' ? r.pickupRadius * (1 + powerLevel(p, tick, r.powerUpTicks)) : r.pickupRadius;
}
function digWorkOf(p: Player | Readonly<Player>, tick: number, r: Rules): number {
  return p.power === 'shovel' ? 1 + powerLevel(p, tick, r.powerUpTicks) : 1;
}

function schedule(timers: StateTable<Timer>, tick: number, what: 'power' | 'items', id: string): void {
  const key = 't' + tick;
  const t = timers.mut(key);
  if (t === undefined) timers.set(key, what === 'power' ? { power: [id], items: [] } : { power: [], items: [id] });
  else t[what].push(id);
}

/**
 * Raise a player's score on the leaderboard. Scores only ever increase, so a player outside
 * the top 10 can only enter it by passing the 10th, and a player inside only moves up: the
 * top 10 stays exact without ever looking at the other players.
 */
function raiseScore(ctx: Ctx, player: string, score: number): void {
  const table = ctx.tables.leaderboard;
  const seen = table.get(LEADERBOARD_KEY)!.top;
  let at = -1;
  for (let i = 0; i < seen.length; i++) {
    if (seen[i]!.player === player) {
      at = i;
      break;
    }
  }
  if (at === -1) {
    if (seen.length === LEADERBOARD_SIZE && !ranksAbove(score, player, seen[LEADERBOARD_SIZE - 1]!)) return;
  } else if (seen[at]!.score === score) {
    return;
  }
  const top = (table.mut(LEADERBOARD_KEY) as Leaderboard).top;
  if (at === -1) {
    top.push({ player, score });
    at = top.length - 1;
  } else {
    top[at]!.score = score;
  }
  while (at > 0 && ranksAbove(top[at]!.score, top[at]!.player, top[at - 1]!)) {
    const t = top[at - 1]!;
    top[at - 1] = top[at]!;
    top[at] = t;
    at--;
  }
  if (top.length > LEADERBOARD_SIZE) top.pop();
}

function ranksAbove(score: number, player: string, other: { readonly score: number; readonly player: string }): boolean {
  return score > other.score || (score === other.score && player < other.player);
}

function award(ctx: Ctx, player: string, coins: number, score: number, finds: number): void {
  const p = ctx.tables.players.mut(player);
  if (p === undefined) return; // players are never deleted; a digger always exists
  p.coins += coins;
  p.finds += finds;
  if (score > 0) {
    p.score += score;
    raiseScore(ctx, player, p.score);
  }
}

function spawnItem(ctx: Ctx, r: Rules, c: Counters, atGenesis: boolean): void {
  const rng = ctx.rng;
  const id = itemId(c.nextItem++);
  const x = rng.int(0, r.worldSize - 1);
  const y = rng.int(0, r.worldSize - 1);
  const roll = rng.int(0, 99);
  let item: Item;
  if (roll < 58) item = { kind: 'coin', x, y, value: rng.int(1, 5), hp: 1, buried: true, power: null, diggers: [], expiresTick: 0 };
  else if (roll < 78) item = { kind: 'gem', x, y, value: rng.int(10, 30), hp: 2, buried: true, power: null, diggers: [], expiresTick: 0 };
  else if (roll < 92) item = { kind: 'chest', x, y, value: rng.int(20, 120), hp: rng.int(3, 8), buried: true, power: null, diggers: [], expiresTick: 0 };
  else {
    // Power-ups lie on the surface. Those of the initial world stay; spawned ones expire,
    // scheduled by tick so that expiry costs nothing in the ticks in between.
    const expiresTick = atGenesis ? 0 : ctx.tick + r.lootTicks;
    item = { kind: 'power', x, y, value: 0, hp: 0, buried: false, power: POWER_KINDS[rng.int(0, POWER_KINDS.length - 1)]!, diggers: [], expiresTick };
    if (expiresTick !== 0) schedule(ctx.tables.timers, expiresTick, 'items', id);
  }
  ctx.tables.items.set(id, item);
  indexItem(ctx.tables.cells, r.cellSize, id, x, y, item.buried);
  c.items++;
}

function removeItem(ctx: Ctx, r: Rules, id: string, x: number, y: number): void {
  ctx.tables.items.delete(id);
  unindexItem(ctx.tables.cells, r.cellSize, id, x, y);
  counters(ctx).items--;
}

/** The online player, or a rejection. */
function onlinePlayer(ctx: Ctx, id: string): Readonly<Player> | Rejection {
  const p = ctx.tables.players.get(id);
  if (p === undefined) return reject('UNKNOWN_PLAYER', `no player "${id}" has joined`);
  if (!p.online) return reject('PLAYER_OFFLINE', `player "${id}" has left`);
  return p;
}

function isRejection(v: unknown): v is Rejection {
  return (v as Rejection).rejected !== undefined;
}

function outOfBounds(r: Rules, x: number, y: number): Rejection | null {
  if (x < r.worldSize && y < r.worldSize) return null;
  return reject('OUT_OF_BOUNDS', `(${x}, ${y}) is outside the world [0, ${r.worldSize})`);
}

export interface TreasureHuntBuild {
  version: 1 | 2;
  splitter?: LootSplitter;
}

function build(b: TreasureHuntBuild): Reducer {
  const splitter = b.splitter ?? keyOrderSplitter;
  const v2 = b.version >= 2;

  function dig(ctx: Ctx, r: Rules, playerId: string, p: Readonly<Player>, id: string): void {
    const items = ctx.tables.items;
    const item = items.mut(id)!;
    const work = digWorkOf(p, ctx.tick, r);
    if (item.kind === 'chest') {
      const d = item.diggers;
      // Kept sorted by player id: the split must not depend on who dug first.
      let i = 0;
      while (i < d.length && d[i]![0] < playerId) i++;
      if (i < d.length && d[i]![0] === playerId) d[i]![1] += work;
      else d.splice(i, 0, [playerId, work]);
      splitter.recordWork(ctx, id, playerId, work);
    }
    item.hp = item.hp > work ? item.hp - work : 0;
    if (item.hp > 0) return;
    if (item.kind === 'chest') {
      splitter.split(ctx, id, item, (player, coins) => award(ctx, player, coins, coins, 0));
      award(ctx, playerId, 0, v2 ? 1 : 0, 1); // reducer 2: the finisher's bonus point
      counters(ctx).chestsOpened++;
      ctx.emit({ event: 'chest.opened', item: id, by: playerId, value: item.value, diggers: item.diggers.length });
    } else {
      award(ctx, playerId, item.value, item.value, 1);
    }
    removeItem(ctx, r, id, item.x, item.y);
  }

  /** After a move to (x, y): reaching the next waypoint of the player's quest advances it; the last one completes it. */
  function progressQuest(ctx: Ctx, playerId: string, p: Readonly<Player>, x: number, y: number): void {
    const questId = p.quest!;
    const q = ctx.tables.quests.get(questId);
    if (q === undefined || ctx.tick > q.endTick) {
      const pm = ctx.tables.players.mut(playerId)!;
      pm.quest = null;
      pm.questStep = 0;
      return;
    }
    // A re-published quest may have fewer waypoints than the step reached: it is then done.
    let step = p.questStep;
    if (step < q.waypoints.length) {
      const wp = q.waypoints[step]!;
      if (dist2(x, y, wp.x, wp.y) > q.radius * q.radius) return;
      step++;
    }
    const pm = ctx.tables.players.mut(playerId)!;
    if (step < q.waypoints.length) {
      pm.questStep = step;
      return;
    }
    pm.quest = null;
    pm.questStep = 0;
    if (q.power !== null) grantPower(ctx, playerId, pm, q.power);
    award(ctx, playerId, q.rewardCoins, q.rewardScore, 0);
    ctx.tables.quests.mut(questId)!.completions++;
    counters(ctx).questsCompleted++;
    ctx.emit({ event: 'quest.completed', quest: questId, player: playerId });
  }

  function grantPower(ctx: Ctx, playerId: string, p: Player, kind: PowerKind): void {
    const r = rules(ctx);
    p.power = kind;
    p.powerUntilTick = ctx.tick + r.powerUpTicks;
    schedule(ctx.tables.timers, p.powerUntilTick, 'power', playerId);
  }

  function apply(ctx: Ctx, input: Input): void | Rejection {
    const r = rules(ctx);
    const tables = ctx.tables;
    switch (input.type) {
      case 'player.move': {
        const { player, x, y } = input.payload;
        const p = onlinePlayer(ctx, player);
        if (isRejection(p)) return p;
        const oob = outOfBounds(r, x, y);
        if (oob) return oob;
        const at = tables.positions.get(player)!;
        const speed = speedOf(p, ctx.tick, r);
        if (dist2(at.x, at.y, x, y) > speed * speed) return reject('MOVE_TOO_FAR', `(${at.x}, ${at.y}) → (${x}, ${y}) is farther than ${speed}`);
        const pos = tables.positions.mut(player)!;
        pos.x = x;
        pos.y = y;
        if (p.quest !== null) progressQuest(ctx, player, p, x, y);
        return;
      }
      case 'item.dig': {
        const player = input.payload.player;
        const p = onlinePlayer(ctx, player);
        if (isRejection(p)) return p;
        const at = tables.positions.get(player)!;
        let id: string | null;
        if (input.version === 1) {
          const { x, y } = input.payload;
          const oob = outOfBounds(r, x, y);
          if (oob) return oob;
          if (dist2(at.x, at.y, x, y) > r.reach * r.reach) return reject('DIG_TOO_FAR', `spot (${x}, ${y}) is farther than ${r.reach} from (${at.x}, ${at.y})`);
          id = nearestItem(tables.cells, r.cellSize, x, y, r.digRadius, BURIED);
        } else {
          id = input.payload.item;
          const item = tables.items.get(id);
          if (item === undefined) return reject('UNKNOWN_ITEM', `no item "${id}"`);
          if (!item.buried) return reject('NOT_BURIED', `item "${id}" lies on the surface: pick it up`);
          if (dist2(at.x, at.y, item.x, item.y) > r.reach * r.reach) return reject('DIG_TOO_FAR', `item "${id}" at (${item.x}, ${item.y}) is farther than ${r.reach} from (${at.x}, ${at.y})`);
        }
        // A miss (nothing buried within the radius) changes nothing.
        if (id !== null) dig(ctx, r, player, p, id);
        return;
      }
      case 'item.pickup': {
        const { player, item: id } = input.payload;
        const p = onlinePlayer(ctx, player);
        if (isRejection(p)) return p;
        const item = tables.items.get(id);
        if (item === undefined) return reject('UNKNOWN_ITEM', `no item "${id}"`);
        if (item.buried) return reject('ITEM_BURIED', `item "${id}" is buried: dig it`);
        const at = tables.positions.get(player)!;
        const radius = pickupRadiusOf(p, ctx.tick, r);
        if (dist2(at.x, at.y, item.x, item.y) > radius * radius) return reject('PICKUP_TOO_FAR', `item "${id}" at (${item.x}, ${item.y}) is farther than ${radius} from (${at.x}, ${at.y})`);
        if (item.kind === 'power') {
          const pm = tables.players.mut(player)!;
          pm.finds++;
          grantPower(ctx, player, pm, item.power!);
        } else {
          award(ctx, player, item.value, 0, 1); // loot: coins back in circulation, no points
        }
        removeItem(ctx, r, id, item.x, item.y);
        return;
      }
      case 'player.join': {
        const { player, name, x, y } = input.payload;
        const p = tables.players.get(player);
        if (p !== undefined && p.online) return reject('ALREADY_ONLINE', `player "${player}" is already online`);
        const oob = outOfBounds(r, x, y);
        if (oob) return oob;
        const c = counters(ctx);
        c.playersOnline++;
        if (p === undefined) {
          c.playersTotal++;
          tables.players.set(player, { name, online: true, score: 0, coins: 0, finds: 0, power: null, powerUntilTick: 0, quest: null, questStep: 0, joinedTick: ctx.tick });
        } else {
          const pm = tables.players.mut(player)!;
          pm.name = name;
          pm.online = true;
        }
        tables.positions.set(player, { x, y });
        return;
      }
      case 'player.leave': {
        const { player } = input.payload;
        const p = onlinePlayer(ctx, player);
        if (isRejection(p)) return p;
        const pm = tables.players.mut(player)!;
        pm.online = false;
        pm.quest = null;
        pm.questStep = 0;
        const c = counters(ctx);
        c.playersOnline--;
        if (pm.coins > 0) {
          // The coins carried drop where the player stood, for anyone to pick up until they expire.
          const at = tables.positions.get(player)!;
          const id = itemId(c.nextItem++);
          const expiresTick = ctx.tick + r.lootTicks;
          tables.items.set(id, { kind: 'loot', x: at.x, y: at.y, value: pm.coins, hp: 0, buried: false, power: null, diggers: [], expiresTick });
          indexItem(tables.cells, r.cellSize, id, at.x, at.y, false);
          schedule(tables.timers, expiresTick, 'items', id);
          c.items++;
          pm.coins = 0;
        }
        return;
      }
      case 'quest.publish': {
        const q = input.payload;
        for (let i = 0; i < q.waypoints.length; i++) {
          const oob = outOfBounds(r, q.waypoints[i]!.x, q.waypoints[i]!.y);
          if (oob) return { rejected: oob.rejected, reason: `waypoints[${i}]: ${oob.reason}` };
        }
        const old = tables.quests.get(q.quest);
        tables.quests.set(q.quest, {
          name: q.name,
          waypoints: q.waypoints.map((w) => ({ x: w.x, y: w.y })),
          radius: q.radius,
          rewardCoins: q.rewardCoins,
          rewardScore: q.rewardScore,
          power: q.power,
          startTick: ctx.tick,
          endTick: ctx.tick + q.durationTicks,
          completions: old === undefined ? 0 : old.completions,
          revision: old === undefined ? 1 : old.revision + 1,
        });
        return;
      }
      case 'quest.accept': {
        const { player, quest } = input.payload;
        const p = onlinePlayer(ctx, player);
        if (isRejection(p)) return p;
        const q = tables.quests.get(quest);
        if (q === undefined) return reject('UNKNOWN_QUEST', `no quest "${quest}" was published`);
        if (ctx.tick > q.endTick) return reject('QUEST_OVER', `quest "${quest}" ended at tick ${q.endTick}`);
        const pm = tables.players.mut(player)!;
        pm.quest = quest;
        pm.questStep = 0;
        return;
      }
    }
  }

  return defineReducer({
    name: TREASURE_HUNT,
    version: b.version,
    tables: TABLES,
    // Reducer 1 knows only the v1 payload of item.dig.
    inputs: v2 ? INPUTS_V2 : (INPUTS_V1 as typeof INPUTS_V2),
    init(ctx) {
      splitter.reset(ctx);
      const r = resolveRules(ctx.params);
      ctx.tables.meta.set('rules', r);
      const c: Counters = { nextItem: 1, items: 0, playersOnline: 0, playersTotal: 0, chestsOpened: 0, questsCompleted: 0 };
      for (let i = 0; i < r.itemsInitial; i++) spawnItem(ctx, r, c, true);
      ctx.tables.meta.set('counters', c);
      ctx.tables.leaderboard.set(LEADERBOARD_KEY, { top: [] });
    },
    apply,
    onTick(ctx) {
      const r = rules(ctx);
      const tables = ctx.tables;
      const key = 't' + ctx.tick;
      const due = tables.timers.get(key);
      if (due !== undefined) {
        for (const id of due.power) {
          const p = tables.players.get(id);
          // A newer power-up moved the expiry: this timer is stale.
          if (p === undefined || p.powerUntilTick !== ctx.tick) continue;
          const pm = tables.players.mut(id)!;
          pm.power = null;
          pm.powerUntilTick = 0;
        }
        for (const id of due.items) {
          const item = tables.items.get(id);
          if (item !== undefined && item.expiresTick === ctx.tick) removeItem(ctx, r, id, item.x, item.y);
        }
        tables.timers.delete(key);
      }
      const seen = tables.meta.get('counters') as Counters;
      const n = Math.min(r.spawnPerTick, r.itemsMax - seen.items);
      if (n > 0) {
        const c = counters(ctx);
        for (let i = 0; i < n; i++) spawnItem(ctx, r, c, false);
      }
    },
  });
}

/** Reducer version 1: `item.dig` accepts v1 payloads only. */
export const treasureHuntV1: Reducer = build({ version: 1 });
/** Reducer version 2: `item.dig` accepts v1 and v2 payloads; the chest finisher earns a bonus point. */
export const treasureHuntV2: Reducer = build({ version: 2 });

/**
 * A deliberately buggy build of version 1 (same name, same version): it stands for a
 * production build that desynced. Fixtures recorded with it replay with `treasureHuntV1`,
 * and `playout verify` must localise the first diverging tick, entry and record.
 *
 * The bug, a realistic one: to avoid re-reading the item record, it keeps a per-process cache
 * of the work done on each chest, outside the state tables, and splits a chest's loot by
 * accumulating floating-point fractions in the cache's arrival (insertion) order instead of the
 * record's player-id order. The state it writes is otherwise identical, so it agrees with v1
 * until an `item.dig` input opens a chest that at least two players dug and whose value does not
 * divide evenly by their work, with the first digger's id sorting after another digger's (or a
 * running float sum landing just below an integer). The digests then differ from the tick of
 * that input on, in the `players` records (coins, score) of the chest's diggers, and possibly the
 * leaderboard. With the load generator's guilds digging chests together this happens early:
 * between ticks 5 and 35 over 36 generated logs (6 seeds × 6 typical option sets), and in
 * practice never at tick 0, which players spend joining. Being outside the tables, the cache is
 * also lost by a snapshot restore and shared by every machine in the process: the second way it
 * breaks determinism.
 */
export const treasureHuntNondeterministicV1: Reducer = build({ version: 1, splitter: arrivalOrderSplitter() });

function arrivalOrderSplitter(): LootSplitter {
  const work = new Map<string, Map<string, number>>();
  return {
    reset(ctx) {
      const prefix = ctx.shard + '/';
      for (const key of [...work.keys()]) if (key.startsWith(prefix)) work.delete(key);
    },
    recordWork(ctx, itemId, player, w) {
      const key = ctx.shard + '/' + itemId;
      let m = work.get(key);
      if (m === undefined) work.set(key, (m = new Map()));
      m.set(player, (m.get(player) ?? 0) + w);
    },
    split(ctx, itemId, item, awardTo) {
      const key = ctx.shard + '/' + itemId;
      const m = work.get(key) ?? new Map(item.diggers.map(([p, w]) => [p, w] as [string, number]));
      work.delete(key);
      let total = 0;
      for (const w of m.values()) total += w;
      let acc = 0;
      let given = 0;
      let left = m.size;
      for (const [player, w] of m) {
        acc += (item.value * w) / total;
        const upTo = --left === 0 ? item.value : Math.floor(acc);
        awardTo(player, upTo - given);
        given = upTo;
      }
    },
  };
}

/** Both versions of the game, for nodes and tools. */
export function treasureHuntRegistry(): ReducerRegistry {
  return new ReducerRegistry([treasureHuntV1, treasureHuntV2]);
}

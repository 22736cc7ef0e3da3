import { describe, expect, it } from 'vitest';
import { isPlayoutError, ReducerRegistry, Sequencer, ShardMachine } from '../../../src/core/index.js';
import { powerLevel, resolveRules, TREASURE_HUNT, treasureHuntRegistry, treasureHuntV1, treasureHuntV2, type Leaderboard } from '../../../src/games/treasure-hunt/index.js';
import { Harness, SMALL_WORLD } from './harness.js';

const A = 'p000001';
const B = 'p000002';
const C = 'p000003';

function join(h: Harness, player: string, x: number, y: number) {
  return h.input('player.join', { player, name: `n${player}`, x, y });
}

describe('treasure-hunt: players', () => {
  it('joins, moves within its speed, leaves and rejoins keeping its score', () => {
    const h = new Harness();
    expect(join(h, A, 100, 100).rejected).toBeNull();
    expect(h.position(A)).toEqual({ x: 100, y: 100 });
    expect(h.input('player.move', { player: A, x: 108, y: 100 }).rejected).toBeNull();
    expect(h.input('player.move', { player: A, x: 113, y: 104 }).rejected).toBeNull(); // 5² + 4² = 41 ≤ 64
    expect(h.position(A)).toEqual({ x: 113, y: 104 });
    h.player(A); // exists
    expect(h.input('player.leave', { player: A }).rejected).toBeNull();
    expect(h.player(A)!.online).toBe(false);
    expect(join(h, A, 10, 10).rejected).toBeNull();
    expect(h.player(A)!.online).toBe(true);
    expect(h.position(A)).toEqual({ x: 10, y: 10 });
    const counters = h.table('meta').peek('counters') as { playersOnline: number; playersTotal: number };
    expect(counters).toMatchObject({ playersOnline: 1, playersTotal: 1 });
  });

  it.each([
    ['move of an unknown player', (h: Harness) => h.input('player.move', { player: 'ghost', x: 1, y: 1 }), 'UNKNOWN_PLAYER'],
    ['move of a player who left', (h: Harness) => (h.input('player.leave', { player: B }), h.input('player.move', { player: B, x: 1, y: 1 })), 'PLAYER_OFFLINE'],
    ['join of a player already online', (h: Harness) => join(h, A, 3, 3), 'ALREADY_ONLINE'],
    ['join outside the world', (h: Harness) => join(h, C, 256, 0), 'OUT_OF_BOUNDS'],
    ['move outside the world', (h: Harness) => h.input('player.move', { player: A, x: 100, y: 256 }), 'OUT_OF_BOUNDS'],
    ['move one unit farther than the speed', (h: Harness) => h.input('player.move', { player: A, x: 109, y: 100 }), 'MOVE_TOO_FAR'],
    ['leave of a player who left', (h: Harness) => (h.input('player.leave', { player: B }), h.input('player.leave', { player: B })), 'PLAYER_OFFLINE'],
    ['dig of a spot beyond reach', (h: Harness) => h.input('item.dig', { player: A, x: 107, y: 100 }), 'DIG_TOO_FAR'],
    ['pickup of an unknown item', (h: Harness) => h.input('item.pickup', { player: A, item: 'i99999999' }), 'UNKNOWN_ITEM'],
    ['accept of an unknown quest', (h: Harness) => h.input('quest.accept', { player: A, quest: 'nope' }), 'UNKNOWN_QUEST'],
    ['quest with a waypoint outside the world', (h: Harness) => h.input('quest.publish', { quest: 'q', name: 'q', waypoints: [{ x: 1, y: 999 }], radius: 1, rewardCoins: 1, rewardScore: 1, power: null, durationTicks: 5 }), 'OUT_OF_BOUNDS'],
  ])('rejects %s as data', (_name, act, code) => {
    const h = new Harness();
    join(h, A, 100, 100);
    join(h, B, 50, 50);
    const before = h.machine.exportState();
    const outcome = act(h);
    expect(outcome.rejected).toBe(code);
    expect(outcome.reason).toEqual(expect.any(String));
    // A rejected input changes nothing (the leave in the setup of some cases aside).
    if (!String(_name).includes('left')) expect(h.machine.exportState()).toEqual(before);
  });

  it('refuses payloads that break the schema before they reach the log', () => {
    const h = new Harness();
    const cases: [string, number, unknown, string][] = [
      ['player.move', 1, { player: A, x: -1, y: 0 }, 'PLAYOUT_INPUT_INVALID'],
      ['player.move', 1, { player: A, x: 1.5, y: 0 }, 'PLAYOUT_INPUT_INVALID'],
      ['player.join', 1, { player: A, name: 'x', x: 1, y: 1, admin: true }, 'PLAYOUT_INPUT_INVALID'],
      ['player.join', 1, { player: 'Not An Id', name: 'x', x: 1, y: 1 }, 'PLAYOUT_INPUT_INVALID'],
      ['player.teleport', 1, { player: A }, 'PLAYOUT_INPUT_TYPE_UNKNOWN'],
      ['item.dig', 2, { player: A, item: 'i00000001' }, 'PLAYOUT_INPUT_TYPE_UNKNOWN'],
    ];
    for (const [type, version, payload, code] of cases) {
      let caught: unknown = null;
      try {
        h.input(type, payload, version);
      } catch (err) {
        caught = err;
      }
      expect(isPlayoutError(caught) ? caught.code : caught, `${type}@${version} ${JSON.stringify(payload)}`).toBe(code);
    }
    expect(h.log).toHaveLength(1); // only the genesis
  });
});

describe('treasure-hunt: digging', () => {
  it('opens a coin dug at its spot and pays its value in coins and points', () => {
    const h = new Harness();
    const [id, coin] = h.isolated('coin');
    join(h, A, coin.x, coin.y);
    expect(h.input('item.dig', { player: A, x: coin.x, y: coin.y }).rejected).toBeNull();
    expect(h.item(id)).toBeUndefined();
    expect(h.player(A)).toMatchObject({ coins: coin.value, score: coin.value, finds: 1 });
    const counters = h.table('meta').peek('counters') as { items: number };
    expect(counters.items).toBe(SMALL_WORLD.itemsInitial! - 1);
  });

  it.each([
    // [spot offset from the item, hits?]
    [[4, 0], true],
    [[0, -4], true],
    [[3, 2], true], // 13 ≤ 16
    [[3, 3], false], // 18 > 16
    [[5, 0], false],
  ] as const)('a dig at offset %j from a buried item hits it: %s (dig radius 4)', ([dx, dy], hits) => {
    const h = new Harness();
    const [id, coin] = h.isolated('coin');
    join(h, A, coin.x + dx, coin.y + dy);
    expect(h.input('item.dig', { player: A, x: coin.x + dx, y: coin.y + dy }).rejected).toBeNull();
    expect(h.item(id) === undefined).toBe(hits);
    expect(h.player(A)!.finds).toBe(hits ? 1 : 0);
  });

  it.each([
    [[6, 0], null],
    [[0, 6], null],
    [[5, 4], 'DIG_TOO_FAR'], // 41 > 36
    [[7, 0], 'DIG_TOO_FAR'],
  ] as const)('a dig at offset %j from the player is %s (reach 6)', ([dx, dy], code) => {
    const h = new Harness();
    join(h, A, 100, 100);
    expect(h.input('item.dig', { player: A, x: 100 + dx, y: 100 + dy }).rejected).toBe(code);
  });

  it('wears a gem down over two digs', () => {
    const h = new Harness();
    const [id, gem] = h.isolated('gem');
    join(h, A, gem.x, gem.y);
    h.input('item.dig', { player: A, x: gem.x, y: gem.y });
    expect(h.item(id)!.hp).toBe(1);
    h.input('item.dig', { player: A, x: gem.x, y: gem.y });
    expect(h.item(id)).toBeUndefined();
    expect(h.player(A)!.coins).toBe(gem.value);
  });

  it('splits a chest by work in player-id order, whatever order they dug in, and conserves its value', () => {
    const h = new Harness();
    const [id, chest] = h.isolated('chest');
    join(h, A, chest.x, chest.y);
    join(h, B, chest.x + 1, chest.y);
    join(h, C, chest.x, chest.y + 1);
    const order = [C, B, A, C, C, B, A, B];
    let opened = false;
    for (const p of order) {
      if (h.item(id) === undefined) break;
      const before = h.item(id)!;
      if (before.hp === 1) {
        // The last dig: predict the split from the recorded work (this digger adds 1).
        const work = new Map(before.diggers.map(([q, w]) => [q, w] as [string, number]));
        work.set(p, (work.get(p) ?? 0) + 1);
        const ids = [...work.keys()].sort();
        const total = ids.reduce((s, q) => s + work.get(q)!, 0);
        let cum = 0;
        let given = 0;
        const expected = new Map<string, number>();
        for (const q of ids) {
          cum += work.get(q)!;
          const upTo = Math.floor((chest.value * cum) / total);
          expected.set(q, upTo - given);
          given = upTo;
        }
        h.input('item.dig', { player: p, x: chest.x, y: chest.y });
        for (const q of ids) expect(h.player(q)!.coins, q).toBe(expected.get(q));
        expect(ids.reduce((s, q) => s + h.player(q)!.coins, 0)).toBe(chest.value);
        opened = true;
        break;
      }
      h.input('item.dig', { player: p, x: chest.x, y: chest.y });
      expect(h.item(id)!.diggers.map(([q]) => q)).toEqual([...new Set(h.item(id)!.diggers.map(([q]) => q))].sort());
    }
    expect(opened || chest.hp > order.length).toBe(true);
  });
});

describe('treasure-hunt: loot, power-ups and decay', () => {
  function dropLoot(h: Harness): { lootId: string; x: number; y: number; value: number } {
    const [, coin] = h.isolated('coin');
    join(h, A, coin.x, coin.y);
    h.input('item.dig', { player: A, x: coin.x, y: coin.y });
    const value = h.player(A)!.coins;
    const nextItem = (h.table('meta').peek('counters') as { nextItem: number }).nextItem;
    h.input('player.leave', { player: A });
    const lootId = 'i' + String(nextItem).padStart(8, '0');
    expect(h.item(lootId)).toMatchObject({ kind: 'loot', x: coin.x, y: coin.y, value, hp: 0 });
    expect(h.player(A)!.coins).toBe(0);
    return { lootId, x: coin.x, y: coin.y, value };
  }

  it.each([
    [[3, 0], null],
    [[2, 2], null],
    [[3, 1], 'PICKUP_TOO_FAR'],
    [[0, 4], 'PICKUP_TOO_FAR'],
  ] as const)('picks up loot dropped by a leaving player at offset %j: %s (pickup radius 3)', ([dx, dy], code) => {
    const h = new Harness();
    const loot = dropLoot(h);
    join(h, B, loot.x + dx, loot.y + dy);
    expect(h.input('item.pickup', { player: B, item: loot.lootId }).rejected).toBe(code);
    if (code === null) {
      expect(h.player(B)).toMatchObject({ coins: loot.value, score: 0 });
      expect(h.item(loot.lootId)).toBeUndefined();
    }
  });

  it('expires loot at its tick, from the timers table', () => {
    const h = new Harness();
    const loot = dropLoot(h);
    const expires = h.item(loot.lootId)!.expiresTick;
    expect(expires).toBe(h.tick + SMALL_WORLD.lootTicks!);
    h.advanceTo(expires);
    expect(h.item(loot.lootId)).toBeDefined();
    h.closeTick();
    expect(h.item(loot.lootId)).toBeUndefined();
    expect(h.table('timers').size).toBe(0);
  });

  it('refuses to pick up a buried item and to dig a surface item by name', () => {
    const h = new Harness({ ...SMALL_WORLD }, { reducerVersion: 2 });
    const [coinId, coin] = h.isolated('coin');
    join(h, A, coin.x, coin.y);
    expect(h.input('item.pickup', { player: A, item: coinId }).rejected).toBe('ITEM_BURIED');
    const loot = (() => {
      h.input('item.dig', { player: A, x: coin.x, y: coin.y });
      const next = (h.table('meta').peek('counters') as { nextItem: number }).nextItem;
      h.input('player.leave', { player: A });
      return 'i' + String(next).padStart(8, '0');
    })();
    join(h, B, coin.x, coin.y);
    expect(h.input('item.dig', { player: B, item: loot }, 2).rejected).toBe('NOT_BURIED');
    expect(h.input('item.dig', { player: B, item: 'i77777777' }, 2).rejected).toBe('UNKNOWN_ITEM');
  });

  it('decays boots over thirds of their duration and clears them at expiry', () => {
    const h = new Harness();
    join(h, A, 100, 100);
    h.input('quest.publish', { quest: 'boots', name: 'Boots', waypoints: [{ x: 101, y: 100 }], radius: 0, rewardCoins: 5, rewardScore: 7, power: 'boots', durationTicks: 100 });
    h.input('quest.accept', { player: A, quest: 'boots' });
    h.input('player.move', { player: A, x: 101, y: 100 });
    const granted = h.tick;
    expect(h.player(A)).toMatchObject({ power: 'boots', powerUntilTick: granted + 30, coins: 5, score: 7, quest: null });
    // speed 8 plus (8 × level) >> 1: level 3 → 20, 2 → 16, 1 → 12, 0 → 8.
    const cases: [number, number, string | null][] = [
      [granted, 20, null],
      [granted + 9, 21, 'MOVE_TOO_FAR'],
      [granted + 10, 16, null],
      [granted + 10, 17, 'MOVE_TOO_FAR'],
      [granted + 20, 12, null],
      [granted + 29, 13, 'MOVE_TOO_FAR'],
      [granted + 30, 9, 'MOVE_TOO_FAR'],
      [granted + 30, 8, null],
    ];
    let x = 101;
    for (const [tick, step, code] of cases) {
      h.advanceTo(tick);
      const r = h.input('player.move', { player: A, x: x + step, y: 100 });
      expect(r.rejected, `tick ${tick} step ${step}`).toBe(code);
      if (code === null) x += step;
    }
    expect(h.player(A)!.power).toBe('boots'); // still in the record during its expiry tick
    h.closeTick();
    expect(h.player(A)).toMatchObject({ power: null, powerUntilTick: 0 });
  });

  it('computes decay levels 3, 2, 1, 0', () => {
    const p = { power: 'shovel' as const, powerUntilTick: 130 };
    expect([100, 109, 110, 119, 120, 129, 130, 131].map((t) => powerLevel(p, t, 30))).toEqual([3, 3, 2, 2, 1, 1, 0, 0]);
    expect(powerLevel({ power: null, powerUntilTick: 0 }, 5, 30)).toBe(0);
  });

  it('a shovel digs harder, and a newer power-up is not cleared by the older one\'s timer', () => {
    const h = new Harness();
    const [id, chest] = h.isolated('chest');
    join(h, A, chest.x, chest.y);
    const publish = (quest: string) =>
      h.input('quest.publish', { quest, name: quest, waypoints: [{ x: chest.x, y: chest.y }], radius: 2, rewardCoins: 0, rewardScore: 0, power: 'shovel', durationTicks: 500 });
    publish('s1');
    h.input('quest.accept', { player: A, quest: 's1' });
    h.input('player.move', { player: A, x: chest.x, y: chest.y });
    expect(h.player(A)!.power).toBe('shovel');
    const hp = h.item(id)!.hp;
    h.input('item.dig', { player: A, x: chest.x, y: chest.y });
    if (hp > 4) expect(h.item(id)!.hp).toBe(hp - 4); // work 1 + level 3
    const firstUntil = h.player(A)!.powerUntilTick;
    h.advanceTo(h.tick + 5);
    publish('s2');
    h.input('quest.accept', { player: A, quest: 's2' });
    h.input('player.move', { player: A, x: chest.x, y: chest.y });
    const secondUntil = h.player(A)!.powerUntilTick;
    expect(secondUntil).toBe(firstUntil + 5);
    h.advanceTo(firstUntil + 1);
    expect(h.player(A)).toMatchObject({ power: 'shovel', powerUntilTick: secondUntil });
    h.advanceTo(secondUntil + 1);
    expect(h.player(A)!.power).toBeNull();
  });
});

describe('treasure-hunt: leaderboard', () => {
  it('keeps the top 10 by score, ties by player id, updated as scores rise', () => {
    const h = new Harness({ ...SMALL_WORLD, itemsInitial: 0 });
    const players = Array.from({ length: 14 }, (_, i) => `p${String(i).padStart(6, '0')}`);
    for (const p of players) join(h, p, 10, 10);
    // Quest rewards are an exact way to give points: one quest per player and amount.
    const give = (p: string, points: number, n: number) => {
      const q = `g${n}`;
      h.input('quest.publish', { quest: q, name: q, waypoints: [{ x: 10, y: 11 }], radius: 0, rewardCoins: 0, rewardScore: points, power: null, durationTicks: 10 });
      h.input('quest.accept', { player: p, quest: q });
      h.input('player.move', { player: p, x: 10, y: 11 });
      h.input('player.move', { player: p, x: 10, y: 10 });
    };
    const scores = new Map<string, number>();
    let n = 0;
    const points = [5, 9, 5, 1, 12, 7, 7, 3, 30, 2, 8, 5, 6, 4];
    players.forEach((p, i) => {
      give(p, points[i]!, n++);
      scores.set(p, points[i]!);
    });
    for (const [p, more] of [[players[3]!, 20], [players[9]!, 3], [players[13]!, 1]] as const) {
      give(p, more, n++);
      scores.set(p, scores.get(p)! + more);
    }
    const expected = [...scores].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 10).map(([player, score]) => ({ player, score }));
    expect((h.table('leaderboard').peek('top10') as Leaderboard).top).toEqual(expected);
  });
});

describe('treasure-hunt: quests', () => {
  const publish = (h: Harness, quest: string, waypoints: { x: number; y: number }[], durationTicks = 50) =>
    h.input('quest.publish', { quest, name: quest, waypoints, radius: 2, rewardCoins: 11, rewardScore: 13, power: null, durationTicks });

  it('walks the waypoints in order and pays on the last one', () => {
    const h = new Harness();
    join(h, A, 50, 50);
    publish(h, 'trail', [{ x: 56, y: 50 }, { x: 60, y: 50 }, { x: 66, y: 50 }]);
    h.input('quest.accept', { player: A, quest: 'trail' });
    h.input('player.move', { player: A, x: 55, y: 50 }); // within 2 of waypoint 0
    expect(h.player(A)!.questStep).toBe(1);
    h.input('player.move', { player: A, x: 63, y: 50 }); // 3 from waypoint 1: not reached
    expect(h.player(A)!.questStep).toBe(1);
    h.input('player.move', { player: A, x: 61, y: 50 });
    expect(h.player(A)!.questStep).toBe(2);
    h.input('player.move', { player: A, x: 66, y: 51 });
    expect(h.player(A)).toMatchObject({ quest: null, questStep: 0, coins: 11, score: 13 });
    expect(h.table('quests').peek('trail')).toMatchObject({ completions: 1, revision: 1 });
  });

  it('patches a live quest by publishing it again', () => {
    const h = new Harness();
    join(h, A, 50, 50);
    publish(h, 'live', [{ x: 90, y: 90 }, { x: 95, y: 95 }]);
    h.input('quest.accept', { player: A, quest: 'live' });
    publish(h, 'live', [{ x: 52, y: 50 }], 80); // live ops move the event next to the player
    expect(h.table('quests').peek('live')).toMatchObject({ revision: 2, waypoints: [{ x: 52, y: 50 }], endTick: h.tick + 80 });
    h.input('player.move', { player: A, x: 51, y: 50 });
    expect(h.player(A)).toMatchObject({ quest: null, coins: 11 });
  });

  it('refuses to accept a quest that is over and drops it from a player who outlasts it', () => {
    const h = new Harness();
    join(h, A, 50, 50);
    join(h, B, 50, 50);
    publish(h, 'short', [{ x: 90, y: 90 }], 3);
    h.input('quest.accept', { player: A, quest: 'short' });
    h.advanceTo(h.tick + 4);
    expect(h.input('quest.accept', { player: B, quest: 'short' }).rejected).toBe('QUEST_OVER');
    h.input('player.move', { player: A, x: 51, y: 50 });
    expect(h.player(A)!.quest).toBeNull();
  });
});

describe('treasure-hunt: versions', () => {
  it('switches to reducer 2 at the exact tick after the upgrade entry; dig v2 is refused before it', () => {
    const h = new Harness();
    const [id, coin] = h.isolated('coin');
    join(h, A, coin.x, coin.y);
    h.advanceTo(3);
    h.upgrade(2);
    // The upgrade takes effect at the next tick: still version 1 inside tick 3.
    expect(() => h.input('item.dig', { player: A, item: id }, 2)).toThrow(expect.objectContaining({ code: 'PLAYOUT_INPUT_TYPE_UNKNOWN' }));
    expect(h.closeTick()).toMatchObject({ tick: 3, reducerVersion: 1 });
    expect(h.input('item.dig', { player: A, item: id }, 2).rejected).toBeNull();
    expect(h.item(id)).toBeUndefined();
    expect(h.input('item.dig', { player: A, x: coin.x, y: coin.y }, 1).rejected).toBeNull(); // v1 payloads still accepted
    expect(h.closeTick()).toMatchObject({ tick: 4, reducerVersion: 2 });
    expect(h.digests.map((d) => d.reducerVersion)).toEqual([1, 1, 1, 1, 2]);
  });

  it('reducer 2 pays the chest finisher a bonus point; reducer 1 does not', () => {
    const outcome = (version: number) => {
      const h = new Harness(SMALL_WORLD, { reducerVersion: version });
      const [id, chest] = h.isolated('chest');
      join(h, A, chest.x, chest.y);
      while (h.item(id) !== undefined) h.input('item.dig', { player: A, x: chest.x, y: chest.y });
      return { coins: h.player(A)!.coins, score: h.player(A)!.score, value: chest.value };
    };
    const v1 = outcome(1);
    const v2 = outcome(2);
    expect(v1).toEqual({ coins: v1.value, score: v1.value, value: v1.value });
    expect(v2).toEqual({ coins: v2.value, score: v2.value + 1, value: v2.value });
  });

  it('declares item.dig v1 only in reducer 1 and v1 + v2 in reducer 2', () => {
    expect(Object.keys(treasureHuntV1.inputs['item.dig']!)).toEqual(['1']);
    expect(Object.keys(treasureHuntV2.inputs['item.dig']!)).toEqual(['1', '2']);
    expect(treasureHuntRegistry().list().map((r) => `${r.name}@${r.version}`)).toEqual(['treasure-hunt@1', 'treasure-hunt@2']);
  });
});

describe('treasure-hunt: genesis params', () => {
  it('fills defaults and derives itemsMax', () => {
    expect(resolveRules(null)).toMatchObject({ worldSize: 1024, itemsInitial: 1000, itemsMax: 1250, cellSize: 16 });
    expect(resolveRules({ itemsInitial: 10 })).toMatchObject({ itemsMax: 110 });
  });

  it.each([
    [{ worldSize: 8 }, 'payload.params.worldSize'],
    [{ itemsInitial: -1 }, 'payload.params.itemsInitial'],
    [{ speed: 1.5 }, 'payload.params.speed'],
    [{ colour: 'red' }, 'payload.params'],
  ])('refuses genesis params %j at %s', (params, path) => {
    const registry = new ReducerRegistry([treasureHuntV1]);
    const genesis = Sequencer.genesis({ shard: 'bad', reducer: treasureHuntV1, seed: 1, tickMs: 50, params });
    let caught: unknown = null;
    try {
      new ShardMachine(registry).apply(genesis);
    } catch (err) {
      caught = err;
    }
    expect(isPlayoutError(caught, 'PLAYOUT_GENESIS_INVALID')).toBe(true);
    expect((caught as { path: string }).path).toBe(path);
  });

  it('spawns itemsInitial items from the shard seed, the same for the same seed', () => {
    const a = new Harness(SMALL_WORLD, { seed: 9 });
    const b = new Harness(SMALL_WORLD, { seed: 9 });
    const c = new Harness(SMALL_WORLD, { seed: 10 });
    expect(a.items()).toHaveLength(SMALL_WORLD.itemsInitial!);
    expect(a.items()).toEqual(b.items());
    expect(a.items()).not.toEqual(c.items());
    expect(TREASURE_HUNT).toBe('treasure-hunt');
  });
});

import { describe, expect, it } from 'vitest';
import { GlobalsGuard } from '../../../src/adapters/determinism-guard.js';
import { LoadGenerator, resolveRules, type LoadInput, type LoadOptions } from '../../../src/games/treasure-hunt/index.js';

function randomSeed(): number {
  const fromEnv = process.env['SEED'];
  return fromEnv !== undefined ? Number(fromEnv) >>> 0 : Math.floor(Math.random() * 0xffffffff);
}

function run(options: LoadOptions, ticks: number): LoadInput[][] {
  const g = new LoadGenerator(options);
  const guard = new GlobalsGuard();
  // The guard poisons Math.random, Date, timers and crypto: the generator must not need them.
  return Array.from({ length: ticks }, (_, t) => guard.run({ reducer: 'load-generator', call: 'apply', inputType: null, seq: t }, () => g.next(t)));
}

describe('LoadGenerator', () => {
  it('produces the same inputs and ingestIds for the same seed, without the wall clock or Math.random', () => {
    const seed = randomSeed();
    console.log(`LoadGenerator determinism: reproduce with seed=${seed}`);
    const options: LoadOptions = { seed, players: 50, inputsPerTick: 20, invalidRate: 0.1, retryRate: 0.05, digV2FromTick: 10, questEveryTicks: 5 };
    const a = run(options, 40);
    const b = run(options, 40);
    expect(JSON.stringify(b), `seed=${seed}`).toBe(JSON.stringify(a));
    const c = run({ ...options, seed: (seed + 1) >>> 0 }, 40);
    expect(JSON.stringify(c)).not.toBe(JSON.stringify(a));
    expect(a.every((tick) => tick.length === 20)).toBe(true);
  });

  it('gives every input a unique ingestId except deliberate retries', () => {
    const seed = randomSeed();
    console.log(`LoadGenerator ingestIds: reproduce with seed=${seed}`);
    const inputs = run({ seed, players: 30, inputsPerTick: 25, retryRate: 0.05 }, 60).flat();
    const fresh = inputs.filter((i) => i.intent !== 'retry').map((i) => i.ingestId);
    expect(new Set(fresh).size, `seed=${seed}`).toBe(fresh.length);
    const retries = inputs.filter((i) => i.intent === 'retry');
    expect(retries.length).toBeGreaterThan(0);
    for (const r of retries) expect(fresh).toContain(r.ingestId);
    expect(inputs.every((i) => i.ingestId!.startsWith(`lg${seed}.`))).toBe(true);
  });

  it('moves players within the speed limit and the world, and only after they joined', () => {
    const seed = randomSeed();
    console.log(`LoadGenerator moves: reproduce with seed=${seed}`);
    const params = { worldSize: 200, speed: 5 };
    const rules = resolveRules(params);
    const at = new Map<string, { x: number; y: number }>();
    const online = new Set<string>();
    for (const input of run({ seed, players: 40, inputsPerTick: 30, params }, 120).flat()) {
      const p = input.payload as { player: string; x: number; y: number };
      if (input.type === 'player.join') {
        expect(online.has(p.player), `seed=${seed}`).toBe(false);
        online.add(p.player);
        at.set(p.player, { x: p.x, y: p.y });
      } else if (input.type === 'player.leave') {
        expect(online.delete(p.player), `seed=${seed}`).toBe(true);
      } else if (input.type === 'player.move') {
        expect(online.has(p.player), `seed=${seed}`).toBe(true);
        const from = at.get(p.player)!;
        expect((p.x - from.x) ** 2 + (p.y - from.y) ** 2, `seed=${seed}`).toBeLessThanOrEqual(rules.speed ** 2);
        expect(p.x >= 0 && p.y >= 0 && p.x < 200 && p.y < 200, `seed=${seed}`).toBe(true);
        at.set(p.player, { x: p.x, y: p.y });
      } else if (input.type === 'item.dig') {
        expect(online.has(p.player), `seed=${seed}`).toBe(true);
      }
    }
  });

  it('sends item.dig v2 only from digV2FromTick, and bad inputs only when asked', () => {
    const clean = run({ seed: 3, players: 30, inputsPerTick: 30, digV2FromTick: null }, 50).flat();
    expect(clean.filter((i) => i.intent !== 'valid')).toHaveLength(0);
    expect(clean.filter((i) => i.type === 'item.dig' && i.version === 2)).toHaveLength(0);
    const dirty = run({ seed: 3, players: 30, inputsPerTick: 30, invalidRate: 0.3 }, 20).flat();
    expect(new Set(dirty.map((i) => i.intent))).toEqual(new Set(['valid', 'rejected', 'invalid']));
  });

  it('publishes a quest every questEveryTicks from live ops', () => {
    const ticks = run({ seed: 4, players: 10, inputsPerTick: 5, questEveryTicks: 7 }, 30);
    const at = ticks.map((inputs, t) => (inputs.some((i) => i.type === 'quest.publish') ? t : -1)).filter((t) => t >= 0);
    expect(at).toEqual([7, 14, 21, 28]);
    const q = ticks[7]!.find((i) => i.type === 'quest.publish')!;
    expect(q.origin).toBe('live-ops');
  });

  it.each([
    [{ seed: 1, players: 0, inputsPerTick: 1 }, 'players'],
    [{ seed: 1, players: 2, inputsPerTick: -1 }, 'inputsPerTick'],
    [{ seed: 1.5, players: 2, inputsPerTick: 1 }, 'seed'],
    [{ seed: 1, players: 2, inputsPerTick: 1, invalidRate: 2 }, 'invalidRate'],
    [{ seed: 1, players: 2, inputsPerTick: 1, params: { worldSize: 1 } }, 'payload.params.worldSize'],
  ] as [LoadOptions, string][])('refuses options %j at %s', (options, path) => {
    expect(() => new LoadGenerator(options)).toThrow(expect.objectContaining({ path }));
  });
});

import { describe, expect, it } from 'vitest';
import { GlobalsGuard } from '../../../src/adapters/determinism-guard.js';
import { ReducerRegistry, ShardMachine, decodeEntry, decodeSnapshot, encodeSnapshot, isPlayoutError, toHex, type Entry, type TickDigest } from '../../../src/core/index.js';
import {
  generateLog,
  generateLogArray,
  treasureHuntNondeterministicV1,
  treasureHuntRegistry,
  treasureHuntV2,
  type GenerateLogOptions,
  type Leaderboard,
  type Player,
} from '../../../src/games/treasure-hunt/index.js';

function randomSeed(): number {
  const fromEnv = process.env['SEED'];
  return fromEnv !== undefined ? Number(fromEnv) >>> 0 : Math.floor(Math.random() * 0xffffffff);
}

function replay(entries: readonly Entry[], registry = treasureHuntRegistry(), checked = false): { machine: ShardMachine; digests: TickDigest[] } {
  const digests: TickDigest[] = [];
  const machine = new ShardMachine(registry, { onTick: (d) => digests.push(d), checked: checked ? { guard: new GlobalsGuard(), fullDigestEveryTicks: 10 } : null });
  for (const e of entries) machine.apply(e);
  return { machine, digests };
}

const hex = (ds: readonly TickDigest[]) => ds.map((d) => toHex(d.digest));

describe('generateLog', () => {
  it('replaying a generated log twice gives the leader digest at every tick', () => {
    const seed = randomSeed();
    console.log(`generateLog replay-twice: reproduce with seed=${seed}`);
    const leader: TickDigest[] = [];
    const { entries, summary } = generateLogArray({ seed, ticks: 120, players: 60, inputsPerTick: 30, upgradeAtTick: 60, invalidRate: 0.05, retryRate: 0.02, questEveryTicks: 20, onTickDigest: (d) => leader.push(d) });
    expect(summary.ticks).toBe(120);
    expect(leader).toHaveLength(120);
    // Through bytes, as a follower receives them.
    const decoded = entries.map((e) => decodeEntry(e.bytes));
    const a = replay(decoded);
    const b = replay(decoded);
    expect(a.machine.firstMismatch, `seed=${seed}`).toBeNull();
    expect(hex(a.digests), `seed=${seed}`).toEqual(hex(leader));
    expect(hex(b.digests), `seed=${seed}`).toEqual(hex(leader));
    expect(a.digests[60]!.reducerVersion).toBe(1);
    expect(a.digests[61]!.reducerVersion).toBe(2);
  });

  it('is deterministic for a seed and differs between seeds', () => {
    const seed = randomSeed();
    console.log(`generateLog determinism: reproduce with seed=${seed}`);
    const options: GenerateLogOptions = { seed, ticks: 40, players: 40, inputsPerTick: 20, invalidRate: 0.1, retryRate: 0.05 };
    const one = generateLogArray(options).entries.map((e) => toHex(e.hash));
    const two = generateLogArray(options).entries.map((e) => toHex(e.hash));
    const other = generateLogArray({ ...options, seed: (seed + 1) >>> 0 }).entries.map((e) => toHex(e.hash));
    expect(two, `seed=${seed}`).toEqual(one);
    expect(other[other.length - 1]).not.toBe(one[one.length - 1]);
  });

  it('passes checked mode (poisoned globals, frozen reads, full digest every 10 ticks) as leader and as follower', () => {
    const seed = randomSeed();
    console.log(`generateLog checked mode: reproduce with seed=${seed}`);
    const { entries } = generateLogArray({ seed, ticks: 60, players: 40, inputsPerTick: 25, upgradeAtTick: 30, questEveryTicks: 10, checked: { guard: new GlobalsGuard(), fullDigestEveryTicks: 10 } });
    const { machine } = replay(entries, treasureHuntRegistry(), true);
    expect(machine.firstMismatch, `seed=${seed}`).toBeNull();
    expect(machine.lastDigest!.tick).toBe(59);
  });

  it('snapshot at a tick plus the rest of the log equals the full replay', () => {
    const seed = randomSeed();
    console.log(`generateLog snapshot: reproduce with seed=${seed}`);
    const { entries } = generateLogArray({ seed, ticks: 80, players: 50, inputsPerTick: 20, upgradeAtTick: 50 });
    const full = replay(entries);
    const cut = entries.findIndex((e) => e.kind === 'tick' && e.tick === 40);
    const head = replay(entries.slice(0, cut + 1));
    const snap = decodeSnapshot(encodeSnapshot(head.machine.snapshot()));
    const restored = ShardMachine.fromSnapshot(treasureHuntRegistry(), snap);
    for (const e of entries.slice(cut + 1)) restored.apply(e);
    expect(toHex(restored.lastDigest!.digest), `seed=${seed}`).toBe(toHex(full.machine.lastDigest!.digest));
    expect(restored.exportState()).toEqual(full.machine.exportState());
  });

  it('keeps the top 10 equal to a full sort of every player', () => {
    const seed = randomSeed();
    console.log(`generateLog leaderboard: reproduce with seed=${seed}`);
    const { entries } = generateLogArray({ seed, ticks: 150, players: 80, inputsPerTick: 40, questEveryTicks: 15 });
    const { machine } = replay(entries);
    const players = machine.exportState()['players']! as [string, Player][];
    const oracle = players
      .map(([player, p]) => ({ player, score: p.score }))
      .filter((e) => e.score > 0)
      .sort((a, b) => b.score - a.score || (a.player < b.player ? -1 : 1))
      .slice(0, 10);
    expect(oracle.length, `seed=${seed}`).toBe(10);
    expect((machine.tables['leaderboard']!.peek('top10') as Leaderboard).top, `seed=${seed}`).toEqual(oracle);
  });

  it('mixes in bad inputs only when asked: refused at ingress, rejected as data, deduplicated', () => {
    const clean = generateLogArray({ seed: 5, ticks: 30, players: 30, inputsPerTick: 20 });
    expect(clean.summary.refused).toEqual({});
    expect(clean.summary.duplicates).toBe(0);
    expect(clean.summary.produced.invalid + clean.summary.produced.rejected + clean.summary.produced.retry).toBe(0);

    const dirty = generateLogArray({ seed: 5, ticks: 30, players: 30, inputsPerTick: 20, invalidRate: 0.2, retryRate: 0.05 });
    const s = dirty.summary;
    expect(s.refused['PLAYOUT_INPUT_INVALID']).toBeGreaterThan(0);
    expect(s.refused['PLAYOUT_INPUT_TYPE_UNKNOWN']).toBeGreaterThan(0);
    expect(s.duplicates).toBeGreaterThan(0);
    expect(s.rejected).toBeGreaterThanOrEqual(s.produced.rejected);
    expect(s.produced.invalid).toBe(Object.values(s.refused).reduce((a, b) => a + b, 0));
    // Nothing refused reached the log.
    expect(dirty.entries.filter((e) => e.type === 'player.teleport')).toHaveLength(0);
    expect(new Set(dirty.entries.filter((e) => e.ingestId !== null).map((e) => e.ingestId)).size).toBe(s.inputs);
  });

  it('stops at `entries` on a tick boundary and at `ticks`', () => {
    const byEntries = generateLogArray({ seed: 1, entries: 500, players: 20, inputsPerTick: 30 });
    expect(byEntries.entries.length).toBeGreaterThanOrEqual(500);
    expect(byEntries.entries.length).toBeLessThan(500 + 32);
    expect(byEntries.entries[byEntries.entries.length - 1]!.kind).toBe('tick');
    expect(byEntries.summary.entries).toBe(byEntries.entries.length);
    const byTicks = generateLogArray({ seed: 1, ticks: 7, players: 20, inputsPerTick: 3, questEveryTicks: 0 });
    expect(byTicks.entries).toHaveLength(1 + 7 * 4);
    expect(byTicks.entries.map((e) => e.seq)).toEqual(byTicks.entries.map((_, i) => i + 1));
  });

  it('streams: entries are produced lazily, one at a time', () => {
    const it = generateLog({ seed: 2, ticks: 1_000_000, players: 10, inputsPerTick: 5 });
    const first = [it.next(), it.next(), it.next()];
    expect(first.map((r) => (r.done ? null : r.value.kind))).toEqual(['genesis', 'input', 'input']);
    it.return(undefined as never);
  });

  it.each([
    [{ seed: -1, ticks: 1 }, 'seed'],
    [{ seed: 1 }, 'ticks'],
    [{ seed: 1, ticks: 1, shard: 'Bad Shard' }, 'shard'],
    [{ seed: 1, ticks: 1, params: { worldSize: 3 } }, 'params.worldSize'],
    [{ seed: 1, ticks: 1, inputsPerTick: 1.5 }, 'inputsPerTick'],
  ] as [GenerateLogOptions, string][])('refuses options %j at %s', (options, path) => {
    let caught: unknown = null;
    try {
      generateLog(options).next();
    } catch (err) {
      caught = err;
    }
    expect(isPlayoutError(caught, 'PLAYOUT_INVALID_ARGUMENT'), String(caught)).toBe(true);
    expect((caught as { path: string }).path).toBe(path);
  });
});

describe('treasureHuntNondeterministicV1', () => {
  const buggy = () => new ReducerRegistry([treasureHuntNondeterministicV1, treasureHuntV2]);

  it('records a log whose replay with v1 diverges at a chest opened by several diggers, after tick 0 and within 150 ticks', () => {
    for (const seed of [1, 42, 2024]) {
      const recorded: TickDigest[] = [];
      const { entries } = generateLogArray({ seed, ticks: 150, registry: buggy(), onTickDigest: (d) => recorded.push(d) });
      const { machine, digests } = replay(entries);
      const mismatch = machine.firstMismatch;
      expect(mismatch, `seed=${seed}`).not.toBeNull();
      // The first tick whose digests differ is the one the log reports (by the next tick entry).
      const firstDiff = digests.findIndex((d, i) => toHex(d.digest) !== toHex(recorded[i]!.digest));
      expect(mismatch!.tick, `seed=${seed}`).toBe(firstDiff);
      expect(mismatch!.tick, `seed=${seed}`).toBeGreaterThan(0);
      expect(mismatch!.tick, `seed=${seed}`).toBeLessThan(150);

      // Localise the entry: step both builds through the diverging tick, comparing players.
      const good = new ShardMachine(treasureHuntRegistry());
      const bad = new ShardMachine(buggy());
      let culprit: Entry | null = null;
      for (const e of entries) {
        const watch = e.tick >= mismatch!.tick && e.kind === 'input';
        const itemsBefore = watch && e.type === 'item.dig' ? new Map(good.exportState()['items']) : null;
        good.apply(e);
        bad.apply(e);
        if (!watch) continue;
        if (JSON.stringify(good.exportState()['players']) !== JSON.stringify(bad.exportState()['players'])) {
          culprit = e;
          expect(e.type, `seed=${seed}`).toBe('item.dig');
          // The dig opened a chest that at least two players had dug.
          const digger = (e.payload as { player: string }).player;
          const opened = [...itemsBefore!].filter(([id]) => good.tables['items']!.peek(id) === undefined).map(([, it]) => it as { kind: string; diggers: [string, number][] });
          const chest = opened.find((it) => it.kind === 'chest');
          expect(chest, `seed=${seed}`).toBeDefined();
          expect(new Set([...chest!.diggers.map(([p]) => p), digger]).size, `seed=${seed}`).toBeGreaterThanOrEqual(2);
          break;
        }
      }
      expect(culprit?.tick, `seed=${seed}`).toBe(mismatch!.tick);
    }
  });

  it('records the same log twice in one process (its cache is reset at genesis)', () => {
    const a = generateLogArray({ seed: 7, ticks: 80, registry: buggy() }).summary.headHash;
    const b = generateLogArray({ seed: 7, ticks: 80, registry: buggy() }).summary.headHash;
    expect(toHex(b)).toBe(toHex(a));
  });

  it('agrees with v1 on logs v1 recorded until its bug fires', () => {
    const recorded: TickDigest[] = [];
    const { entries } = generateLogArray({ seed: 11, ticks: 200, onTickDigest: (d) => recorded.push(d) });
    const { digests } = replay(entries, buggy());
    const firstDiff = digests.findIndex((d, i) => toHex(d.digest) !== toHex(recorded[i]!.digest));
    expect(firstDiff).toBeGreaterThan(0);
  });
});

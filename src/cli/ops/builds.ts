// Builds: named reducer registries the tools can replay with.
//
// A log names its reducer and version; a build is the code that runs them. `verify` replays
// with this engine's build and, to localise a desync, tries the other known builds that
// register the same reducer and version (e.g. an older release, or a known-bad variant) as
// candidates for the build that recorded the log. `bisect --reducer-b` replays one log under
// two builds. A build is a name from the table below or a path to an ES module that exports
// `registry` (a ReducerRegistry) or a function `registry()` returning one.
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PlayoutError, ReducerRegistry } from '../../core/index.js';

export interface Build {
  readonly name: string;
  readonly registry: ReducerRegistry;
}

export interface BuildEntry {
  readonly name: string;
  readonly summary: string;
  /** True for builds known to be wrong: tried as recorders, never used as the default. */
  readonly knownBad: boolean;
  load(): Promise<ReducerRegistry>;
}

const TABLE: BuildEntry[] = [
  {
    name: 'treasure-hunt',
    summary: 'the example game, reducer versions 1 and 2',
    knownBad: false,
    load: async () => (await import('../../games/treasure-hunt/index.js')).treasureHuntRegistry(),
  },
  {
    name: 'treasure-hunt-nondeterministic',
    summary: 'a known-bad build of treasure-hunt 1 (loot split in arrival order, cache outside the tables), with version 2',
    knownBad: true,
    load: async () => {
      const g = await import('../../games/treasure-hunt/index.js');
      return new ReducerRegistry([g.treasureHuntNondeterministicV1, g.treasureHuntV2]);
    },
  },
];

/** Add a named build (games register theirs; tests register test reducers). */
export function registerBuild(entry: BuildEntry): void {
  const i = TABLE.findIndex((b) => b.name === entry.name);
  if (i >= 0) TABLE[i] = entry;
  else TABLE.push(entry);
}

export function knownBuilds(): readonly BuildEntry[] {
  return TABLE;
}

/** The build used when none is named: every registered build that is not known bad, merged. */
export async function defaultBuild(): Promise<Build> {
  const good = TABLE.filter((b) => !b.knownBad);
  if (good.length === 1) return { name: good[0]!.name, registry: await good[0]!.load() };
  const merged = new ReducerRegistry();
  for (const b of good) for (const r of (await b.load()).list()) if (!merged.has(r.name, r.version)) merged.add(r);
  return { name: good.map((b) => b.name).join('+') || 'none', registry: merged };
}

/** A build by name (from the table) or by module path. */
export async function loadBuild(spec: string, cwd: string): Promise<Build> {
  const entry = TABLE.find((b) => b.name === spec);
  if (entry !== undefined) return { name: entry.name, registry: await entry.load() };
  if (!/[/\\]|\.[cm]?js$/.test(spec)) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Unknown build "${spec}": expected one of ${TABLE.map((b) => b.name).join(', ') || '(none registered)'} or a path to a module exporting a ReducerRegistry`, {
      path: 'build',
      expected: TABLE.map((b) => b.name).join(', '),
      received: spec,
    });
  }
  const path = isAbsolute(spec) ? spec : resolve(cwd, spec);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (err) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot load build module ${spec}: ${(err as Error).message.split('\n')[0]}`, { path: 'build', expected: 'an ES module exporting `registry`', received: spec, cause: err });
  }
  const candidate = typeof mod.registry === 'function' ? await (mod.registry as () => unknown)() : mod.registry ?? mod.default;
  if (!(candidate instanceof ReducerRegistry)) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot use build module ${spec}: expected an export \`registry\` (a ReducerRegistry or a function returning one), received ${typeof candidate}`, {
      path: 'build',
      expected: 'export registry',
      received: typeof candidate,
    });
  }
  return { name: spec, registry: candidate };
}

/**
 * Every known build that runs `reducer@version` with other code than `reference` does:
 * candidates for the build that recorded a log.
 */
export async function recorderCandidates(reducer: string, version: number, reference: ReducerRegistry): Promise<Build[]> {
  const mine = reference.has(reducer, version) ? reference.get(reducer, version) : null;
  const out: Build[] = [];
  for (const b of TABLE) {
    const registry = await b.load();
    if (registry.has(reducer, version) && registry.get(reducer, version) !== mine) out.push({ name: b.name, registry });
  }
  return out;
}

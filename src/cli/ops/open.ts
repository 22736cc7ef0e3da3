// Opening what the commands name: sources with their shard, builds, snapshot files.
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { PlogReader, PLOG_MAGIC } from '../../adapters/plog.js';
import { openSource, type OpenOptions, type ReplaySource } from '../../adapters/replay-source.js';
import { PlayoutError, decodeSnapshot, type Snapshot } from '../../core/index.js';
import { defaultBuild, knownBuilds, loadBuild, recorderCandidates, type Build } from './builds.js';

/**
 * Open SOURCE for a command. Remote sources (http://) take their token from the environment:
 * `remote.env` (a command's io.env), else this process's.
 */
export async function openNamed(spec: string, shard: string | undefined, cwd: string, remote: Pick<OpenOptions, 'env' | 'tokenEnv' | 'fromSnapshot'> = {}): Promise<ReplaySource> {
  return openSource(spec, { shard: shard ?? null, cwd, env: remote.env ?? process.env, tokenEnv: remote.tokenEnv ?? null, fromSnapshot: remote.fromSnapshot ?? false });
}

export async function buildNamed(spec: string | undefined, cwd: string): Promise<Build> {
  return spec === undefined ? defaultBuild() : loadBuild(spec, cwd);
}

export interface TwoSides {
  sourceA: ReplaySource;
  sourceB: ReplaySource;
  buildA: Build;
  buildB: Build;
}

/**
 * The two sides of `bisect` and `diff`: two sources, or one source under two builds
 * (--reducer-b). Opens them, runs `fn`, and closes them whatever happens.
 */
export async function withTwoSides<T>(
  command: string,
  a: { A: string; B?: string | undefined; shard?: string | undefined; build?: string | undefined; reducerB?: string | undefined },
  cwd: string,
  fn: (sides: TwoSides) => Promise<T>,
): Promise<T> {
  if (a.B === undefined && a.reducerB === undefined) {
    throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `playout ${command}: give two sources (A B), or one source and --reducer-b to compare two builds`, { path: 'B', expected: 'B or --reducer-b', received: 'neither' });
  }
  const buildA = await buildNamed(a.build, cwd);
  const buildB = a.reducerB === undefined ? buildA : await buildNamed(a.reducerB, cwd);
  const sourceA = await openNamed(a.A, a.shard, cwd);
  try {
    const sourceB = a.B === undefined ? sourceA : await openNamed(a.B, a.shard ?? sourceA.info.shard, cwd);
    try {
      return await fn({ sourceA, sourceB, buildA, buildB });
    } finally {
      if (sourceB !== sourceA) await sourceB.close();
    }
  } finally {
    await sourceA.close();
  }
}

/** Candidates for a log's recorder: the named builds, or every known build running its reducer with other code. */
export async function recordersFor(source: ReplaySource, reference: Build, named: string | undefined, cwd: string): Promise<Build[]> {
  if (named !== undefined) return Promise.all(named.split(',').map((n) => loadBuild(n.trim(), cwd)));
  return recorderCandidates(source.info.reducer, source.info.reducerVersion, reference.registry);
}

/** What SOURCE may be, for every command's --help. */
export function sourcesHelp(): string {
  return `Sources (SOURCE, A, B):
  FILE.plog[.gz]                  a fixture file
  DIR                             a node's store directory (read-only; the node may run)
  http(s)://host:port[/prefix]    a running region node over its /v1 API, up to its head when
                                  opened. Token: PLAYOUT_PEER_TOKEN (else PLAYOUT_ADMIN_TOKEN),
                                  a peer or admin token of that region. A log the node truncated
                                  below a snapshot needs ?from-snapshot at the end of the URL
  kafka://host:port[,…]/topic     a playout.log topic or a MirrorMaker 2 mirror, up to its end
                                  offsets when opened; needs --shard`;
}

export function buildList(): string {
  return knownBuilds()
    .map((b) => `  ${b.name}${b.knownBad ? ' (known bad)' : ''}: ${b.summary}`)
    .join('\n');
}

/** A snapshot file: encoded snapshot bytes, or a .plog fixture whose leading snapshot is used. */
export async function readSnapshotFile(spec: string, cwd: string): Promise<Snapshot> {
  const path = isAbsolute(spec) ? spec : resolve(cwd, spec);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PlayoutError('PLAYOUT_SOURCE_NOT_FOUND', `Cannot read snapshot file ${spec}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (err as Error).message}`, {
      path: '--from-snapshot',
      expected: 'a snapshot file',
      received: spec,
      cause: err,
    });
  }
  if (bytes.length >= PLOG_MAGIC.length && PLOG_MAGIC.every((b, i) => bytes[i] === b)) {
    const reader = await PlogReader.open(path);
    await reader.close();
    if (reader.snapshot === null) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot use ${spec} as a snapshot: the fixture starts at genesis, not from a snapshot`, { path: '--from-snapshot', expected: 'a fixture with a snapshot', received: 'a fixture from genesis' });
    }
    return reader.snapshot;
  }
  return decodeSnapshot(bytes);
}

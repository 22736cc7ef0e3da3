// `playout capture` and the http:// replay SOURCE, run as a user runs them: the built binary in
// a child process, against real region nodes (RegionNode on lmdb, in this process) fed with
// inputs over HTTP. Replay over http equals replay of the node's store and of a fixture
// captured from it, tick digest for tick digest; every refusal exits 2 with its code.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PlogReader } from '../../src/adapters/plog.js';
import { ensureBuilt } from '../helpers/built-cli.js';
import { TOKENS, adminClient, freePorts, startInProcessCluster, waitFor, type InProcessCluster } from '../helpers/cluster.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..', '..');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function playout(env: Record<string, string | undefined>, ...args: string[]): Promise<Result> {
  const base: Record<string, string | undefined> = { ...process.env, CI: '' };
  delete base.PLAYOUT_PEER_TOKEN;
  delete base.PLAYOUT_ADMIN_TOKEN;
  try {
    const { stdout, stderr } = await run(process.execPath, [join(ROOT, 'dist', 'cli', 'main.js'), ...args], { cwd: tmp, maxBuffer: 64 << 20, env: { ...base, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const PEER = { PLAYOUT_PEER_TOKEN: TOKENS.peer };

function expectBadInput(r: Result, code: string): void {
  expect(r.code, r.stdout + r.stderr).toBe(2);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^playout \\w+: ${code}: `));
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

interface ReplayJson {
  final: { tick: number; seq: number; digest: string };
  digests: { tick: number; seq: number; digest: string }[];
  start: { from: string; tick: number | null; seq: number };
  mismatches: { count: number };
  entries: number;
}

async function replayJson(env: Record<string, string>, ...args: string[]): Promise<ReplayJson> {
  const r = await playout(env, 'replay', ...args, '--json');
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ReplayJson;
}

let tmp: string;
/** Keeps its whole log: replay from genesis; answers at most 25 entries per range request. */
let full: InProcessCluster;
/** Truncates its log below a snapshot every few ticks. */
let truncated: InProcessCluster;
let fullUrl = '';
let truncatedUrl = '';
const TO_TICK = 60;

async function feed(url: string, shard: string): Promise<void> {
  const c = adminClient('eu-fra', url);
  try {
    await c.submit(shard, [{ type: 'player.join', version: 1, payload: { player: 'p1', name: 'Ada', x: 5, y: 5 }, ingestId: 'j1' }]);
    await c.submit(shard, [{ type: 'player.join', version: 1, payload: { player: 'p2', name: 'Bo', x: 9, y: 9 }, ingestId: 'j2' }]);
    for (let i = 0; i < 40; i++) {
      await c.submit(shard, [{ type: 'player.move', version: 1, payload: { player: i % 2 === 0 ? 'p1' : 'p2', x: 5 + (i % 3), y: 5 }, ingestId: `m${i}` }]);
    }
  } finally {
    await c.close();
  }
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'playout-capture-'));
  const build = ensureBuilt();
  full = await startInProcessCluster({
    regions: ['eu-fra'],
    shards: [{ id: 'hunt-1', leader: 'eu-fra', tickMs: 40 }, { id: 'hunt-2', leader: 'eu-fra', tickMs: 40 }],
    overrides: { limits: { rangeEntriesMax: 25 }, snapshots: { everyTicks: 25, kept: 100, retainEntriesMin: 1_000_000 } },
  });
  truncated = await startInProcessCluster({
    regions: ['eu-fra'],
    shards: [{ id: 'hunt-9', leader: 'eu-fra', tickMs: 40 }],
    // A window of ~20 s of ticks: wide enough that the CLI runs below read overlapping ranges of a
    // log the node keeps truncating (with ~8 s, a replay on a loaded CI machine, to the tick a
    // capture ended at seconds before, found its snapshot's next entry truncated), small enough to
    // be truncated within the setup.
    overrides: { limits: { rangeEntriesMax: 25 }, snapshots: { everyTicks: 10, kept: 3, retainEntriesMin: 500 } },
  });
  fullUrl = full.nodes.get('eu-fra')!.url;
  truncatedUrl = truncated.nodes.get('eu-fra')!.url;
  await Promise.all([feed(fullUrl, 'hunt-1'), feed(truncatedUrl, 'hunt-9'), build]);
  const tickOf = (c: InProcessCluster, shard: string) => c.nodes.get('eu-fra')!.status().shards.find((s) => s.shard === shard)!;
  await waitFor(`tick ${TO_TICK + 5} of hunt-1`, () => tickOf(full, 'hunt-1').tick > TO_TICK + 5, 30_000);
  await waitFor('hunt-9 truncated', () => (tickOf(truncated, 'hunt-9').firstSeq ?? 1) > 1 && tickOf(truncated, 'hunt-9').tick > TO_TICK + 20, 60_000);
}, 300_000);

afterAll(async () => {
  await full?.close();
  await truncated?.close();
  await rm(tmp, { recursive: true, force: true });
});

describe('replay over http://', () => {
  it('equals replay of the store and of a captured fixture, tick digest for tick digest (paged at 25 entries)', async () => {
    const overHttp = await replayJson(PEER, fullUrl, '--shard', 'hunt-1', '--to-tick', String(TO_TICK));
    const fromStore = await replayJson({}, full.files.configs['eu-fra']!.store!.path, '--shard', 'hunt-1', '--to-tick', String(TO_TICK));
    const out = join(tmp, 'hunt-1.plog.gz');
    const c = await playout(PEER, 'capture', fullUrl, '--shard', 'hunt-1', '--out', out);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/wrote .*hunt-1\.plog\.gz: [\d,]+ entries \(seq 1–\d+\)/);
    const fromFixture = await replayJson({}, out, '--to-tick', String(TO_TICK));
    expect(overHttp.entries).toBeGreaterThan(100);
    expect(overHttp.final.tick).toBe(TO_TICK);
    expect(overHttp.mismatches.count).toBe(0);
    expect(overHttp.digests).toHaveLength(TO_TICK + 1);
    expect(fromStore.digests).toEqual(overHttp.digests);
    expect(fromFixture.digests).toEqual(overHttp.digests);
    expect(fromFixture.final).toEqual(overHttp.final);
    const reader = await PlogReader.open(out);
    await reader.close();
    expect(reader.header).toMatchObject({ shard: 'hunt-1', reducer: 'treasure-hunt', firstSeq: 1, snapshot: null, createdBy: 'playout capture 0.1.0' });
  });

  it('verify and inspect read the same source; an admin token works too', async () => {
    const v = await playout({ PLAYOUT_ADMIN_TOKEN: TOKENS.admin }, 'verify', fullUrl, '--shard', 'hunt-1');
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toContain('OK: every recorded digest matches');
    const i = await playout({ MY_TOKEN: TOKENS.peer }, 'capture', fullUrl, '--shard', 'hunt-2', '--token-env', 'MY_TOKEN', '--out', join(tmp, 'hunt-2.plog'), '--to-tick', '10');
    expect(i.code, i.stderr).toBe(0);
    const n = await playout(PEER, 'inspect', fullUrl, '--shard', 'hunt-2', '--json');
    expect(n.code, n.stderr).toBe(0);
    const doc = JSON.parse(n.stdout) as { source: { kind: string; shard: string }; chain: { ok: boolean }; gaps: unknown[] };
    expect(doc.source).toMatchObject({ kind: 'http', shard: 'hunt-2' });
    expect(doc.chain.ok).toBe(true);
    expect(doc.gaps).toEqual([]);
  });

  it('a truncated log starts from the node\'s snapshot with --from-snapshot / ?from-snapshot, and is refused without', async () => {
    expectBadInput(await playout(PEER, 'replay', truncatedUrl, '--shard', 'hunt-9'), 'PLAYOUT_RANGE_NOT_RETAINED');
    expectBadInput(await playout(PEER, 'capture', truncatedUrl, '--shard', 'hunt-9', '--out', join(tmp, 'never.plog')), 'PLAYOUT_RANGE_NOT_RETAINED');
    await expect(stat(join(tmp, 'never.plog'))).rejects.toThrow();
    const out = join(tmp, 'hunt-9.plog');
    const c = await playout(PEER, 'capture', truncatedUrl, '--shard', 'hunt-9', '--from-snapshot', '--out', out);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/after the snapshot at tick \d+/);
    const reader = await PlogReader.open(out);
    await reader.close();
    expect(reader.header.snapshot).not.toBeNull();
    const fixture = await replayJson({}, out);
    expect(fixture.start.from).toBe('snapshot');
    // The same node over http, to the fixture's last tick: the same digests from the same start.
    const overHttp = await replayJson(PEER, `${truncatedUrl}?from-snapshot`, '--shard', 'hunt-9', '--to-tick', String(fixture.final.tick));
    expect(overHttp.mismatches.count).toBe(0);
    const common = overHttp.digests.filter((d) => d.tick > Math.max(fixture.start.tick!, overHttp.start.tick!));
    expect(common.length).toBeGreaterThan(0);
    expect(fixture.digests.filter((d) => common.some((c2) => c2.tick === d.tick))).toEqual(common);
  });
});

describe('capture', () => {
  it('refuses to replace a file unless --force, and writes nothing when the source fails', async () => {
    const out = join(tmp, 'exists.plog');
    await writeFile(out, 'keep me');
    expectBadInput(await playout(PEER, 'capture', fullUrl, '--shard', 'hunt-1', '--out', out), 'PLAYOUT_INVALID_ARGUMENT');
    expect((await stat(out)).size).toBe(7);
    const f = await playout(PEER, 'capture', fullUrl, '--shard', 'hunt-1', '--out', out, '--force', '--to-tick', '5');
    expect(f.code, f.stderr).toBe(0);
    expect((await stat(out)).size).toBeGreaterThan(7);
    expectBadInput(await playout(PEER, 'capture', fullUrl, '--shard', 'hunt-1', '--out', join(tmp, 'far.plog'), '--to-tick', '100000000'), 'PLAYOUT_TICK_NOT_RETAINED');
    await expect(stat(join(tmp, 'far.plog'))).rejects.toThrow();
    await expect(stat(join(tmp, 'far.plog.partial'))).rejects.toThrow();
  });

  it('--help shows usage, the token variable and examples', async () => {
    const r = await playout({}, 'capture', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('playout capture SOURCE');
    expect(r.stdout).toContain('PLAYOUT_PEER_TOKEN');
    expect(r.stdout).toMatch(/Examples?:\n\s+.*playout capture /);
  });

  it.each(['replay', 'verify', 'bisect', 'diff', 'inspect'])('%s --help names the http:// and kafka:// sources and the token variable', async (name) => {
    const r = await playout({}, name, '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('http(s)://host:port');
    expect(r.stdout).toContain('kafka://host:port');
    expect(r.stdout).toContain('PLAYOUT_PEER_TOKEN');
  });

  it.each([
    ['no --out', ['capture', 'SRC', '--shard', 'hunt-1'], 'PLAYOUT_INVALID_ARGUMENT'],
    ['an --out that is not a .plog', ['capture', 'SRC', '--shard', 'hunt-1', '--out', 'x.txt'], 'PLAYOUT_INVALID_ARGUMENT'],
    ['an --out in a missing directory', ['capture', 'SRC', '--shard', 'hunt-1', '--out', 'nowhere/x.plog'], 'PLAYOUT_INVALID_ARGUMENT'],
  ])('refuses %s', async (_what, args, code) => {
    expectBadInput(await playout(PEER, ...args.map((a) => (a === 'SRC' ? fullUrl : a))), code);
  });
});

describe.concurrent('http:// refusals exit 2 with their code', () => {
  it('a wrong token', async () => expectBadInput(await playout({ PLAYOUT_PEER_TOKEN: 'not-a-token-of-this-region-00' }, 'replay', fullUrl, '--shard', 'hunt-1'), 'PLAYOUT_UNAUTHENTICATED'));
  it('no token at all', async () => {
    const r = await playout({}, 'replay', fullUrl, '--shard', 'hunt-1');
    expectBadInput(r, 'PLAYOUT_INVALID_ARGUMENT');
    expect(r.stderr).toContain('PLAYOUT_PEER_TOKEN');
  });
  it('an ingest token (wrong scope)', async () => expectBadInput(await playout({ PLAYOUT_PEER_TOKEN: TOKENS.ingest }, 'inspect', fullUrl, '--shard', 'hunt-1'), 'PLAYOUT_FORBIDDEN'));
  it('an unknown shard', async () => expectBadInput(await playout(PEER, 'verify', fullUrl, '--shard', 'hunt-404'), 'PLAYOUT_SHARD_NOT_FOUND'));
  it('several shards and no --shard', async () => expectBadInput(await playout(PEER, 'replay', fullUrl), 'PLAYOUT_INVALID_ARGUMENT'));
  it('an unreachable port', async () => {
    const [port] = await freePorts(1);
    expectBadInput(await playout(PEER, 'capture', `http://127.0.0.1:${port}`, '--shard', 'hunt-1', '--out', join(tmp, 'x.plog')), 'PLAYOUT_PEER_UNAVAILABLE');
  });
  it.each([['http://'], ['http://user:secret@127.0.0.1:1'], [`http://127.0.0.1:1/?region=x`], ['http://127.0.0.1:99999'], ['https://127.0.0.1:1/#top']])('a bad URL: %s', async (url) => {
    expectBadInput(await playout(PEER, 'replay', url, '--shard', 'hunt-1'), 'PLAYOUT_INVALID_ARGUMENT');
  });
  it('a URL that is not a playout node', async () => expectBadInput(await playout(PEER, 'replay', `${fullUrl}/not/here`, '--shard', 'hunt-1'), 'PLAYOUT_ROUTE_NOT_FOUND'));
});

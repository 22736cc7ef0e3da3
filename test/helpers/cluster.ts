// Region clusters for tests and benchmarks: configs for N regions on loopback, started in this
// process (RegionNode on an lmdb store in a temp folder) or as separate `playout start`
// processes (for kill -9 and real network faults through Toxiproxy).
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { LmdbLogStore } from '../../src/adapters/lmdb-store.js';
import { HttpPeerClient } from '../../src/adapters/http-peer-client.js';
import type { NodeStatus } from '../../src/adapters/http-schemas.js';
import { treasureHuntRegistry } from '../../src/games/treasure-hunt/index.js';
import type { ReducerRegistry } from '../../src/core/reducer.js';
import { parseRegionConfig, type RegionConfigInput } from '../../src/node/region-config.js';
import { RegionNode } from '../../src/node/region-node.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export const TOKENS = {
  ingest: 'test-ingest-token-0123456789',
  peer: 'test-peer-token-0123456789ab',
  admin: 'test-admin-token-0123456789a',
} as const;

export const TOKEN_ENV: Record<string, string> = {
  PLAYOUT_INGEST_TOKEN: TOKENS.ingest,
  PLAYOUT_PEER_TOKEN: TOKENS.peer,
  PLAYOUT_ADMIN_TOKEN: TOKENS.admin,
};

/** Free TCP ports on 127.0.0.1 (bound and released; a tiny race with other processes remains). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<import('node:net').Server>((res, rej) => {
      const s = createServer();
      s.once('error', rej);
      s.listen(0, '127.0.0.1', () => res(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

export interface ClusterShard {
  id: string;
  leader: string;
  seed?: number;
  tickMs?: number;
  ack?: 'leader' | 'quorum';
  params?: unknown;
}

export interface ClusterSpec {
  regions: string[];
  shards: ClusterShard[];
  /** URL region `from` uses to reach region `to` (default: directly). */
  peerUrl?: (from: string, to: string, ports: Record<string, number>) => string;
  /** Deep-merged into every region's config (limits, repair, replication …). */
  overrides?: Partial<RegionConfigInput>;
  /** Ports per region (default: free ports). */
  ports?: Record<string, number>;
}

export interface ClusterFiles {
  dir: string;
  ports: Record<string, number>;
  configs: Record<string, RegionConfigInput>;
  configFiles: Record<string, string>;
}

/** Write one YAML config per region into a fresh temp folder (stores under it). */
export async function writeClusterConfigs(spec: ClusterSpec): Promise<ClusterFiles> {
  const dir = mkdtempSync(join(tmpdir(), 'playout-cluster-'));
  const ports = spec.ports ?? Object.fromEntries((await freePorts(spec.regions.length)).map((p, i) => [spec.regions[i]!, p]));
  const configs: Record<string, RegionConfigInput> = {};
  const configFiles: Record<string, string> = {};
  for (const region of spec.regions) {
    const cfg: RegionConfigInput = {
      region,
      listen: { host: '127.0.0.1', port: ports[region]! },
      store: { path: join(dir, region) },
      peers: spec.regions.filter((r) => r !== region).map((r) => ({ region: r, url: spec.peerUrl?.(region, r, ports) ?? `${spec.overrides?.tls ? 'https' : 'http'}://127.0.0.1:${ports[r]}` })),
      shards: spec.shards.map((s) => ({ id: s.id, reducer: 'treasure-hunt@1', leader: s.leader, seed: s.seed ?? 42, tickMs: s.tickMs ?? 50, ack: s.ack ?? 'leader', params: s.params ?? null })) as RegionConfigInput['shards'],
      tokens: { ingest: { env: 'PLAYOUT_INGEST_TOKEN' }, peer: { env: 'PLAYOUT_PEER_TOKEN' }, admin: { env: 'PLAYOUT_ADMIN_TOKEN' } },
      ...merge({ log: { level: 'warn' } }, spec.overrides ?? {}),
    } as RegionConfigInput;
    configs[region] = cfg;
    const file = join(dir, `${region}.yaml`);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, stringify(cfg));
    configFiles[region] = file;
  }
  return { dir, ports, configs, configFiles };
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = prev !== null && typeof prev === 'object' && !Array.isArray(prev) && v !== null && typeof v === 'object' && !Array.isArray(v) ? merge(prev as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

/** Start one region in this process. */
export async function startNode(files: ClusterFiles, region: string, logger: boolean | Record<string, unknown> = false, registry: ReducerRegistry = treasureHuntRegistry()): Promise<RegionNode> {
  const config = parseRegionConfig(files.configs[region], TOKEN_ENV, files.configFiles[region]!);
  const store = await LmdbLogStore.open(config.store.path);
  return RegionNode.start({ config, registry, store, logger });
}

export interface InProcessCluster {
  files: ClusterFiles;
  nodes: Map<string, RegionNode>;
  close(): Promise<void>;
}

export async function startInProcessCluster(spec: ClusterSpec, registries: Record<string, ReducerRegistry> = {}): Promise<InProcessCluster> {
  const files = await writeClusterConfigs(spec);
  const nodes = new Map<string, RegionNode>();
  for (const r of spec.regions) nodes.set(r, await startNode(files, r, false, registries[r]));
  return {
    files,
    nodes,
    async close() {
      for (const n of nodes.values()) await n.close().catch(() => undefined);
      rmSync(files.dir, { recursive: true, force: true });
    },
  };
}

/** A client with the admin token (reads everything, may submit inputs). */
export function adminClient(region: string, url: string, ca: Buffer | null = null): HttpPeerClient {
  return new HttpPeerClient({ region, url, token: TOKENS.admin, requestTimeoutMs: 10_000, frameBytesMax: 1 << 20, ca });
}

/** Poll until `check` returns a value (not undefined/false), or throw after timeoutMs. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 20_000, everyMs = 50): Promise<Exclude<T, false | undefined | null>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await check();
      if (v !== false && v !== undefined && v !== null) return v as Exclude<T, false | undefined | null>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// --- separate processes ---------------------------------------------------------------------------

export interface NodeProcess {
  region: string;
  child: ChildProcess;
  url: string;
  /** Lines written to stderr/stdout (for failure messages). */
  output: string[];
  exited: Promise<number | null>;
}

/** `playout start --region <file>` as a child process (tsx from source), resolved once it serves /healthz. */
export async function spawnNode(files: ClusterFiles, region: string, startTimeoutMs = 30_000): Promise<NodeProcess> {
  // PLAYOUT_NODE_ARGS passes extra flags to the node processes (e.g. --cpu-prof to profile one).
  const extra = (process.env.PLAYOUT_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const child = spawn(process.execPath, [...extra, '--import', 'tsx', join(REPO_ROOT, 'src/cli/main.ts'), 'start', '--region', files.configFiles[region]!], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...TOKEN_ENV },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  // PLAYOUT_NODE_OUTPUT_DIR keeps each node's whole output in <dir>/<region>.log (e.g. with --trace-gc).
  const outDir = process.env.PLAYOUT_NODE_OUTPUT_DIR;
  const keep = (b: Buffer): void => {
    if (outDir) appendFileSync(join(outDir, `${region}.log`), b);
    for (const line of b.toString('utf8').split('\n')) if (line) output.push(line);
    if (output.length > 400) output.splice(0, output.length - 400);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((r) => child.once('exit', (code, signal) => r(code ?? (signal ? 128 : null))));
  const url = `http://127.0.0.1:${files.ports[region]}`;
  const proc: NodeProcess = { region, child, url, output, exited };
  let dead = false;
  void exited.then(() => (dead = true));
  try {
    await waitFor(`${region} to serve /healthz`, async () => {
      if (dead) throw new Error(`${region} exited: ${output.slice(-20).join('\n')}`);
      const res = await fetch(`${url}/healthz`).catch(() => null);
      return res?.ok ?? false;
    }, startTimeoutMs, 100);
  } catch (err) {
    // Never leave a half-started node behind.
    child.kill('SIGKILL');
    await exited;
    throw err;
  }
  return proc;
}

export async function killNode(p: NodeProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill(signal);
  const t = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  await p.exited;
  clearTimeout(t);
}

export async function statusOf(url: string): Promise<NodeStatus> {
  const res = await fetch(`${url}/v1/status`, { headers: { authorization: `Bearer ${TOKENS.admin}` } });
  if (!res.ok) throw new Error(`status of ${url}: HTTP ${res.status}`);
  return (await res.json()) as NodeStatus;
}

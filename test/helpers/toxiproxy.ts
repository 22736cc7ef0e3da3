// Toxiproxy (github.com/Shopify/toxiproxy) for tests: the server binary started by the test,
// driven through its HTTP API. CI installs it as .cache/bin/toxiproxy-server in the repo root
// (.ci/run); a git worktree also looks in its main checkout's .cache/bin, then on PATH.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { component, which, type Component } from './components.js';
import { REPO_ROOT, freePorts, waitFor } from './cluster.js';

function searchDirs(): string[] {
  const dirs = [join(REPO_ROOT, '.cache/bin')];
  try {
    const common = execFileSync('git', ['rev-parse', '--git-common-dir'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    dirs.push(join(dirname(resolve(REPO_ROOT, common)), '.cache/bin'));
  } catch {
    // not a git checkout: PATH only
  }
  return dirs;
}

export const TOXIPROXY_BIN = which('toxiproxy-server', searchDirs());

export const toxiproxyComponent: Component = component(
  'toxiproxy',
  TOXIPROXY_BIN === null ? 'toxiproxy-server not found in .cache/bin or on PATH (GOBIN=$PWD/.cache/gobin go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0 && mv .cache/gobin/server .cache/bin/toxiproxy-server)' : null,
);

export type ToxicType = 'latency' | 'bandwidth' | 'slow_close' | 'timeout' | 'reset_peer' | 'slicer' | 'limit_data';

export interface Toxic {
  name?: string;
  type: ToxicType;
  stream?: 'upstream' | 'downstream';
  toxicity?: number;
  attributes: Record<string, number>;
}

export class Toxiproxy {
  readonly url: string;
  private readonly child: ChildProcess;

  private constructor(url: string, child: ChildProcess) {
    this.url = url;
    this.child = child;
  }

  static async start(): Promise<Toxiproxy> {
    if (TOXIPROXY_BIN === null) throw new Error('toxiproxy-server is missing');
    const [port] = await freePorts(1);
    const child = spawn(TOXIPROXY_BIN, ['-host', '127.0.0.1', '-port', String(port)], { stdio: ['ignore', 'ignore', 'ignore'] });
    const t = new Toxiproxy(`http://127.0.0.1:${port}`, child);
    await waitFor('toxiproxy to answer', async () => (await fetch(`${t.url}/version`).catch(() => null))?.ok ?? false, 10_000);
    return t;
  }

  private async api(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await fetch(this.url + path, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`toxiproxy ${method} ${path}: HTTP ${res.status}: ${text}`);
    return text ? JSON.parse(text) : null;
  }

  async createProxy(name: string, listenPort: number, upstreamPort: number): Promise<void> {
    await this.api('POST', '/proxies', { name, listen: `127.0.0.1:${listenPort}`, upstream: `127.0.0.1:${upstreamPort}`, enabled: true });
  }

  /** Disabling a proxy closes its connections and refuses new ones: a cut link. */
  async setEnabled(name: string, enabled: boolean): Promise<void> {
    await this.api('POST', `/proxies/${name}`, { enabled });
  }

  async addToxic(proxy: string, toxic: Toxic): Promise<string> {
    const name = toxic.name ?? `${toxic.type}_${toxic.stream ?? 'downstream'}`;
    await this.api('POST', `/proxies/${proxy}/toxics`, { name, type: toxic.type, stream: toxic.stream ?? 'downstream', toxicity: toxic.toxicity ?? 1, attributes: toxic.attributes });
    return name;
  }

  async removeToxic(proxy: string, name: string): Promise<void> {
    await this.api('DELETE', `/proxies/${proxy}/toxics/${name}`);
  }

  /** Remove every toxic and enable every proxy. */
  async reset(): Promise<void> {
    await this.api('POST', '/reset');
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    await new Promise<void>((r) => this.child.once('exit', () => r()));
  }
}

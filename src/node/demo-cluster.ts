// The three-region demo (`playout demo`, `npm start`): separate node processes on loopback, a
// seeded treasure-hunt load against each shard's leader, a live summary, optional chaos (links
// cut and restored through fault proxies, one follower killed with SIGKILL and restarted), and
// a verdict checked from the regions' own logs and digests:
//   - identical digests at every tick all regions hold;
//   - every acknowledged input is in every region's log exactly once, at the acknowledged seq;
//   - no ingestId sequenced twice.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { Rng } from '../core/rng.js';
import { FaultProxy } from '../adapters/fault-proxy.js';
import { HttpPeerClient } from '../adapters/http-peer-client.js';
import type { InputRequest, NodeStatus } from '../adapters/http-schemas.js';
import { LoadGenerator } from '../games/treasure-hunt/index.js';
import { PlayoutError } from '../core/errors.js';
import { checkShard } from './cluster-check.js';

export interface DemoOptions {
  /** Folder of the region configs (regions/). */
  regionsDir: string;
  /** Working folder for stores, derived configs and node logs (git-ignored .data/demo). */
  dataDir: string;
  /** Seconds to run; null: until stopped. */
  durationS: number | null;
  chaos: boolean;
  seed: number;
  /** Inputs per tick sent to each shard. */
  inputsPerTick: number;
  players: number;
  /** The command that runs `playout` (node, its flags, and the CLI's main script). */
  playout: { execPath: string; args: string[] };
  /** Print a summary line (or redraw a table on a TTY). */
  print: (text: string) => void;
  tty: boolean;
  /** Resolves to stop early (Ctrl-C). */
  stop: Promise<void>;
}

export interface DemoVerdict {
  ok: boolean;
  lines: string[];
}

interface RegionRun {
  region: string;
  port: number;
  configFile: string;
  logFile: string;
  child: ChildProcess | null;
  log: WriteStream | null;
  restarts: number;
}

interface ShardLoad {
  shard: string;
  leader: string;
  tickMs: number;
  gen: LoadGenerator;
  tick: number;
  /** ingestId → acknowledged seq (sequenced or duplicate answers). */
  acked: Map<string, number>;
  sent: number;
  failed: number;
  inflight: boolean;
  client: HttpPeerClient;
  /** Inputs refused by a failed request, re-sent with the same ingestIds. */
  retry: InputRequest[];
}

const TOKENS = {
  PLAYOUT_INGEST_TOKEN: 'demo-ingest-token-0000000000',
  PLAYOUT_PEER_TOKEN: 'demo-peer-token-000000000000',
  PLAYOUT_ADMIN_TOKEN: 'demo-admin-token-00000000000',
};

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => res(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class DemoCluster {
  readonly options: DemoOptions;
  readonly regions = new Map<string, RegionRun>();
  readonly proxies = new Map<string, FaultProxy>();
  readonly loads: ShardLoad[] = [];
  readonly admin = new Map<string, HttpPeerClient>();
  private readonly rng: Rng;
  private readonly events: string[] = [];
  private stopping = false;
  private readonly startedAtMs = Date.now();
  private lastStatus = new Map<string, NodeStatus | null>();
  private exitHook = false;

  constructor(options: DemoOptions) {
    this.options = options;
    this.rng = Rng.fromSeed(options.seed);
  }

  private event(text: string): void {
    const t = ((Date.now() - this.startedAtMs) / 1000).toFixed(1).padStart(6);
    this.events.push(`${t}s  ${text}`);
    if (this.events.length > 8) this.events.shift();
    if (!this.options.tty) this.options.print(`${t}s  ${text}`);
  }

  /** Derive one config per region (free ports, stores under dataDir, peers through proxies), start the nodes. */
  async start(): Promise<void> {
    const o = this.options;
    rmSync(o.dataDir, { recursive: true, force: true });
    mkdirSync(o.dataDir, { recursive: true });
    const raw = new Map<string, Record<string, unknown>>();
    for (const id of ['eu-fra', 'af-jnb', 'us-sfo']) {
      const file = join(o.regionsDir, `${id}.yaml`);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new PlayoutError('PLAYOUT_CONFIG_INVALID', `Cannot read the demo's region config ${file}: ${(err as Error).message}`, { path: file, cause: err });
      }
      raw.set(id, parse(text) as Record<string, unknown>);
    }
    const ports = new Map<string, number>();
    for (const id of raw.keys()) ports.set(id, await freePort());
    // A proxy in front of every directed link, so a cut can be one-way or both ways.
    for (const from of raw.keys()) {
      for (const to of raw.keys()) {
        if (from === to) continue;
        this.proxies.set(`${from}>${to}`, await FaultProxy.start(`${from}>${to}`, '127.0.0.1', ports.get(to)!));
      }
    }
    for (const [id, cfg] of raw) {
      const derived = {
        ...cfg,
        listen: { host: '127.0.0.1', port: ports.get(id)! },
        store: { path: resolve(o.dataDir, id) },
        peers: (cfg.peers as { region: string }[]).map((p) => ({ region: p.region, url: o.chaos ? this.proxies.get(`${id}>${p.region}`)!.url : `http://127.0.0.1:${ports.get(p.region)}` })),
        // Quick reactions for a short demo: stalls are noticed in a second, not five.
        replication: { ...(cfg.replication as object), streamIdleMs: 1_500, ackTimeoutMs: 5_000 },
        repair: { ...(cfg.repair as object), requestTimeoutMs: 2_000, backoffMsMax: 1_000 },
        log: { level: 'info' },
      };
      const configFile = join(o.dataDir, `${id}.yaml`);
      writeFileSync(configFile, stringify(derived));
      this.regions.set(id, { region: id, port: ports.get(id)!, configFile, logFile: join(o.dataDir, `${id}.log`), child: null, log: null, restarts: 0 });
      this.admin.set(id, new HttpPeerClient({ region: id, url: `http://127.0.0.1:${ports.get(id)}`, token: TOKENS.PLAYOUT_ADMIN_TOKEN, requestTimeoutMs: 5_000, frameBytesMax: 1 << 20 }));
    }
    await Promise.all([...this.regions.values()].map((r) => this.spawn(r)));
    const first = raw.get('eu-fra')!;
    let i = 0;
    for (const s of (first.shards as { id: string; leader: string; tickMs: number; params?: unknown }[]) ?? []) {
      const leaderPort = ports.get(s.leader)!;
      this.loads.push({
        shard: s.id,
        leader: s.leader,
        tickMs: s.tickMs,
        gen: new LoadGenerator({ seed: o.seed + i++, players: o.players, inputsPerTick: o.inputsPerTick, params: (s.params ?? null) as never, ingestPrefix: `demo${o.seed}.${s.id}` }),
        tick: 0,
        acked: new Map(),
        sent: 0,
        failed: 0,
        inflight: false,
        client: new HttpPeerClient({ region: s.leader, url: `http://127.0.0.1:${leaderPort}`, token: TOKENS.PLAYOUT_INGEST_TOKEN, requestTimeoutMs: 10_000, frameBytesMax: 1 << 20 }),
        retry: [],
      });
    }
    this.event(`started ${[...this.regions.keys()].join(', ')} (stores and logs in ${o.dataDir})`);
  }

  private async spawn(r: RegionRun): Promise<void> {
    const o = this.options;
    r.log ??= createWriteStream(r.logFile, { flags: 'a' });
    // Detached: Ctrl-C in the terminal signals the demo's process group, and the nodes must keep
    // running until the demo has healed the links and read the verdict from them.
    // --stop-on-stdin-close: should the demo die without stopping them, the nodes see their
    // stdin close and shut down instead of running on.
    const child = spawn(o.playout.execPath, [...o.playout.args, 'start', '--region', r.configFile, '--stop-on-stdin-close'], { env: { ...process.env, ...TOKENS }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    r.child = child;
    if (!this.exitHook) {
      this.exitHook = true;
      process.once('exit', () => {
        for (const x of this.regions.values()) if (x.child !== null && x.child.exitCode === null) x.child.kill('SIGKILL');
      });
    }
    child.stdout!.pipe(r.log, { end: false });
    child.stderr!.pipe(r.log, { end: false });
    const url = `http://127.0.0.1:${r.port}/healthz`;
    for (let waited = 0; ; waited += 100) {
      if (child.exitCode !== null) throw new PlayoutError('PLAYOUT_SHARD_STOPPED', `Region ${r.region} exited with code ${child.exitCode} while starting; see ${r.logFile}`, {});
      const ok = await fetch(url).then((res) => res.ok, () => false);
      if (ok) return;
      if (waited > 30_000) throw new PlayoutError('PLAYOUT_PEER_UNAVAILABLE', `Region ${r.region} did not answer /healthz within 30 s; see ${r.logFile}`, {});
      await sleep(100);
    }
  }

  /** Send each shard's inputs every tick until stopped. */
  private async runLoad(load: ShardLoad): Promise<void> {
    while (!this.stopping) {
      const t0 = Date.now();
      if (!load.inflight) {
        const batch: InputRequest[] = load.retry.length > 0 ? load.retry : load.gen.next(load.tick++).map((i) => ({ type: i.type, version: i.version, payload: i.payload, ingestId: i.ingestId }));
        load.retry = [];
        load.inflight = true;
        load.sent += batch.length;
        void load.client.submit(load.shard, batch).then(
          (results) => {
            results.forEach((r, k) => load.acked.set(batch[k]!.ingestId!, r.seq));
            load.inflight = false;
          },
          () => {
            // Not acknowledged: a client retries with the same ingestIds; the leader dedupes.
            load.failed += batch.length;
            load.retry = batch;
            load.inflight = false;
          },
        );
      }
      await sleep(Math.max(0, load.tickMs - (Date.now() - t0)));
    }
    while (load.inflight) await sleep(20);
  }

  private async runChaos(durationS: number | null): Promise<void> {
    const links = [...new Set([...this.proxies.keys()].map((k) => k.split('>').sort().join('~')))];
    // The follower that leads nothing is the one killed; a leader's death is failover's business.
    const leaders = new Set(this.loads.map((l) => l.leader));
    const victim = [...this.regions.keys()].find((r) => !leaders.has(r)) ?? null;
    const killAtMs = this.startedAtMs + Math.max(8_000, ((durationS ?? 60) * 1000) * 0.4);
    let killed = false;
    while (!this.stopping) {
      await sleep(this.rng.int(2_000, 5_000));
      if (this.stopping) break;
      if (!killed && victim !== null && Date.now() >= killAtMs) {
        killed = true;
        await this.killAndRestart(victim);
        continue;
      }
      const link = links[this.rng.int(0, links.length - 1)]!;
      const [a, b] = link.split('~') as [string, string];
      const mode = this.rng.chance(0.7) ? 'reset' : 'blackhole';
      const forMs = this.rng.int(1_500, 5_000);
      this.proxies.get(`${a}>${b}`)!.set(mode);
      this.proxies.get(`${b}>${a}`)!.set(mode);
      this.event(`chaos: link ${a} ↔ ${b} cut (${mode}) for ${(forMs / 1000).toFixed(1)} s`);
      await sleep(forMs);
      this.proxies.get(`${a}>${b}`)!.set('up');
      this.proxies.get(`${b}>${a}`)!.set('up');
      this.event(`chaos: link ${a} ↔ ${b} restored`);
    }
  }

  private async killAndRestart(region: string): Promise<void> {
    const r = this.regions.get(region)!;
    r.child?.kill('SIGKILL');
    this.event(`chaos: ${region} killed with SIGKILL`);
    await new Promise<void>((res) => (r.child?.exitCode !== null || r.child.signalCode !== null ? res() : r.child.once('exit', () => res())));
    await sleep(2_000);
    r.restarts++;
    await this.spawn(r);
    this.event(`chaos: ${region} restarted; it resumes from its store and repairs what it missed`);
  }

  private async poll(): Promise<void> {
    await Promise.all(
      [...this.admin].map(async ([id, c]) => {
        this.lastStatus.set(id, await c.nodeStatus({ signal: AbortSignal.timeout(1_000) }).catch(() => null));
      }),
    );
  }

  private summary(): string {
    const lines: string[] = [];
    const elapsed = ((Date.now() - this.startedAtMs) / 1000).toFixed(0);
    lines.push(`playout demo — ${this.regions.size} regions, ${elapsed}s${this.options.chaos ? ', chaos on' : ''}   (Ctrl-C to stop and get the verdict)`);
    for (const load of this.loads) {
      const leader = this.lastStatus.get(load.leader)?.shards.find((s) => s.shard === load.shard) ?? null;
      lines.push('');
      lines.push(`shard ${load.shard} (leader ${load.leader}, ack ${leader?.ack ?? '?'}): ${load.acked.size} inputs acknowledged, ${load.failed} retried`);
      lines.push(`  ${'region'.padEnd(8)} ${'role'.padEnd(8)} ${'head'.padStart(8)} ${'applied'.padStart(8)} ${'tick'.padStart(6)} ${'lag'.padStart(14)} ${'digest'.padEnd(18)} ${'repairs'.padStart(14)}  state`);
      for (const [id] of this.regions) {
        const st = this.lastStatus.get(id);
        const s = st?.shards.find((x) => x.shard === load.shard);
        if (st === null || st === undefined || s === undefined) {
          lines.push(`  ${id.padEnd(8)} ${'down'.padEnd(8)}`);
          continue;
        }
        const behind = leader === null ? null : Math.max(0, leader.head - s.head);
        const lagMs = Math.max(0, ...s.peers.map((p) => p.lagMs ?? 0));
        const lag = s.role === 'leader' ? '-' : `${behind ?? '?'} e/${lagMs} ms`;
        let agree = '-';
        if (s.role !== 'leader' && leader !== null && s.digestTick !== null) {
          const lp = s.peers.find((p) => p.region === load.leader);
          agree = s.quarantine !== null ? 'DESYNC' : lp?.agrees === false ? 'DIFFERS' : `ok @${s.lastAgreedTick ?? '-'}`;
        }
        const state = s.stopped !== null ? `STOPPED ${s.stopped.code}` : s.quarantine !== null ? `quarantined @${s.quarantine.firstDivergingTick}` : 'ok';
        lines.push(
          `  ${id.padEnd(8)} ${s.role.padEnd(8)} ${String(s.head).padStart(8)} ${String(s.applied).padStart(8)} ${String(s.tick).padStart(6)} ${lag.padStart(14)} ${agree.padEnd(18)} ${`${s.repairs.requests}/${s.repairs.entries}`.padStart(14)}  ${state}`,
        );
      }
    }
    if (this.events.length > 0) {
      lines.push('');
      lines.push('events:');
      for (const e of this.events) lines.push(`  ${e}`);
    }
    return lines.join('\n');
  }

  /** Run load (and chaos) until the duration ends or stop resolves; then converge and judge. */
  async run(): Promise<DemoVerdict> {
    const o = this.options;
    const loads = this.loads.map((l) => this.runLoad(l));
    const chaos = o.chaos ? this.runChaos(o.durationS) : Promise.resolve();
    const until = o.durationS === null ? o.stop : Promise.race([o.stop, sleep(o.durationS * 1000)]);
    let done = false;
    void until.then(() => (done = true));
    let lastPrint = 0;
    while (!done) {
      await this.poll();
      if (o.tty) o.print(`\x1b[H\x1b[2J${this.summary()}\n`);
      else if (Date.now() - lastPrint > 5_000) {
        o.print(this.summary());
        lastPrint = Date.now();
      }
      await Promise.race([sleep(1_000), until]);
    }
    this.stopping = true;
    this.event('stopping the load; healing every link; waiting for the regions to converge');
    await Promise.all(loads);
    await chaos;
    for (const p of this.proxies.values()) p.set('up');
    await this.converge();
    await this.poll();
    o.print(this.summary());
    return this.verdict();
  }

  /** Wait until every region holds and applied each leader's head (or 60 s pass). */
  private async converge(): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      await this.poll();
      let ok = true;
      for (const load of this.loads) {
        const leader = this.lastStatus.get(load.leader)?.shards.find((s) => s.shard === load.shard);
        if (leader === undefined) {
          ok = false;
          continue;
        }
        for (const id of this.regions.keys()) {
          const s = this.lastStatus.get(id)?.shards.find((x) => x.shard === load.shard);
          if (s === undefined || s.applied < leader.head || s.head < leader.head) ok = false;
        }
      }
      if (ok) return;
      await sleep(250);
    }
  }

  async verdict(): Promise<DemoVerdict> {
    const lines: string[] = [];
    let ok = true;
    for (const load of this.loads) {
      const check = await checkShard(load.shard, this.admin, load.acked);
      ok &&= check.ok;
      lines.push(...check.lines);
    }
    lines.push(ok ? 'VERDICT: PASS — identical digests at every common tick, no acknowledged input lost, none applied twice' : 'VERDICT: FAIL');
    return { ok, lines };
  }

  async close(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      [...this.regions.values()].map(async (r) => {
        const c = r.child;
        if (c !== null && c.exitCode === null && c.signalCode === null) {
          c.kill('SIGTERM');
          const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
          await new Promise<void>((res) => c.once('exit', () => res()));
          clearTimeout(t);
        }
        r.log?.end();
      }),
    );
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
    await Promise.all([...this.admin.values(), ...this.loads.map((l) => l.client)].map((c) => c.close().catch(() => undefined)));
  }
}

// Real Apache Kafka for tests: single-node KRaft clusters and MirrorMaker 2, started from the
// Maven-resolved jars by tools/kafka/kafka.sh on random free ports in temp dirs, and kcat.
//
//   const kafka = kafkaComponent();
//   describe.skipIf(kafka.skip)('…', () => {
//     let cluster: KafkaCluster;
//     beforeAll(async () => { kafka.require(); cluster = await startKafka(); });
//     afterAll(() => cluster?.stop());
//   });
//
// Missing Java or jars → the tests are skipped with a message (failing under CI=true). When the
// jars are missing but Maven is here, they are installed first (tools/kafka/install.sh).
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { component, which, type Component } from './components.js';

const run = promisify(execFile);

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const KAFKA_SH = join(REPO_ROOT, 'tools/kafka/kafka.sh');
export const KAFKA_LIBS = process.env.KAFKA_LIBS ?? join(REPO_ROOT, '.cache/kafka/libs');

function hasJars(): boolean {
  try {
    return readdirSync(KAFKA_LIBS).some((f) => /^kafka_2\.13-.*\.jar$/.test(f));
  } catch {
    return false;
  }
}

let kafkaMissingMemo: string | null | undefined;

/** Why Kafka cannot run here, or null. Installs the jars when only they are missing. */
export function kafkaMissing(): string | null {
  if (kafkaMissingMemo !== undefined) return kafkaMissingMemo;
  const java = which('java');
  if (java === null) return (kafkaMissingMemo = 'java is not on PATH (install Java 17+, e.g. apt-get install openjdk-17-jre-headless)');
  if (!hasJars()) {
    if (which('mvn') === null) return (kafkaMissingMemo = `no Kafka jars in ${KAFKA_LIBS} and mvn is not on PATH (install Maven, then run bash tools/kafka/install.sh)`);
    try {
      execFileSync('bash', [join(REPO_ROOT, 'tools/kafka/install.sh')], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 15 * 60_000 });
    } catch (err) {
      return (kafkaMissingMemo = `installing the Kafka jars failed (bash tools/kafka/install.sh): ${String((err as { stderr?: Buffer }).stderr ?? err).slice(0, 300)}`);
    }
    if (!hasJars()) return (kafkaMissingMemo = `bash tools/kafka/install.sh left no Kafka jars in ${KAFKA_LIBS}`);
  }
  return (kafkaMissingMemo = null);
}

export function kafkaComponent(): Component {
  return component('kafka', kafkaMissing());
}

export function kcatComponent(): Component {
  return component('kcat', which('kcat') === null ? 'kcat is not on PATH (Debian: apt-get install kcat)' : null);
}

/** A TCP port that was free a moment ago (listen on 0, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

// Processes this test process started, killed on exit (a crashed worker must not leave brokers
// behind on a shared two-core machine). Even when this process is killed outright, kafka.sh's
// watchdog (--owner-pid) stops them.
const livePidFiles = new Set<string>();
process.once('exit', () => {
  for (const f of livePidFiles) {
    try {
      process.kill(Number(readFileSync(f, 'utf8').trim()), 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return `(no ${file})`;
  }
}

export interface KafkaCluster {
  readonly name: string;
  readonly dir: string;
  readonly port: number;
  readonly controllerPort: number;
  /** ['127.0.0.1:port'] */
  readonly brokers: string[];
  /** '127.0.0.1:port' */
  readonly bootstrap: string;
  /** Stop the broker (SIGTERM, clean shutdown) and delete its directory. */
  stop(): Promise<void>;
  /** The last lines of the broker log (for failure messages). */
  logTail(lines?: number): string;
}

export interface StartKafkaOptions {
  name?: string;
  /** Default partitions of topics created without a count. */
  partitions?: number;
  heap?: string;
}

async function kafkaSh(args: string[]): Promise<string> {
  const { stdout } = await run('bash', [KAFKA_SH, ...args], { env: { ...process.env, KAFKA_LIBS }, timeout: 150_000 });
  return stdout;
}

/** Start a single-node KRaft cluster on free ports in a fresh temp dir. */
export async function startKafka(options: StartKafkaOptions = {}): Promise<KafkaCluster> {
  const name = options.name ?? 'kafka';
  const dir = mkdtempSync(join(tmpdir(), `playout-${name}-`));
  let lastError: unknown = null;
  // A port found free can be taken before the broker binds it: try again with others.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const controllerPort = await freePort();
    if (port === controllerPort) continue;
    const pidFile = join(dir, 'kafka.pid');
    livePidFiles.add(pidFile);
    try {
      await kafkaSh(['start', '--dir', dir, '--port', String(port), '--controller-port', String(controllerPort), '--partitions', String(options.partitions ?? 1), '--owner-pid', String(process.pid), ...(options.heap ? ['--heap', options.heap] : [])]);
    } catch (err) {
      livePidFiles.delete(pidFile);
      lastError = err;
      continue;
    }
    const bootstrap = `127.0.0.1:${port}`;
    return {
      name,
      dir,
      port,
      controllerPort,
      brokers: [bootstrap],
      bootstrap,
      async stop() {
        try {
          await kafkaSh(['stop', '--dir', dir]);
        } finally {
          livePidFiles.delete(pidFile);
          if (!process.env.PLAYOUT_KEEP_KAFKA) rmSync(dir, { recursive: true, force: true });
        }
      },
      logTail: (lines = 40) => tail(join(dir, 'logs/server.log'), lines),
    };
  }
  const detail = (lastError as { stderr?: string } | null)?.stderr ?? String(lastError);
  throw new Error(`Kafka "${name}" did not start in ${dir}: ${detail}\n${tail(join(dir, 'logs/server.log'))}`);
}

export interface MirrorFlow {
  /** Cluster alias, the prefix of mirrored topic names (`eu-fra` → `eu-fra.playout.log`). */
  alias: string;
  cluster: KafkaCluster;
}

export interface MirrorMaker {
  readonly dir: string;
  readonly configFile: string;
  /** SIGTERM and wait (offsets are flushed on a clean stop). */
  stop(): Promise<void>;
  /** SIGKILL: no offset flush, so a restart mirrors again what it had not committed. */
  kill(): void;
  /** Start it again with the same config (after stop or kill). */
  restart(): Promise<void>;
  logTail(lines?: number): string;
}

export interface StartMirrorMakerOptions {
  source: MirrorFlow;
  target: MirrorFlow;
  /** Regex of topics to mirror (MirrorMaker's `topics`). */
  topics?: string;
  /** How often source offsets are committed; long by default so a kill reliably re-mirrors. */
  offsetFlushIntervalMs?: number;
}

/** MirrorMaker 2 in dedicated mode, one flow source → target. */
export async function startMirrorMaker(o: StartMirrorMakerOptions): Promise<MirrorMaker> {
  const dir = mkdtempSync(join(tmpdir(), 'playout-mm2-'));
  const configFile = join(dir, 'mm2.properties');
  const s = o.source.alias;
  const t = o.target.alias;
  writeFileSync(
    configFile,
    [
      `clusters = ${s}, ${t}`,
      `${s}.bootstrap.servers = ${o.source.cluster.bootstrap}`,
      `${t}.bootstrap.servers = ${o.target.cluster.bootstrap}`,
      `${s}->${t}.enabled = true`,
      `${s}->${t}.topics = ${o.topics ?? 'playout\\.log'}`,
      `${t}->${s}.enabled = false`,
      // One broker per cluster: every topic MirrorMaker creates has one replica.
      'replication.factor = 1',
      'checkpoints.topic.replication.factor = 1',
      'heartbeats.topic.replication.factor = 1',
      'offset-syncs.topic.replication.factor = 1',
      'offset.storage.replication.factor = 1',
      'status.storage.replication.factor = 1',
      'config.storage.replication.factor = 1',
      'tasks.max = 1',
      // Every Connect plugin in the Kafka jars declares itself in a ServiceLoader manifest;
      // the default (scanning the whole classpath twice) costs tens of seconds on two cores.
      'plugin.discovery = service_load',
      'refresh.topics.interval.seconds = 2',
      'sync.topic.configs.enabled = false',
      'sync.topic.acls.enabled = false',
      'emit.checkpoints.enabled = false',
      'emit.heartbeats.enabled = false',
      `offset.flush.interval.ms = ${o.offsetFlushIntervalMs ?? 300_000}`,
      '',
    ].join('\n'),
  );
  const pidFile = join(dir, 'mm2.pid');
  const start = async () => {
    livePidFiles.add(pidFile);
    await kafkaSh(['mm2-start', '--dir', dir, '--config', configFile, '--owner-pid', String(process.pid)]);
  };
  await start();
  return {
    dir,
    configFile,
    async stop() {
      try {
        await kafkaSh(['mm2-stop', '--dir', dir]);
      } finally {
        livePidFiles.delete(pidFile);
      }
    },
    kill() {
      if (!existsSync(pidFile)) return;
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGKILL');
      } catch {
        // already gone
      }
      rmSync(pidFile, { force: true });
      livePidFiles.delete(pidFile);
    },
    restart: start,
    logTail: (lines = 40) => tail(join(dir, 'logs/mm2.log'), lines),
  };
}

/** Remove a MirrorMaker's directory (after stop). */
export function removeMirrorMakerDir(mm: MirrorMaker): void {
  if (!process.env.PLAYOUT_KEEP_KAFKA) rmSync(mm.dir, { recursive: true, force: true });
}

/** Run kcat with args (and optional stdin); resolves with stdout. */
export async function kcat(args: string[], input?: string | Buffer): Promise<string> {
  return new Promise((resolveOut, reject) => {
    const child = execFile('kcat', args, { encoding: 'buffer', maxBuffer: 64 << 20, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kcat ${args.join(' ')} failed: ${err.message}\n${stderr.toString()}`));
      else resolveOut(stdout.toString('utf8'));
    });
    if (input !== undefined) child.stdin!.end(input);
    else child.stdin!.end();
  });
}

/** Poll `check` until it returns a value other than undefined (event-driven waits, no sleeps in assertions). */
export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

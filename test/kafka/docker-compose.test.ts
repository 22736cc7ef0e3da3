// docker-compose.yml cannot run here (no Docker engine), but `docker-compose config` can check
// it, and this test checks that everything it names exists and agrees with regions/: every
// service, port, file and config path.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadRegionConfig } from '../../src/node/region-config.js';
import { component, which } from '../helpers/components.js';
import { REPO_ROOT } from '../helpers/kafka.js';

const run = promisify(execFile);
const compose = component('docker-compose', which('docker-compose') === null ? 'docker-compose is not on PATH (Debian: apt-get install docker-compose)' : null);
const REGIONS = ['eu-fra', 'af-jnb', 'us-sfo'];

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string } | string;
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, string | number | null>;
  ports?: ({ published: number | string; target: number } | string)[];
  volumes?: ({ type: string; source: string; target: string } | string)[];
  depends_on?: Record<string, { condition: string }> | string[];
}

function ports(s: Service): { host: number; container: number }[] {
  return (s.ports ?? []).map((p) => {
    if (typeof p === 'string') {
      const [host, container] = p.replace(/\/tcp$/, '').split(':').slice(-2);
      return { host: Number(host), container: Number(container) };
    }
    return { host: Number(p.published), container: Number(p.target) };
  });
}

function volumes(s: Service): { source: string; target: string }[] {
  return (s.volumes ?? []).map((v) => {
    if (typeof v === 'string') {
      const [source, target] = v.split(':');
      return { source: source!, target: target! };
    }
    return { source: v.source, target: v.target };
  });
}

describe.skipIf(compose.skip)('docker-compose.yml', () => {
  let services: Record<string, Service>;
  let volumeNames: string[];

  beforeAll(async () => {
    compose.require();
    // The defaults of the token variables are what `config` must accept.
    const env = { ...process.env };
    for (const k of ['PLAYOUT_INGEST_TOKEN', 'PLAYOUT_PEER_TOKEN', 'PLAYOUT_ADMIN_TOKEN']) delete env[k];
    const { stdout } = await run('docker-compose', ['-f', join(REPO_ROOT, 'docker-compose.yml'), 'config'], { cwd: REPO_ROOT, env, timeout: 60_000 });
    const doc = parse(stdout) as { services: Record<string, Service>; volumes?: Record<string, unknown> };
    services = doc.services;
    volumeNames = Object.keys(doc.volumes ?? {});
  });

  it('is accepted by docker-compose config and declares a Kafka and a node per region, topics and MirrorMaker 2', () => {
    expect(Object.keys(services).sort()).toEqual([...REGIONS.flatMap((r) => [`kafka-${r}`, `node-${r}`]), 'kafka-topics', 'mirror-maker'].sort());
    const hostPorts = Object.values(services).flatMap((s) => ports(s).map((p) => p.host));
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
    for (const s of Object.values(services)) {
      for (const v of volumes(s)) if (!v.source.startsWith('/')) expect(volumeNames).toContain(v.source);
      const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {});
      for (const d of deps) expect(Object.keys(services)).toContain(d);
    }
  });

  it('runs official KRaft brokers whose listeners, controller voters and cluster ids agree', () => {
    const pom = readFileSync(join(REPO_ROOT, 'tools/kafka/pom.xml'), 'utf8');
    const kafkaVersion = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom)![1]!;
    const ids = new Set<string>();
    for (const r of REGIONS) {
      const k = services[`kafka-${r}`]!;
      expect(k.image).toBe(`apache/kafka:${kafkaVersion}`);
      const env = k.environment!;
      expect(env.KAFKA_PROCESS_ROLES).toBe('broker,controller');
      expect(String(env.KAFKA_CONTROLLER_QUORUM_VOTERS)).toBe(`${env.KAFKA_NODE_ID}@kafka-${r}:9093`);
      const listeners = String(env.KAFKA_LISTENERS);
      const advertised = String(env.KAFKA_ADVERTISED_LISTENERS);
      expect(advertised).toContain(`PLAINTEXT://kafka-${r}:9092`);
      expect(listeners).toContain('PLAINTEXT://:9092');
      expect(listeners).toContain('CONTROLLER://:9093');
      for (const name of ['OFFSETS_TOPIC_REPLICATION_FACTOR', 'TRANSACTION_STATE_LOG_REPLICATION_FACTOR', 'TRANSACTION_STATE_LOG_MIN_ISR', 'MIN_INSYNC_REPLICAS']) expect(Number(env[`KAFKA_${name}`])).toBe(1);
      // The host listener's advertised port is the port published on the host.
      const hostListener = /HOST:\/\/localhost:(\d+)/.exec(advertised)![1]!;
      const inner = Number(/HOST:\/\/:(\d+)/.exec(listeners)![1]);
      expect(ports(k)).toEqual([{ host: Number(hostListener), container: inner }]);
      const id = String(env.CLUSTER_ID);
      expect(Buffer.from(id, 'base64url')).toHaveLength(16);
      ids.add(id);
      expect(volumes(k).map((v) => v.target)).toEqual([env.KAFKA_LOG_DIRS]);
    }
    expect(ids.size).toBe(REGIONS.length);
    // Every cluster gets playout's topics with explicit partition counts.
    const script = [...(Array.isArray(services['kafka-topics']!.command) ? services['kafka-topics']!.command : [services['kafka-topics']!.command!])].join(' ');
    for (const r of REGIONS) expect(script).toContain(`kafka-${r}:9092`);
    for (const topic of ['playout.log', 'playout.inputs', 'playout.inputs.rejected']) expect(script).toMatch(new RegExp(`--topic ${topic.replace(/\./g, '\\.')} --partitions \\d+`));
  });

  it('mirrors every region\'s playout.log with MirrorMaker 2 from a config file that exists and names the brokers', () => {
    const mm = services['mirror-maker']!;
    const mount = volumes(mm)[0]!;
    expect(existsSync(mount.source)).toBe(true);
    const command = Array.isArray(mm.command) ? mm.command : [mm.command!];
    expect(command).toEqual(['/opt/kafka/bin/connect-mirror-maker.sh', mount.target]);
    const props = Object.fromEntries(
      readFileSync(mount.source, 'utf8')
        .split('\n')
        .filter((l) => l.trim() && !l.startsWith('#'))
        .map((l) => l.split('=').map((x) => x.trim()) as [string, string]),
    );
    expect(props.clusters!.split(',').map((s) => s.trim()).sort()).toEqual([...REGIONS].sort());
    for (const r of REGIONS) {
      expect(props[`${r}.bootstrap.servers`]).toBe(`kafka-${r}:9092`);
      for (const t of REGIONS) if (t !== r) expect(props[`${r}->${t}.enabled`]).toBe('true');
    }
    expect(props.topics).toBe('playout\\.log');
  });

  it('builds the nodes from the Dockerfile with region configs that exist and agree with regions/', () => {
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    // Every COPY source from the build context exists.
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) for (const src of m[1]!.split(/\s+/)) expect(existsSync(join(REPO_ROOT, src))).toBe(true);
    expect(dockerfile).toMatch(/^WORKDIR \/app$/m);
    expect(dockerfile).toMatch(/^COPY regions \.\/regions$/m);
    const ignored = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const needed of ['src', 'regions', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) expect(ignored).not.toContain(needed);
    // dist/cli/main.js is what the build makes of src/cli/main.ts.
    expect(existsSync(join(REPO_ROOT, 'src/cli/main.ts'))).toBe(true);
    const build = JSON.parse(readFileSync(join(REPO_ROOT, 'tsconfig.build.json'), 'utf8')) as { compilerOptions: { outDir: string; rootDir: string } };
    expect([build.compilerOptions.rootDir, build.compilerOptions.outDir]).toEqual(['src', 'dist']);

    const env = services['node-eu-fra']!.environment as Record<string, string>;
    for (const r of REGIONS) {
      const node = services[`node-${r}`]!;
      const context = typeof node.build === 'string' ? node.build : node.build!.context;
      expect(context).toBe(REPO_ROOT);
      expect(existsSync(join(context, 'Dockerfile'))).toBe(true);
      expect(node.command).toEqual(['node', 'dist/cli/main.js', 'start', '--region', `/app/regions/docker/${r}.yaml`]);
      const file = join(REPO_ROOT, 'regions/docker', `${r}.yaml`);
      const config = loadRegionConfig(file, node.environment as Record<string, string>);
      expect(node.environment).toEqual(env);
      expect(config.region).toBe(r);
      expect(config.listen.host).toBe('0.0.0.0');
      expect(ports(node)).toEqual([{ host: config.listen.port, container: config.listen.port }]);
      expect(config.store.path).toBe('/data');
      expect(volumes(node).map((v) => v.target)).toEqual(['/data']);
      // Peers are the other nodes, by service name and container port.
      expect(config.peers.map((p) => p.region).sort()).toEqual(REGIONS.filter((x) => x !== r).sort());
      for (const p of config.peers) {
        const url = new URL(p.url);
        expect(url.hostname).toBe(`node-${p.region}`);
        expect(ports(services[`node-${p.region}`]!).map((x) => x.container)).toContain(Number(url.port));
      }
      // The same shards as the loopback config of the region.
      const loopback = loadRegionConfig(join(REPO_ROOT, 'regions', `${r}.yaml`), node.environment as Record<string, string>);
      expect(config.shards).toEqual(loopback.shards);
      expect(config.tokens).toEqual(loopback.tokens);
    }
    // The image's default command names a config that exists too.
    const cmd = /^CMD \[(.+)\]$/m.exec(dockerfile)![1]!;
    const regionArg = JSON.parse(`[${cmd}]`).at(-1) as string;
    expect(existsSync(join(REPO_ROOT, regionArg.replace(/^\/app\//, '')))).toBe(true);
  });
});

// `playout failover plan | execute | status` end to end: the command, its operator functions and
// the undici client, against three simulated regions serving the failover routes over real HTTP
// on loopback (test/sim/failover-http-twin.ts). The simulation's clock is pumped while requests
// are in flight.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { HttpFailoverClient } from '../../src/adapters/http-failover-client.js';
import { FoCluster, SHARD } from '../sim/failover-cluster.js';
import { serveFailoverTwin } from '../sim/failover-http-twin.js';

const SEED = Number(process.env.SIM_SEED ?? 4242);
const TOKENS = { peer: 'peer-token-0123456789', admin: 'admin-token-0123456789' };

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString('utf8');
    cb();
  }
}

let apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.map((a) => a.close()));
  apps = [];
});

async function setup(): Promise<{ c: FoCluster; regions: string }> {
  const c = new FoCluster({ seed: SEED, ack: 'leader' });
  await c.start();
  await c.runUntil(1_000);
  const urls: string[] = [];
  for (const r of c.regions) {
    const { app, url } = await serveFailoverTwin(r, TOKENS);
    apps.push(app);
    urls.push(`${r.name}=${url}`);
  }
  return { c, regions: urls.join(',') };
}

/** Run `playout …` while the simulation keeps time moving. */
async function playout(c: FoCluster, argv: string[], env: Record<string, string> = { PLAYOUT_ADMIN_TOKEN: TOKENS.admin }): Promise<{ code: number; out: string; err: string }> {
  const stdout = new Sink();
  const stderr = new Sink();
  let done = false;
  const p = main(argv, { stdout, stderr, env, cwd: process.cwd() }).finally(() => (done = true));
  while (!done) {
    await c.runFor(5);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return { code: await p, out: stdout.text, err: stderr.text };
}

describe('playout failover', () => {
  it('plans, executes and reports a planned switchover over HTTP', async () => {
    const { c, regions } = await setup();
    const status = await playout(c, ['failover', 'status', '--shard', SHARD, '--regions', regions]);
    expect(status.code).toBe(0);
    expect(status.out).toMatch(/shard fo-1: epoch 1, leader eu-fra/);

    const plan = await playout(c, ['failover', 'plan', '--shard', SHARD, '--to', 'af-jnb', '--regions', regions, '--json']);
    expect(plan.code).toBe(0);
    const p = JSON.parse(plan.out);
    expect(p).toMatchObject({ shard: SHARD, target: 'af-jnb', refusal: null, epoch: { current: 1, leader: 'eu-fra', leaderReachable: true, next: 2 }, loss: null });
    expect(p.steps.length).toBeGreaterThanOrEqual(3);

    const ex = await playout(c, ['failover', 'execute', '--shard', SHARD, '--to', 'af-jnb', '--regions', regions]);
    expect(ex.err).toBe('');
    expect(ex.code).toBe(0);
    expect(ex.out).toMatch(/failover of shard fo-1 done: af-jnb leads epoch 2/);
    expect(ex.out).toMatch(/eu-fra@\d+ \(old leader, final head\)/);
    expect(c.region('af-jnb').isLeader).toBe(true);

    const after = await playout(c, ['failover', 'status', '--shard', SHARD, '--regions', regions, '--json']);
    const s = JSON.parse(after.out);
    expect(s.epochs.map((e: { epoch: number; leader: string }) => [e.epoch, e.leader])).toEqual([
      [1, 'eu-fra'],
      [2, 'af-jnb'],
    ]);
    expect(s.epochs[1].failoverId).toMatch(/^fo-/);
    await c.healAndSettle();
    expect(c.check()).toEqual([]);
  });

  it('says why it refuses: the old leader is down and --accept-loss was not given', async () => {
    const { c, regions } = await setup();
    c.region('eu-fra').crash();
    const plan = await playout(c, ['failover', 'plan', '--shard', SHARD, '--to', 'us-sfo', '--regions', regions]);
    expect(plan.code).toBe(1);
    expect(plan.out).toMatch(/execute would REFUSE: PLAYOUT_FAILOVER_LOSS_UNACCEPTED/);
    expect(plan.out).toMatch(/LOSS: seq \d+\.\./);
    const ex = await playout(c, ['failover', 'execute', '--shard', SHARD, '--to', 'us-sfo', '--regions', regions]);
    expect(ex.code).toBe(1);
    expect(ex.err).toMatch(/PLAYOUT_FAILOVER_LOSS_UNACCEPTED: .*pass --accept-loss/);
    const ok = await playout(c, ['failover', 'execute', '--shard', SHARD, '--to', 'us-sfo', '--regions', regions, '--accept-loss']);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/LOST \(accepted\): seq \d+/);
  });

  it('finds the regions and the admin token variable in a region config', async () => {
    const { c, regions } = await setup();
    const urls = Object.fromEntries(regions.split(',').map((p) => p.split('=') as [string, string]));
    const own = new URL(urls['af-jnb']!);
    const dir = mkdtempSync(join(tmpdir(), 'playout-failover-'));
    try {
      const file = join(dir, 'af-jnb.yaml');
      writeFileSync(
        file,
        [
          'region: af-jnb',
          `listen: { host: 0.0.0.0, port: ${own.port} }`,
          'store: { path: ./store }',
          'peers:',
          `  - { region: eu-fra, url: "${urls['eu-fra']}" }`,
          `  - { region: us-sfo, url: "${urls['us-sfo']}" }`,
          'tokens: { ingest: { env: T_INGEST }, peer: { env: T_PEER }, admin: { env: OPS_ADMIN_TOKEN } }',
          '',
        ].join('\n'),
      );
      const r = await playout(c, ['failover', 'status', '--shard', SHARD, '--config', file], { OPS_ADMIN_TOKEN: TOKENS.admin });
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^af-jnb +1 +eu-fra/m);
      expect(r.out).toMatch(/^us-sfo +1 +eu-fra/m);
      const missing = await playout(c, ['failover', 'status', '--shard', SHARD, '--config', join(dir, 'nope.yaml')]);
      expect(missing.code).toBe(2);
      expect(missing.err).toMatch(/cannot read/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad arguments and a missing token with exit code 2, and a wrong token with its code', async () => {
    const { c, regions } = await setup();
    const noTo = await playout(c, ['failover', 'plan', '--shard', SHARD, '--regions', regions]);
    expect(noTo.code).toBe(2);
    expect(noTo.err).toMatch(/PLAYOUT_INVALID_ARGUMENT: .*--to/);
    const both = await playout(c, ['failover', 'status', '--shard', SHARD]);
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/--config FILE or --regions/);
    const noToken = await playout(c, ['failover', 'status', '--shard', SHARD, '--regions', regions], {});
    expect(noToken.code).toBe(2);
    expect(noToken.err).toMatch(/PLAYOUT_ADMIN_TOKEN/);
    const bad = await playout(c, ['failover', 'plan', '--shard', SHARD, '--to', 'af-jnb', '--regions', regions], { PLAYOUT_ADMIN_TOKEN: 'not-a-token-of-these-regions' });
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/PLAYOUT_UNAUTHENTICATED/);
    // A peer-scope token may read, not fence: 403, and nothing changed.
    const client = new HttpFailoverClient({ region: 'us-sfo', url: regions.split(',')[2]!.split('=')[1]!, token: TOKENS.peer, requestTimeoutMs: 2_000 });
    let done = false;
    const p = client.fence(SHARD, { epoch: 2, candidate: 'us-sfo', failoverId: 'fo-x' }).catch((e: unknown) => e).finally(() => (done = true));
    while (!done) {
      await c.runFor(5);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(await p).toMatchObject({ code: 'PLAYOUT_FORBIDDEN' });
    expect(c.region('us-sfo').fence.promise).toBeNull();
    await client.close();
  });
});

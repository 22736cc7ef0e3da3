import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isPlayoutError } from '../../src/core/errors.js';
import { loadRegionConfig, parseRegionConfig, RegionConfigSchema } from '../../src/node/region-config.js';
import { REPO_ROOT, TOKEN_ENV } from '../helpers/cluster.js';

const dir = mkdtempSync(join(tmpdir(), 'playout-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function codeOf(fn: () => unknown): { code: string; path: string | null; message: string } {
  try {
    fn();
  } catch (err) {
    if (isPlayoutError(err)) return { code: err.code, path: err.path, message: err.message };
    throw err;
  }
  throw new Error('expected a PlayoutError');
}

const base = (): Record<string, unknown> => ({
  region: 'eu-fra',
  listen: { port: 7101 },
  store: { path: 'data/eu-fra' },
  peers: [{ region: 'af-jnb', url: 'http://127.0.0.1:7102' }],
  shards: [{ id: 'hunt-1', reducer: 'treasure-hunt@1', leader: 'eu-fra', seed: 1, tickMs: 50 }],
  tokens: { ingest: { env: 'PLAYOUT_INGEST_TOKEN' }, peer: { env: 'PLAYOUT_PEER_TOKEN' }, admin: { env: 'PLAYOUT_ADMIN_TOKEN' } },
});

describe('region config', () => {
  it('loads every config in regions/ with the demo tokens', () => {
    const files = readdirSync(join(REPO_ROOT, 'regions')).filter((f) => f.endsWith('.yaml'));
    expect(files.sort()).toEqual(['af-jnb.yaml', 'eu-fra.yaml', 'us-sfo.yaml']);
    for (const f of files) {
      const c = loadRegionConfig(join(REPO_ROOT, 'regions', f), TOKEN_ENV);
      expect(c.region).toBe(f.replace('.yaml', ''));
      expect(c.peers).toHaveLength(2);
      expect(c.store.path.startsWith(REPO_ROOT)).toBe(true);
      expect(c.secrets.peer).toEqual([TOKEN_ENV.PLAYOUT_PEER_TOKEN]);
    }
  });

  it('fills defaults and resolves the store path against the config folder', () => {
    const c = parseRegionConfig(base(), TOKEN_ENV, 'x.yaml', '/etc/playout');
    expect(c.store.path).toBe('/etc/playout/data/eu-fra');
    expect(c.limits.bodyBytesMax).toBe(1 << 20);
    expect(c.shards[0]!.ack).toBe('leader');
    expect(c.shards[0]!.reducer).toEqual({ name: 'treasure-hunt', version: 1 });
  });

  it.each([
    ['a shard with a bad tickMs', (c: Record<string, unknown>) => ((c.shards as Record<string, unknown>[])[0]!.tickMs = 0), 'shards[0].tickMs'],
    ['a reducer without a version', (c: Record<string, unknown>) => ((c.shards as Record<string, unknown>[])[0]!.reducer = 'treasure-hunt'), 'shards[0].reducer'],
    ['an unknown key', (c: Record<string, unknown>) => (c.colour = 'blue'), '(root)'],
    ['a leader that is no region of the cluster', (c: Record<string, unknown>) => ((c.shards as Record<string, unknown>[])[0]!.leader = 'ap-sel'), 'shards[0].leader'],
    ['this region as its own peer', (c: Record<string, unknown>) => ((c.peers as Record<string, unknown>[])[0]!.region = 'eu-fra'), 'peers[0].region'],
    ['a peer URL that is not http', (c: Record<string, unknown>) => ((c.peers as Record<string, unknown>[])[0]!.url = 'ftp://x'), 'peers[0].url'],
    ['a bad ack mode', (c: Record<string, unknown>) => ((c.shards as Record<string, unknown>[])[0]!.ack = 'all'), 'shards[0].ack'],
    ['a negative limit', (c: Record<string, unknown>) => (c.limits = { bodyBytesMax: -1 }), 'limits.bodyBytesMax'],
  ])('refuses %s with PLAYOUT_CONFIG_INVALID and the path', (_name, mutate, path) => {
    const c = base();
    mutate(c);
    const e = codeOf(() => parseRegionConfig(c, TOKEN_ENV, 'x.yaml'));
    expect(e.code).toBe('PLAYOUT_CONFIG_INVALID');
    expect(e.path).toBe(path);
  });

  it('refuses to start without a token in the environment, or with a short one', () => {
    const unset = codeOf(() => parseRegionConfig(base(), { ...TOKEN_ENV, PLAYOUT_PEER_TOKEN: undefined }, 'x.yaml'));
    expect(unset).toMatchObject({ code: 'PLAYOUT_CONFIG_INVALID', path: 'tokens.peer.env' });
    expect(unset.message).toContain('PLAYOUT_PEER_TOKEN');
    const short = codeOf(() => parseRegionConfig(base(), { ...TOKEN_ENV, PLAYOUT_ADMIN_TOKEN: 'secret' }, 'x.yaml'));
    expect(short).toMatchObject({ code: 'PLAYOUT_CONFIG_INVALID', path: 'tokens.admin.env' });
  });

  it('names the file and line of a bad field, and of a YAML syntax error', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'region: eu-fra\nlisten:\n  port: 99999\nstore: { path: x }\ntokens: { ingest: { env: A }, peer: { env: B }, admin: { env: C } }\n');
    const e = codeOf(() => loadRegionConfig(file, TOKEN_ENV));
    expect(e.code).toBe('PLAYOUT_CONFIG_INVALID');
    expect(e.path).toBe('listen.port');
    expect(e.message).toContain(`${file}:3`);
    writeFileSync(file, 'region: [eu-fra\n');
    expect(codeOf(() => loadRegionConfig(file, TOKEN_ENV)).code).toBe('PLAYOUT_CONFIG_INVALID');
    expect(codeOf(() => loadRegionConfig(join(dir, 'missing.yaml'), TOKEN_ENV)).code).toBe('PLAYOUT_CONFIG_INVALID');
  });

  it('exports a JSON Schema of the config', async () => {
    const { z } = await import('zod');
    const js = z.toJSONSchema(RegionConfigSchema, { io: 'input', unrepresentable: 'any' }) as { required?: string[] };
    expect(js.required).toEqual(expect.arrayContaining(['region', 'listen', 'store', 'tokens']));
  });
});

// Optional TLS (DESIGN §9): two regions serving HTTPS with a private CA replicate to each other,
// and a plain-HTTP client gets nowhere.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { component, which } from '../helpers/components.js';
import { adminClient, startInProcessCluster, waitFor, type InProcessCluster } from '../helpers/cluster.js';

const openssl = component('openssl', which('openssl') === null ? 'the openssl command is not installed (apt-get install openssl)' : null);

describe.skipIf(openssl.skip)('TLS between regions', () => {
  const dir = mkdtempSync(join(tmpdir(), 'playout-tls-'));
  let cluster: InProcessCluster;
  beforeAll(async () => {
    openssl.require();
    // A self-signed certificate for 127.0.0.1 that each region also trusts as its CA.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=playout-test', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    cluster = await startInProcessCluster({
      regions: ['eu-fra', 'af-jnb'],
      shards: [{ id: 'hunt-1', leader: 'eu-fra', tickMs: 20 }],
      overrides: { tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), caFile: join(dir, 'cert.pem') } },
    });
  });
  afterAll(async () => {
    await cluster?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('replicates over HTTPS and refuses plain HTTP', async () => {
    const leader = cluster.nodes.get('eu-fra')!;
    expect(leader.url.startsWith('https://')).toBe(true);
    const client = adminClient('eu-fra', leader.url, readFileSync(join(dir, 'cert.pem')));
    try {
      const [r] = await client.submit('hunt-1', [{ type: 'player.join', version: 1, payload: { player: 'p1', name: 'Ada', x: 1, y: 1 }, ingestId: 'tls-1' }]);
      await waitFor('af-jnb to apply the input over TLS', () => cluster.nodes.get('af-jnb')!.status().shards[0]!.applied >= r!.seq);
    } finally {
      await client.close();
    }
    const plain = await fetch(leader.url.replace('https://', 'http://') + '/healthz').then((res) => res.status, () => 'refused');
    expect(plain).not.toBe(200);
  });
});

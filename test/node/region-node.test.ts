// A region node in this process, on a real lmdb store and a real HTTP server: the leader path
// (ingress, validation, dedupe, ticks, group commit, acks), restart from the store, and
// three regions replicating over loopback HTTP.
import { afterEach, describe, expect, it } from 'vitest';
import { LoadGenerator } from '../../src/games/treasure-hunt/index.js';
import { TOKENS, adminClient, startInProcessCluster, startNode, waitFor, writeClusterConfigs, type InProcessCluster } from '../helpers/cluster.js';
import { rmSync } from 'node:fs';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function post(url: string, path: string, body: unknown, token: string = TOKENS.ingest): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const move = (player: string, x: number, y: number, ingestId: string | null = null) => ({ type: 'player.move', version: 1, payload: { player, x, y }, ingestId });

describe('RegionNode leader', () => {
  it('sequences inputs, dedupes ingestIds, closes ticks and resumes after a restart', async () => {
    const files = await writeClusterConfigs({ regions: ['eu-fra'], shards: [{ id: 'hunt-1', leader: 'eu-fra', tickMs: 20 }] });
    cleanups.push(async () => rmSync(files.dir, { recursive: true, force: true }));
    let node = await startNode(files, 'eu-fra');
    cleanups.push(() => node.close());
    const join = await post(node.url, '/v1/shards/hunt-1/inputs', { type: 'player.join', version: 1, payload: { player: 'p1', name: 'Ada', x: 1, y: 1 }, ingestId: 'join-p1' });
    expect(join.status, JSON.stringify(join.body)).toBe(200);
    expect(join.body.status).toBe('sequenced');
    const first = join.body.seq as number;
    const again = await post(node.url, '/v1/shards/hunt-1/inputs', { type: 'player.join', version: 1, payload: { player: 'p1', name: 'Ada', x: 1, y: 1 }, ingestId: 'join-p1' });
    expect(again.body).toMatchObject({ status: 'duplicate', seq: first });
    const batch = await post(node.url, '/v1/shards/hunt-1/inputs', { inputs: [move('p1', 3, 4, 'm1'), move('p1', 5, 4, 'm2')] });
    expect(batch.status, JSON.stringify(batch.body)).toBe(200);
    expect((batch.body.results as unknown[]).length).toBe(2);
    await waitFor('a few ticks', () => (node.status().shards[0]!.tick > 5 ? true : false));
    const before = node.status().shards[0]!;
    expect(before.role).toBe('leader');
    expect(before.applied).toBe(before.head);
    await node.close();
    node = await startNode(files, 'eu-fra');
    const after = node.status().shards[0]!;
    expect(after.head).toBeGreaterThanOrEqual(before.head);
    // The dedupe window survives the restart.
    const dup = await post(node.url, '/v1/shards/hunt-1/inputs', { type: 'player.join', version: 1, payload: { player: 'p1', name: 'Ada', x: 1, y: 1 }, ingestId: 'join-p1' });
    expect(dup.body).toMatchObject({ status: 'duplicate', seq: first });
  });

  it('truncates its log when the kept snapshots span fewer entries than retainEntriesMin, and keeps at least that many', async () => {
    // 2 snapshots 5 ticks apart span ~10 entries; the window is 30: the oldest snapshot inside the
    // window must survive until it falls below the limit, or the log would grow for ever.
    const files = await writeClusterConfigs({
      regions: ['eu-fra'],
      shards: [{ id: 'hunt-1', leader: 'eu-fra', tickMs: 5 }],
      overrides: { snapshots: { everyTicks: 5, kept: 2, retainEntriesMin: 30 } },
    });
    cleanups.push(async () => rmSync(files.dir, { recursive: true, force: true }));
    const node = await startNode(files, 'eu-fra');
    cleanups.push(() => node.close());
    const row = await waitFor('the log truncated', () => {
      const r = node.status().shards[0]!;
      return r.firstSeq !== null && r.firstSeq > 1 && r.head > 120 ? r : null;
    });
    expect(row.head - row.firstSeq! + 1).toBeGreaterThanOrEqual(30);
    // Bounded: about twice the window plus one interval, never the whole log. Seen once the node
    // has ticked on well past the first truncation: a sample taken while a snapshot is still being
    // encoded or stored (a 5 ms tick outruns that on a loaded machine) holds its interval too.
    // Every sample on the way keeps at least the window.
    let fewest = Infinity;
    const later = await waitFor('the log within its bound after more ticks', () => {
      const r = node.status().shards[0]!;
      const span = r.head - r.firstSeq! + 1;
      fewest = Math.min(fewest, span);
      return r.head > 250 && span < 2 * 30 + 5 + 20 ? r : null;
    });
    expect(fewest).toBeGreaterThanOrEqual(30);
    expect(later.firstSeq!).toBeGreaterThan(row.firstSeq!);
  });

  it('refuses a batch with one bad input whole, naming its path, and sequences nothing', async () => {
    const files = await writeClusterConfigs({ regions: ['eu-fra'], shards: [{ id: 'hunt-1', leader: 'eu-fra', tickMs: 1000 }] });
    cleanups.push(async () => rmSync(files.dir, { recursive: true, force: true }));
    const node = await startNode(files, 'eu-fra');
    cleanups.push(() => node.close());
    const head0 = node.status().shards[0]!.head;
    const r = await post(node.url, '/v1/shards/hunt-1/inputs', { inputs: [move('p1', 1, 1), { type: 'player.move', version: 1, payload: { player: 'p1', x: 'far', y: 1 } }] });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('PLAYOUT_INPUT_INVALID');
    expect(r.body.path).toBe('body.inputs[1].payload.x');
    const unknown = await post(node.url, '/v1/shards/hunt-1/inputs', { type: 'player.fly', version: 1, payload: {} });
    expect(unknown.status).toBe(400);
    expect(unknown.body.code).toBe('PLAYOUT_INPUT_TYPE_UNKNOWN');
    expect(node.status().shards[0]!.head).toBe(head0);
  });
});

describe('three regions in one process', () => {
  let cluster: InProcessCluster;
  afterEach(async () => cluster?.close());

  it('replicates a seeded load to every region with identical digests', async () => {
    cluster = await startInProcessCluster({
      regions: ['eu-fra', 'af-jnb', 'us-sfo'],
      shards: [{ id: 'hunt-1', leader: 'eu-fra', tickMs: 20, ack: 'quorum' }],
    });
    const leader = cluster.nodes.get('eu-fra')!;
    const client = adminClient('eu-fra', leader.url);
    cleanups.push(() => client.close());
    const gen = new LoadGenerator({ seed: 7, players: 50, inputsPerTick: 20 });
    let acked = 0;
    for (let t = 0; t < 30; t++) {
      const inputs = gen.next(t).map((i) => ({ type: i.type, version: i.version, payload: i.payload, ingestId: i.ingestId }));
      const results = await client.submit('hunt-1', inputs);
      acked += results.length;
    }
    expect(acked).toBe(600);
    const head = leader.status().shards[0]!.head;
    for (const r of ['af-jnb', 'us-sfo']) {
      const n = cluster.nodes.get(r)!;
      await waitFor(`${r} to reach ${head}`, () => n.status().shards[0]!.applied >= head);
    }
    const digests = (r: string) => cluster.nodes.get(r)!.digests('hunt-1', 0, 1_000_000);
    const lead = new Map(digests('eu-fra').map((d) => [d.tick, d.digest]));
    for (const r of ['af-jnb', 'us-sfo']) {
      const rows = digests(r);
      expect(rows.length).toBeGreaterThan(5);
      for (const d of rows) if (lead.has(d.tick)) expect(d.digest, `${r} tick ${d.tick}`).toBe(lead.get(d.tick));
      expect(cluster.nodes.get(r)!.status().shards[0]!.quarantine).toBeNull();
    }
  });
});

describe('limits and acknowledgement modes', () => {
  it('refuses a stream beyond the open-stream limit with 429, and serves again once one closes', async () => {
    const files = await writeClusterConfigs({ regions: ['eu-fra'], shards: [{ id: 'hunt-1', leader: 'eu-fra', tickMs: 50 }], overrides: { limits: { openStreamsMax: 1 } } });
    cleanups.push(async () => rmSync(files.dir, { recursive: true, force: true }));
    const node = await startNode(files, 'eu-fra');
    cleanups.push(() => node.close());
    const open = (ctl: AbortController) => fetch(`${node.url}/v1/shards/hunt-1/stream?from=1`, { headers: { authorization: `Bearer ${TOKENS.peer}` }, signal: ctl.signal });
    const first = new AbortController();
    expect((await open(first)).status).toBe(200);
    const second = await open(new AbortController());
    expect(second.status).toBe(429);
    expect(((await second.json()) as { code: string }).code).toBe('PLAYOUT_TOO_MANY_STREAMS');
    first.abort();
    await waitFor('the stream slot to free', async () => {
      const ctl = new AbortController();
      const r = await open(ctl);
      ctl.abort();
      return r.status === 200;
    });
  });

  it('in quorum mode answers 502 without a majority, and a retry with the same ingestId gets the same seq once it has one', async () => {
    const cluster = await startInProcessCluster({
      regions: ['eu-fra', 'af-jnb', 'us-sfo'],
      shards: [{ id: 'hunt-1', leader: 'eu-fra', tickMs: 50, ack: 'quorum' }],
      overrides: { replication: { ackTimeoutMs: 1_000 } },
    });
    cleanups.push(() => cluster.close());
    const leader = cluster.nodes.get('eu-fra')!;
    await cluster.nodes.get('af-jnb')!.close();
    await cluster.nodes.get('us-sfo')!.close();
    const input = { type: 'player.join', version: 1, payload: { player: 'p9', name: 'Bo', x: 2, y: 2 }, ingestId: 'quorum-1' };
    const r = await post(leader.url, '/v1/shards/hunt-1/inputs', input);
    expect(r.status).toBe(502);
    expect(r.body.code).toBe('PLAYOUT_PEER_UNAVAILABLE');
    const seq = r.body.seq as number;
    expect(seq).toBeGreaterThan(1);
    // A majority again: the retry is answered from the dedupe window with the first seq.
    cluster.nodes.set('af-jnb', await startNode(cluster.files, 'af-jnb'));
    const again = await post(leader.url, '/v1/shards/hunt-1/inputs', input);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body).toMatchObject({ status: 'duplicate', seq });
  });
});

// The http(s):// replay source against a real region node (RegionNode on lmdb, in process):
// URL and token rules, paging within the node's range limit, a pass closed early, and a log the
// node truncates while the source is open (416 → a clear PLAYOUT_RANGE_NOT_RETAINED).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpSourceToken, parseHttpSourceUrl } from '../../src/adapters/http-replay-source.js';
import { openSource } from '../../src/adapters/replay-source.js';
import { PlayoutError, ShardMachine, toHex, type Entry } from '../../src/core/index.js';
import { treasureHuntRegistry } from '../../src/games/treasure-hunt/index.js';
import { TOKENS, startInProcessCluster, waitFor, type InProcessCluster } from '../helpers/cluster.js';

const ENV = { PLAYOUT_PEER_TOKEN: TOKENS.peer };
let cluster: InProcessCluster;
let url = '';
const status = () => cluster.nodes.get('eu-fra')!.status().shards[0]!;

beforeAll(async () => {
  // Snapshots every 20 ticks, and no more than about 40 entries kept behind the head: the log is cut about every 20 ticks.
  cluster = await startInProcessCluster({
    regions: ['eu-fra'],
    shards: [{ id: 'cut-1', leader: 'eu-fra', tickMs: 20 }],
    overrides: { limits: { rangeEntriesMax: 7 }, snapshots: { everyTicks: 20, kept: 10, retainEntriesMin: 40 } },
  });
  url = cluster.nodes.get('eu-fra')!.url;
  await waitFor('the log truncated below a snapshot', () => (status().firstSeq ?? 1) > 1 && status().tick > 30, 30_000);
}, 60_000);
afterAll(async () => cluster?.close());

describe('parseHttpSourceUrl', () => {
  it('takes a base URL with an optional prefix and ?from-snapshot', () => {
    expect(parseHttpSourceUrl('http://127.0.0.1:7101')).toEqual({ base: 'http://127.0.0.1:7101', fromSnapshot: false });
    expect(parseHttpSourceUrl('https://node.example:443/playout/')).toEqual({ base: 'https://node.example/playout', fromSnapshot: false });
    expect(parseHttpSourceUrl('http://[::1]:7101/?from-snapshot')).toEqual({ base: 'http://[::1]:7101', fromSnapshot: true });
  });

  it.each(['http://', 'http://a:b@host:1', 'http://host:1/?tick=3', 'http://host:1/#x', 'ftp://host:1', 'http://host:70000'])('refuses %s', (spec) => {
    expect(() => parseHttpSourceUrl(spec)).toThrow(expect.objectContaining({ code: 'PLAYOUT_INVALID_ARGUMENT', path: 'SOURCE' }));
  });
});

describe('httpSourceToken', () => {
  it('reads PLAYOUT_PEER_TOKEN, else PLAYOUT_ADMIN_TOKEN, or the named variable only', () => {
    expect(httpSourceToken('x', { PLAYOUT_PEER_TOKEN: 'p', PLAYOUT_ADMIN_TOKEN: 'a' }, null)).toBe('p');
    expect(httpSourceToken('x', { PLAYOUT_ADMIN_TOKEN: 'a' }, null)).toBe('a');
    expect(httpSourceToken('x', { MINE: 'm', PLAYOUT_PEER_TOKEN: 'p' }, 'MINE')).toBe('m');
    expect(() => httpSourceToken('x', { PLAYOUT_PEER_TOKEN: 'p' }, 'MINE')).toThrow(expect.objectContaining({ code: 'PLAYOUT_INVALID_ARGUMENT', path: 'MINE' }));
    expect(() => httpSourceToken('x', { PLAYOUT_PEER_TOKEN: '' }, null)).toThrow(/PLAYOUT_PEER_TOKEN or PLAYOUT_ADMIN_TOKEN/);
  });
});

describe('the http source on a node that truncates its log', () => {
  it('is refused from genesis, and from the snapshot replays the node\'s digests page by page', async () => {
    await expect(openSource(url, { shard: 'cut-1', env: ENV })).rejects.toMatchObject({ code: 'PLAYOUT_RANGE_NOT_RETAINED', seq: 1 });
    const source = await openSource(url, { shard: 'cut-1', env: ENV, fromSnapshot: true });
    try {
      expect(source.info.kind).toBe('http');
      const snap = source.snapshot!;
      expect(source.info.firstSeq).toBe(snap.seq + 1);
      const m = ShardMachine.fromSnapshot(treasureHuntRegistry(), source.freshSnapshot()!, { keepOutputs: false });
      const stream = await source.read({ batchEntries: 3 });
      let batches = 0;
      let entries: Entry[] = [];
      try {
        for await (const batch of stream) {
          expect(batch.length).toBeLessThanOrEqual(3);
          batches++;
          entries = entries.concat(batch);
          for (const e of batch) m.apply(e);
        }
      } catch (err) {
        // The node may have cut the log below the next page meanwhile: that is the only failure allowed.
        expect(err).toMatchObject({ code: 'PLAYOUT_RANGE_NOT_RETAINED' });
        return;
      }
      expect(entries.length).toBe(stream.progress().total);
      expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => snap.seq + 1 + i));
      expect(batches).toBeGreaterThan(1);
      expect(m.mismatches).toBe(0);
      // The node's own digest of a tick the pass closed.
      const last = m.lastDigest!;
      const node = cluster.nodes.get('eu-fra')!;
      const [recorded] = node.store.digests('cut-1', last.tick, last.tick);
      expect(recorded, `the node's digest of tick ${last.tick}`).toBeDefined();
      expect(toHex(recorded!.digest)).toBe(toHex(last.digest));
    } finally {
      await source.close();
    }
  });

  it('names the seq the node no longer holds when its retention cut the log after the source was opened', async () => {
    const source = await openSource(`${url}?from-snapshot`, { shard: 'cut-1', env: ENV });
    try {
      const start = source.info.firstSeq;
      await waitFor('the node to truncate past the source\'s start', () => (status().firstSeq ?? 0) > start + 1, 30_000);
      const stream = await source.read();
      let err: unknown = null;
      try {
        for await (const _ of stream) void _;
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(PlayoutError);
      expect(err).toMatchObject({ code: 'PLAYOUT_RANGE_NOT_RETAINED', seq: start });
      expect((err as Error).message).toMatch(/no longer holds entry \d+ .*open the source again/);
    } finally {
      await source.close();
    }
  });

  it('a pass closed after its first batch releases the page requested ahead', async () => {
    const source = await openSource(url, { shard: 'cut-1', env: ENV, fromSnapshot: true });
    const stream = await source.read({ batchEntries: 2 });
    for await (const batch of stream) {
      expect(batch.length).toBeGreaterThan(0);
      break;
    }
    await stream.close();
    await source.close();
  });
});

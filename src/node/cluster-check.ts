// The replication invariants, checked against live regions from their own logs and digests
// (the demo's verdict and the integration tests use the same check):
//   1. identical digests at every tick every region holds;
//   2. every acknowledged input is in every region's log exactly once, at the acknowledged seq;
//   3. no ingestId is sequenced twice in any log.
import { toHex } from '../core/hash.js';
import type { HttpPeerClient } from '../adapters/http-peer-client.js';

export interface ShardCheck {
  shard: string;
  ok: boolean;
  /** Ticks held by every region, and how many of them differ. */
  commonTicks: number;
  differingTicks: number;
  firstDifferingTick: number | null;
  acknowledged: number;
  /** (region, ingestId) pairs: acknowledged but absent, or present at another seq. */
  missing: number;
  moved: number;
  /** ingestIds sequenced more than once (summed over regions). */
  sequencedTwice: number;
  heads: Record<string, number>;
  lines: string[];
}

/** Read each region's whole retained log and digests of `shard` and check the invariants. */
export async function checkShard(shard: string, regions: ReadonlyMap<string, HttpPeerClient>, acked: ReadonlyMap<string, number>): Promise<ShardCheck> {
  const lines: string[] = [];
  const logs = new Map<string, Map<string, number[]>>();
  const digests = new Map<string, Map<number, string>>();
  const heads: Record<string, number> = {};
  let unreadable = false;
  for (const [id, c] of regions) {
    const byIngest = new Map<string, number[]>();
    try {
      const st = await c.status(shard);
      heads[id] = st.head;
      let from = st.firstSeq ?? 1;
      while (from <= st.head) {
        const page = await c.entries(shard, from, st.head);
        if (page.length === 0) break;
        for (const e of page) {
          if (e.ingestId === null) continue;
          const seqs = byIngest.get(e.ingestId);
          if (seqs === undefined) byIngest.set(e.ingestId, [e.seq]);
          else seqs.push(e.seq);
        }
        from = page[page.length - 1]!.seq + 1;
      }
      const rows = await c.digests(shard, 0, Number.MAX_SAFE_INTEGER);
      digests.set(id, new Map(rows.map((d) => [d.tick, toHex(d.digest)])));
      logs.set(id, byIngest);
    } catch (err) {
      unreadable = true;
      lines.push(`FAIL ${shard}: cannot read ${id}: ${(err as Error).message}`);
    }
  }
  const all = [...digests.values()];
  let common = 0;
  let differ = 0;
  let firstDiffer: number | null = null;
  if (all.length > 0) {
    for (const [tick, d] of all[0]!) {
      if (!all.every((m) => m.has(tick))) continue;
      common++;
      if (all.every((m) => m.get(tick) === d)) continue;
      differ++;
      if (firstDiffer === null || tick < firstDiffer) firstDiffer = tick;
    }
  }
  if (firstDiffer !== null) lines.push(`FAIL ${shard}: digests differ at tick ${firstDiffer}: ${[...digests].map(([r, m]) => `${r} ${m.get(firstDiffer!)}`).join(', ')}`);
  lines.push(`${differ === 0 && common > 0 ? 'ok  ' : 'FAIL'} ${shard}: digests identical at ${common - differ} of ${common} common ticks in ${digests.size} regions`);
  let missing = 0;
  let moved = 0;
  let twice = 0;
  for (const [id, byIngest] of logs) {
    for (const [ingestId, seq] of acked) {
      const seqs = byIngest.get(ingestId);
      if (seqs === undefined) {
        if (missing++ < 3) lines.push(`FAIL ${shard}: acknowledged input ${ingestId} (seq ${seq}) is not in ${id}'s log`);
      } else if (!seqs.includes(seq)) {
        if (moved++ < 3) lines.push(`FAIL ${shard}: acknowledged input ${ingestId} is at seq ${seqs.join(',')} in ${id}, acknowledged as ${seq}`);
      }
    }
    for (const [ingestId, seqs] of byIngest) {
      if (seqs.length > 1 && twice++ < 3) lines.push(`FAIL ${shard}: input ${ingestId} sequenced ${seqs.length} times in ${id} (seqs ${seqs.join(', ')})`);
    }
  }
  lines.push(`${missing + moved === 0 ? 'ok  ' : 'FAIL'} ${shard}: ${acked.size} acknowledged inputs, each in all ${logs.size} logs at its seq (${missing} missing, ${moved} elsewhere)`);
  lines.push(`${twice === 0 ? 'ok  ' : 'FAIL'} ${shard}: no input sequenced twice${twice > 0 ? ` (${twice} found)` : ''}`);
  const ok = !unreadable && differ === 0 && common > 0 && missing === 0 && moved === 0 && twice === 0;
  return { shard, ok, commonTicks: common, differingTicks: differ, firstDifferingTick: firstDiffer, acknowledged: acked.size, missing, moved, sequencedTwice: twice, heads, lines };
}

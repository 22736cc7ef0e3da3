// Rendering of `playout failover plan | execute | status` for people. The operations themselves
// are in src/node/failover-ops.ts (a node runs the plan for its failover-plan route too); they are
// re-exported here for the CLI.
import type { FailoverPlan, FailoverResult, LossWindow } from '../../replication/failover-coordinator.js';
import type { FailoverStatusReport } from '../../node/failover-ops.js';

export * from '../../node/failover-ops.js';

// --- rendering ---------------------------------------------------------------------------------

function lossLines(title: string, l: LossWindow): string[] {
  const to = l.seqToKnown === null ? (l.openEnded ? 'unknown' : String(l.seqFrom - 1)) : String(l.seqToKnown);
  const lines = [`${title}: seq ${l.seqFrom}..${to}${l.openEnded ? ' (and anything the old leader sequenced unseen)' : ''}`];
  lines.push(`  ack mode ${l.ack}: ${l.acknowledgedPossible ? 'some of these may have been acknowledged to clients' : 'none of these was acknowledged to a client'}`);
  if (l.entries !== null) {
    const inputs = l.entries.filter((e) => e.kind === 'input');
    lines.push(`  ${l.entries.length} entries listed, ${inputs.length} inputs:`);
    for (const e of inputs) lines.push(`    seq ${e.seq}  tick ${e.tick}  ${e.type ?? ''}  ingestId ${e.ingestId ?? '(none)'}`);
    if (l.entriesTruncated) lines.push('    … more (raise --list-max)');
  } else if (l.heldBy === null) {
    lines.push('  the inputs cannot be listed now: no reachable region holds them; the old leader lists them in a quarantine report when it returns');
  }
  return lines;
}

export function renderPlan(p: FailoverPlan): string {
  const out: string[] = [];
  out.push(`failover plan: shard ${p.shard} → ${p.target}`);
  out.push(`epoch ${p.epoch.current} led by ${p.epoch.leader ?? 'unknown'} (${p.epoch.leaderReachable ? 'reachable' : 'UNREACHABLE'}); new epoch ${p.epoch.next}; ${p.reachable} of ${p.regions.length} regions reachable, majority ${p.majority}`);
  out.push('');
  out.push('region      role       epoch  head      head epoch  last agreed tick  state');
  for (const r of p.regions) {
    const state = !r.reachable ? `unreachable: ${r.error?.code ?? ''}` : r.stopped !== null ? `stopped: ${r.stopped}` : r.quarantined ? 'quarantined' : r.promise !== null ? `promised epoch ${r.promise.epoch} to ${r.promise.candidate}` : 'ok';
    out.push(`${r.region.padEnd(11)} ${r.role.padEnd(10)} ${String(r.epoch ?? '-').padEnd(6)} ${String(r.head ?? '-').padEnd(9)} ${String(r.headEpoch ?? '-').padEnd(11)} ${String(r.lastAgreedTick ?? '-').padEnd(17)} ${state}`);
  }
  out.push('');
  if (p.refusal !== null) out.push(`execute would REFUSE: ${p.refusal.code}: ${p.refusal.message}`, '');
  out.push(p.noop ? 'nothing to do:' : 'execute would:');
  p.steps.forEach((s, i) => out.push(`  ${i + 1}. ${s}`));
  if (p.loss !== null) out.push('', ...lossLines('LOSS', p.loss));
  else out.push('', 'loss: none (the old leader is reachable and will be fenced at its final head)');
  if (p.lossIfLeaderLost !== null) out.push('', ...lossLines(`if ${p.lossIfLeaderLost.heldBy} were lost before it is fenced, these would be lost`, p.lossIfLeaderLost));
  return out.join('\n') + '\n';
}

export function renderResult(r: FailoverResult): string {
  const out: string[] = [];
  if (r.noop) return `failover of shard ${r.shard}: ${r.target} already leads epoch ${r.plan.epoch.current}; nothing done\n`;
  if (r.ok) {
    const p = r.promoted!;
    out.push(`failover of shard ${r.shard} done: ${r.target} leads epoch ${r.epoch} (failover ${r.failoverId})`);
    out.push(`  fenced: ${r.fenced.map((g) => `${g.region}@${g.head}${g.wasLeader ? ' (old leader, final head)' : ''}`).join(', ')}`);
    if (r.highest !== null) out.push(`  highest fenced head: ${r.highest.seq} (${r.highest.region}); ${r.target} caught up from ${p.caughtUpFrom}${p.quarantined > 0 ? ` after quarantining ${p.quarantined} divergent entries` : ''}`);
    out.push(`  epoch entry at seq ${p.record.firstSeq}, tick ${p.record.tick}; sequencing from seq ${p.sequencingFrom} in tick ${p.sequencingTick}`);
    for (const a of r.announced) out.push(`  ${a.region}: ${a.ok ? `follows ${r.target}${a.quarantined > 0 ? `, quarantined ${a.quarantined} divergent entries` : ''}` : `not told (${a.error}); it learns the epoch from its peers`}`);
  } else {
    out.push(`failover of shard ${r.shard} to ${r.target} REFUSED: ${r.error!.code}: ${r.error!.message}`);
    if (r.released.length > 0) out.push(`  promises released on ${r.released.join(', ')}: the shard is as it was`);
    for (const f of r.refused) out.push(`  ${f.region}: ${f.code}: ${f.message}`);
  }
  if (r.loss !== null) out.push(...lossLines(r.ok ? 'LOST (accepted)' : 'would lose', r.loss));
  return out.join('\n') + '\n';
}

export function renderStatus(s: FailoverStatusReport): string {
  const out: string[] = [`shard ${s.shard}: epoch ${s.epoch}, leader ${s.leader ?? 'unknown'}`, '', 'epoch  leader      first seq  tick      time                      failover'];
  for (const e of s.epochs) out.push(`${String(e.epoch).padEnd(6)} ${e.leader.padEnd(11)} ${String(e.firstSeq).padEnd(10)} ${String(e.tick).padEnd(9)} ${(e.atMs === null ? '-' : new Date(e.atMs).toISOString()).padEnd(25)} ${e.failoverId ?? '-'}`);
  out.push('', 'region      epoch  leader      head      fence');
  for (const r of s.regions) {
    if (r.status === null) {
      out.push(`${r.region.padEnd(11)} unreachable: ${r.error!.code}: ${r.error!.message}`);
      continue;
    }
    const f = r.status.fence;
    const fence = f.promise === null ? 'none' : `promised epoch ${f.promise.epoch} to ${f.promise.candidate} (failover ${f.promise.failoverId}), refuses older epochs beyond seq ${f.promise.seqMax}`;
    out.push(`${r.region.padEnd(11)} ${String(f.epoch).padEnd(6)} ${(f.leader ?? '-').padEnd(11)} ${String(r.status.head).padEnd(9)} ${fence}`);
  }
  return out.join('\n') + '\n';
}

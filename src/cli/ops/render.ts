// Text and JSON renderings of the operators' results, shared by the commands.
import { toHex } from '../../core/index.js';
import type { SourceInfo } from '../../adapters/replay-source.js';
import type { BisectResult } from './bisect.js';
import type { DiffResult } from './diff.js';
import type { InspectResult } from './inspect.js';
import { describeEntry, type Culprit, type EntrySummary } from './localise.js';
import { showValue, type StateDiff } from './state-diff.js';
import type { VerifyResult } from './verify.js';

/** JSON with bytes as hex and absent values left out; one document, newline-terminated. */
export function toJson(value: unknown): string {
  return (
    JSON.stringify(
      value,
      (_k, v: unknown) => {
        if (v instanceof Uint8Array) return toHex(v);
        if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
        return v;
      },
      2,
    ) + '\n'
  );
}

export function sourceLine(s: SourceInfo): string {
  const start = s.snapshot === null ? 'from genesis' : `from the snapshot at tick ${s.snapshot.tick} (seq ${s.snapshot.seq})`;
  return `${s.spec}: shard ${s.shard}, ${s.reducer}@${s.reducerVersion}, seed ${s.seed}, ${start}`;
}

const num = (n: number): string => n.toLocaleString('en-US');

export interface Labels {
  /** What side A and side B are, e.g. "expected (recorded)" / "actual (this build)". */
  a: string;
  b: string;
}

export function renderStateDiff(d: StateDiff, labels: Labels, indent = '  '): string[] {
  const out: string[] = [];
  if (d.equal) return [`${indent}(no difference)`];
  for (const r of d.records) {
    const status = r.status === 'changed' ? '' : r.status === 'only-a' ? ` (only in ${labels.a})` : ` (only in ${labels.b})`;
    out.push(`${indent}${r.table}["${r.key}"]${status}`);
    for (const f of r.fields) out.push(`${indent}  ${f.path === '' ? '(record)' : f.path}: ${labels.a} ${showValue(f.a)}, ${labels.b} ${showValue(f.b)}`);
    if (r.fieldsMore > 0) out.push(`${indent}  … ${r.fieldsMore} more field(s)`);
  }
  if (d.recordsMore > 0) out.push(`${indent}… ${d.recordsMore} more record(s) (raise --records-max)`);
  if (d.rng !== null) out.push(`${indent}rng state: ${labels.a} [${d.rng.a.join(', ')}], ${labels.b} [${d.rng.b.join(', ')}]`);
  if (d.records.length === 0 && d.rng === null) for (const t of d.tables) out.push(`${indent}table ${t.table}: ${t.status}`);
  return out;
}

export function renderCulprit(c: Culprit, labels: Labels): string[] {
  const out: string[] = [];
  const where = c.entry.kind === 'tick' ? 'the tick entry (onTick)' : `input #${c.entry.index} of the tick`;
  out.push(`  first differing entry: ${describeEntry(c.entry)} — ${where}, after ${c.entriesBefore} entr${c.entriesBefore === 1 ? 'y' : 'ies'} that left the states equal`);
  if (c.entry.kind === 'input') out.push(`    payload ${showValue(c.entry.payload)}`);
  if (c.entryB !== null) out.push(`    ${labels.b}'s log has here: ${describeEntry(c.entryB)} payload ${showValue(c.entryB.payload)}`);
  if (c.failure !== null) out.push(`    ${c.failure.side === 'a' ? labels.a : labels.b} failed: ${c.failure.code}: ${c.failure.message}`);
  out.push('  differing records after it:');
  out.push(...renderStateDiff(c.diff, labels, '    '));
  return out;
}

function entryList(entries: readonly EntrySummary[], more: number): string[] {
  const out = entries.map((e) => `    #${e.index} ${describeEntry(e)}${e.kind === 'input' ? ` ${showValue(e.payload)}` : ''}`);
  if (more > 0) out.push(`    … ${more} more`);
  return out;
}

export function renderVerify(r: VerifyResult): string {
  const out: string[] = [`verify ${sourceLine(r.source)}`, `  build ${r.build}: ${num(r.entries)} entries, ${num(r.ticks)} ticks replayed, ${num(r.digestsChecked)} recorded digests checked`];
  const m = r.mismatch;
  if (m === null) {
    out.push(`OK: every recorded digest matches${r.lastTick !== null ? ` (last tick ${r.lastTick}${r.lastAgreedTick !== r.lastTick ? '; its digest is carried by a tick not in the log yet' : ''})` : ''}`);
    return out.join('\n') + '\n';
  }
  out.push(`DESYNC at tick ${m.tick}${m.firstPossibleTick < m.tick ? ` (or as early as tick ${m.firstPossibleTick}: the log carries no digest for the ticks between)` : ''}: closed by seq ${m.seq}, digest recorded ${m.recorded} (carried by seq ${m.reportedBySeq}), replayed ${m.replayed}`);
  out.push(`  last agreeing tick: ${r.lastAgreedTick ?? 'none'}`);
  const labels = { a: 'expected', b: 'actual' };
  if (m.localised !== null) {
    out.push(`  the recording is reproduced by build ${m.localised.build} (${m.localised.method === 'checkpoint' ? 'restored from a checkpoint' : 'replayed from the start'}); expected = ${m.localised.build} (recorded), actual = ${r.build}`);
    if (m.localised.culprit !== null) out.push(...renderCulprit(m.localised.culprit, labels));
    else out.push(`  ${m.localised.reason}`);
  } else {
    out.push(`  ${m.note}`);
    for (const a of m.attempts) out.push(`  tried ${a.build} (${a.method}): ${a.detail}`);
    if (m.suspects !== null) {
      out.push(`  the ${m.suspects.length} entries of tick ${m.tick} and what each changed in this replay (the recorder diverged while applying one of them):`);
      for (const s of m.suspects) {
        out.push(`    #${s.entry.index} ${describeEntry(s.entry)}${s.entry.kind === 'input' ? ` ${showValue(s.entry.payload)}` : ''}`);
        out.push(...renderStateDiff(s.changed, { a: 'before', b: 'after' }, '      ').filter((l) => !l.endsWith('(no difference)')));
      }
    } else out.push(`  entries of tick ${m.tick}:`, ...entryList(m.entries, m.entriesMore));
    if (m.selfCheck !== null) {
      out.push(`  self-check of ${r.build}: tick ${m.tick} replayed from a restored snapshot ${m.selfCheck.restoredReproduces ? 'gives the same digest' : 'gives ANOTHER digest (this build keeps state outside its tables)'}; checked mode ${m.selfCheck.checkedMode.ok ? 'finds no violation' : `stops at seq ${m.selfCheck.checkedMode.seq}: ${m.selfCheck.checkedMode.code}: ${m.selfCheck.checkedMode.message}`}`);
    }
  }
  return out.join('\n') + '\n';
}

export function renderBisect(r: BisectResult): string {
  const out: string[] = [];
  out.push(`bisect A ${sourceLine(r.a.source)} [build ${r.a.build}]`);
  out.push(`       B ${r.shared ? '(the same log)' : sourceLine(r.b.source)} [build ${r.b.build}]`);
  if (!r.logs.identical && r.logs.firstDifference !== null) {
    const f = r.logs.firstDifference;
    out.push(`  the logs first differ at seq ${f.seq} (tick ${f.tick}) in ${f.fields.join(', ')}`);
  }
  const d = r.divergence;
  if (d !== null) {
    out.push(`DIVERGED at tick ${d.tick}${d.atStart ? ' (where the comparison starts)' : ''}: A ${d.digestA ?? '(failed)'}, B ${d.digestB ?? '(failed)'}; last equal tick ${r.lastEqualTick ?? 'none'}`);
    if (d.culprit !== null) {
      out.push(...renderCulprit(d.culprit, { a: 'A', b: 'B' }));
    } else if (d.diff !== null) {
      out.push(`  ${d.reason}`, '  differing records:', ...renderStateDiff(d.diff, { a: 'A', b: 'B' }, '    '));
    } else out.push(`  ${d.reason}`);
  } else if (r.recordedVerify !== null) {
    const side = r.recordedVerify.side.toUpperCase();
    out.push(`The replays agree for ${num(r.ticksCompared)} ticks, but ${side}'s log records digests this build does not compute from tick ${r.recordedMismatch[r.recordedVerify.side]}: verifying ${side}:`);
    out.push(...renderVerify(r.recordedVerify.result).trimEnd().split('\n').map((l) => `  ${l}`));
  } else {
    out.push(`OK: A and B agree at every one of ${num(r.ticksCompared)} ticks compared (last tick ${r.lastEqualTick ?? 'none'})`);
  }
  if (r.endedEarly !== null) out.push(`  note: ${r.endedEarly.side.toUpperCase()} ends first (after tick ${r.endedEarly.lastTick ?? 'none'}); only the common ticks were compared`);
  return out.join('\n') + '\n';
}

export function renderDiff(r: DiffResult): string {
  const out = [`diff at tick ${r.tick}`, `  A ${sourceLine(r.a.source)} [build ${r.a.build}]: seq ${r.a.seq}, digest ${r.a.digest}`, `  B ${sourceLine(r.b.source)} [build ${r.b.build}]: seq ${r.b.seq}, digest ${r.b.digest}`];
  if (r.equal) out.push(r.a.digest === r.b.digest ? 'EQUAL: same state and digest' : `EQUAL states (tables and rng); the digests differ by ${r.a.seq !== r.b.seq ? 'the seq closing the tick' : 'the reducer version'}`);
  else {
    out.push(`DIFFERENT: ${r.diff.records.length + r.diff.recordsMore} record(s)${r.diff.rng !== null ? ' and the rng state' : ''}`);
    for (const t of r.diff.tables) out.push(`  table ${t.table}: ${t.status}${t.status === 'changed' ? `, ${t.bucketsDiffering} of 4096 buckets differ` : ''}`);
    out.push(...renderStateDiff(r.diff, { a: 'A', b: 'B' }));
  }
  return out.join('\n') + '\n';
}

export function renderInspect(r: InspectResult): string {
  const s = r.source;
  const out: string[] = [`inspect ${s.spec} (${s.kind})`];
  out.push(`  shard ${s.shard}, reducer ${s.reducer}@${s.reducerVersion}, seed ${s.seed}, tickMs ${s.tickMs}, hash ${s.hash}, entry format ${s.entryFormat}`);
  if (s.engineVersion !== null || s.createdBy !== null) out.push(`  written by ${s.createdBy ?? '?'} (engine ${s.engineVersion ?? '?'})`);
  if (s.description !== null) out.push(`  ${s.description}`);
  out.push(`  starts ${s.snapshot === null ? 'at genesis' : `after the snapshot at tick ${s.snapshot.tick}, seq ${s.snapshot.seq} (digest ${s.snapshot.digest})`}`);
  out.push(`  entries ${num(r.entries)}: seq ${r.seq.first ?? '-'}..${r.seq.last ?? '-'}; ${Object.entries(r.byKind).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${num(n)}`).join(', ')}`);
  const types = Object.entries(r.byType).sort((x, y) => y[1] - x[1]);
  if (types.length > 0) out.push(`  inputs by type: ${types.map(([t, n]) => `${t} ${num(n)}`).join(', ')}`);
  const origins = Object.entries(r.byOrigin).sort((x, y) => y[1] - x[1]);
  if (origins.length > 0) out.push(`  inputs by origin: ${origins.map(([o, n]) => `${o} ${num(n)}`).join(', ')}`);
  out.push(`  ticks ${r.ticks.first ?? '-'}..${r.ticks.last ?? '-'}: ${num(r.ticks.closed)} closed${r.ticks.openAtEnd ? ', the last one open' : ''}; at most ${num(r.ticks.inputsPerTickMax)} inputs in a tick; ${num(r.digestsCarried)} carry the leader's digest`);
  out.push(`  epochs: ${r.epochs.map((e) => `${e.epoch} from seq ${e.firstSeq} (tick ${e.tick}${e.leader !== null ? `, leader ${e.leader}` : ''})`).join('; ') || 'none'}`);
  if (r.upgrades.length > 0) out.push(`  upgrades: ${r.upgrades.map((u) => `to version ${u.reducerVersion ?? '?'} at seq ${u.seq} (tick ${u.tick}, effective from tick ${u.tick + 1})`).join('; ')}`);
  const z = r.sizes;
  out.push(`  sizes: ${z.sourceBytes !== null ? `${num(z.sourceBytes)} bytes on disk, ` : ''}entries ${num(z.entryBytesTotal)} bytes (min ${z.entryBytesMin ?? '-'}, mean ${z.entryBytesMean === null ? '-' : z.entryBytesMean.toFixed(1)}, max ${z.entryBytesMax ?? '-'})`);
  out.push(`  gaps: ${r.gaps.length === 0 ? 'none' : r.gaps.map((g) => (g.seqFrom === g.seqTo ? `${g.seqFrom}` : `${g.seqFrom}..${g.seqTo}`)).join(', ')}`);
  if (r.chain.ok) out.push('  chain: OK (every hash verified, every entry links to the one before, complete)');
  else {
    out.push(`  chain: BROKEN${r.chain.complete ? '' : ' (the read stopped early)'}`);
    for (const p of r.chain.problems) out.push(`    ${p.code}${p.seq !== null ? ` at seq ${p.seq}` : ''}: ${p.message}`);
    if (r.chain.problemsMore > 0) out.push(`    … ${r.chain.problemsMore} more`);
  }
  return out.join('\n') + '\n';
}

// inspect: what a source holds — header, entries by kind and type, ticks, epochs, upgrades,
// sizes, gaps and the state of its hash chain. Reads leniently: chain breaks, gaps and corrupt
// entries (with intact frames) are listed, not fatal; a torn or truncated file stops the read
// and is reported with the seq of the first entry not read.
import type { ReplaySource, SourceInfo } from '../../adapters/replay-source.js';
import { PlayoutError, type ErrorCode } from '../../core/index.js';

export interface InspectProblem {
  readonly code: ErrorCode;
  readonly seq: number | null;
  readonly message: string;
}

export interface InspectResult {
  readonly source: SourceInfo;
  readonly entries: number;
  readonly seq: { readonly first: number | null; readonly last: number | null };
  readonly byKind: Record<string, number>;
  /** Inputs by `type@version`. */
  readonly byType: Record<string, number>;
  readonly byOrigin: Record<string, number>;
  readonly ticks: { readonly first: number | null; readonly last: number | null; readonly closed: number; readonly openAtEnd: boolean; readonly inputsPerTickMax: number };
  /** Tick entries that carry the leader's digest of the previous tick. */
  readonly digestsCarried: number;
  readonly epochs: { readonly epoch: number; readonly firstSeq: number; readonly tick: number; readonly leader: string | null }[];
  readonly upgrades: { readonly seq: number; readonly tick: number; readonly reducerVersion: number | null }[];
  readonly sizes: { readonly sourceBytes: number | null; readonly entryBytesTotal: number; readonly entryBytesMin: number | null; readonly entryBytesMax: number | null; readonly entryBytesMean: number | null };
  readonly gaps: { readonly seqFrom: number; readonly seqTo: number }[];
  readonly chain: { readonly ok: boolean; readonly complete: boolean; readonly problems: InspectProblem[]; readonly problemsMore: number };
  readonly elapsedMs: number;
}

const PROBLEMS_MAX = 50;

export async function inspect(source: ReplaySource): Promise<InspectResult> {
  const t0 = performance.now();
  const byKind: Record<string, number> = { genesis: 0, input: 0, tick: 0, epoch: 0, upgrade: 0 };
  const byType: Record<string, number> = {};
  const byOrigin: Record<string, number> = {};
  const epochs: InspectResult['epochs'] = [];
  const upgrades: InspectResult['upgrades'] = [];
  const gaps: InspectResult['gaps'] = [];
  const problems: InspectProblem[] = [];
  let problemsMore = 0;
  const problem = (p: InspectProblem): void => {
    if (problems.length < PROBLEMS_MAX) problems.push(p);
    else problemsMore++;
  };
  let entries = 0;
  let firstSeq: number | null = null;
  let lastSeq: number | null = null;
  let firstTick: number | null = null;
  let lastTick: number | null = null;
  let closed = 0;
  let openAtEnd = false;
  let inputsThisTick = 0;
  let inputsPerTickMax = 0;
  let digestsCarried = 0;
  let bytesTotal = 0;
  let bytesMin: number | null = null;
  let bytesMax: number | null = null;
  let epoch: number | null = null;
  let complete = false;
  const stream = await source.read({ strict: false, onProblem: (p) => problem({ code: p.code, seq: p.seq, message: p.message }) });
  try {
    for await (const batch of stream) {
      for (const e of batch) {
        entries++;
        if (firstSeq === null) firstSeq = e.seq;
        if (lastSeq !== null && e.seq > lastSeq + 1) gaps.push({ seqFrom: lastSeq + 1, seqTo: e.seq - 1 });
        lastSeq = e.seq;
        if (firstTick === null) firstTick = e.tick;
        lastTick = e.tick;
        byKind[e.kind] = (byKind[e.kind] ?? 0) + 1;
        openAtEnd = e.kind !== 'tick';
        const n = e.bytes.length;
        bytesTotal += n;
        if (bytesMin === null || n < bytesMin) bytesMin = n;
        if (bytesMax === null || n > bytesMax) bytesMax = n;
        if (epoch === null || e.epoch !== epoch) {
          epochs.push({ epoch: e.epoch, firstSeq: e.seq, tick: e.tick, leader: e.kind === 'epoch' ? e.origin : null });
          epoch = e.epoch;
        }
        switch (e.kind) {
          case 'input': {
            const t = `${e.type}@${e.version}`;
            byType[t] = (byType[t] ?? 0) + 1;
            if (e.origin !== null) byOrigin[e.origin] = (byOrigin[e.origin] ?? 0) + 1;
            inputsThisTick++;
            break;
          }
          case 'tick':
            closed++;
            if (e.digest !== null) digestsCarried++;
            if (inputsThisTick > inputsPerTickMax) inputsPerTickMax = inputsThisTick;
            inputsThisTick = 0;
            break;
          case 'upgrade': {
            const v = (e.payload as { reducerVersion?: unknown } | null)?.reducerVersion;
            upgrades.push({ seq: e.seq, tick: e.tick, reducerVersion: typeof v === 'number' ? v : null });
            break;
          }
          default:
          // genesis and epoch entries are counted above and need nothing else
        }
      }
    }
    complete = true;
  } catch (err) {
    if (!(err instanceof PlayoutError)) throw err;
    problem({ code: err.code, seq: err.seq, message: err.message });
  } finally {
    await stream.close();
  }
  return {
    source: source.info,
    entries,
    seq: { first: firstSeq, last: lastSeq },
    byKind,
    byType,
    byOrigin,
    ticks: { first: firstTick, last: lastTick, closed, openAtEnd, inputsPerTickMax },
    digestsCarried,
    epochs,
    upgrades,
    sizes: { sourceBytes: source.info.bytes, entryBytesTotal: bytesTotal, entryBytesMin: bytesMin, entryBytesMax: bytesMax, entryBytesMean: entries > 0 ? bytesTotal / entries : null },
    gaps,
    chain: { ok: problems.length === 0 && complete, complete, problems, problemsMore },
    elapsedMs: performance.now() - t0,
  };
}

// capture: save a shard's log from any source (a fixture, a store directory, a live region over
// http://, a Kafka topic) as a `.plog` fixture (docs/plog.md), plus the snapshot it starts
// after when it does not start at genesis.
//
// The file is written by the streaming writer (constant memory whatever the log's length) under
// a temporary name and renamed into place only once complete and durable, so a capture that
// fails or is interrupted never leaves a file that looks like a fixture, and never replaces an
// existing one (unless `force`). Every entry is checked on the way: the source verifies hashes
// and links, and the writer refuses anything that does not continue the log.
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { PlogWriter } from '../../adapters/plog.js';
import type { ReadProgress, ReplaySource, SourceInfo } from '../../adapters/replay-source.js';
import { ENGINE_VERSION, PlayoutError, type Entry } from '../../core/index.js';

export interface CaptureOptions {
  /** Absolute path of the fixture to write; must end in `.plog` or `.plog.gz`. */
  out: string;
  /** Stop once this tick has closed (its tick entry is the last one written). */
  toTick?: number | null;
  /** Replace an existing file. */
  force?: boolean;
  description?: string | null;
  onProgress?: ((p: ReadProgress, entries: number) => void) | null;
}

export interface CaptureResult {
  readonly source: SourceInfo;
  readonly out: string;
  readonly compressed: boolean;
  readonly start: { readonly from: 'genesis' | 'snapshot'; readonly tick: number | null; readonly seq: number };
  readonly entries: number;
  readonly firstSeq: number;
  readonly lastSeq: number | null;
  readonly lastTick: number | null;
  /** Ticks whose tick entry is in the file. */
  readonly ticksClosed: number;
  readonly bytes: number;
  readonly elapsedMs: number;
}

function badOut(message: string, expected: string, received: string, cause?: unknown): PlayoutError {
  return new PlayoutError('PLAYOUT_INVALID_ARGUMENT', message, { path: '--out', expected, received, cause });
}

/** Check that `out` can be written before reading anything from the source. */
export async function checkCaptureTarget(out: string, force: boolean): Promise<void> {
  if (!/\.plog(\.gz)?$/.test(out)) throw badOut(`Cannot capture to ${out}: expected a file name ending in .plog or .plog.gz`, 'FILE.plog or FILE.plog.gz', basename(out));
  const dir = dirname(out);
  const d = await stat(dir).catch(() => null);
  if (d === null || !d.isDirectory()) throw badOut(`Cannot capture to ${out}: the directory ${dir} does not exist`, 'an existing directory', dir);
  const existing = await stat(out).catch(() => null);
  if (existing !== null) {
    if (existing.isDirectory()) throw badOut(`Cannot capture to ${out}: it is a directory`, 'a file name', 'a directory');
    if (!force) throw badOut(`Cannot capture to ${out}: the file exists; pass --force to replace it`, 'a new file, or --force', 'an existing file');
  }
}

export async function capture(source: ReplaySource, options: CaptureOptions): Promise<CaptureResult> {
  const t0 = performance.now();
  const { out } = options;
  const toTick = options.toTick ?? null;
  await checkCaptureTarget(out, options.force === true);
  const info = source.info;
  const snapshot = source.freshSnapshot();
  if (toTick !== null && snapshot !== null && toTick <= snapshot.tick) {
    throw new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `Cannot capture ${info.spec} to tick ${toTick}: it starts after tick ${snapshot.tick}`, {
      path: '--to-tick',
      tick: toTick,
      expected: `> ${snapshot.tick}`,
      received: String(toTick),
    });
  }
  let writer: PlogWriter;
  try {
    writer = await PlogWriter.create(
      out,
      {
        shard: info.shard,
        reducer: info.reducer,
        reducerVersion: info.reducerVersion,
        seed: info.seed,
        tickMs: info.tickMs,
        createdBy: `playout capture ${ENGINE_VERSION}`,
        description: options.description ?? `captured from ${info.kind} ${info.location}${info.description === null ? '' : ` (${info.description})`}`,
      },
      { snapshot },
    );
  } catch (err) {
    throw asWriteError(out, err);
  }
  let entries = 0;
  let firstSeq: number | null = null;
  let lastSeq: number | null = null;
  let lastTick: number | null = null;
  let ticksClosed = 0;
  let reached = false;
  let nextProgressAt = 0;
  try {
    const stream = await source.read();
    try {
      for await (const batch of stream) {
        let take: Entry[] = batch;
        if (toTick !== null) {
          const end = batch.findIndex((e) => e.kind === 'tick' && e.tick >= toTick);
          if (end >= 0) {
            take = batch.slice(0, end + 1);
            reached = true;
          }
        }
        if (take.length > 0) {
          await writer.append(take);
          firstSeq ??= take[0]!.seq;
          const last = take[take.length - 1]!;
          lastSeq = last.seq;
          lastTick = last.tick;
          for (const e of take) if (e.kind === 'tick') ticksClosed++;
          entries += take.length;
        }
        if (options.onProgress && entries >= nextProgressAt) {
          options.onProgress(stream.progress(), entries);
          nextProgressAt = entries + 8192;
        }
        if (reached) break;
      }
    } finally {
      await stream.close();
    }
    if (toTick !== null && !reached) {
      throw new PlayoutError('PLAYOUT_TICK_NOT_RETAINED', `Cannot capture ${info.spec} to tick ${toTick}: the log ends ${lastTick === null ? 'before its first tick closes' : `in tick ${lastTick}`}`, {
        path: '--to-tick',
        tick: toTick,
        expected: `<= ${lastTick ?? 'none'}`,
        received: String(toTick),
      });
    }
    await writer.close();
  } catch (err) {
    await writer.abort().catch(() => undefined);
    throw err instanceof PlayoutError ? err : asWriteError(out, err);
  }
  const bytes = (await stat(out)).size;
  const start = snapshot === null ? ({ from: 'genesis', tick: null, seq: 1 } as const) : ({ from: 'snapshot', tick: snapshot.tick, seq: snapshot.seq } as const);
  return {
    source: info,
    out,
    compressed: out.endsWith('.gz'),
    start,
    entries,
    firstSeq: firstSeq ?? info.firstSeq,
    lastSeq,
    lastTick,
    ticksClosed,
    bytes,
    elapsedMs: performance.now() - t0,
  };
}

/** A file system failure while writing (permission, disk full) as a one-line error. */
function asWriteError(out: string, err: unknown): unknown {
  if (err instanceof PlayoutError) return err;
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code !== 'string') return err;
  const why = e.code === 'EACCES' || e.code === 'EPERM' ? 'permission denied' : e.code === 'ENOSPC' ? 'no space left on the device' : e.code === 'ENOENT' ? 'its directory does not exist' : `${e.code} (${e.message})`;
  return badOut(`Cannot capture to ${out}: ${why}`, 'a writable file', e.code, err);
}

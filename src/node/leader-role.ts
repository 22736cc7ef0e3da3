// LeaderRole: the sequencing side of a shard at its leader region.
//
// Ingress → validate (a batch is validated whole before any input is sequenced, so a refused
// batch changes nothing) → Sequencer (dedupe by ingestId, stamp seq/epoch/tick/prev/hash) →
// group commit in the ShardHost → acknowledge once durable here (ack mode `leader`) or at a
// majority of regions (`quorum`, counted from the durable reports followers POST back).
//
// The tick timer closes the open tick every tickMs with the leader's digest of the previous
// tick. That digest exists only once the previous tick entry is durable and applied; when it
// is not yet (a slow disk), the close waits for it rather than carrying a wrong or absent digest.
import { PlayoutError, isPlayoutError } from '../core/errors.js';
import { HASH_BYTES, fromHex, hashEquals, toHex } from '../core/hash.js';
import { Sequencer } from '../core/sequencer.js';
import type { IngestWindow } from '../core/ingest-window.js';
import { entryIngestOf, type Entry } from '../core/entry.js';
import { epochEntries } from '../replication/failover-promotion.js';
import type { AckMode, DurableReport, InputRequest, InputResult, PeerStatus } from '../adapters/http-schemas.js';
import type { ShardHost } from './shard-host.js';

/** Page size of the raw log read that rebuilds the dedupe window when a region starts leading. */
const DEDUPE_SCAN_PAGE_BYTES = 4 << 20;

/**
 * The inputs (ingestId, seq, tick) of the log's [fromSeq, toSeq], read ahead of a promotion so that
 * LeaderRole.resume reads only what was appended after (see ShardFailover). `toHash` is the hash
 * at toSeq when it was read: a log truncated and refilled since is not taken for the same.
 */
export interface DedupeScan {
  readonly fromSeq: number;
  readonly toSeq: number;
  readonly toHash: Uint8Array;
  /** The ingestIds of entries [fromSeq, toSeq], remembered in log order. */
  readonly window: IngestWindow;
}

/** Where the dedupe window of a leader whose oldest remembered tick is `tickMin` starts in the log. */
export function dedupeScanFrom(host: ShardHost, tickMin: number): number {
  // A log truncated to its base snapshot holds nothing to scan.
  let from = host.firstSeq() ?? host.durableSeq + 1;
  if (tickMin > 0) {
    const rows = host.ctx.store.digests(host.shard, tickMin - 1, tickMin - 1);
    if (rows.length > 0) from = Math.max(from, rows[0]!.seq + 1);
  }
  return from;
}

/**
 * Read the inputs with an ingestId of the log's [seqFrom, seqTo] in raw pages of `pageBytes`
 * (checked by the store, mostly from its in-memory tail), of which only the fields up to the
 * ingestId are read: no payload decoding, no second hash. `sink` answers whether it kept one.
 * Returns how many were kept.
 */
export function scanIngestIds(host: ShardHost, seqFrom: number, seqTo: number, pageBytes: number, sink: (ingestId: string, seq: number, tick: number) => boolean): number {
  let kept = 0;
  for (let at = seqFrom; at <= seqTo; ) {
    const page = host.rangeRaw(at, seqTo, pageBytes);
    if (page.length === 0) throw new PlayoutError('PLAYOUT_RANGE_NOT_RETAINED', `Cannot lead shard "${host.shard}": its log does not hold seq ${at} to rebuild the dedupe window`, { shard: host.shard, seq: at });
    for (const bytes of page) {
      const e = entryIngestOf(bytes);
      if (e.seq !== at) throw new PlayoutError('PLAYOUT_STORE_CORRUPT', `Cannot lead shard "${host.shard}": the store answered entry ${e.seq} for seq ${at}`, { shard: host.shard, seq: at, expected: String(at), received: String(e.seq) });
      at++;
      if (e.kind === 'input' && e.ingestId !== null && sink(e.ingestId, e.seq, e.tick)) kept++;
    }
  }
  return kept;
}

/** The hash of the stored entry at `seq` (its raw bytes' last 16), or null. */
export function rawHashAt(host: ShardHost, seq: number): Uint8Array | null {
  const raw = host.ctx.store.rangeRaw(host.shard, seq, seq, Number.MAX_SAFE_INTEGER)[0];
  return raw === undefined ? null : raw.subarray(raw.length - HASH_BYTES);
}

const ZERO = new Uint8Array(HASH_BYTES);

export interface LeaderOptions {
  ack: AckMode;
  /** Regions of the peers that hold the shard (the quorum counts them and this region). */
  peers: readonly string[];
  tickMs: number;
  pendingInputsMax: number;
  ackTimeoutMs: number;
  dedupeWindowTicks: number;
}

interface QuorumWaiter {
  seq: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface PeerDurable {
  seq: number;
  atMs: number;
  digestTick: number | null;
  digest: Uint8Array | null;
}

export class LeaderRole {
  readonly host: ShardHost;
  readonly sequencer: Sequencer;
  readonly options: LeaderOptions;
  readonly peerDurable = new Map<string, PeerDurable>();
  pendingInputs = 0;
  sequenced = 0;
  duplicates = 0;
  rejected = 0;
  private quorumSeq = 0;
  private quorumWaiters: QuorumWaiter[] = [];
  private timer: NodeJS.Timeout | null = null;
  private nextTickAtMs = 0;
  private tickDue = false;
  private closed = false;
  private readonly unsubscribe: () => void;

  constructor(host: ShardHost, sequencer: Sequencer, options: LeaderOptions) {
    this.host = host;
    this.sequencer = sequencer;
    this.options = options;
    this.unsubscribe = host.onAppend(() => this.onDurable());
  }

  /**
   * A leader continuing the shard's stored log (after genesis or a restart). With `startEpoch`
   * (a promotion), its first entries are the epoch entry (and the tick entry closing the head's
   * tick when the head is inside one), enqueued before the tick timer starts.
   */
  static resume(host: ShardHost, options: LeaderOptions, start: { startEpoch?: { epoch: number; leader: string; lastSeqPrevEpoch: number }; dedupe?: DedupeScan } = {}): LeaderRole {
    const m = host.machine;
    if (m === null || m.reducer === null || host.durableHash === null) {
      throw new PlayoutError('PLAYOUT_GENESIS_INVALID', `Cannot lead shard "${host.shard}": it has no genesis in the store`, { shard: host.shard });
    }
    if (m.head !== host.durableSeq) {
      throw new PlayoutError('PLAYOUT_SHARD_STOPPED', `Cannot lead shard "${host.shard}": applied ${m.head} of ${host.durableSeq} durable entries (${host.stopped?.message ?? 'quarantined'})`, { shard: host.shard, seq: m.head });
    }
    const seq = new Sequencer(
      host.ctx.registry,
      { shard: host.shard, seq: host.durableSeq, hash: host.durableHash, tick: m.tick, epoch: host.epoch, reducer: m.reducer.name, reducerVersion: m.reducer.version },
      { region: host.ctx.region, dedupeWindowTicks: options.dedupeWindowTicks },
    );
    // Rebuild the dedupe window from the log: an ingestId acknowledged before a crash must
    // still be recognised after it.
    const tickMin = m.tick - options.dedupeWindowTicks;
    const from = dedupeScanFrom(host, tickMin);
    let remembered = 0;
    let scanFrom = from;
    // A promotion read most of the window ahead (while catching up): only the rest is read now.
    const pre = start.dedupe;
    if (pre !== undefined && pre.fromSeq <= from && pre.toSeq <= host.durableSeq && hashEquals(rawHashAt(host, pre.toSeq) ?? ZERO, pre.toHash)) {
      // Ids below the window (seqs before `from` are of ticks before tickMin) are dropped.
      seq.adoptIngestWindow(pre.window);
      remembered = seq.ingestIdsRemembered;
      scanFrom = Math.max(from, pre.toSeq + 1);
    }
    remembered += scanIngestIds(host, scanFrom, host.durableSeq, DEDUPE_SCAN_PAGE_BYTES, (id, s, tick) => {
      if (tick >= tickMin) seq.remember(id, s, tick);
      return tick >= tickMin;
    });
    host.log.info({ shard: host.shard, head: host.durableSeq, tick: m.tick, remembered }, `leading shard ${host.shard} from seq ${host.durableSeq}`);
    const role = new LeaderRole(host, seq, options);
    if (start.startEpoch !== undefined) {
      const headIsTick = host.ctx.store.get(host.shard, host.durableSeq)?.kind === 'tick';
      const d = m.lastDigest;
      const first: Entry[] = epochEntries(seq, start.startEpoch, d !== null && d.tick === seq.tick - 1 ? d.digest : null, headIsTick);
      host.enqueue(first, 'sequencer');
      role.firstEntries = first;
    }
    return role;
  }

  /** The epoch's first entries when this role was resumed with `startEpoch` (empty otherwise). */
  firstEntries: readonly Entry[] = [];

  start(): void {
    this.nextTickAtMs = Date.now() + this.options.tickMs;
    this.schedule();
  }

  close(reason: PlayoutError): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.unsubscribe();
    for (const w of this.quorumWaiters) w.reject(reason);
    this.quorumWaiters = [];
  }

  get majority(): number {
    return Math.floor((1 + this.options.peers.length) / 2) + 1;
  }

  // --- ticks ---------------------------------------------------------------------------------

  private schedule(): void {
    if (this.closed) return;
    const delay = Math.max(0, this.nextTickAtMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.nextTickAtMs += this.options.tickMs;
      // After a long pause (GC, a stopped process) restart the cadence instead of firing a burst.
      if (this.nextTickAtMs < Date.now()) this.nextTickAtMs = Date.now() + this.options.tickMs;
      this.tickDue = true;
      this.tryCloseTick();
      this.schedule();
    }, delay);
  }

  private tryCloseTick(): void {
    if (!this.tickDue || this.closed || this.host.stopped !== null) return;
    const open = this.sequencer.tick;
    let digestPrev: Uint8Array | null = null;
    if (open > 0) {
      const d = this.host.latestDigest;
      // The previous tick entry is not durable and applied yet: close when it is (onDurable).
      if (d === null || d.tick !== open - 1) return;
      digestPrev = d.digest;
    }
    this.tickDue = false;
    try {
      const entry = this.sequencer.closeTick(digestPrev);
      this.host.enqueue([entry], 'sequencer');
    } catch (err) {
      this.host.stop(err);
    }
  }

  // --- ingress ------------------------------------------------------------------------------

  async submit(inputs: readonly InputRequest[], pathOf: (index: number) => string): Promise<InputResult[]> {
    const host = this.host;
    if (host.stopped !== null) throw host.stopped;
    if (this.closed || this.sequencer.isFenced) {
      throw new PlayoutError('PLAYOUT_SEQUENCER_FENCED', `Cannot sequence inputs for shard "${host.shard}": this region no longer leads it`, { shard: host.shard });
    }
    if (this.pendingInputs + inputs.length > this.options.pendingInputsMax) {
      this.host.ctx.metrics.inputs.inc({ shard: host.shard, status: 'overloaded' }, inputs.length);
      throw new PlayoutError('PLAYOUT_OVERLOADED', `Cannot accept ${inputs.length} input(s) for shard "${host.shard}": ${this.pendingInputs} await acknowledgement (limit ${this.options.pendingInputsMax})`, {
        shard: host.shard,
        expected: `at most ${this.options.pendingInputsMax} pending`,
        received: String(this.pendingInputs + inputs.length),
      });
    }
    const t0 = performance.now();
    // A batch is validated whole first: one bad input refuses the batch and sequences nothing.
    const payloads: unknown[] = new Array(inputs.length);
    for (let i = 0; i < inputs.length; i++) {
      const input = inputs[i]!;
      try {
        payloads[i] = this.sequencer.validate(input);
      } catch (err) {
        this.rejected += inputs.length;
        host.ctx.metrics.inputs.inc({ shard: host.shard, status: 'rejected' }, inputs.length);
        throw prefixPath(err, pathOf(i));
      }
    }
    const results: InputResult[] = new Array(inputs.length);
    const entries = [];
    let seqMax = 0;
    for (let i = 0; i < inputs.length; i++) {
      const r = this.sequencer.sequence(inputs[i]!, payloads[i]);
      if (r.status === 'sequenced') {
        entries.push(r.entry);
        results[i] = { status: 'sequenced', seq: r.entry.seq, tick: r.entry.tick };
        if (r.entry.seq > seqMax) seqMax = r.entry.seq;
        this.sequenced++;
      } else {
        results[i] = { status: 'duplicate', seq: r.seq, tick: null };
        if (r.seq > seqMax) seqMax = r.seq;
        this.duplicates++;
      }
    }
    host.ctx.metrics.inputs.inc({ shard: host.shard, status: 'sequenced' }, entries.length);
    if (entries.length < inputs.length) host.ctx.metrics.inputs.inc({ shard: host.shard, status: 'duplicate' }, inputs.length - entries.length);
    host.enqueue(entries, 'sequencer');
    this.pendingInputs += inputs.length;
    try {
      await this.withTimeout(this.options.ack === 'quorum' ? this.waitQuorum(seqMax) : host.waitDurable(seqMax), seqMax);
    } finally {
      this.pendingInputs -= inputs.length;
    }
    host.ctx.metrics.ackSeconds.observe({ shard: host.shard, mode: this.options.ack }, (performance.now() - t0) / 1000);
    return results;
  }

  private withTimeout(p: Promise<void>, seq: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        const durable = this.host.durableSeq >= seq;
        reject(
          new PlayoutError(
            'PLAYOUT_PEER_UNAVAILABLE',
            `Input(s) of shard "${this.host.shard}" were sequenced up to seq ${seq} and are ${durable ? 'durable at the leader' : 'not yet durable'} but not acknowledged by ${this.options.ack === 'quorum' ? `a quorum of ${this.majority} regions` : 'the store'} within ${this.options.ackTimeoutMs} ms; retry with the same ingestId`,
            { shard: this.host.shard, seq },
          ),
        );
      }, this.options.ackTimeoutMs);
      p.then(
        () => {
          clearTimeout(t);
          resolve();
        },
        (err) => {
          clearTimeout(t);
          reject(err);
        },
      );
    });
  }

  // --- quorum -------------------------------------------------------------------------------

  private waitQuorum(seq: number): Promise<void> {
    if (seq <= this.quorumSeq) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let i = this.quorumWaiters.length;
      while (i > 0 && this.quorumWaiters[i - 1]!.seq > seq) i--;
      this.quorumWaiters.splice(i, 0, { seq, resolve, reject });
    });
  }

  /** A follower reports what it holds durably. A report from another history is refused. */
  reportDurable(report: DurableReport, nowMs: number): void {
    const host = this.host;
    if (!this.options.peers.includes(report.region)) {
      throw new PlayoutError('PLAYOUT_INVALID_ARGUMENT', `Cannot take a durable report for shard "${host.shard}": body.region: expected a peer region (${this.options.peers.join(', ')}), received ${report.region}`, {
        path: 'body.region',
        expected: this.options.peers.join(', '),
        received: report.region,
      });
    }
    if (report.seq > host.durableSeq) {
      throw new PlayoutError('PLAYOUT_FORK', `Region ${report.region} reports seq ${report.seq} of shard "${host.shard}" durable, beyond this leader's head ${host.durableSeq}`, { shard: host.shard, seq: report.seq, expected: `<= ${host.durableSeq}`, received: String(report.seq) });
    }
    if (report.seq > 0) {
      // The hash only (the raw bytes' last 16, checked by the store), not a decoded entry: reports arrive after every append.
      const raw = host.ctx.store.rangeRaw(host.shard, report.seq, report.seq, Number.MAX_SAFE_INTEGER)[0];
      const ours = raw?.subarray(raw.length - HASH_BYTES);
      if (ours !== undefined && !hashEquals(ours, fromHex(report.hash))) {
        host.ctx.metrics.forks.inc({ shard: host.shard });
        throw new PlayoutError('PLAYOUT_FORK', `Region ${report.region} holds entry ${report.seq} of shard "${host.shard}" with hash ${report.hash}, this leader has ${toHex(ours)}`, {
          shard: host.shard,
          seq: report.seq,
          expected: toHex(ours),
          received: report.hash,
        });
      }
    }
    const prev = this.peerDurable.get(report.region);
    if (prev === undefined || report.seq >= prev.seq) {
      this.peerDurable.set(report.region, { seq: report.seq, atMs: nowMs, digestTick: report.digestTick, digest: report.digest === null ? null : fromHex(report.digest) });
    }
    this.updateQuorum();
  }

  private onDurable(): void {
    this.updateQuorum();
    if (this.tickDue) this.tryCloseTick();
  }

  private updateQuorum(): void {
    const seqs = [this.host.durableSeq];
    for (const p of this.options.peers) seqs.push(this.peerDurable.get(p)?.seq ?? 0);
    seqs.sort((a, b) => b - a);
    const q = seqs[this.majority - 1] ?? 0;
    if (q <= this.quorumSeq) return;
    this.quorumSeq = q;
    let n = 0;
    while (n < this.quorumWaiters.length && this.quorumWaiters[n]!.seq <= q) this.quorumWaiters[n++]!.resolve();
    if (n > 0) this.quorumWaiters.splice(0, n);
  }

  peerStatus(nowMs: number): PeerStatus[] {
    return this.options.peers.map((region) => {
      const p = this.peerDurable.get(region);
      if (p === undefined) return { region, head: null, lagEntries: null, lagMs: null, digestTick: null, digest: null, agrees: null, lastHeardMs: null };
      const ours = p.digestTick === null ? null : this.host.digestAt(p.digestTick);
      return {
        region,
        head: p.seq,
        // The leader is never behind a follower.
        lagEntries: 0,
        lagMs: 0,
        digestTick: p.digestTick,
        digest: p.digest === null ? null : toHex(p.digest),
        agrees: ours === null || p.digest === null ? null : hashEquals(ours, p.digest),
        lastHeardMs: Math.max(0, nowMs - p.atMs),
      };
    });
  }
}

function prefixPath(err: unknown, prefix: string): unknown {
  if (!isPlayoutError(err)) return err;
  const path = err.path === null ? prefix.replace(/\.$/, '') : `${prefix}${err.path}`;
  return new PlayoutError(err.code, err.message.replace(/: (payload|type|version)([.:])/, `: ${prefix}$1$2`), { path, expected: err.expected, received: err.received, seq: err.seq, tick: err.tick, shard: err.shard, cause: err });
}

// ShardMachine: applies one shard's entries in seq order to a reducer and computes the state
// digest at every tick (DESIGN.md §3–§4). Pure: no clock, no I/O; everything it knows arrives
// in entries.
import type { Canonical } from './codec.js';
import { CanonicalWriter, cloneCanonical } from './codec.js';
import { Entry, EpochPayloadSchema, GenesisPayloadSchema, UpgradePayloadSchema, type GenesisPayload, checkLink } from './entry.js';
import { PlayoutError, assert, describe, isPlayoutError } from './errors.js';
import { HASH_BYTES, ZERO_HASH, hash128, hashArena, hashEquals, toHex } from './hash.js';
import { validateInput, type Reducer, type ReducerContext, type ReducerRegistry, type Rejection } from './reducer.js';
import { ReadOnlyViews } from './read-only-view.js';
import { Rng } from './rng.js';
import { StateTable, type TableCapture } from './state-table.js';

/** Runs a reducer call with the non-deterministic globals poisoned (checked mode). See src/adapters/determinism-guard.ts. */
export interface DeterminismGuard {
  run<T>(call: GuardedCall, fn: () => T): T;
}
export interface GuardedCall {
  readonly reducer: string;
  readonly call: 'init' | 'apply' | 'onTick';
  readonly inputType: string | null;
  readonly seq: number;
}

export interface CheckedOptions {
  /** Poisons the wall clock, unseeded randomness and timers during reducer calls. */
  guard: DeterminismGuard | null;
  /** Compare the incremental digest with a full recomputation every N ticks (0: never). */
  fullDigestEveryTicks: number;
}

export interface MachineOptions {
  checked?: CheckedOptions | null;
  /** Called after every tick closes, with its digest. */
  onTick?: ((tick: TickDigest) => void) | null;
  /** Keep what reducers `emit` until `takeOutputs()` (default true). Replays that never take them pass false. */
  keepOutputs?: boolean;
  /**
   * Compute the digest at every tick (default true). false is for measuring the cost of the
   * digest only (bench/core.bench.ts): no digests, no leader comparison, no snapshots.
   */
  digests?: boolean;
}

// The writer every machine encodes records and digests with before hashing them. It lives in
// a hash arena, so hashing what it wrote needs no copy from JS memory (see hashArena). Machines
// apply entries one at a time, so one writer serves all of them; a nested use (a record getter
// that drives another machine) gets a writer of its own instead of clobbering the outer one.
const SHARED_WRITER = new CanonicalWriter(hashArena(24 * 1024));
let sharedWriterBusy = false;

function takeWriter(): CanonicalWriter {
  if (sharedWriterBusy) return new CanonicalWriter(1 << 12);
  sharedWriterBusy = true;
  return SHARED_WRITER;
}

function releaseWriter(w: CanonicalWriter): void {
  if (w === SHARED_WRITER) sharedWriterBusy = false;
}

/** How many recent entry hashes are kept to tell a duplicate from a fork below the head. */
export const RECENT_HASHES = 1024;

export interface TickDigest {
  readonly tick: number;
  /** Seq of the tick entry that closed it. */
  readonly seq: number;
  readonly digest: Uint8Array;
  readonly reducerVersion: number;
  readonly recordsRehashed: number;
}

export interface DigestMismatch {
  readonly tick: number;
  /** Seq of the tick entry that closed the mismatching tick. */
  readonly seq: number;
  /** Seq of the entry that carried the leader's digest. */
  readonly reportedBySeq: number;
  readonly expected: Uint8Array;
  readonly actual: Uint8Array;
}

export interface Output {
  readonly seq: number;
  readonly tick: number;
  readonly event: Canonical;
}

export interface RejectionRecord {
  readonly seq: number;
  readonly type: string | null;
  readonly code: string;
  readonly reason: string | null;
}

export const SNAPSHOT_FORMAT = 1;

/** A snapshot captured by ShardMachine.captureSnapshot: its fields, and each table's records as at the capture. */
export interface CapturedSnapshot {
  readonly header: Omit<Snapshot, 'tables'>;
  readonly tables: readonly { readonly name: string; readonly capture: TableCapture }[];
  /** Stop keeping old rows for this capture (its reads fail afterwards). */
  release(): void;
}

export interface Snapshot {
  format: number;
  shard: string;
  reducer: string;
  /** The version that runs the next tick. */
  reducerVersion: number;
  /** The version that ran the snapshot's tick (hashed into its digest); differs after an upgrade. */
  tickReducerVersion: number;
  seed: number;
  tickMs: number;
  params: unknown;
  epoch: number;
  /** Last closed tick. */
  tick: number;
  /** Seq of the tick entry that closed it (the head). */
  seq: number;
  lastHash: Uint8Array;
  rng: number[];
  digest: Uint8Array;
  tables: Record<string, [string, unknown][]>;
}

class Ctx implements ReducerContext {
  tables: Record<string, StateTable>;
  rng: Rng;
  tick = 0;
  timeMs = 0;
  tickMs: number;
  shard: string;
  seq = 0;
  params: unknown;
  outputs: Output[] = [];
  keepOutputs: boolean;
  constructor(shard: string, tables: Record<string, StateTable>, rng: Rng, tickMs: number, params: unknown, keepOutputs: boolean) {
    this.shard = shard;
    this.tables = tables;
    this.rng = rng;
    this.tickMs = tickMs;
    this.params = params;
    this.keepOutputs = keepOutputs;
  }
  emit(event: Canonical): void {
    if (this.keepOutputs) this.outputs.push({ seq: this.seq, tick: this.tick, event });
  }
}

export class ShardMachine {
  readonly registry: ReducerRegistry;
  private readonly checked: CheckedOptions | null;
  private readonly onTick: ((tick: TickDigest) => void) | null;
  private readonly keepOutputs: boolean;
  private readonly digests: boolean;
  /** Checked mode: where read-only records report a write (shared by every table). */
  private readonly views = new ReadOnlyViews();

  shard: string | null = null;
  genesis: GenesisPayload | null = null;
  reducer: Reducer | null = null;
  pendingReducerVersion: number | null = null;
  epoch = 0;
  /** The open tick (entries being applied belong to it). */
  tick = 0;
  /** Seq of the last applied entry. */
  head = 0;
  headHash: Uint8Array = ZERO_HASH;
  /** Digest of the last closed tick. */
  lastDigest: TickDigest | null = null;
  firstMismatch: DigestMismatch | null = null;
  mismatches = 0;
  /** The first reducer failure; the machine refuses entries after it. */
  failure: PlayoutError | null = null;
  /** True right after a tick entry (or at a restored snapshot): a snapshot may be taken. */
  atTickBoundary = false;
  rejections: RejectionRecord[] = [];
  keepRejections = 1000;
  private ctx: Ctx | null = null;
  private tableList: StateTable[] = [];
  private ticksClosed = 0;
  /** Hashes of the last RECENT_HASHES entries by seq % RECENT_HASHES, to tell a duplicate from a fork. */
  /**
   * Copies, not the entries' own views: a view would keep its entry's buffer (often a whole read
   * chunk) alive for RECENT_HASHES entries. Seqs older than `recentFrom` have no hash here.
   */
  private readonly recent = new Uint8Array(RECENT_HASHES * HASH_BYTES);
  private recentFrom = 1;
  /**
   * The running reducer version declares tables the state does not have yet (after an upgrade,
   * or after restoring a snapshot). They are created when the next entry is applied, not at the
   * tick boundary: the boundary's digest and snapshot must hold exactly the tables that tick had.
   */
  private tablesStale = false;

  constructor(registry: ReducerRegistry, options: MachineOptions = {}) {
    this.registry = registry;
    this.checked = options.checked ?? null;
    this.onTick = options.onTick ?? null;
    this.keepOutputs = options.keepOutputs ?? true;
    this.digests = options.digests ?? true;
  }

  get tables(): Readonly<Record<string, StateTable>> {
    assert(this.ctx !== null, 'tables exist after genesis');
    return this.ctx.tables;
  }

  get rngState(): readonly number[] {
    assert(this.ctx !== null, 'rng exists after genesis');
    return this.ctx.rng.state();
  }

  /** Outputs emitted since the last call. */
  takeOutputs(): Output[] {
    if (this.ctx === null) return [];
    const out = this.ctx.outputs;
    this.ctx.outputs = [];
    return out;
  }

  /** Apply one entry. It must be the next seq and chain to the head. */
  apply(entry: Entry): void {
    if (this.failure !== null) throw this.failure;
    if (this.shard !== null && entry.shard !== this.shard) {
      throw new PlayoutError('PLAYOUT_OUT_OF_ORDER', `Cannot apply entry ${entry.seq}: expected shard "${this.shard}", received "${entry.shard}"`, {
        seq: entry.seq,
        shard: this.shard,
        path: 'shard',
        expected: this.shard,
        received: entry.shard,
      });
    }
    if (entry.seq <= this.head) this.refuseOld(entry);
    checkLink(entry, this.head, this.headHash);
    if (entry.kind !== 'genesis') {
      if (this.ctx === null) {
        throw new PlayoutError('PLAYOUT_GENESIS_INVALID', `Cannot apply entry ${entry.seq}: expected a genesis entry first, received ${entry.kind}`, { seq: entry.seq, shard: entry.shard, path: 'kind', expected: 'genesis', received: entry.kind });
      }
      if (entry.kind !== 'epoch' && entry.epoch !== this.epoch) {
        throw new PlayoutError('PLAYOUT_OUT_OF_ORDER', `Cannot apply entry ${entry.seq} of shard "${entry.shard}": expected epoch ${this.epoch}, received ${entry.epoch}`, {
          seq: entry.seq,
          shard: entry.shard,
          path: 'epoch',
          expected: String(this.epoch),
          received: String(entry.epoch),
        });
      }
      if (entry.tick !== this.tick) {
        throw new PlayoutError('PLAYOUT_OUT_OF_ORDER', `Cannot apply entry ${entry.seq} of shard "${entry.shard}": expected tick ${this.tick}, received ${entry.tick}`, {
          seq: entry.seq,
          shard: entry.shard,
          path: 'tick',
          expected: String(this.tick),
          received: String(entry.tick),
        });
      }
      if (this.tablesStale) this.syncTables();
    }
    switch (entry.kind) {
      case 'input':
        this.applyInput(entry);
        break;
      case 'tick':
        this.applyTick(entry);
        break;
      case 'genesis':
        this.applyGenesis(entry);
        break;
      case 'epoch':
        this.applyEpoch(entry);
        break;
      case 'upgrade':
        this.applyUpgrade(entry);
        break;
    }
    this.head = entry.seq;
    this.headHash = entry.hash;
    // A loop, not recent.set(): the builtin's call costs more than copying 16 bytes.
    const recent = this.recent;
    const hash = entry.hash;
    const at = (entry.seq % RECENT_HASHES) * HASH_BYTES;
    for (let i = 0; i < HASH_BYTES; i++) recent[at + i] = hash[i]!;
    this.atTickBoundary = entry.kind === 'tick';
  }

  /** An entry at or below the head: the same bytes again are a duplicate, other bytes a fork. */
  private refuseOld(entry: Entry): never {
    const at = (entry.seq % RECENT_HASHES) * HASH_BYTES;
    const known = this.head - entry.seq < RECENT_HASHES && entry.seq >= this.recentFrom ? this.recent.subarray(at, at + HASH_BYTES) : null;
    if (known !== null && !hashEquals(known, entry.hash)) {
      throw new PlayoutError('PLAYOUT_FORK', `Cannot apply entry ${entry.seq} of shard "${entry.shard}": seq ${entry.seq} was already applied with hash ${toHex(known)}, received ${toHex(entry.hash)}`, {
        seq: entry.seq,
        shard: entry.shard,
        path: 'hash',
        expected: toHex(known),
        received: toHex(entry.hash),
      });
    }
    const how = known === null ? `(older than the last ${RECENT_HASHES} entries: compare it with the stored entry to rule out a fork)` : 'with the same hash';
    throw new PlayoutError('PLAYOUT_ENTRY_DUPLICATE', `Cannot apply entry ${entry.seq} of shard "${entry.shard}": expected seq ${this.head + 1}, received seq ${entry.seq}, already applied ${how}`, {
      seq: entry.seq,
      shard: entry.shard,
      path: 'seq',
      expected: String(this.head + 1),
      received: String(entry.seq),
    });
  }

  private applyGenesis(entry: Entry): void {
    if (entry.seq !== 1 || entry.tick !== 0) {
      throw new PlayoutError('PLAYOUT_GENESIS_INVALID', `Cannot apply genesis entry ${entry.seq}: expected seq 1 at tick 0, received seq ${entry.seq} at tick ${entry.tick}`, {
        seq: entry.seq,
        shard: entry.shard,
        expected: 'seq 1, tick 0',
        received: `seq ${entry.seq}, tick ${entry.tick}`,
      });
    }
    const parsed = GenesisPayloadSchema.safeParse(entry.payload);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const path = ['payload', ...issue.path.map(String)].join('.');
      throw new PlayoutError('PLAYOUT_GENESIS_INVALID', `Cannot apply genesis of shard "${entry.shard}": ${path}: ${issue.message}`, {
        seq: 1,
        shard: entry.shard,
        path,
        expected: issue.message,
        received: describe(issue.path.reduce<unknown>((v, k) => (v as Record<PropertyKey, unknown> | null | undefined)?.[k as PropertyKey], entry.payload)),
      });
    }
    const g = parsed.data;
    const reducer = this.registry.get(g.reducer, g.reducerVersion);
    this.shard = entry.shard;
    this.genesis = g;
    this.reducer = reducer;
    this.epoch = entry.epoch;
    this.ctx = new Ctx(entry.shard, {}, Rng.fromSeed(g.seed), g.tickMs, g.params ?? null, this.keepOutputs);
    this.syncTables();
    this.ctx.seq = entry.seq;
    this.ctx.tick = 0;
    this.ctx.timeMs = 0;
    if (this.checked === null) {
      try {
        reducer.init(this.ctx);
      } catch (err) {
        throw this.fail(err, 'init', null, entry.seq);
      }
    } else this.callChecked('init', null, entry.seq, () => reducer.init(this.ctx!));
  }

  /** Create the tables the running reducer declares and the state lacks; the declared schemas apply from now on. */
  private syncTables(): void {
    const ctx = this.ctx!;
    const declared = this.reducer!.tables;
    for (const name of Object.keys(declared)) {
      const existing = ctx.tables[name];
      if (existing !== undefined) existing.schema = declared[name]!;
      else ctx.tables[name] = this.newTable(name, declared[name]!);
    }
    // Sorted by name, not by Object.keys order (which puts integer-like names first).
    this.tableList = Object.keys(ctx.tables)
      .sort()
      .map((name) => ctx.tables[name]!);
    this.tablesStale = false;
  }

  private newTable(name: string, schema: StateTable['schema']): StateTable {
    const t = new StateTable(name, schema);
    t.frozenReads = this.checked !== null;
    t.readOnlyViews = this.views;
    return t;
  }

  private applyInput(entry: Entry): void {
    const ctx = this.ctx!;
    const reducer = this.reducer!;
    ctx.seq = entry.seq;
    const type = entry.type;
    const version = entry.version;
    if (type === null || version === null) {
      this.reject(entry, 'PLAYOUT_INPUT_TYPE_UNKNOWN', 'input entry without type or version');
      return;
    }
    if (reducer.inputs[type]?.[version] === undefined) {
      // Deterministic: every region running this reducer version rejects it alike.
      this.reject(entry, 'PLAYOUT_INPUT_TYPE_UNKNOWN', `${type}@${version} is not an input of ${reducer.name}@${reducer.version}`);
      return;
    }
    const input = { type, version, payload: entry.payload, seq: entry.seq, origin: entry.origin, ingestId: entry.ingestId };
    let result: void | Rejection;
    if (this.checked === null) {
      try {
        result = reducer.apply(ctx, input);
      } catch (err) {
        throw this.fail(err, 'apply', type, entry.seq);
      }
    } else {
      // The sequencer validated the payload before it reached the log. Checked mode validates
      // it again but still hands the reducer the logged payload: checked and unchecked replays
      // must compute the same state, so a payload that fails here stops the replay rather than
      // becoming a rejection that unchecked mode would not make.
      try {
        validateInput(reducer, type, version, entry.payload);
      } catch (err) {
        const e = err as PlayoutError;
        throw this.fail(
          new PlayoutError(e.code, `Checked replay of shard "${this.shard}": entry ${entry.seq} holds an input the sequencer should have refused: ${e.message}`, { path: e.path, expected: e.expected, received: e.received, cause: e }),
          'apply',
          type,
          entry.seq,
        );
      }
      result = this.callChecked('apply', type, entry.seq, () => reducer.apply(ctx, input));
    }
    if (result != null && typeof result === 'object' && typeof result.rejected === 'string') {
      this.reject(entry, result.rejected, result.reason ?? null);
    }
  }

  private reject(entry: Entry, code: string, reason: string | null): void {
    if (this.rejections.length >= this.keepRejections) this.rejections.shift();
    this.rejections.push({ seq: entry.seq, type: entry.type, code, reason });
  }

  private applyTick(entry: Entry): void {
    const ctx = this.ctx!;
    const reducer = this.reducer!;
    // The tick entry closing T carries the leader's digest of T-1: check ourselves against it.
    const last = this.lastDigest;
    if (entry.digest !== null && last !== null && last.tick === entry.tick - 1 && !hashEquals(entry.digest, last.digest)) {
      this.mismatches++;
      if (this.firstMismatch === null) {
        this.firstMismatch = { tick: last.tick, seq: last.seq, reportedBySeq: entry.seq, expected: entry.digest, actual: last.digest };
      }
    }
    ctx.seq = entry.seq;
    if (this.checked === null) {
      try {
        reducer.onTick(ctx);
      } catch (err) {
        throw this.fail(err, 'onTick', null, entry.seq);
      }
    } else this.callChecked('onTick', null, entry.seq, () => reducer.onTick(ctx));
    this.ticksClosed++;
    if (this.digests) {
      let digest: TickDigest;
      try {
        digest = this.closeTick(entry.seq);
        if (this.checked !== null && this.checked.fullDigestEveryTicks > 0 && this.ticksClosed % this.checked.fullDigestEveryTicks === 0) {
          this.checkFullDigest();
        }
      } catch (err) {
        throw this.fail(err, 'tick', null, entry.seq);
      }
      this.lastDigest = digest;
      if (this.onTick !== null) this.onTick(digest);
    } else {
      for (let i = 0; i < this.tableList.length; i++) this.tableList[i]!.discardChanges();
    }
    // An upgrade takes effect at this boundary: the next tick runs the new version. There is
    // no migration hook here on purpose: state changed between a tick's digest and the next
    // tick would be in no digest, and a snapshot taken at the boundary would not restore to it.
    // A new version that needs to reshape records does it in its own apply/onTick; tables it
    // adds are created (empty) when the next entry is applied.
    if (this.pendingReducerVersion !== null) {
      this.reducer = this.registry.get(reducer.name, this.pendingReducerVersion);
      this.pendingReducerVersion = null;
      this.tablesStale = true;
    }
    this.tick++;
    ctx.tick = this.tick;
    ctx.timeMs = this.tick * ctx.tickMs;
  }

  private closeTick(seq: number): TickDigest {
    let rehashed = 0;
    const validate = this.checked !== null;
    const w = takeWriter();
    try {
      for (let i = 0; i < this.tableList.length; i++) rehashed += this.tableList[i]!.flush(w, validate);
    } finally {
      releaseWriter(w);
    }
    const digest = this.computeDigest(this.tick, seq, this.reducer!.version);
    return { tick: this.tick, seq, digest, reducerVersion: this.reducer!.version, recordsRehashed: rehashed };
  }

  /** H128(canonical ["playout.tick", tick, seq, rng state, reducer version, [[table, sum] …]]). */
  private computeDigest(tick: number, seq: number, reducerVersion: number): Uint8Array {
    const w = takeWriter();
    try {
      return this.digestWith(w, tick, seq, reducerVersion);
    } finally {
      releaseWriter(w);
    }
  }

  private digestWith(w: CanonicalWriter, tick: number, seq: number, reducerVersion: number): Uint8Array {
    w.reset();
    w.writeArrayHeader(6);
    w.writeString('playout.tick');
    w.writeNumber(tick);
    w.writeNumber(seq);
    const rng = this.ctx!.rng.state();
    w.writeArrayHeader(rng.length);
    for (let i = 0; i < rng.length; i++) w.writeNumber(rng[i]!);
    w.writeNumber(reducerVersion);
    w.writeArrayHeader(this.tableList.length);
    for (let i = 0; i < this.tableList.length; i++) {
      const t = this.tableList[i]!;
      w.writeArrayHeader(2);
      w.writeString(t.name);
      w.writeBin(t.digest());
    }
    return hash128(w.buf, 0, w.pos);
  }

  /** Checked mode: recompute every table from scratch and compare with the incremental sums. */
  checkFullDigest(): void {
    for (const t of this.tableList) {
      const w = takeWriter();
      let full: Uint32Array;
      try {
        full = t.recompute(w);
      } finally {
        releaseWriter(w);
      }
      for (let i = 0; i < full.length; i++) {
        if (full[i] !== t.sums[i]) {
          const where = i < 4 ? 'table sum' : `bucket ${(i - 4) >> 2}`;
          throw new PlayoutError('PLAYOUT_DIGEST_DRIFT', `Digest check of shard "${this.shard}" at tick ${this.tick}: table "${t.name}" ${where} differs from a full recomputation; a record was changed without mut() or the engine is wrong`, {
            tick: this.tick,
            path: t.name,
            shard: this.shard,
            expected: 'incremental sums equal to a full recomputation',
            received: where,
          });
        }
      }
    }
  }

  private applyEpoch(entry: Entry): void {
    const parsed = EpochPayloadSchema.safeParse(entry.payload);
    if (!parsed.success || parsed.data.epoch !== entry.epoch || entry.epoch <= this.epoch) {
      throw new PlayoutError('PLAYOUT_OUT_OF_ORDER', `Cannot apply epoch entry ${entry.seq} of shard "${entry.shard}": expected epoch > ${this.epoch} matching its payload, received ${entry.epoch} with payload ${JSON.stringify(entry.payload)}`, {
        seq: entry.seq,
        shard: entry.shard,
        path: 'epoch',
        expected: `> ${this.epoch}`,
        received: String(entry.epoch),
      });
    }
    this.epoch = entry.epoch;
  }

  private applyUpgrade(entry: Entry): void {
    const parsed = UpgradePayloadSchema.safeParse(entry.payload);
    if (!parsed.success) {
      throw new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot apply upgrade entry ${entry.seq}: payload must be {reducerVersion}, received ${describe(entry.payload)}`, {
        seq: entry.seq,
        shard: entry.shard,
        path: 'payload',
        expected: '{ reducerVersion: integer >= 1 }',
        received: describe(entry.payload),
      });
    }
    // Fail now, not at the tick boundary, when this engine lacks the version.
    this.registry.get(this.reducer!.name, parsed.data.reducerVersion);
    this.pendingReducerVersion = parsed.data.reducerVersion;
  }

  /** Checked mode: a reducer call with poisoned globals; a write to a read-only record fails it even when the reducer caught the throw. */
  private callChecked<T>(call: GuardedCall['call'], inputType: string | null, seq: number, fn: () => T): T {
    const guard = this.checked!.guard;
    this.views.take();
    let result: T;
    try {
      result = guard === null ? fn() : guard.run({ reducer: `${this.reducer!.name}@${this.reducer!.version}`, call, inputType, seq }, fn);
    } catch (err) {
      // A determinism violation outranks a read-only write it may have caused.
      const frozen = this.views.take();
      throw this.fail(frozen !== null && !isPlayoutError(err, 'PLAYOUT_DETERMINISM_VIOLATION') ? frozen : err, call, inputType, seq);
    }
    const frozen = this.views.take();
    if (frozen !== null) throw this.fail(frozen, call, inputType, seq);
    return result;
  }

  /** Stop the shard: its state may be half-updated. Returns the error to throw, with the reducer, the call and the seq. */
  private fail(err: unknown, call: string, inputType: string | null, seq: number): PlayoutError {
    const reducer = `${this.reducer!.name}@${this.reducer!.version}`;
    const what = inputType === null ? call : `${call}(${inputType})`;
    let failure: PlayoutError;
    if (err instanceof PlayoutError) {
      failure =
        err.seq === seq
          ? err
          : new PlayoutError(err.code, `${err.message} (reducer ${reducer}, ${what}, entry ${seq} of shard "${this.shard}")`, {
              path: err.path,
              expected: err.expected,
              received: err.received,
              tick: err.tick ?? this.tick,
              seq,
              shard: this.shard,
              cause: err,
            });
    } else {
      failure = new PlayoutError('PLAYOUT_REDUCER_FAILED', `Reducer ${reducer} threw in ${what} at entry ${seq} of shard "${this.shard}": ${(err as Error)?.message ?? String(err)}`, {
        seq,
        tick: this.tick,
        shard: this.shard,
        cause: err,
      });
    }
    this.failure = failure;
    return failure;
  }

  // --- snapshots -------------------------------------------------------------------------

  /** The state at this tick boundary, as plain data (a copy: the machine may go on applying). */
  snapshot(): Snapshot {
    return { ...this.snapshotHeader(), tables: this.exportState() };
  }

  /**
   * The state at this tick boundary, captured without copying it: the tables keep the records'
   * old rows as they change (see TableCapture), so the machine may go on applying while the
   * capture is encoded (encodeCapturedSnapshotSteps), over many turns of a node's event loop.
   * Costs O(records changed while it is held) instead of snapshot()'s copy of the whole state,
   * which held a node's loop for tens of ms at 2,000 players. Release it when done.
   */
  captureSnapshot(): CapturedSnapshot {
    const header = this.snapshotHeader();
    const tables = this.tableList.map((t) => ({ name: t.name, capture: t.capture() }));
    return {
      header,
      tables,
      release: () => {
        for (const t of tables) t.capture.release();
      },
    };
  }

  private snapshotHeader(): Omit<Snapshot, 'tables'> {
    assert(this.ctx !== null && this.genesis !== null && this.lastDigest !== null, 'snapshot after the first tick');
    assert(this.atTickBoundary, 'snapshots are taken at tick boundaries');
    return {
      format: SNAPSHOT_FORMAT,
      shard: this.shard!,
      reducer: this.reducer!.name,
      reducerVersion: this.reducer!.version,
      tickReducerVersion: this.lastDigest.reducerVersion,
      seed: this.genesis.seed,
      tickMs: this.genesis.tickMs,
      params: cloneCanonical(this.genesis.params ?? null),
      epoch: this.epoch,
      tick: this.lastDigest.tick,
      seq: this.head,
      lastHash: this.headHash,
      rng: [...this.ctx.rng.state()],
      digest: this.lastDigest.digest,
    };
  }

  /** Restore from a snapshot; the tables' digest is recomputed and checked against the one recorded. */
  static fromSnapshot(registry: ReducerRegistry, s: Snapshot, options: MachineOptions = {}): ShardMachine {
    const m = new ShardMachine(registry, options);
    const reducer = registry.get(s.reducer, s.reducerVersion);
    m.shard = s.shard;
    m.reducer = reducer;
    m.genesis = { reducer: s.reducer, reducerVersion: s.reducerVersion, seed: s.seed, tickMs: s.tickMs, engineFormat: 1, hash: 'xxh3-128', params: s.params };
    m.epoch = s.epoch;
    m.head = s.seq;
    m.headHash = s.lastHash;
    m.recent.set(s.lastHash, (s.seq % RECENT_HASHES) * HASH_BYTES);
    m.recentFrom = s.seq;
    m.tick = s.tick + 1;
    // Exactly the tables of the snapshot's tick (its digest covers them); tables the running
    // version adds are created with the next entry, as in the machine that took the snapshot.
    const tables: Record<string, StateTable> = {};
    for (const name of Object.keys(s.tables).sort()) {
      const t = m.newTable(name, reducer.tables[name] ?? null);
      const w = takeWriter();
      try {
        t.load(w, s.tables[name]!);
      } finally {
        releaseWriter(w);
      }
      tables[name] = t;
    }
    m.tableList = Object.keys(tables)
      .sort()
      .map((name) => tables[name]!);
    m.ctx = new Ctx(s.shard, tables, Rng.fromState(s.rng), s.tickMs, s.params, m.keepOutputs);
    m.ctx.tick = m.tick;
    m.ctx.timeMs = m.tick * s.tickMs;
    m.ctx.seq = s.seq;
    m.tablesStale = true;
    const digest = m.computeDigest(s.tick, s.seq, s.tickReducerVersion);
    if (!hashEquals(digest, s.digest)) {
      throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot restore snapshot of shard "${s.shard}" at tick ${s.tick}: its records digest to ${toHex(digest)} but it records ${toHex(s.digest)}`, {
        tick: s.tick,
        seq: s.seq,
        shard: s.shard,
        path: 'digest',
        expected: toHex(s.digest),
        received: toHex(digest),
      });
    }
    m.lastDigest = { tick: s.tick, seq: s.seq, digest: s.digest, reducerVersion: s.tickReducerVersion, recordsRehashed: 0 };
    m.atTickBoundary = true;
    return m;
  }

  /** The digest of the last closed tick. */
  digestOfTick(): TickDigest | null {
    return this.lastDigest;
  }

  /** Records of every table, in key order (a copy). */
  exportState(): Record<string, [string, unknown][]> {
    assert(this.ctx !== null, 'state exists after genesis');
    const out: Record<string, [string, unknown][]> = {};
    for (const t of this.tableList) out[t.name] = t.keys().map((k) => [k, cloneCanonical(t.peek(k))]);
    return out;
  }
}

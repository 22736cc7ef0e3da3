// ShardMachine: applies one shard's entries in seq order to a reducer and computes the state
// digest at every tick (DESIGN.md §3–§4). Pure: no clock, no I/O; everything it knows arrives
// in entries.
import type { Canonical } from './codec.js';
import { CanonicalWriter } from './codec.js';
import { Entry, EpochPayloadSchema, GenesisPayloadSchema, UpgradePayloadSchema, type GenesisPayload, checkLink } from './entry.js';
import { PlayoutError, assert, describe } from './errors.js';
import { ZERO_HASH, hash128, hashEquals, toHex } from './hash.js';
import { validateInput, type Reducer, type ReducerContext, type ReducerRegistry, type Rejection } from './reducer.js';
import { Rng } from './rng.js';
import { StateTable } from './state-table.js';

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
}

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
  constructor(shard: string, tables: Record<string, StateTable>, rng: Rng, tickMs: number, params: unknown) {
    this.shard = shard;
    this.tables = tables;
    this.rng = rng;
    this.tickMs = tickMs;
    this.params = params;
  }
  emit(event: Canonical): void {
    this.outputs.push({ seq: this.seq, tick: this.tick, event });
  }
}

const READ_ONLY_WRITE = /read[- ]only|not extensible|Cannot add property|Cannot delete property|Cannot assign/;

export class ShardMachine {
  readonly registry: ReducerRegistry;
  private readonly checked: CheckedOptions | null;
  private readonly onTick: ((tick: TickDigest) => void) | null;
  private readonly writer = new CanonicalWriter(1 << 12);

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

  constructor(registry: ReducerRegistry, options: MachineOptions = {}) {
    this.registry = registry;
    this.checked = options.checked ?? null;
    this.onTick = options.onTick ?? null;
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
    if (entry.seq <= this.head && entry.seq >= 1 && this.head > 0) {
      // Only the head's hash is kept here; a follower compares older seqs against its store.
      if (entry.seq === this.head && !hashEquals(entry.hash, this.headHash)) {
        throw new PlayoutError('PLAYOUT_FORK', `Cannot apply entry ${entry.seq} of shard "${entry.shard}": seq ${entry.seq} was already applied with hash ${toHex(this.headHash)}, received ${toHex(entry.hash)}`, {
          seq: entry.seq,
          shard: entry.shard,
          expected: toHex(this.headHash),
          received: toHex(entry.hash),
        });
      }
    }
    checkLink(entry, this.head, this.headHash);
    if (entry.kind !== 'genesis' && this.ctx === null) {
      throw new PlayoutError('PLAYOUT_GENESIS_INVALID', `Cannot apply entry ${entry.seq}: expected a genesis entry first, received ${entry.kind}`, { seq: entry.seq });
    }
    if (entry.kind !== 'genesis' && entry.kind !== 'epoch' && entry.epoch !== this.epoch) {
      throw new PlayoutError('PLAYOUT_OUT_OF_ORDER', `Cannot apply entry ${entry.seq} of shard "${entry.shard}": expected epoch ${this.epoch}, received ${entry.epoch}`, {
        seq: entry.seq,
        shard: entry.shard,
        path: 'epoch',
        expected: String(this.epoch),
        received: String(entry.epoch),
      });
    }
    if (entry.kind !== 'genesis' && entry.tick !== this.tick) {
      throw new PlayoutError('PLAYOUT_OUT_OF_ORDER', `Cannot apply entry ${entry.seq} of shard "${entry.shard}": expected tick ${this.tick}, received ${entry.tick}`, {
        seq: entry.seq,
        shard: entry.shard,
        path: 'tick',
        expected: String(this.tick),
        received: String(entry.tick),
      });
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
    this.atTickBoundary = entry.kind === 'tick';
  }

  private applyGenesis(entry: Entry): void {
    if (entry.seq !== 1 || entry.tick !== 0) {
      throw new PlayoutError('PLAYOUT_GENESIS_INVALID', `Cannot apply genesis entry ${entry.seq}: expected seq 1 at tick 0, received seq ${entry.seq} at tick ${entry.tick}`, { seq: entry.seq });
    }
    const parsed = GenesisPayloadSchema.safeParse(entry.payload);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new PlayoutError('PLAYOUT_GENESIS_INVALID', `Cannot apply genesis of shard "${entry.shard}": payload.${issue.path.join('.')}: ${issue.message}`, {
        seq: 1,
        path: `payload.${issue.path.join('.')}`,
        expected: issue.message,
      });
    }
    const g = parsed.data;
    const reducer = this.registry.get(g.reducer, g.reducerVersion);
    this.shard = entry.shard;
    this.genesis = g;
    this.reducer = reducer;
    this.epoch = entry.epoch;
    const tables: Record<string, StateTable> = {};
    for (const name of Object.keys(reducer.tables).sort()) {
      tables[name] = new StateTable(name, reducer.tables[name]!);
    }
    this.tableList = Object.values(tables);
    this.ctx = new Ctx(entry.shard, tables, Rng.fromSeed(g.seed), g.tickMs, g.params ?? null);
    this.setFrozenReads(true);
    this.ctx.seq = entry.seq;
    this.ctx.tick = 0;
    this.ctx.timeMs = 0;
    this.call('init', null, entry.seq, () => reducer.init(this.ctx!));
  }

  private applyInput(entry: Entry): void {
    const ctx = this.ctx!;
    const reducer = this.reducer!;
    ctx.seq = entry.seq;
    if (entry.type === null || entry.version === null) {
      this.reject(entry, 'PLAYOUT_INPUT_TYPE_UNKNOWN', 'input entry without type or version');
      return;
    }
    let payload = entry.payload;
    if (reducer.inputs[entry.type]?.[entry.version] === undefined) {
      // Deterministic: every region running this reducer version rejects it alike.
      this.reject(entry, 'PLAYOUT_INPUT_TYPE_UNKNOWN', `${entry.type}@${entry.version} is not an input of ${reducer.name}@${reducer.version}`);
      return;
    }
    if (this.checked !== null) {
      try {
        payload = validateInput(reducer, entry.type, entry.version, payload);
      } catch (err) {
        this.reject(entry, (err as PlayoutError).code, (err as PlayoutError).message);
        return;
      }
    }
    const input = { type: entry.type, version: entry.version, payload, seq: entry.seq, origin: entry.origin, ingestId: entry.ingestId };
    const result = this.call('apply', entry.type, entry.seq, () => reducer.apply(ctx, input)) as Rejection | undefined;
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
    if (entry.digest !== null && this.lastDigest !== null && this.lastDigest.tick === entry.tick - 1 && !hashEquals(entry.digest, this.lastDigest.digest)) {
      this.mismatches++;
      if (this.firstMismatch === null) {
        this.firstMismatch = { tick: this.lastDigest.tick, seq: this.lastDigest.seq, reportedBySeq: entry.seq, expected: entry.digest, actual: this.lastDigest.digest };
      }
    }
    ctx.seq = entry.seq;
    this.call('onTick', null, entry.seq, () => reducer.onTick(ctx));
    const digest = this.closeTick(entry.seq);
    this.ticksClosed++;
    if (this.checked !== null && this.checked.fullDigestEveryTicks > 0 && this.ticksClosed % this.checked.fullDigestEveryTicks === 0) {
      this.checkFullDigest();
    }
    this.lastDigest = digest;
    if (this.onTick !== null) this.onTick(digest);
    // An upgrade takes effect at this boundary: the next tick runs the new version. There is
    // no migration hook here on purpose: state changed between a tick's digest and the next
    // tick would be in no digest, and a snapshot taken at the boundary would not restore to it.
    // A new version that needs to reshape records does it in its own apply/onTick.
    if (this.pendingReducerVersion !== null) {
      this.reducer = this.registry.get(reducer.name, this.pendingReducerVersion);
      this.pendingReducerVersion = null;
    }
    this.tick++;
    ctx.tick = this.tick;
    ctx.timeMs = this.tick * ctx.tickMs;
  }

  private closeTick(seq: number): TickDigest {
    let rehashed = 0;
    const validate = this.checked !== null;
    for (let i = 0; i < this.tableList.length; i++) rehashed += this.tableList[i]!.flush(this.writer, validate);
    const digest = this.computeDigest(this.tick, seq, this.reducer!.version);
    return { tick: this.tick, seq, digest, reducerVersion: this.reducer!.version, recordsRehashed: rehashed };
  }

  /** H128(canonical ["playout.tick", tick, seq, rng state, reducer version, [[table, sum] …]]). */
  private computeDigest(tick: number, seq: number, reducerVersion: number): Uint8Array {
    const w = this.writer;
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
      const full = t.recompute(this.writer);
      for (let i = 0; i < full.length; i++) {
        if (full[i] !== t.sums[i]) {
          const where = i < 4 ? 'table sum' : `bucket ${(i - 4) >> 2}`;
          throw new PlayoutError('PLAYOUT_DIGEST_DRIFT', `Digest check of shard "${this.shard}" at tick ${this.tick}: table "${t.name}" ${where} differs from a full recomputation; a record was changed without mut() or the engine is wrong`, {
            tick: this.tick,
            path: t.name,
            shard: this.shard,
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
      throw new PlayoutError('PLAYOUT_ENTRY_MALFORMED', `Cannot apply upgrade entry ${entry.seq}: payload must be {reducerVersion}, received ${describe(entry.payload)}`, { seq: entry.seq, path: 'payload' });
    }
    // Fail now, not at the tick boundary, when this engine lacks the version.
    this.registry.get(this.reducer!.name, parsed.data.reducerVersion);
    this.pendingReducerVersion = parsed.data.reducerVersion;
  }

  private call<T>(call: GuardedCall['call'], inputType: string | null, seq: number, fn: () => T): T {
    const guard = this.checked?.guard ?? null;
    try {
      if (guard === null) return fn();
      return guard.run({ reducer: `${this.reducer!.name}@${this.reducer!.version}`, call, inputType, seq }, fn);
    } catch (err) {
      this.failure = this.wrapFailure(err, call, inputType, seq);
      throw this.failure;
    }
  }

  private wrapFailure(err: unknown, call: string, inputType: string | null, seq: number): PlayoutError {
    if (err instanceof PlayoutError) return err;
    const reducer = `${this.reducer!.name}@${this.reducer!.version}`;
    const what = inputType === null ? call : `${call}(${inputType})`;
    if (this.checked !== null && err instanceof TypeError && READ_ONLY_WRITE.test(err.message)) {
      return new PlayoutError('PLAYOUT_FROZEN_RECORD', `Reducer ${reducer} wrote to a read-only record in ${what} at entry ${seq}: use table.mut(key) to change a record (${err.message})`, {
        seq,
        shard: this.shard,
        cause: err,
      });
    }
    return new PlayoutError('PLAYOUT_REDUCER_FAILED', `Reducer ${reducer} threw in ${what} at entry ${seq}: ${(err as Error)?.message ?? String(err)}`, { seq, shard: this.shard, cause: err });
  }

  private setFrozenReads(on: boolean): void {
    const frozen = on && this.checked !== null;
    for (const t of this.tableList) t.frozenReads = frozen;
  }

  // --- snapshots -------------------------------------------------------------------------

  snapshot(): Snapshot {
    assert(this.ctx !== null && this.genesis !== null && this.lastDigest !== null, 'snapshot after the first tick');
    assert(this.atTickBoundary, 'snapshots are taken at tick boundaries');
    const tables: Record<string, [string, unknown][]> = {};
    for (const t of this.tableList) tables[t.name] = t.keys().map((k) => [k, t.peek(k)]);
    return {
      format: SNAPSHOT_FORMAT,
      shard: this.shard!,
      reducer: this.reducer!.name,
      reducerVersion: this.reducer!.version,
      tickReducerVersion: this.lastDigest.reducerVersion,
      seed: this.genesis.seed,
      tickMs: this.genesis.tickMs,
      params: this.genesis.params ?? null,
      epoch: this.epoch,
      tick: this.lastDigest.tick,
      seq: this.head,
      lastHash: this.headHash,
      rng: [...this.ctx.rng.state()],
      digest: this.lastDigest.digest,
      tables,
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
    m.tick = s.tick + 1;
    const tables: Record<string, StateTable> = {};
    for (const name of Object.keys(reducer.tables).sort()) {
      const t = new StateTable(name, reducer.tables[name]!);
      t.load(m.writer, s.tables[name] ?? []);
      tables[name] = t;
    }
    for (const name of Object.keys(s.tables)) {
      if (!(name in tables)) throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot restore snapshot of shard "${s.shard}": table "${name}" is not a table of ${s.reducer}@${s.reducerVersion}`, { path: `tables.${name}` });
    }
    m.tableList = Object.values(tables);
    m.ctx = new Ctx(s.shard, tables, Rng.fromState(s.rng), s.tickMs, s.params);
    m.ctx.tick = m.tick;
    m.ctx.timeMs = m.tick * s.tickMs;
    m.ctx.seq = s.seq;
    m.setFrozenReads(true);
    const digest = m.computeDigest(s.tick, s.seq, s.tickReducerVersion);
    if (!hashEquals(digest, s.digest)) {
      throw new PlayoutError('PLAYOUT_SNAPSHOT_CORRUPT', `Cannot restore snapshot of shard "${s.shard}" at tick ${s.tick}: its records digest to ${toHex(digest)} but it records ${toHex(s.digest)}`, {
        tick: s.tick,
        seq: s.seq,
        expected: toHex(s.digest),
        received: toHex(digest),
      });
    }
    m.lastDigest = { tick: s.tick, seq: s.seq, digest: s.digest, reducerVersion: s.tickReducerVersion, recordsRehashed: 0 };
    m.atTickBoundary = true;
    return m;
  }

  /** The current digest of the open state (tables flushed), for diagnostics between ticks. */
  digestOfTick(): TickDigest | null {
    return this.lastDigest;
  }

  /** Records of every table, in key order (a copy). */
  exportState(): Record<string, [string, unknown][]> {
    assert(this.ctx !== null, 'state exists after genesis');
    const out: Record<string, [string, unknown][]> = {};
    for (const t of this.tableList) out[t.name] = t.keys().map((k) => [k, t.peek(k)]);
    return out;
  }
}

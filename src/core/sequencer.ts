// Sequencer (leader only, pure): turns validated inputs into sealed entries — seq, epoch,
// tick, prev, hash — closes ticks, and dedupes `ingestId`s within a window of ticks.
// The region node drives it from its tick timer; the fixture generator and the simulations
// drive it from a seeded load generator. Durability and acknowledgement are the caller's.
import { ENTRY_FORMAT, Entry, sealEntry, type EpochPayload, type GenesisPayload } from './entry.js';
import { PlayoutError, assert, describe } from './errors.js';
import { HASH_NAME, ZERO_HASH } from './hash.js';
import { IngestWindow } from './ingest-window.js';
import { validateInput, type Reducer, type ReducerRegistry } from './reducer.js';

export interface SequencerHead {
  shard: string;
  /** Seq and hash of the last entry in the log. */
  seq: number;
  hash: Uint8Array;
  /** The open tick: the tick of the next entry. */
  tick: number;
  epoch: number;
  reducer: string;
  reducerVersion: number;
}

export interface SequencerOptions {
  /** Region that accepts inputs (stamped as `origin` when the input names none). */
  region: string | null;
  /** An ingestId is remembered for this many ticks after the tick it was sequenced in. */
  dedupeWindowTicks: number;
}

export interface InputSubmission {
  type: string;
  version: number;
  payload: unknown;
  ingestId: string | null;
  origin?: string | null;
}

export type SubmitResult =
  | { readonly status: 'sequenced'; readonly entry: Entry }
  | { readonly status: 'duplicate'; readonly seq: number };

export interface GenesisParams {
  shard: string;
  reducer: Reducer;
  seed: number;
  tickMs: number;
  epoch?: number;
  params?: unknown;
}

export class Sequencer {
  private readonly registry: ReducerRegistry;
  private readonly options: SequencerOptions;
  readonly shard: string;
  seq: number;
  hash: Uint8Array;
  tick: number;
  epoch: number;
  private reducer: Reducer;
  private pendingReducerVersion: number | null = null;
  private fenced = false;
  /** The ingestIds sequenced in the window, with their seqs (no heap object per id: see IngestWindow). */
  private seen = new IngestWindow();

  constructor(registry: ReducerRegistry, head: SequencerHead, options: SequencerOptions) {
    assert(options.dedupeWindowTicks >= 0, 'dedupe window is non-negative');
    this.registry = registry;
    this.options = options;
    this.shard = head.shard;
    this.seq = head.seq;
    this.hash = head.hash;
    this.tick = head.tick;
    this.epoch = head.epoch;
    this.reducer = registry.get(head.reducer, head.reducerVersion);
  }

  /** The genesis entry of a new shard (seq 1, tick 0). */
  static genesis(p: GenesisParams): Entry {
    const payload: GenesisPayload = {
      reducer: p.reducer.name,
      reducerVersion: p.reducer.version,
      seed: p.seed >>> 0,
      tickMs: p.tickMs,
      engineFormat: ENTRY_FORMAT,
      hash: HASH_NAME,
      params: p.params ?? null,
    };
    return sealEntry({ shard: p.shard, seq: 1, epoch: p.epoch ?? 1, tick: 0, kind: 'genesis', type: null, version: null, origin: null, ingestId: null, payload, digest: null, prev: ZERO_HASH });
  }

  /** A sequencer continuing right after a genesis entry. */
  static afterGenesis(registry: ReducerRegistry, genesis: Entry, options: SequencerOptions): Sequencer {
    const g = genesis.payload as GenesisPayload;
    return new Sequencer(registry, { shard: genesis.shard, seq: genesis.seq, hash: genesis.hash, tick: 0, epoch: genesis.epoch, reducer: g.reducer, reducerVersion: g.reducerVersion }, options);
  }

  /**
   * Remember an ingestId already in the log (when resuming from a store: replay the last
   * `dedupeWindowTicks` ticks' inputs through this). Ids older than the window are ignored.
   */
  remember(ingestId: string, seq: number, tick: number): void {
    if (tick < this.tick - this.options.dedupeWindowTicks) return;
    this.seen.remember(ingestId, seq, tick);
  }

  /**
   * Take a window of ingestIds read from the log ahead of time (a failover candidate reads it
   * while it catches up, so that leading does not hash tens of thousands of ids at once), in
   * place of remembering them one by one. Ids older than this sequencer's window are dropped.
   */
  adoptIngestWindow(window: IngestWindow): void {
    assert(this.seen.size === 0, 'a window is adopted before any id is remembered');
    window.expireThrough(this.tick - this.options.dedupeWindowTicks - 1);
    this.seen = window;
  }

  /** Ids in the dedupe window. */
  get ingestIdsRemembered(): number {
    return this.seen.size;
  }

  /** Validate and sequence one input. Throws PLAYOUT_INPUT_* for bad input, which never reaches the log. */
  submit(input: InputSubmission): SubmitResult {
    this.checkNotFenced();
    // A retry of an input already sequenced is answered with its seq before any validation.
    if (typeof input.ingestId === 'string') {
      const seq = this.seen.get(input.ingestId);
      if (seq !== undefined) return { status: 'duplicate', seq };
    }
    return this.sequence(input, this.validate(input));
  }

  /**
   * Check one input without sequencing it: its ingestId, type and version, and its payload
   * against the reducer's schema. Returns the payload as validated (what `sequence` takes).
   * A batch is validated whole this way before any of it is sequenced.
   */
  validate(input: InputSubmission): unknown {
    if (input.ingestId !== null && (typeof input.ingestId !== 'string' || input.ingestId.length === 0 || input.ingestId.length > 256)) {
      throw new PlayoutError('PLAYOUT_INPUT_INVALID', `Cannot accept input: ingestId must be a string of 1–256 characters, received ${describe(input.ingestId)}`, { path: 'ingestId', expected: 'string of 1–256 characters', received: describe(input.ingestId) });
    }
    if (typeof input.type !== 'string' || !Number.isInteger(input.version)) {
      throw new PlayoutError('PLAYOUT_INPUT_INVALID', `Cannot accept input: expected a type string and an integer version, received type ${describe(input.type)} and version ${describe(input.version)}`, { path: 'type', expected: 'type: string, version: integer', received: `${describe(input.type)}, ${describe(input.version)}` });
    }
    return validateInput(this.reducer, input.type, input.version, input.payload);
  }

  /**
   * Sequence an input `validate` accepted (with the payload it returned), or answer its earlier
   * seq when its ingestId is in the dedupe window. Validation happens once per input: a leader
   * validates a batch whole first, then sequences it (zod was a tenth of a leader's CPU when it
   * ran twice).
   */
  sequence(input: InputSubmission, payload: unknown): SubmitResult {
    this.checkNotFenced();
    if (input.ingestId !== null) {
      const seq = this.seen.get(input.ingestId);
      if (seq !== undefined) return { status: 'duplicate', seq };
    }
    const entry = this.append('input', input.type, input.version, input.origin ?? this.options.region, input.ingestId, payload, null);
    if (input.ingestId !== null) this.remember(input.ingestId, entry.seq, entry.tick);
    return { status: 'sequenced', entry };
  }

  /** Close the open tick. `digestPrev` is the leader's digest of the previous tick (null for tick 0). */
  closeTick(digestPrev: Uint8Array | null): Entry {
    this.checkNotFenced();
    const entry = this.append('tick', null, null, null, null, null, digestPrev);
    // Ids sequenced in tick T are acknowledged again through the close of tick T + window.
    this.seen.expireThrough(this.tick - this.options.dedupeWindowTicks);
    if (this.pendingReducerVersion !== null) {
      this.reducer = this.registry.get(this.reducer.name, this.pendingReducerVersion);
      this.pendingReducerVersion = null;
    }
    this.tick++;
    return entry;
  }

  /** Switch the reducer to `reducerVersion` from the next tick on. */
  upgrade(reducerVersion: number): Entry {
    this.checkNotFenced();
    this.registry.get(this.reducer.name, reducerVersion);
    const entry = this.append('upgrade', null, null, null, null, { reducerVersion }, null);
    this.pendingReducerVersion = reducerVersion;
    return entry;
  }

  /** The first entry of a new leader: starts epoch `payload.epoch`. */
  startEpoch(payload: EpochPayload): Entry {
    assert(payload.epoch > this.epoch, 'a new epoch is greater than the current one');
    this.fenced = false;
    this.epoch = payload.epoch;
    return this.append('epoch', null, null, payload.leader, null, payload, null);
  }

  /** Stop sequencing (failover fencing). */
  fence(): void {
    this.fenced = true;
  }

  get isFenced(): boolean {
    return this.fenced;
  }

  get reducerVersion(): number {
    return this.reducer.version;
  }

  private checkNotFenced(): void {
    if (this.fenced) {
      throw new PlayoutError('PLAYOUT_SEQUENCER_FENCED', `Cannot sequence for shard "${this.shard}": this sequencer was fenced at epoch ${this.epoch}`, { shard: this.shard });
    }
  }

  private append(kind: Entry['kind'], type: string | null, version: number | null, origin: string | null, ingestId: string | null, payload: unknown, digest: Uint8Array | null): Entry {
    const entry = sealEntry({ shard: this.shard, seq: this.seq + 1, epoch: this.epoch, tick: this.tick, kind, type, version, origin, ingestId, payload, digest, prev: this.hash });
    this.seq = entry.seq;
    this.hash = entry.hash;
    return entry;
  }
}

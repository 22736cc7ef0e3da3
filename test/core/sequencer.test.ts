import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { HASH_NAME, PlayoutError, ReducerRegistry, Sequencer, ShardMachine, ZERO_HASH, decodeEntry, defineReducer, hashEquals, type Entry, type SubmitResult } from '../../src/core/index.js';
import { kvRegistry, kvV1 } from './support/kv-reducer.js';

function start(window = 2): { sq: Sequencer; genesis: Entry } {
  const genesis = Sequencer.genesis({ shard: 'seq-1', reducer: kvV1, seed: 3, tickMs: 20 });
  return { sq: Sequencer.afterGenesis(kvRegistry(), genesis, { region: 'eu-fra', dedupeWindowTicks: window }), genesis };
}

const put = (ingestId: string | null, key = 'a') => ({ type: 'kv.put', version: 1, payload: { key, v: 1 }, ingestId });

function sequenced(r: SubmitResult): Entry {
  if (r.status !== 'sequenced') throw new Error(`expected sequenced, received ${r.status}`);
  return r.entry;
}

function errorOf(fn: () => unknown): PlayoutError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PlayoutError) return err;
    throw err;
  }
  throw new Error('expected a PlayoutError');
}

describe('Sequencer', () => {
  it('writes a genesis entry that records the reducer, the seed, tickMs, the engine format and the hash function', () => {
    const { genesis } = start();
    expect(genesis.seq).toBe(1);
    expect(genesis.tick).toBe(0);
    expect(genesis.kind).toBe('genesis');
    expect(hashEquals(genesis.prev, ZERO_HASH)).toBe(true);
    expect(genesis.payload).toEqual({ reducer: 'kv', reducerVersion: 1, seed: 3, tickMs: 20, engineFormat: 1, hash: HASH_NAME, params: null });
  });

  it('stamps contiguous seqs, the open tick, the epoch, the origin and a chain of hashes', () => {
    const { sq, genesis } = start();
    const log = [genesis, sequenced(sq.submit(put('x'))), sq.closeTick(null), sequenced(sq.submit({ ...put(null), origin: 'us-sfo' }))];
    log.forEach((e, i) => {
      expect(e.seq).toBe(i + 1);
      if (i > 0) expect(hashEquals(e.prev, log[i - 1]!.hash)).toBe(true);
      expect(decodeEntry(e.bytes).toJSON()).toEqual(e.toJSON());
    });
    expect(log.map((e) => e.tick)).toEqual([0, 0, 0, 1]);
    expect(log[1]!.origin).toBe('eu-fra');
    expect(log[3]!.origin).toBe('us-sfo');
    expect(sq.seq).toBe(4);
    expect(sq.tick).toBe(1);
  });

  it('acknowledges the same ingestId again with its seq inside the window, and forgets it after', () => {
    const { sq } = start(2);
    const first = sequenced(sq.submit(put('dup')));
    expect(sq.submit(put('dup'))).toEqual({ status: 'duplicate', seq: first.seq });
    // A retried input is recognised by its ingestId alone, even with another payload.
    expect(sq.submit(put('dup', 'b'))).toEqual({ status: 'duplicate', seq: first.seq });
    sq.closeTick(null); // closes tick 0
    sq.closeTick(null); // tick 1
    expect(sq.submit(put('dup'))).toEqual({ status: 'duplicate', seq: first.seq });
    sq.closeTick(null); // tick 2 = 0 + window: forgotten after this
    const again = sequenced(sq.submit(put('dup')));
    expect(again.seq).toBeGreaterThan(first.seq);
    expect(sq.submit(put('dup'))).toEqual({ status: 'duplicate', seq: again.seq });
  });

  it('never dedupes inputs without an ingestId', () => {
    const { sq } = start();
    expect(sequenced(sq.submit(put(null))).seq).toBe(2);
    expect(sequenced(sq.submit(put(null))).seq).toBe(3);
  });

  it('remembers ingestIds of a resumed log, within the window only', () => {
    const { genesis } = start();
    const sq = new Sequencer(kvRegistry(), { shard: 'seq-1', seq: 40, hash: genesis.hash, tick: 10, epoch: 1, reducer: 'kv', reducerVersion: 1 }, { region: null, dedupeWindowTicks: 3 });
    sq.remember('recent', 39, 9);
    sq.remember('old', 12, 2);
    expect(sq.submit(put('recent'))).toEqual({ status: 'duplicate', seq: 39 });
    expect(sq.submit(put('old')).status).toBe('sequenced');
  });

  it('refuses a bad input with its path and sequences nothing', () => {
    const { sq } = start();
    const bad = errorOf(() => sq.submit({ type: 'kv.put', version: 1, payload: { key: 'a', v: 'x' }, ingestId: 'i' }));
    expect(bad).toMatchObject({ code: 'PLAYOUT_INPUT_INVALID', path: 'payload.v' });
    expect(errorOf(() => sq.submit({ type: 'kv.jump', version: 1, payload: {}, ingestId: null }))).toMatchObject({ code: 'PLAYOUT_INPUT_TYPE_UNKNOWN', path: 'type' });
    expect(errorOf(() => sq.submit({ type: 'kv.put', version: 3, payload: {}, ingestId: null }))).toMatchObject({ code: 'PLAYOUT_INPUT_TYPE_UNKNOWN', path: 'version' });
    expect(errorOf(() => sq.submit({ ...put(''), ingestId: '' }))).toMatchObject({ code: 'PLAYOUT_INPUT_INVALID', path: 'ingestId' });
    expect(sq.seq).toBe(1);
    // The refused ingestId was not remembered.
    expect(sq.submit(put('i')).status).toBe('sequenced');
  });

  it('sequences the parsed payload (unknown keys stripped)', () => {
    const { sq } = start();
    // kv.put v1 is a strict object: extra keys are refused rather than stripped.
    expect(errorOf(() => sq.submit({ type: 'kv.put', version: 1, payload: { key: 'a', v: 1, extra: 1 }, ingestId: null })).code).toBe('PLAYOUT_INPUT_INVALID');
    const loose = defineReducer({ name: 'loose', version: 1, tables: {}, inputs: { go: { 1: z.object({ a: z.number() }) } }, init() {}, apply() {}, onTick() {} });
    const g = Sequencer.genesis({ shard: 'l', reducer: loose, seed: 1, tickMs: 10 });
    const s2 = Sequencer.afterGenesis(new ReducerRegistry([loose]), g, { region: null, dedupeWindowTicks: 0 });
    expect(sequenced(s2.submit({ type: 'go', version: 1, payload: { a: 1, junk: 2 }, ingestId: null })).payload).toEqual({ a: 1 });
  });

  it('validates inputs against the new reducer version from the tick after an upgrade', () => {
    const v1 = defineReducer({ name: 'up', version: 1, tables: {}, inputs: { a: { 1: z.object({}) } }, init() {}, apply() {}, onTick() {} });
    const v2 = defineReducer({ name: 'up', version: 2, tables: {}, inputs: { a: { 1: z.object({}) }, b: { 1: z.object({}) } }, init() {}, apply() {}, onTick() {} });
    const registry = new ReducerRegistry([v1, v2]);
    const g = Sequencer.genesis({ shard: 'u', reducer: v1, seed: 1, tickMs: 10 });
    const sq = Sequencer.afterGenesis(registry, g, { region: null, dedupeWindowTicks: 0 });
    const m = new ShardMachine(registry);
    m.apply(g);
    const up = sq.upgrade(2);
    m.apply(up);
    expect(up.payload).toEqual({ reducerVersion: 2 });
    expect(errorOf(() => sq.submit({ type: 'b', version: 1, payload: {}, ingestId: null })).code).toBe('PLAYOUT_INPUT_TYPE_UNKNOWN');
    m.apply(sq.closeTick(null));
    expect(sq.reducerVersion).toBe(2);
    const b = sequenced(sq.submit({ type: 'b', version: 1, payload: {}, ingestId: null }));
    m.apply(b);
    expect(m.rejections).toEqual([]);
    expect(errorOf(() => sq.upgrade(5)).code).toBe('PLAYOUT_REDUCER_UNKNOWN');
  });

  it('refuses to sequence once fenced, and continues in a new epoch with an epoch entry', () => {
    const { sq, genesis } = start();
    const m = new ShardMachine(kvRegistry());
    m.apply(genesis);
    m.apply(sequenced(sq.submit(put('a'))));
    sq.fence();
    expect(sq.isFenced).toBe(true);
    expect(errorOf(() => sq.submit(put('b'))).code).toBe('PLAYOUT_SEQUENCER_FENCED');
    expect(errorOf(() => sq.closeTick(null)).code).toBe('PLAYOUT_SEQUENCER_FENCED');
    expect(errorOf(() => sq.upgrade(2)).code).toBe('PLAYOUT_SEQUENCER_FENCED');
    const ep = sq.startEpoch({ epoch: 2, leader: 'af-jnb', lastSeqPrevEpoch: 2 });
    m.apply(ep);
    expect(ep).toMatchObject({ kind: 'epoch', epoch: 2, seq: 3, origin: 'af-jnb' });
    const next = sequenced(sq.submit(put('b')));
    expect(next.epoch).toBe(2);
    m.apply(next);
    expect(m.epoch).toBe(2);
  });

  it('carries the digest it is given in the tick entry', () => {
    const { sq } = start();
    const d = new Uint8Array(16).fill(7);
    expect(sq.closeTick(d).digest).toEqual(d);
    expect(sq.closeTick(null).digest).toBeNull();
  });
});

// Small reducers for the operator tests: a correct ledger, two buggy builds of the same
// name@version (one whose bug depends only on state, one whose behaviour depends on the order
// keys were inserted, which a restored snapshot does not keep), and a version 2 for upgrades.
import { z } from 'zod';
import { ReducerRegistry, Rng, Sequencer, ShardMachine, defineReducer, type Entry, type Reducer } from '../../../src/core/index.js';

const Account = z.object({ balance: z.number().int(), tags: z.record(z.string(), z.number().int()), leader: z.string().nullable() });
const inputs = {
  'acct.deposit': { 1: z.object({ acct: z.string(), amount: z.number().int() }) },
  'acct.tag': { 1: z.object({ acct: z.string(), tag: z.string() }) },
};

type Variant = 'correct' | 'over90' | 'insertion-order';

function ledger(version: number, variant: Variant): Reducer {
  return defineReducer({
    name: 'ledger',
    version,
    tables: { accounts: Account },
    inputs,
    init(ctx) {
      for (let i = 0; i < 4; i++) ctx.tables.accounts.set(`acct-${i}`, { balance: ctx.rng.int(0, 100), tags: {}, leader: null });
    },
    apply(ctx, input) {
      const t = ctx.tables.accounts;
      if (input.type === 'acct.deposit') {
        const p = input.payload as { acct: string; amount: number };
        const a = t.mut(p.acct);
        if (a === undefined) return { rejected: 'NO_ACCOUNT' };
        a.balance += p.amount * version + (variant === 'over90' && p.amount > 90 ? 1 : 0);
      } else {
        const p = input.payload as { acct: string; tag: string };
        const a = t.mut(p.acct);
        if (a === undefined) return { rejected: 'NO_ACCOUNT' };
        a.tags[p.tag] = (a.tags[p.tag] ?? 0) + 1;
      }
      return undefined;
    },
    onTick(ctx) {
      const t = ctx.tables.accounts;
      for (const key of t.keys()) {
        const a = t.get(key)!;
        const names = Object.keys(a.tags);
        if (names.length < 3) continue;
        const leader = variant === 'insertion-order' ? names[0]! : names.sort()[0]!;
        if (leader !== a.leader) t.mut(key)!.leader = leader;
      }
      if (ctx.tick % 7 === 0) ctx.rng.int(0, 9);
    },
  });
}

export const ledgerV1 = ledger(1, 'correct');
export const ledgerV2 = ledger(2, 'correct');
export const ledgerOver90V1 = ledger(1, 'over90');
export const ledgerInsertionV1 = ledger(1, 'insertion-order');

export const ledgerRegistry = (): ReducerRegistry => new ReducerRegistry([ledgerV1, ledgerV2]);
export const ledgerOver90Registry = (): ReducerRegistry => new ReducerRegistry([ledgerOver90V1, ledgerV2]);
export const ledgerInsertionRegistry = (): ReducerRegistry => new ReducerRegistry([ledgerInsertionV1, ledgerV2]);

export interface LedgerLogOptions {
  seed: number;
  ticks: number;
  inputsPerTick: number;
  shard?: string;
  /** The build whose digests the log carries (the leader's). */
  recordedBy?: ReducerRegistry;
  /** Append an upgrade to version 2 during this tick. */
  upgradeAtTick?: number | null;
  /** Deposits above 90 only from this tick on (so the over90 bug starts there). */
  bigFromTick?: number;
  /**
   * Accounts get tags t5 and t2 in arrival order; a third tag from this tick on makes the
   * leader (the smallest of 3+ tags) differ under the insertion-order bug. Before it the
   * bug is hidden state: the same records, a different key order inside them.
   */
  thirdTagFromTick?: number;
}

/** A deterministic ledger log: genesis, inputs, tick entries carrying the recorder's digests. */
export function ledgerLog(o: LedgerLogOptions): Entry[] {
  const recorder = o.recordedBy ?? ledgerRegistry();
  const g = Sequencer.genesis({ shard: o.shard ?? 'ledger-1', reducer: recorder.get('ledger', 1), seed: o.seed, tickMs: 50 });
  const seq = Sequencer.afterGenesis(recorder, g, { region: 'eu-fra', dedupeWindowTicks: 16 });
  const leader = new ShardMachine(recorder);
  leader.apply(g);
  const log: Entry[] = [g];
  const rng = Rng.fromSeed(o.seed ^ 0x5eed);
  for (let t = 0; t < o.ticks; t++) {
    for (let i = 0; i < o.inputsPerTick; i++) {
      const acct = `acct-${rng.int(0, 3)}`;
      const r =
        rng.int(0, 2) === 0
          ? seq.submit({ type: 'acct.tag', version: 1, payload: { acct, tag: t >= (o.thirdTagFromTick ?? Infinity) ? 'x0' : i % 2 === 0 ? 't5' : 't2' }, ingestId: `i-${t}-${i}` })
          : seq.submit({ type: 'acct.deposit', version: 1, payload: { acct, amount: rng.int(1, t >= (o.bigFromTick ?? Infinity) ? 100 : 90) }, ingestId: `i-${t}-${i}` });
      if (r.status === 'sequenced') {
        leader.apply(r.entry);
        log.push(r.entry);
      }
    }
    if (o.upgradeAtTick === t) {
      const u = seq.upgrade(2);
      leader.apply(u);
      log.push(u);
    }
    const tick = seq.closeTick(leader.lastDigest?.digest ?? null);
    leader.apply(tick);
    log.push(tick);
  }
  return log;
}

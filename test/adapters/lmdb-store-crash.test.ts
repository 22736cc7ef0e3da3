// kill -9 in the middle of appends loses nothing reported durable (DESIGN.md §9): a child
// process appends batches and reports each one durable; we SIGKILL it at seeded random points,
// reopen the store, and check the whole chain and every reported seq.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Rng, toHex } from '../../src/core/index.js';
import { LmdbLogStore } from '../../src/adapters/lmdb-store.js';
import { buildCounterLog } from './fixtures/counter-log.js';

const here = dirname(fileURLToPath(import.meta.url));
const WRITER = join(here, 'fixtures', 'crash-writer.ts');
const TICKS = 1500;
const ROUNDS = 5;

interface Round {
  resumedAt: number;
  durableMax: number;
  killed: boolean;
}

/** Run the writer until it has reported `killAfter` durable batches (+ a short random delay), then SIGKILL it. */
function runWriter(dir: string, seed: number, killAfter: number, delayMs: number): Promise<Round> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, String(seed), String(TICKS)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const round: Round = { resumedAt: 0, durableMax: 0, killed: false };
    let seen = 0;
    let buffered = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const [word, n] = line.split(' ');
        if (word === 'resume') round.resumedAt = Number(n);
        if (word === 'durable') {
          round.durableMax = Math.max(round.durableMax, Number(n));
          if (++seen === killAfter) {
            setTimeout(() => {
              round.killed = child.kill('SIGKILL');
            }, delayMs);
          }
        }
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL' || code === 0) resolve(round);
      else reject(new Error(`writer exited with ${code ?? signal}: ${stderr}`));
    });
  });
}

describe('LmdbLogStore crash safety', () => {
  it('loses nothing reported durable when the writer is killed at random points', async () => {
    const seed = Number(process.env.PLAYOUT_SEED ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`lmdb crash test: reproduce with seed=${seed} (PLAYOUT_SEED=${seed})`);
    const rng = Rng.fromSeed(seed);
    const expected = buildCounterLog({ shard: 'crash', ticks: TICKS, seed: 11 }).entries;
    const dir = mkdtempSync(join(tmpdir(), 'playout-crash-'));
    try {
      let durableEver = 0;
      for (let r = 0; r < ROUNDS; r++) {
        const t0 = performance.now();
        const round = await runWriter(dir, rng.int(0, 2 ** 30), rng.int(1, 20), rng.int(0, 15));
        expect(round.resumedAt, `round ${r}, seed=${seed}`).toBeGreaterThan(durableEver);
        durableEver = Math.max(durableEver, round.durableMax);
        const store = await LmdbLogStore.open(dir);
        try {
          const head = store.head('crash');
          expect(head, `round ${r}, seed=${seed}`).not.toBeNull();
          // Everything reported durable is there …
          expect(head!.seq, `round ${r}, seed=${seed}`).toBeGreaterThanOrEqual(durableEver);
          // … and the whole log verifies (hash, key, chain) and is exactly the log written.
          let seq = 0;
          for (const e of store.iterate('crash', 1)) {
            seq++;
            expect(e.seq).toBe(seq);
            if (toHex(e.hash) !== toHex(expected[seq - 1]!.hash)) throw new Error(`entry ${seq} differs from the log written (seed=${seed})`);
          }
          expect(seq).toBe(head!.seq);
          expect(store.firstSeq('crash')).toBe(1);
          console.log(`round ${r}: resumed at ${round.resumedAt}, reported durable ${round.durableMax}, killed ${round.killed}, found head ${head!.seq} (${Math.round(performance.now() - t0)} ms)`);
        } finally {
          await store.close();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

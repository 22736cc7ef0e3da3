// The measurement behind the core's hash function (src/core/hash.ts): 128-bit hashes of the
// short inputs the core hashes (records and entries, 40–200 bytes), from maintained packages:
//
//   hash-wasm XXH3-128 (createXXHash128: init/update/digest per call)
//   @node-rs/xxhash xxh3.xxh128 (napi; returns a BigInt)
//   hash-wasm BLAKE3-128 (createBLAKE3(128))
//   core hash128Raw: hash-wasm's XXH3-128 binary called through its exports, input copied from a
//   JS buffer, and from a hash arena (what the core's encoders write into)
//
// Run: `npx tsx bench/hash.bench.ts` or `node bench/run.mjs hash`. Times are CPU time per call,
// best of several rounds (the machines here are shared and busy).
import { xxh3 } from '@node-rs/xxhash';
import { createBLAKE3, createXXHash128 } from 'hash-wasm';
import { HASH_RESULT, hash128Raw, hashArena, toHex } from '../src/core/hash.js';
import { atLeast, info } from './report.js';

function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

const CALLS = Number(process.env.BENCH_CALLS ?? 400_000);
const ROUNDS = 5;

/** Best CPU ns per call of fn over ROUNDS rounds of CALLS calls. */
function nsPerCall(fn: (i: number) => number): number {
  let best = Infinity;
  let sink = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = cpuNs();
    for (let i = 0; i < CALLS; i++) sink ^= fn(i);
    best = Math.min(best, (cpuNs() - t0) / CALLS);
  }
  if (sink === 0.5) console.log('unreachable');
  return best;
}

const xxhWasm = await createXXHash128();
const blake3 = await createBLAKE3(128);
const arena = hashArena(4096);

// The three must agree on what XXH3-128 is before their speed means anything.
{
  const probe = new Uint8Array(120).map((_, i) => (i * 131) & 0xff);
  xxhWasm.init();
  xxhWasm.update(probe);
  const a = toHex(xxhWasm.digest('binary'));
  const b = xxh3.xxh128(probe).toString(16).padStart(32, '0');
  hash128Raw(probe, 0, probe.length);
  const c = toHex(HASH_RESULT);
  if (a !== b || a !== c) throw new Error(`XXH3-128 implementations disagree: hash-wasm ${a}, @node-rs/xxhash ${b}, core ${c}`);
}

for (const len of [40, 120, 200]) {
  const input = new Uint8Array(len).map((_, i) => (i * 31 + len) & 0xff);
  arena.set(input);
  const hashWasm = nsPerCall((i) => {
    input[0] = i;
    xxhWasm.init();
    xxhWasm.update(input);
    return xxhWasm.digest('binary')[0]!;
  });
  const napi = nsPerCall((i) => {
    input[0] = i;
    // The BigInt must be split into bytes to be used as a digest; that is part of the cost.
    const h = xxh3.xxh128(input);
    return Number(h & 0xffn) ^ Number((h >> 64n) & 0xffn);
  });
  const b3 = nsPerCall((i) => {
    input[0] = i;
    blake3.init();
    blake3.update(input);
    return blake3.digest('binary')[0]!;
  });
  const coreJs = nsPerCall((i) => {
    input[0] = i;
    hash128Raw(input, 0, len);
    return i;
  });
  const coreArena = nsPerCall((i) => {
    arena[0] = i;
    hash128Raw(arena, 0, len);
    return i;
  });
  info(`${len} B: hash-wasm XXH3-128`, hashWasm, 'ns');
  info(`${len} B: @node-rs/xxhash xxh128 (BigInt)`, napi, 'ns');
  info(`${len} B: hash-wasm BLAKE3-128`, b3, 'ns');
  info(`${len} B: core hash128Raw from a JS buffer`, coreJs, 'ns');
  info(`${len} B: core hash128Raw from a hash arena`, coreArena, 'ns');
  // The choice holds while XXH3-128 through hash-wasm's binary stays the fastest option.
  atLeast(`${len} B: fastest other / core (arena)`, Math.min(hashWasm, napi, b3) / coreArena, 1);
}

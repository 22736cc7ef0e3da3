#!/usr/bin/env node
// npm run bench [-- --check] [-- NAME…]: runs every bench/*.bench.ts in its own process (so one
// benchmark's heap does not slow the next), prints their figures, and a summary.
// With --check, exits 1 when any figure misses its target.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const check = args.includes('--check');
const only = args.filter((a) => !a.startsWith('--'));
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
  .sort();

const figures = [];
let crashed = 0;
for (const file of files) {
  console.log(`\n== ${file}`);
  // Each benchmark starts on a quiet disk: the gigabyte or so an earlier one wrote (catch-up,
  // store) is otherwise still being written back, and lands in this one's fsyncs.
  spawnSync('sync', { stdio: 'ignore' });
  const r = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', '--import', 'tsx', join(here, file)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 << 20,
  });
  for (const line of (r.stdout ?? '').split('\n')) {
    if (line.startsWith('##figure ')) figures.push({ file, ...JSON.parse(line.slice(9)) });
    else if (line) console.log(line);
  }
  if (r.status !== 0) {
    crashed++;
    console.log(`  ${file} exited with ${r.status ?? r.signal}`);
  }
}

console.log('\n== summary');
for (const f of figures) {
  const verdict = f.pass === null ? 'info' : f.pass ? 'PASS' : 'FAIL';
  const value = Math.abs(f.value) >= 100 ? f.value.toFixed(0) : f.value.toFixed(3);
  console.log(`${verdict.padEnd(5)} ${f.name}: ${value} ${f.unit}${f.target ? ` (target ${f.target})` : ''}`);
}
const failed = figures.filter((f) => f.pass === false).length;
console.log(`${figures.length} figures, ${failed} below target, ${crashed} benchmark(s) crashed`);
if (check && (failed > 0 || crashed > 0)) process.exit(1);

// Benchmarks print figures measured in one run (machines here are noisy, so targets are
// ratios against a baseline measured in the same process wherever possible).
//
// A figure prints one human line and one machine line (`##figure {json}`) that bench/run.mjs
// collects for its summary and for `--check`.
export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** e.g. ">= 0.6"; null for figures printed for reference only. */
  target: string | null;
  pass: boolean | null;
}

export function figure(f: Figure): void {
  const verdict = f.pass === null ? 'info' : f.pass ? 'PASS' : 'FAIL';
  const value = Math.abs(f.value) >= 100 ? f.value.toFixed(0) : f.value.toFixed(3);
  console.log(`  ${f.name}: ${value} ${f.unit}${f.target ? `  (target ${f.target})` : ''}  ${verdict}`);
  console.log(`##figure ${JSON.stringify(f)}`);
}

export function atLeast(name: string, value: number, min: number, unit = 'x'): void {
  figure({ name, value, unit, target: `>= ${min}`, pass: value >= min });
}

export function atMost(name: string, value: number, max: number, unit = 'x'): void {
  figure({ name, value, unit, target: `<= ${max}`, pass: value <= max });
}

export function info(name: string, value: number, unit: string): void {
  figure({ name, value, unit, target: null, pass: null });
}

/** Wall time of fn in ms (best of `runs`). */
export async function timeMs(fn: () => unknown | Promise<unknown>, runs = 1): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    (globalThis as { gc?: () => void }).gc?.();
    const t0 = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

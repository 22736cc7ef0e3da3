// The built `playout` binary for CLI tests: dist/ is rebuilt only when a source file is newer
// than it, and by one test file at a time. Several suites run the binary; each used to start
// its own `tsc` at the same moment, which on two shared cores took longer than their hooks
// may (and `npm test` has just built dist/ anyway).
import { execFile } from 'node:child_process';
import { mkdir, readdir, rmdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { hash128, toHex } from '../../src/core/index.js';

const run = promisify(execFile);
export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
export const CLI_MAIN = join(REPO_ROOT, 'dist', 'cli', 'main.js');

async function newestMtimeMs(dir: string): Promise<number> {
  let newest = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, await newestMtimeMs(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, (await stat(p)).mtimeMs);
  }
  return newest;
}

async function fresh(): Promise<boolean> {
  const built = await stat(CLI_MAIN).catch(() => null);
  if (built === null) return false;
  const sources = Math.max(await newestMtimeMs(join(REPO_ROOT, 'src')), (await stat(join(REPO_ROOT, 'tsconfig.build.json'))).mtimeMs);
  return built.mtimeMs > sources;
}

/** Build dist/ unless it is newer than every file in src/; concurrent callers wait for one build. */
export async function ensureBuilt(timeoutMs = 240_000): Promise<void> {
  const lock = join(tmpdir(), `playout-build-${toHex(hash128(new TextEncoder().encode(REPO_ROOT))).slice(0, 12)}.lock`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fresh()) return;
    try {
      await mkdir(lock);
    } catch {
      // Another suite is building: wait for it (a lock older than the timeout is a crashed build's).
      const held = await stat(lock).catch(() => null);
      if (held !== null && Date.now() - held.mtimeMs > timeoutMs) await rmdir(lock).catch(() => undefined);
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for another test's build of dist/ (lock ${lock})`);
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    try {
      await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, maxBuffer: 16 << 20 });
      return;
    } finally {
      await rmdir(lock).catch(() => undefined);
    }
  }
}

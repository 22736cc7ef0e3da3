// The purity rule (eslint.config.js) fails src/core/ and src/replication/ files that reach for the
// clock, randomness, timers, the environment, node:* modules or adapters, with a message that says
// why, and lets the same code through in src/adapters/.
import { join } from 'node:path';
import { ESLint } from 'eslint';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
let eslint: ESLint;

beforeAll(() => {
  eslint = new ESLint({ cwd: root, overrideConfigFile: join(root, 'eslint.config.js') });
});

interface Finding {
  ruleId: string | null;
  message: string;
}

async function lint(code: string, file: string): Promise<Finding[]> {
  const [result] = await eslint.lintText(code, { filePath: join(root, file) });
  return result!.messages.map((m) => ({ ruleId: m.ruleId, message: m.message }));
}

const PURITY_RULES = ['no-restricted-globals', 'no-restricted-properties', 'no-restricted-imports', 'no-restricted-syntax'];

// Each snippet is valid, complete TypeScript that uses what it declares.
const impure: [string, string][] = [
  ['Math.random', 'export const x = Math.random();'],
  ['Date.now', 'export const x = Date.now();'],
  ['new Date', 'export const x = new Date();'],
  ['globalThis.Date', 'export const x = globalThis.Date.now();'],
  ['performance.now', 'export const x = performance.now();'],
  ['globalThis.performance', 'export const x = globalThis.performance.now();'],
  ['setTimeout', 'export const x = setTimeout(() => {}, 10);'],
  ['setInterval', 'export const x = setInterval(() => {}, 10);'],
  ['setImmediate', 'export const x = setImmediate(() => {});'],
  ['queueMicrotask', 'queueMicrotask(() => {});'],
  ['process.env', 'export const x = process.env.HOME;'],
  ['process.hrtime', 'export const x = process.hrtime.bigint();'],
  ['crypto.randomUUID', 'export const x = crypto.randomUUID();'],
  ['import node:fs', "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;"],
  ['import node:crypto', "import { randomBytes } from 'node:crypto';\nexport const x = randomBytes;"],
  ['import fs', "import { readFileSync } from 'fs';\nexport const x = readFileSync;"],
  ['import perf_hooks', "import { performance as p } from 'perf_hooks';\nexport const x = p;"],
  ['dynamic import', "export const x = import('node:fs');"],
  ['an adapter import', "import { GlobalsGuard } from '../adapters/determinism-guard.js';\nexport const x = GlobalsGuard;"],
  ['a cli import', "import { commands } from '../cli/commands/index.js';\nexport const x = commands;"],
  ['localeCompare', "export const x = 'a'.localeCompare('b');"],
  ['Intl', 'export const x = new Intl.Collator();'],
  ['WeakRef', 'export const x = new WeakRef({});'],
];

describe('the purity lint rule', () => {
  for (const folder of ['src/core', 'src/replication']) {
    it.each(impure)(`fails ${folder}/ code that uses %s, saying why`, async (_what, code) => {
      const findings = (await lint(code, `${folder}/example.ts`)).filter((f) => PURITY_RULES.includes(f.ruleId ?? ''));
      expect(findings.length, JSON.stringify(findings)).toBeGreaterThan(0);
      for (const f of findings) {
        expect(f.message).toContain('must be deterministic');
        expect(f.message).toContain('HINT:');
      }
    });
  }

  it.each(impure)('lets src/adapters/ code use %s', async (_what, code) => {
    const findings = await lint(code, 'src/adapters/example.ts');
    expect(findings).toEqual([]);
  });

  it('keeps src/core/ from importing replication, ports and games, which replication may import', async () => {
    const ports = "import type { LogStore } from '../ports/log-store.js';\nexport type X = LogStore;";
    expect((await lint(ports, 'src/core/example.ts')).map((f) => f.ruleId)).toEqual(['no-restricted-imports']);
    expect(await lint(ports, 'src/replication/example.ts')).toEqual([]);
    const game = "import { x } from '../games/treasure-hunt/index.js';\nexport const y = x;";
    expect((await lint(game, 'src/core/example.ts'))[0]!.message).toContain('src/core/ imports only src/core/');
  });

  it('lets src/core/ use what it needs: core modules, msgpackr, pure-rand, zod, WebAssembly, seeded randomness from ctx', async () => {
    const code = [
      "import { Unpackr } from 'msgpackr';",
      "import { z } from 'zod';",
      "import { PlayoutError } from './errors.js';",
      'export const a = new Unpackr({});',
      'export const b = z.string();',
      'export const c = PlayoutError;',
      'export const d = typeof WebAssembly;',
      'export const e = (ctx: { rng: { int(a: number, b: number): number } }) => ctx.rng.int(0, 9);',
      'export const f = Math.floor(Math.max(1, 2));',
    ].join('\n');
    expect(await lint(code, 'src/core/example.ts')).toEqual([]);
  });

  it('holds on the real src/core/ and src/replication/ trees (they lint clean)', async () => {
    const results = await eslint.lintFiles(['src/core/**/*.ts', 'src/replication/**/*.ts']);
    const problems = results.flatMap((r) => r.messages.map((m) => `${r.filePath.slice(root.length + 1)}:${m.line} ${m.ruleId}: ${m.message}`));
    expect(problems).toEqual([]);
  });
});

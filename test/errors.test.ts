// The error registry is permanent and documented (STYLE.md: "A test checks that every code is
// documented" [fastify errors.test.js]).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, PlayoutError, type ErrorCode } from '../src/core/errors.js';

const root = join(import.meta.dirname, '..');
const docs = readFileSync(join(root, 'docs/errors.md'), 'utf8');

/** `## PLAYOUT_X` sections of docs/errors.md, with their text. */
function docSections(): Map<string, string> {
  const sections = new Map<string, string>();
  const parts = docs.split(/^## /m).slice(1);
  for (const part of parts) {
    const nl = part.indexOf('\n');
    const heading = part.slice(0, nl).trim();
    if (sections.has(heading)) throw new Error(`docs/errors.md documents ${heading} twice`);
    sections.set(heading, part.slice(nl + 1));
  }
  return sections;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|mts|js|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

const codes = Object.keys(ERROR_CODES) as ErrorCode[];

describe('error codes', () => {
  it('are all documented in docs/errors.md, with their meaning, whether they are retriable and what to do', () => {
    const sections = docSections();
    const undocumented = codes.filter((c) => !sections.has(c));
    expect(undocumented, 'codes in ERROR_CODES without a "## CODE" section in docs/errors.md').toEqual([]);
    for (const code of codes) {
      const text = sections.get(code)!;
      const retriable = /^Retriable: (yes|no)$/m.exec(text);
      expect(retriable, `${code}: a "Retriable: yes|no" line`).not.toBeNull();
      expect(retriable![1] === 'yes', `${code}: retriable in docs/errors.md matches the registry`).toBe(ERROR_CODES[code].retriable);
      expect(text, `${code}: a "What to do:" paragraph`).toMatch(/^What to do: \S/m);
      const meaning = text.split(/^Retriable:/m)[0]!.trim();
      expect(meaning.length, `${code}: a paragraph saying what it means`).toBeGreaterThan(20);
    }
  });

  it('documents no code the registry lacks', () => {
    const extra = [...docSections().keys()].filter((h) => !(h in ERROR_CODES));
    expect(extra).toEqual([]);
  });

  it('are unique, well-formed, and each has a doc string', () => {
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) {
      expect(code).toMatch(/^PLAYOUT_[A-Z0-9]+(_[A-Z0-9]+)*$/);
      expect(ERROR_CODES[code].doc.length).toBeGreaterThan(10);
      expect(typeof ERROR_CODES[code].retriable).toBe('boolean');
    }
    // Keys of an object literal cannot repeat silently in TypeScript, but the file can hold the
    // same key twice (the later one wins at run time): check the source text too.
    const registry = readFileSync(join(root, 'src/core/errors.ts'), 'utf8');
    const declared = [...registry.matchAll(/^\s+(PLAYOUT_[A-Z0-9_]+):/gm)].map((m) => m[1]!);
    expect(declared.length).toBe(codes.length);
  });

  it('used anywhere in src/ are all in the registry (a prefix such as PLAYOUT_INPUT_ must start a registered code)', () => {
    const unknown: string[] = [];
    for (const file of sourceFiles(join(root, 'src'))) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/PLAYOUT_[A-Z0-9_]+/g)) {
        const literal = m[0];
        // Environment variables share the prefix but are not error codes: the token variables
        // of the region config (`PLAYOUT_*_TOKEN`) and variables read as `env.PLAYOUT_*`,
        // documented in README.md.
        if (/^PLAYOUT_[A-Z]+_TOKEN$/.test(literal) || text.slice(Math.max(0, m.index! - 4), m.index) === 'env.') continue;
        const known = literal.endsWith('_') ? codes.some((c) => c.startsWith(literal)) : literal in ERROR_CODES;
        if (!known) unknown.push(`${file.slice(root.length + 1)}: ${literal}`);
      }
    }
    expect(unknown).toEqual([]);
  });

  it('carry their registry retriable flag and the details given', () => {
    const err = new PlayoutError('PLAYOUT_GAP', 'Cannot chain entry 5: expected seq 3, received 5', { seq: 5, shard: 's', expected: '3', received: '5', path: 'seq' });
    expect(err.retriable).toBe(true);
    expect(err.toJSON()).toEqual({ code: 'PLAYOUT_GAP', message: err.message, retriable: true, path: 'seq', expected: '3', received: '5', seq: 5, tick: null, shard: 's' });
    expect(new PlayoutError('PLAYOUT_FORK', 'x').retriable).toBe(false);
  });
});

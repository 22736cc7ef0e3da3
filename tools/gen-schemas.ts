// Writes the JSON Schemas of src/schema-registry.ts into schemas/.
//
//   npx tsx tools/gen-schemas.ts            write every schema, delete *.schema.json no longer listed
//   npx tsx tools/gen-schemas.ts --check    write nothing; exit 1 when a file is stale, missing or extra
//
// test/schemas.test.ts runs the same comparison, so a change to a zod schema without
// regenerating fails the suite.
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SCHEMAS, renderSchema } from '../src/schema-registry.js';

export const SCHEMAS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'schemas');
export const REGENERATE = 'npx tsx tools/gen-schemas.ts';

export interface SchemaDrift {
  /** Listed but absent on disk. */
  missing: string[];
  /** On disk with other content than generated. */
  stale: string[];
  /** *.schema.json on disk that no entry of SCHEMAS generates. */
  extra: string[];
}

/** Every generated file: path under schemas/ → text. */
export function renderAll(): Map<string, string> {
  const out = new Map<string, string>();
  for (const doc of SCHEMAS) {
    if (!doc.file.endsWith('.schema.json') || doc.file.startsWith('/') || doc.file.split('/').includes('..')) {
      throw new Error(`schema-registry: file must be a relative path ending in .schema.json, received "${doc.file}"`);
    }
    if (out.has(doc.file)) throw new Error(`schema-registry: "${doc.file}" is listed twice`);
    out.set(doc.file, renderSchema(doc));
  }
  return out;
}

function schemaFilesOnDisk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.schema.json')) found.push(relative(dir, p).split(sep).join('/'));
    }
  };
  walk(dir);
  return found.sort();
}

export function compareWithDisk(dir = SCHEMAS_DIR, rendered = renderAll()): SchemaDrift {
  const drift: SchemaDrift = { missing: [], stale: [], extra: [] };
  for (const [file, text] of rendered) {
    const path = join(dir, file);
    if (!existsSync(path)) drift.missing.push(file);
    else if (readFileSync(path, 'utf8') !== text) drift.stale.push(file);
  }
  for (const file of schemaFilesOnDisk(dir)) if (!rendered.has(file)) drift.extra.push(file);
  return drift;
}

export function writeAll(dir = SCHEMAS_DIR): { written: string[]; deleted: string[] } {
  const rendered = renderAll();
  const drift = compareWithDisk(dir, rendered);
  for (const file of [...drift.missing, ...drift.stale]) {
    const path = join(dir, file);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, rendered.get(file)!);
  }
  for (const file of drift.extra) rmSync(join(dir, file));
  return { written: [...drift.missing, ...drift.stale], deleted: drift.extra };
}

function main(argv: string[]): number {
  if (argv.includes('--check')) {
    const d = compareWithDisk();
    const problems = [...d.missing.map((f) => `missing ${f}`), ...d.stale.map((f) => `stale ${f}`), ...d.extra.map((f) => `extra ${f}`)];
    for (const p of problems) console.error(`schemas/: ${p}`);
    if (problems.length > 0) console.error(`run ${REGENERATE}`);
    return problems.length > 0 ? 1 : 0;
  }
  const { written, deleted } = writeAll();
  for (const f of written) console.log(`wrote schemas/${f}`);
  for (const f of deleted) console.log(`deleted schemas/${f}`);
  console.log(`${SCHEMAS.length} schemas in schemas/ (${written.length} written, ${deleted.length} deleted)`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = main(process.argv.slice(2));

// The zod schemas published as JSON Schema under schemas/, for producers written in other
// languages (DESIGN.md §2). `npx tsx tools/gen-schemas.ts` writes them; test/schemas.test.ts
// fails when a committed file is stale or missing.
//
// To publish another schema, append an entry to SCHEMAS (file names are relative to schemas/).
import { z } from 'zod';
import { EntrySchema, EpochPayloadSchema, GenesisPayloadSchema, UpgradePayloadSchema } from './core/index.js';
import { INPUTS_V2, TreasureHuntParamsSchema } from './games/treasure-hunt/index.js';
import { RegionConfigSchema } from './node/region-config.js';

export interface SchemaDoc {
  /** Path under schemas/, ending in .schema.json. */
  file: string;
  schema: z.ZodType;
  title: string;
  description?: string;
  /** Which side of a transform or default to describe: producers send the input side (default 'output'). */
  io?: 'input' | 'output';
}

const ENTRY_DESCRIPTION =
  'One entry of a shard log, decoded (DESIGN.md §3). On the wire an entry is the canonical msgpack array ' +
  '[format, shard, seq, epoch, tick, kind, type, version, origin, ingestId, payload, digest, prev] followed by ' +
  'its 16-byte XXH3-128 hash; absent fields are nil, never missing. Binary fields are msgpack bin on the wire ' +
  'and 32 lowercase hex characters in JSON views. The payload of an input entry is validated by the schema of ' +
  'its (type, version), e.g. treasure-hunt/inputs/player.move.v1.schema.json.';

function inputDocs(game: string, inputs: Record<string, Record<number, z.ZodType>>): SchemaDoc[] {
  const docs: SchemaDoc[] = [];
  for (const type of Object.keys(inputs).sort()) {
    const versions = inputs[type]!;
    for (const v of Object.keys(versions).map(Number).sort((a, b) => a - b)) {
      docs.push({
        file: `${game}/inputs/${type}.v${v}.schema.json`,
        schema: versions[v]!,
        title: `${game} input ${type} v${v}`,
        description: `Payload of an input entry with type "${type}" and version ${v}.`,
        io: 'input',
      });
    }
  }
  return docs;
}

export const SCHEMAS: SchemaDoc[] = [
  { file: 'entry.schema.json', schema: EntrySchema, title: 'playout log entry', description: ENTRY_DESCRIPTION },
  { file: 'genesis-payload.schema.json', schema: GenesisPayloadSchema, title: 'playout genesis payload', description: 'Payload of the genesis entry (seq 1): reducer name and version, shard seed, tick length, engine format, hash function, reducer params.' },
  { file: 'epoch-payload.schema.json', schema: EpochPayloadSchema, title: 'playout epoch payload', description: 'Payload of an epoch entry, the first entry of a new leader after failover.' },
  { file: 'upgrade-payload.schema.json', schema: UpgradePayloadSchema, title: 'playout upgrade payload', description: 'Payload of an upgrade entry: the reducer version that runs from the next tick on.' },
  { file: 'region-config.schema.json', schema: RegionConfigSchema, title: 'playout region config', description: 'A region node config file (regions/*.yaml): region id, listen address, store, peers, shards, token variables, limits, repair, snapshots, replication, kafka.', io: 'input' },
  { file: 'treasure-hunt/params.schema.json', schema: TreasureHuntParamsSchema, title: 'treasure-hunt genesis params', description: 'The `params` of a treasure-hunt genesis entry; every field has a default.', io: 'input' },
  // Reducer 2 declares every input of reducer 1 plus item.dig v2.
  ...inputDocs('treasure-hunt', INPUTS_V2),
];

const BINARY_NOTE = 'Binary. On the wire a msgpack bin; in JSON views lowercase hex.';

/**
 * zod has no JSON Schema for Uint8Array (`z.instanceof`): describe it as what JSON views
 * carry (hex), with its length found by probing the schema, and say it is binary.
 */
function binarySchema(schema: z.ZodType): Record<string, unknown> | null {
  const accepts = (n: number) => schema.safeParse(new Uint8Array(n)).success;
  if (!accepts(16) && !accepts(0) && !accepts(32)) return null;
  for (const n of [16, 32, 8, 64]) {
    if (accepts(n) && !accepts(n - 1) && !accepts(n + 1)) {
      return { type: 'string', pattern: `^[0-9a-f]{${2 * n}}$`, description: `${BINARY_NOTE} Exactly ${n} bytes (${2 * n} hex characters).`, contentEncoding: 'base16', 'x-playout-binary-bytes': n };
    }
  }
  return { type: 'string', pattern: '^([0-9a-f]{2})*$', description: BINARY_NOTE, contentEncoding: 'base16' };
}

/** The JSON Schema of one entry of SCHEMAS, with keys sorted so the output is stable. */
export function toJsonSchema(doc: SchemaDoc): Record<string, unknown> {
  const json = z.toJSONSchema(doc.schema, {
    target: 'draft-2020-12',
    io: doc.io ?? 'output',
    unrepresentable: (ctx) => {
      const binary = binarySchema(ctx.zodSchema as unknown as z.ZodType);
      if (binary === null) throw new Error(`${doc.file}: ${ctx.path.join('.') || '(root)'} has no JSON Schema: ${ctx.message}`);
      return binary;
    },
  }) as Record<string, unknown>;
  const withTitle: Record<string, unknown> = { ...json, title: doc.title };
  if (doc.description !== undefined) withTitle['description'] = doc.description;
  return sortKeys(withTitle) as Record<string, unknown>;
}

/** The text of a schema file: two-space JSON, sorted keys, trailing newline. */
export function renderSchema(doc: SchemaDoc): string {
  return JSON.stringify(toJsonSchema(doc), null, 2) + '\n';
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
  return out;
}

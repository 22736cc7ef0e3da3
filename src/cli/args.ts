// Command-line arguments: a small parser (positionals, `--name value`, `--name=value`, boolean
// switches) whose result is validated by each command's zod schema. Every failure is a
// PLAYOUT_INVALID_ARGUMENT naming the option as the user typed it (`--to-tick`), what was
// expected and what was received.
import { z } from 'zod';
import { PlayoutError, describe } from '../core/index.js';

export interface ArgSpec {
  /** Names of the positionals, in order, as shown in usage (`SOURCE`, `A`, `B`). */
  readonly positionals: readonly string[];
  /** How many positionals are required (the rest are optional). */
  readonly positionalsRequired: number;
  /** Options taking a value, by their --kebab-name. */
  readonly values: readonly string[];
  /** Switches, by their --kebab-name. */
  readonly switches: readonly string[];
}

export function camel(kebab: string): string {
  return kebab.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function kebab(camelName: string): string {
  return camelName.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function invalid(path: string, message: string, expected: string, received: string): PlayoutError {
  return new PlayoutError('PLAYOUT_INVALID_ARGUMENT', message, { path, expected, received });
}

/** Split argv into positionals (by name) and options (camelCase keys). */
export function parseArgv(command: string, argv: readonly string[], spec: ArgSpec): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const positionals: string[] = [];
  const known = [...spec.values.map((v) => `--${v}`), ...spec.switches.map((s) => `--${s}`)];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--') || arg === '-') {
      if (arg.startsWith('-') && arg !== '-' && !/^-\d/.test(arg)) {
        throw invalid(arg, `playout ${command}: unknown option ${arg}; expected ${known.join(', ') || 'no options'}`, known.join(', '), arg);
      }
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const key = camel(name);
    if (spec.switches.includes(name)) {
      if (eq >= 0) {
        const v = arg.slice(eq + 1);
        if (v !== 'true' && v !== 'false') throw invalid(`--${name}`, `playout ${command}: --${name} is a switch; expected no value (or =true/=false), received "${v}"`, 'no value', v);
        out[key] = v === 'true';
      } else out[key] = true;
      continue;
    }
    if (!spec.values.includes(name)) {
      throw invalid(`--${name}`, `playout ${command}: unknown option --${name}; expected ${known.join(', ') || 'no options'}`, known.join(', '), `--${name}`);
    }
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || (value.startsWith('--') && value.length > 2)) throw invalid(`--${name}`, `playout ${command}: --${name} needs a value`, 'a value', 'nothing');
      i++;
    }
    if (key in out) throw invalid(`--${name}`, `playout ${command}: --${name} is given twice`, 'once', 'twice');
    out[key] = value;
  }
  if (positionals.length < spec.positionalsRequired) {
    const missing = spec.positionals.slice(positionals.length, spec.positionalsRequired);
    throw invalid(missing[0]!, `playout ${command}: missing ${missing.join(' and ')}; run \`playout ${command} --help\` for usage`, missing.join(' '), `${positionals.length} argument(s)`);
  }
  if (positionals.length > spec.positionals.length) {
    const extra = positionals.slice(spec.positionals.length);
    throw invalid(extra[0]!, `playout ${command}: unexpected argument "${extra[0]}"; expected ${spec.positionals.join(' ') || 'no arguments'}`, spec.positionals.join(' '), extra.join(' '));
  }
  spec.positionals.forEach((p, i) => {
    if (i < positionals.length) out[p] = positionals[i];
  });
  return out;
}

/** Validate parsed arguments with a zod schema; the first issue becomes a one-line PlayoutError. */
export function validateArgs<T>(command: string, raw: Record<string, unknown>, schema: z.ZodType<T>): T {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const key = String(issue.path[0] ?? '');
  const shown = key === '' ? 'arguments' : /^[A-Z]/.test(key) ? key : `--${kebab(key)}`;
  const received = key === '' ? 'arguments' : describe(raw[key]);
  return failArgs(command, shown, issue.message, received);
}

function failArgs(command: string, shown: string, message: string, received: string): never {
  throw invalid(shown, `playout ${command}: ${shown}: ${message}, received ${received}`, message, received);
}

/** Common option schemas. */
export const intArg = (what: string, min = 0): z.ZodType<number> =>
  z
    .string()
    .regex(/^\d+$/, `expected ${what}: an integer >= ${min}`)
    .transform(Number)
    .refine((n) => Number.isSafeInteger(n) && n >= min, `expected ${what}: an integer >= ${min}`);

export const flag = z.boolean().optional().default(false);

// One lint tool for the project. Its main job is guarding determinism: src/core/ and
// src/replication/ must compute the same bytes in every region, so they may not reach
// for the clock, randomness, timers, the environment or I/O. test/lint.test.ts proves each
// of these rules fires there (and not in src/adapters/) with a message that says why.
import tseslint from 'typescript-eslint';

const WHY = 'src/core/ and src/replication/ must be deterministic: every region replays the same log to the same bytes. ';
const HINT = 'HINT: pass time as data (a tick, or a nowMs argument) and randomness from the seeded ctx.rng / an injected Rng; do I/O in src/adapters/ or src/node/.';

// Globals that read the clock, the machine, the environment or the garbage collector, or do I/O.
const impureGlobals = {
  Date: 'reads the wall clock',
  performance: 'reads a clock',
  setTimeout: 'schedules on the wall clock',
  setInterval: 'schedules on the wall clock',
  setImmediate: 'schedules on the event loop',
  clearTimeout: 'schedules on the wall clock',
  clearInterval: 'schedules on the wall clock',
  clearImmediate: 'schedules on the event loop',
  queueMicrotask: 'schedules on the event loop',
  process: 'reads the environment and the machine',
  crypto: 'draws unseeded randomness',
  require: 'loads modules at run time',
  fetch: 'does network I/O',
  WeakRef: 'observes the garbage collector',
  FinalizationRegistry: 'observes the garbage collector',
  Intl: 'depends on the ICU data and locale of the machine',
};

const restrictedGlobals = Object.entries(impureGlobals).map(([name, what]) => ({ name, message: `${WHY}'${name}' ${what}. ${HINT}` }));

const restrictedProperties = [
  { object: 'Math', property: 'random', message: `${WHY}Math.random is not seeded. ${HINT}` },
  { property: 'localeCompare', message: `${WHY}localeCompare orders strings by the machine's locale; compare with < and > (UTF-16 code units). ${HINT}` },
  { property: 'toLocaleString', message: `${WHY}toLocaleString formats by the machine's locale. ${HINT}` },
  // The same globals reached through globalThis.
  ...Object.entries(impureGlobals).map(([name, what]) => ({ object: 'globalThis', property: name, message: `${WHY}'${name}' ${what}. ${HINT}` })),
];

const builtinModules = ['fs', 'fs/promises', 'os', 'crypto', 'child_process', 'cluster', 'dgram', 'dns', 'net', 'tls', 'http', 'https', 'http2', 'worker_threads', 'timers', 'timers/promises', 'perf_hooks', 'process', 'v8', 'vm'];

/** The options of no-restricted-imports for a pure folder; `inward` lists folders it may not import. */
function pureImports(inward, inwardWhy) {
  return [
    'error',
    {
      patterns: [
        { group: ['node:*'], message: `${WHY}node:* modules do I/O or read the machine. ${HINT}` },
        { group: inward, message: `${WHY}${inwardWhy} ${HINT}` },
      ],
      paths: builtinModules.map((name) => ({ name, message: `${WHY}'${name}' does I/O or reads the machine. ${HINT}` })),
    },
  ];
}

const pureRules = {
  'no-restricted-globals': ['error', ...restrictedGlobals],
  'no-restricted-properties': ['error', ...restrictedProperties],
  'no-restricted-syntax': [
    'error',
    { selector: 'ImportExpression', message: `${WHY}A dynamic import loads code chosen at run time (and escapes the import rules). ${HINT}` },
  ],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.cache/**', '.data/**', 'coverage/**'] },
  {
    files: ['**/*.ts'],
    languageOptions: { parser: tseslint.parser },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      'no-debugger': 'error',
      'no-var': 'error',
      'prefer-const': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/replication/**/*.ts'],
    rules: {
      ...pureRules,
      'no-restricted-imports': pureImports(['**/adapters/**', '**/node/**', '**/cli/**'], 'Imports point inward: src/replication/ may import src/core/ and src/ports/ only, not adapters, node or cli.'),
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      ...pureRules,
      'no-restricted-imports': pureImports(['**/replication/**', '**/ports/**', '**/adapters/**', '**/node/**', '**/cli/**', '**/games/**'], 'src/core/ imports only src/core/ (and msgpackr, pure-rand, zod, hash-wasm).'),
    },
  },
);

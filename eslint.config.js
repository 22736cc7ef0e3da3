// One lint tool for the project. Its main job is guarding determinism: src/core/ and
// src/replication/ must compute the same bytes in every region, so they may not reach
// for the clock, randomness, timers, the environment or I/O.
import tseslint from 'typescript-eslint';

const WHY =
  'src/core/ and src/replication/ must be deterministic: every region replays the same log to the same bytes. ';
const HINT = 'HINT: pass time as data (a tick, or a nowMs argument) and randomness from the seeded ctx.rng; do I/O in src/adapters/ or src/node/.';

const pureGlobals = ['Date', 'performance', 'setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate', 'queueMicrotask', 'process', 'crypto', 'require', 'fetch'].map(
  (name) => ({ name, message: `${WHY}'${name}' reads the outside world. ${HINT}` }),
);

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
    files: ['src/core/**/*.ts', 'src/replication/**/*.ts'],
    rules: {
      'no-restricted-globals': ['error', ...pureGlobals],
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: `${WHY}Math.random is not seeded. ${HINT}` },
        { object: 'globalThis', property: 'Date', message: `${WHY}${HINT}` },
        { object: 'globalThis', property: 'process', message: `${WHY}${HINT}` },
      ],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: `${WHY}node:* modules do I/O or read the machine. ${HINT}` },
            { group: ['**/adapters/**', '**/node/**', '**/cli/**'], message: `${WHY}Imports point inward: core/ and replication/ may not import adapters, node or cli. ${HINT}` },
          ],
          paths: ['fs', 'os', 'crypto', 'child_process', 'net', 'http', 'https', 'worker_threads', 'timers', 'perf_hooks'].map((name) => ({
            name,
            message: `${WHY}'${name}' does I/O or reads the machine. ${HINT}`,
          })),
        },
      ],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: `${WHY}node:* modules do I/O or read the machine. ${HINT}` },
            { group: ['**/replication/**', '**/ports/**', '**/adapters/**', '**/node/**', '**/cli/**', '**/games/**'], message: `${WHY}src/core/ imports only src/core/. ${HINT}` },
          ],
        },
      ],
    },
  },
);

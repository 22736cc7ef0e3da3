import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: integration suites start real processes; keep workers few so
    // their timers are not starved.
    maxWorkers: 2,
  },
});

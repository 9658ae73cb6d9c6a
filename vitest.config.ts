import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // End-to-end tests start real heads, agents and workers: two files at a time fit two cores.
    maxWorkers: 2,
    reporters: ['default'],
  },
});

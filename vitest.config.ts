import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Generous: end-to-end tests share two cores with each other and with whatever else runs.
    testTimeout: 180_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // End-to-end tests start real heads, agents and workers: two files at a time fit two cores.
    maxWorkers: 2,
    reporters: ['default'],
  },
});

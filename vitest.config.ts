import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Bundles the programs tests start as child processes (test/helpers/entries.ts).
    globalSetup: ['test/global-setup.ts'],
    // Numerics and real child processes: generous timeouts. Speed goals live in npm run bench;
    // no test asserts a wall-clock deadline that a loaded machine could miss (the replicas count
    // propagation in repository scans; the few time bounds left exclude behaviour that is
    // orders of magnitude slower).
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});

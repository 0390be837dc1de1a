import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Numerics and real child processes: generous timeouts. Speed goals live in npm run bench;
    // the only deadline asserted is the replicas' propagation within two poll intervals.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Numerics and real child processes: allow slow machines, never time-based assertions.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});

import { defineConfig } from 'vitest/config';

/** The tests whose models run on an executor, run again on the JavaScript reference executor. */
const ENGINE_DEPENDENT = [
  'test/inference/compile.test.ts',
  'test/http/predict.test.ts',
  'test/http/open-inference.test.ts',
  'test/http/models.test.ts',
  'test/acceptance/bundled-model.test.ts',
  'test/recalibration/**/*.test.ts',
  'test/admin/recalibrate.test.ts',
];

export default defineConfig({
  test: {
    // Bundles the programs tests start as child processes (test/helpers/entries.ts).
    globalSetup: ['test/global-setup.ts'],
    // Numerics and real child processes: generous timeouts. Speed goals live in npm run bench;
    // no test asserts a wall-clock deadline that a loaded machine could miss (the replicas count
    // propagation in repository scans; the few time bounds left exclude behaviour that is
    // orders of magnitude slower).
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      // Everything, on the default engine (wasm; the test helpers read ENGINE).
      { extends: true, test: { name: 'default', include: ['test/**/*.test.ts'] } },
      // The engine-dependent tests again on the JavaScript reference (child processes inherit ENGINE).
      {
        extends: true,
        test: { name: 'js-engine', include: ENGINE_DEPENDENT, env: { ENGINE: 'js' } },
      },
    ],
  },
});

import { defineConfig } from 'vitest/config';
import { processCpus } from './src/service/available-cpus.js';

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

/**
 * The layer tests against PyTorch and finite differences, whose modules run on the training
 * kernels (test/helpers/kernels.ts): wasm by default, again on the JavaScript reference.
 */
const KERNEL_DEPENDENT = [
  'test/nn/torch-golden.test.ts',
  'test/nn/conv-golden.test.ts',
  'test/nn/torch-options.test.ts',
  'test/nn/gradcheck.test.ts',
  'test/nn/conv-gradcheck.test.ts',
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
    // One test file per core, where vitest's default leaves one core to itself (cores − 1: a
    // single worker on a 2-vCPU VM). Most of this suite's time is spent waiting for the servers
    // and CLIs it runs as child processes, so a second file fills the wait: on the 2-vCPU VM a
    // clean-clone CI's suite took 614 s with two workers against 867 s with one (README, Tests on
    // a busy machine). The cores the process may use, its cgroup's CPU limit included, which
    // Node 20's availableParallelism() ignores: a CI container limited to 2 CPUs runs two.
    maxWorkers: processCpus(),
    projects: [
      // Everything, on the default engine and kernels (wasm; the test helpers read ENGINE, KERNELS).
      { extends: true, test: { name: 'default', include: ['test/**/*.test.ts'] } },
      // The engine-dependent tests again on the JavaScript reference (child processes inherit ENGINE).
      {
        extends: true,
        test: { name: 'js-engine', include: ENGINE_DEPENDENT, env: { ENGINE: 'js' } },
      },
      // The layer goldens and gradient checks again on the JavaScript reference kernels.
      {
        extends: true,
        test: { name: 'js-kernels', include: KERNEL_DEPENDENT, env: { KERNELS: 'js' } },
      },
    ],
  },
});

/**
 * The live drift clip's K (LIVE_DRIFT_CLIP_SIGMAS) against the alternatives, on the bundled
 * models through their served executors: the model drift score of clean digits traffic, of the
 * reviewer's attack (1,000 clean rows then 3 rows of 64 × 1e4) and of night-shifted traffic, with
 * the BatchNorm inputs winsorized at running_mean ± K·√(running_var + ε) (K = ∞: the exact taps).
 * Scores, not timings: deterministic.
 *   npx tsx bench/drift-clip.ts
 */
import { layerDrift, modelDriftScore } from '../src/drift/index.js';
import {
  batchNormInputsOf,
  batchNormMoments,
  batchNormTaps,
  CompiledModel,
  clippedBatchNormTaps,
} from '../src/inference/index.js';
import { type BatchNorm, namedModules, Rng } from '../src/nn/index.js';
import { loadModelDirectory, prepareWasmRuntime } from '../src/service/index.js';
import { digitsTestRows, nightShift } from '../test/helpers/digits.js';

prepareWasmRuntime();
const { x } = digitsTestRows();
const seeded = (rows: number[][], count: number, seed: number) => {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => rows[rng.int(rows.length)]!);
};
// The seeds of the tests: bounded-influence (61), drift-night-shift (12 clean, 13 night).
const clean1000 = seeded(x, 1000, 61);
const attack = Array.from({ length: 3 }, () => Array.from({ length: 64 }, () => 1e4));
const traffic = {
  'clean 400': seeded(x, 400, 12),
  'attack 1,000 + 3': [...clean1000, ...attack],
  'night 200': seeded(nightShift(x), 200, 13),
};
console.log(`K      model        ${Object.keys(traffic).join('   ')}`);
for (const name of ['digits', 'digits-cnn']) {
  const { checkpoint } = await loadModelDirectory(`models/${name}`);
  const c = checkpoint.config;
  const model = new CompiledModel(checkpoint.network, c.input_transform, 256, c.input_shape);
  const inputs = batchNormInputsOf(model.plan);
  const modules = new Map(namedModules(checkpoint.network));
  const running = inputs.map((b) => {
    const bn = modules.get(b.path) as BatchNorm;
    return { path: b.path, mean: bn.runningMean.data, variance: bn.runningVar.data, eps: bn.eps };
  });
  for (const k of [Number.POSITIVE_INFINITY, 24, 20, 16, 12, 10, 8]) {
    const scores = Object.values(traffic).map((rows) => {
      const taps = Number.isFinite(k)
        ? clippedBatchNormTaps(inputs, running, k)
        : batchNormTaps(inputs);
      const probe = model.executor.createProbe(taps);
      // One row per call, as the tests' one-row requests.
      for (const row of rows) model.executor.run(Float32Array.from(row), 1, probe);
      return modelDriftScore(
        inputs.map((b, i) => layerDrift(running[i]!, batchNormMoments(b, probe.sums[i]!))),
      );
    });
    console.log(
      `${String(k).padEnd(6)} ${`${name} (${model.executor.engine})`.padEnd(18)} ${scores.map((s) => s.toFixed(4).padStart(9)).join('   ')}`,
    );
  }
  model.close();
}

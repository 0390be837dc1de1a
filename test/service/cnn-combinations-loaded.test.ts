/**
 * Every convolutional combination of test/helpers/cnn-combinations.ts published as a version and
 * loaded the ways users load one — a server's ModelRegistry (its load compiles, builds the
 * executor and warms it up with the live-drift taps) and the library's loadModel — on both
 * engines: the version is AVAILABLE; its outputs, fused and `?fused=false`, and loadModel's are
 * the plain eval forward's; and live drift observes every BatchNorm with the per-channel moments
 * of the inputs the plain forward gives it (winsorized at running_mean ± 16 running σ, as live
 * drift sums them). The compile-level tests run the same networks on a CompiledModel made by
 * hand, which no version goes through: a BatchNorm1d after a Flatten of a convolution's output
 * compiled and ran there while every version of it failed to load (review 32: the warm-up's tap
 * had C·H·W channels on a tensor the plan knew as C).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseModelConfig } from '../../src/checkpoint/index.js';
import { LIVE_DRIFT_CLIP_SIGMAS } from '../../src/drift/index.js';
import { ENGINES } from '../../src/inference/index.js';
import { BatchNorm, namedModules, type Sequential } from '../../src/nn/index.js';
import { ModelRepository } from '../../src/repository/index.js';
import { loadModel } from '../../src/service/index.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { hookedInputSums } from '../helpers/batch-norm-hooks.js';
import { type CnnCase, cnnCases, randomInput, randomNetwork } from '../helpers/cnn-combinations.js';
import { expectClose } from '../helpers/compare.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';
import { FUSION_ATOL, STATS_RTOL } from '../helpers/tolerances.js';

const ROWS = 24;
const cases = Object.entries(cnnCases).map(([title, c], i) => ({ title, c, name: `cnn-${i}` }));

/** One repository with every combination as a model of its own (version 1). */
async function combinationsRepository(): Promise<{ root: string; networks: Sequential[] }> {
  const root = makeTempDir('cnn-combinations');
  const repository = new ModelRepository(root);
  const networks: Sequential[] = [];
  for (const { c, name } of cases) {
    const network = randomNetwork(c.layers, 7);
    networks.push(network);
    const config = parseModelConfig({
      format: 'normserve.model/v1',
      name,
      task: 'regression',
      input_shape: c.inputShape,
      layers: c.layers,
      ...(c.transform ? { input_transform: c.transform } : {}),
    });
    await repository.publishVersion({ config, state: network.stateDict() });
  }
  return { root, networks };
}

/** The rows a model's request carries, [C][H][W] each. */
function instances(x: Float32Array, shape: readonly number[]): unknown[] {
  const [c, h, w] = shape as [number, number, number];
  const width = c * h * w;
  return Array.from({ length: x.length / width }, (_, r) =>
    Array.from({ length: c }, (_, ch) =>
      Array.from({ length: h }, (_, i) =>
        Array.from(x.subarray(r * width + (ch * h + i) * w, r * width + (ch * h + i + 1) * w)),
      ),
    ),
  );
}

async function predict(t: TestApp, name: string, x: Float32Array, c: CnnCase, query = '') {
  const res = await t.app.inject({
    method: 'POST',
    url: `/v1/models/${name}:predict${query}`,
    payload: { instances: instances(x, c.inputShape) },
  });
  expect(res.statusCode, res.body).toBe(200);
  return Float32Array.from((res.json() as { predictions: number[][] }).predictions.flat());
}

const bnPaths = (network: Sequential) =>
  namedModules(network)
    .filter(([, m]) => m instanceof BatchNorm)
    .map(([path]) => path);

afterAll(() => removeTempDirs());

describe.each(ENGINES)('every CNN combination published and loaded (%s engine)', (engine) => {
  let t: TestApp;
  let root: string;
  let networks: Sequential[];

  beforeAll(async () => {
    ({ root, networks } = await combinationsRepository());
    t = await makeTestApp({
      repository: root,
      env: { ENGINE: engine, DRIFT_SAMPLE_FRACTION: '1' },
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  for (const { title, c, name } of cases)
    it(title, async () => {
      const network = networks[cases.findIndex((k) => k.name === name)]!;
      const snapshot = t.registry.get(name);
      const loaded = snapshot.versions.get(1)!;
      expect(loaded.state, loaded.state === 'FAILED' ? loaded.reason : '').toBe('AVAILABLE');
      const served = t.registry.resolve(name);

      const x = randomInput(ROWS, served.compiled.inputWidth, 5);
      const plain = hookedInputSums(
        network,
        c.transform,
        c.inputShape,
        x,
        ROWS,
        LIVE_DRIFT_CLIP_SIGMAS,
      );
      const atol = Math.max(FUSION_ATOL, c.float32Atol ?? 0);
      expectClose(await predict(t, name, x, c), plain.outputs, atol, `${name} fused`);
      // The unfused path is the plain forward itself.
      expect(await predict(t, name, x, c, '?fused=false')).toEqual(plain.outputs);
      const library = await loadModel(join(root, name), { engine });
      try {
        expectClose(library.run(x, ROWS), plain.outputs, atol, `${name} loadModel`);
      } finally {
        library.close();
      }

      // Live drift: every BatchNorm observed, over the fused predict's rows (the unfused path and
      // the load's warm-up add none).
      const drift = t.app.deps.drift;
      const paths = bnPaths(network);
      if (paths.length === 0) {
        expect(drift.versionDrift(served)).toBeNull();
        return;
      }
      const report = drift.report(name).active!;
      expect(report.unobserved).toEqual([]);
      expect(report.layers.map((l) => l.path)).toEqual(paths);
      expect(report.rows).toBe(ROWS);
      const live = drift.versionDrift(served)!;
      const merged = live.moments.merged(Date.now()).layers;
      live.inputs.forEach((b, i) => {
        const reference = plain.sums.get(b.path)!.moments();
        const running = live.running[i]!;
        const got = merged[i]!;
        expect(got.count, `${b.path} count`).toBe(reference.count);
        for (let ch = 0; ch < b.channels; ch++) {
          // In running σ (the drift score's yardstick): a channel all beyond a bound has M2 = 0.
          const sigma = Math.sqrt(running.variance[ch]! + running.eps);
          expect(
            Math.abs(got.mean[ch]! - reference.mean[ch]!) / sigma,
            `${b.path} mean[${ch}]`,
          ).toBeLessThan(STATS_RTOL);
          expect(
            Math.abs(got.m2[ch]! - reference.m2[ch]!) / (reference.count * sigma ** 2),
            `${b.path} M2[${ch}]`,
          ).toBeLessThan(STATS_RTOL);
        }
      });
    });
});

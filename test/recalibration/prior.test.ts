/**
 * `prior` mode (Schneider et al. 2020): μ = (N·μ_source + n·μ_target)/(N + n), likewise σ², with
 * the target statistics of layer k computed with the earlier BatchNorms already blended.
 */
import { describe, expect, it } from 'vitest';
import { BatchNorm, type Sequential, Tensor } from '../../src/nn/index.js';
import { recalibrate } from '../../src/recalibration/index.js';
import { expectRelClose } from '../helpers/compare.js';
import { loadModel, nightShift, readDigitRows, WIDTH } from './helpers/digits-fixtures.js';
import { BN_STATISTICS_TOL, PRIOR_SOURCE_RTOL } from './helpers/recalibration-tolerances.js';
import { expectStatisticsClose } from './helpers/statistics-close.js';

const MODEL_DIR = 'test/fixtures/torch-model/digits-torch/1';
const night = nightShift(readDigitRows().pixels);
const n = night.length / WIDTH;

function batchNorms(network: Sequential): BatchNorm[] {
  return network.modules.filter((m) => m instanceof BatchNorm);
}

async function recalibrated(priorStrength?: number) {
  const model = loadModel(MODEL_DIR);
  const source = batchNorms(model.network).map((bn) => ({
    mean: bn.runningMean.data.slice(),
    variance: bn.runningVar.data.slice(),
  }));
  const result = await recalibrate(
    model.network,
    model.inputTransform,
    model.inputWidth,
    night,
    priorStrength === undefined ? { mode: 'exact' } : { mode: 'prior', priorStrength },
  );
  return { ...model, source, result };
}

/** Mean and unbiased variance (float64) of BatchNorm `index`'s inputs, network in eval mode. */
function targetStatistics(
  model: Awaited<ReturnType<typeof recalibrated>>,
  index: number,
): { mean: Float64Array; variance: Float64Array } {
  const { network, inputTransform } = model;
  let h = new Tensor(
    night.map(
      (x, i) => (x - inputTransform!.shift[i % WIDTH]!) * inputTransform!.scale[i % WIDTH]!,
    ),
    [n, WIDTH],
  );
  network.eval();
  for (let i = 0; i < index; i++) h = network.modules[i]!.forward(h);
  const c = h.shape[1]!;
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  for (let k = 0; k < c; k++) {
    let sum = 0;
    for (let r = 0; r < n; r++) sum += h.data[r * c + k]!;
    mean[k] = sum / n;
    let sq = 0;
    for (let r = 0; r < n; r++) sq += (h.data[r * c + k]! - mean[k]!) ** 2;
    variance[k] = sq / (n - 1);
  }
  return { mean, variance };
}

describe('prior mode', () => {
  it('N = 0 is exact, bit for bit', async () => {
    const exact = await recalibrated();
    const prior = await recalibrated(0);
    const a = batchNorms(prior.network);
    batchNorms(exact.network).forEach((bn, k) => {
      expect(a[k]!.runningMean.data).toEqual(bn.runningMean.data);
      expect(a[k]!.runningVar.data).toEqual(bn.runningVar.data);
    });
    expect(prior.result).toEqual(exact.result);
  });

  it('N = 1e12 keeps the source statistics', async () => {
    const prior = await recalibrated(1e12);
    batchNorms(prior.network).forEach((bn, k) => {
      const source = prior.source[k]!;
      expectRelClose(bn.runningVar.data, source.variance, PRIOR_SOURCE_RTOL, `var ${k}`);
      // Means are compared in units of the source σ: the blend legitimately moves a mean by
      // n/(N + n)·(μ_target − μ_source) ≈ 4e-10·(μ_target − μ_source), which for a mean near 0
      // (0.0034, with a target mean about 14 away) exceeds 1e-6 of the mean itself.
      bn.runningMean.data.forEach((m, c) => {
        const sigma = Math.sqrt(source.variance[c]! + bn.eps);
        expect(Math.abs(m - source.mean[c]!) / sigma, `mean ${k}[${c}]`).toBeLessThanOrEqual(
          PRIOR_SOURCE_RTOL,
        );
      });
    });
    for (const layer of prior.result.layers) {
      expect(layer.mean_shift).toBeLessThan(PRIOR_SOURCE_RTOL);
      expect(Math.abs(layer.std_ratio - 1)).toBeLessThan(PRIOR_SOURCE_RTOL);
    }
  });

  it('intermediate N blends source and target, with earlier layers already blended', async () => {
    const N = 360;
    const exact = await recalibrated();
    const prior = await recalibrated(N);
    const w = N / (N + n);
    const layers = batchNorms(prior.network);
    prior.result.layers.forEach((layer, k) => {
      const bn = layers[k]!;
      // The target of layer k, recomputed on the prior-recalibrated network itself.
      const target = targetStatistics(prior, layer.index);
      const source = prior.source[k]!;
      const blend = (s: ArrayLike<number>, t: Float64Array) =>
        Array.from(t, (tc, c) => w * s[c]! + (1 - w) * tc);
      expectStatisticsClose(
        { mean: bn.runningMean.data, variance: bn.runningVar.data },
        {
          mean: blend(source.mean, target.mean),
          variance: blend(source.variance, target.variance),
        },
        bn.eps,
        `prior ${k}`,
      );
      // Strictly between source and target wherever they differ.
      bn.runningVar.data.forEach((v, c) => {
        const lo = Math.min(source.variance[c]!, target.variance[c]!);
        const hi = Math.max(source.variance[c]!, target.variance[c]!);
        expect(v).toBeGreaterThanOrEqual(lo - BN_STATISTICS_TOL * (lo + bn.eps));
        expect(v).toBeLessThanOrEqual(hi + BN_STATISTICS_TOL * (hi + bn.eps));
      });
    });
    // The first BatchNorm's target is the same as exact's, so its mean moves n/(N + n) as far.
    const first = prior.result.layers[0]!;
    expect(first.mean_shift / exact.result.layers[0]!.mean_shift).toBeCloseTo(n / (N + n), 5);
    expect(first.mean_shift).toBeGreaterThan(0);
  });
});

/**
 * The before/after-BatchNorm pictures as layerPictures drew them up to commit ad58647, frozen
 * here: a test pins that the faster pictures are these, bit for bit. Per BatchNorm, the prefix
 * plan that stops at it (compileNetwork's `until`) run whole from the input rows on the given
 * engine; the range of each histogram from Hoare's FIND in a copy of the finite values; the
 * histogram counted value by value. One change since: the live variance is the two-pass
 * Σ(x − mean)²/(n − 1), not Σx² − mean·Σx, which cancels when a channel's mean is large against its
 * spread (test/service/pictures-exact.test.ts).
 */
import type { Histogram } from '../../src/drift/index.js';
import { selectInPlace } from '../../src/drift/order-statistics.js';
import { compileNetwork, createExecutor, type EngineName } from '../../src/inference/index.js';
import {
  BatchNorm,
  type FeatureTransform,
  namedModules,
  type Sequential,
} from '../../src/nn/index.js';
import type { LayerPicture } from '../../src/service/index.js';

export interface ReferenceSource {
  network: Sequential;
  inputTransform: FeatureTransform | undefined;
  inputShape: readonly number[];
  engine?: EngineName | undefined;
}

function referenceHistogram(
  values: ArrayLike<number>,
  min: number,
  max: number,
  bins: number,
): Histogram {
  const counts = new Array<number>(bins).fill(0);
  let below = 0;
  let above = 0;
  const scale = bins / (max - min);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) continue;
    if (v < min) below++;
    else if (v > max) above++;
    else counts[Math.min(bins - 1, Math.floor((v - min) * scale))]!++;
  }
  return { min, max, counts, below, above };
}

export function referenceRobustRange(values: ArrayLike<number>, tail = 0.005): [number, number] {
  const finite = new Float64Array(values.length);
  finite.set(values);
  let n = 0;
  for (let i = 0; i < finite.length; i++) {
    const v = finite[i]!;
    if (v - v === 0) finite[n++] = v;
  }
  if (n === 0) return [-1, 1];
  const rank = (q: number) => Math.min(n - 1, Math.floor(q * n));
  const low = rank(tail);
  const high = rank(1 - tail);
  const view = finite.subarray(0, n);
  let lo = selectInPlace(view, low);
  let hi = selectInPlace(view, high, high >= low ? low : 0);
  if (!(hi > lo)) {
    lo -= 1;
    hi += 1;
  }
  return [lo, hi];
}

export function referencePictures(
  source: ReferenceSource,
  input: Float32Array,
  rows: number,
  bins = 40,
): LayerPicture[] {
  return namedModules(source.network)
    .filter((entry): entry is [string, BatchNorm] => entry[1] instanceof BatchNorm)
    .map(([path, bn]) => {
      const prefix = compileNetwork(source.network, source.inputTransform, source.inputShape, {
        until: path,
      });
      const executor = createExecutor(prefix, {
        engine: source.engine ?? 'wasm',
        maxBatchSize: 256,
      });
      const x = executor.run(input, rows);
      executor.close();
      const channels = bn.numFeatures;
      const spatial = prefix.outputWidth / channels;
      const mean = bn.runningMean.data;
      const gamma = bn.weight?.value.data;
      const beta = bn.bias?.value.data;
      const std = Array.from(bn.runningVar.data, (v) => Math.sqrt(v + bn.eps));
      const y = new Float64Array(x.length);
      const sum = new Float64Array(channels);
      let negative = 0;
      let i = 0;
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < channels; c++) {
          for (let k = 0; k < spatial; k++, i++) {
            const v = x[i]!;
            sum[c] = sum[c]! + v;
            const out =
              ((v - mean[c]!) / std[c]!) * (gamma ? gamma[c]! : 1) + (beta ? beta[c]! : 0);
            y[i] = out;
            if (out < 0) negative++;
          }
        }
      }
      const n = rows * spatial;
      const liveMean = Array.from(sum, (s) => (n > 0 ? s / n : 0));
      const m2 = new Float64Array(channels);
      for (let j = 0; j < x.length; j++) {
        const c = Math.floor(j / spatial) % channels;
        m2[c] = m2[c]! + (x[j]! - liveMean[c]!) ** 2;
      }
      const liveStd = Array.from(m2, (q) => Math.sqrt((n > 1 ? q / (n - 1) : 0) + bn.eps));
      const [lo, hi] = referenceRobustRange(x);
      const [ylo, yhi] = referenceRobustRange(y);
      return {
        path,
        channels,
        before: referenceHistogram(x, lo, hi, bins),
        after: referenceHistogram(y, Math.min(ylo, -1), Math.max(yhi, 1), bins),
        below_zero: y.length === 0 ? 0 : negative / y.length,
        running: { mean: Array.from(mean), std },
        live: { mean: liveMean, std: liveStd },
      };
    });
}

/**
 * What each BatchNorm of a network reads, measured on the unfused eval forward (a pre-hook on every
 * BatchNorm, nested ones too): the direct computation the executors' statistics taps are held to.
 */
import { ChannelSums } from '../../src/inference/index.js';
import {
  applyFeatureTransform,
  BatchNorm,
  type FeatureTransform,
  namedModules,
  type Sequential,
  Tensor,
} from '../../src/nn/index.js';

/** x winsorized at [lo, hi] as the executors do it (±∞ and NaN: NaN). */
export const winsorize = (x: number, lo: number, hi: number): number =>
  (x < lo ? lo : Math.min(hi, x)) + x * 0;

/**
 * Per BatchNorm path (network order), Σx and Σx² per channel (float64) of its inputs over `rows`
 * raw rows `x` — a channel of a [N, C, *spatial] input is its N·spatial values, one value per row
 * for a BatchNorm1d after a Flatten (PyTorch's per-feature statistics) — each value winsorized
 * at running_mean ± sigmas·√(running_var + ε) of its channel with `sigmas` (what live drift sums);
 * `clipped` counts the values the bounds moved; `outputs`, the network's.
 */
export function hookedInputSums(
  network: Sequential,
  transform: FeatureTransform | undefined,
  shape: readonly number[],
  x: Float32Array,
  rows: number,
  sigmas?: number,
): { sums: Map<string, ChannelSums>; clipped: number; outputs: Float32Array } {
  const sums = new Map<string, ChannelSums>();
  let clipped = 0;
  for (const [path, m] of namedModules(network)) {
    if (!(m instanceof BatchNorm)) continue;
    const s = new ChannelSums(m.numFeatures);
    sums.set(path, s);
    m.preHook = (input) => {
      const [n, c, spatial] = m.layout(input.shape);
      for (let i = 0; i < n * c * spatial; i++) {
        const ch = Math.floor(i / spatial) % c;
        let v = input.data[i]!;
        if (sigmas !== undefined) {
          const half = sigmas * Math.sqrt(m.runningVar.data[ch]! + m.eps);
          const w = winsorize(v, m.runningMean.data[ch]! - half, m.runningMean.data[ch]! + half);
          if (w !== v) clipped++;
          v = w;
        }
        s.sum[ch] = s.sum[ch]! + v;
        s.sumSquares[ch] = s.sumSquares[ch]! + v * v;
      }
      s.count += n * spatial;
    };
  }
  const width = shape.reduce((a, b) => a * b, 1);
  let outputs: Float32Array;
  try {
    outputs = network
      .eval()
      .forward(new Tensor(applyFeatureTransform(x, width, transform), [rows, ...shape])).data;
  } finally {
    for (const [, m] of namedModules(network)) if (m instanceof BatchNorm) m.preHook = undefined;
  }
  return { sums, clipped, outputs };
}

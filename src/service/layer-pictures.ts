import {
  type Histogram,
  histogram,
  type LayerDrift,
  layerDrift,
  robustRange,
} from '../drift/index.js';
import {
  batchNormInputsOf,
  batchNormMoments,
  batchNormTaps,
  type CompiledPlan,
  compileNetwork,
  createExecutor,
  type EngineName,
  PlanExecutor,
} from '../inference/index.js';
import { BatchNorm, type FeatureTransform, namedModules, type Sequential } from '../nn/index.js';

/** What the pictures of a version are computed from (a served version or a model directory). */
export interface PictureSource {
  network: Sequential;
  inputTransform: FeatureTransform | undefined;
  inputShape: readonly number[];
  /** The version's fused plan (where each BatchNorm input is observable). */
  plan: CompiledPlan;
  /**
   * The engine that serves the version (default wasm), which also runs the pictures' prefix
   * plans: their values are the served engine's, and the wasm engine draws a convolutional
   * network's pictures ~5× faster than the JavaScript reference (bench/README.md, issue 12).
   */
  engine?: EngineName | undefined;
}

/** Per-channel mean and standard deviation √(variance + ε). */
export interface ChannelSummary {
  mean: number[];
  std: number[];
}

/** The seed's "Stabilizer" picture of one BatchNorm, for `rows` input rows. */
export interface LayerPicture {
  path: string;
  channels: number;
  /** The layer's inputs, all channels pooled, before normalisation. */
  before: Histogram;
  /**
   * Its outputs: γ·(x − running_mean)/√(running_var + ε) + β, pooled; the ReLU after it keeps
   * only the part above 0.
   */
  after: Histogram;
  /** Share of the outputs below 0 (what a following ReLU zeroes). */
  below_zero: number;
  running: ChannelSummary;
  /** The same statistics of these rows. */
  live: ChannelSummary;
}

export const PICTURE_BINS = 40;

/** Rows pictures are computed from at most (the dashboard's and the report's samples). */
export const MAX_PICTURE_ROWS = 4096;

/**
 * The before/after pictures of every BatchNorm of a network for `rows` input rows
 * ([rows, inputWidth]): each layer's input is the output of the prefix plan that stops at it
 * (compileNetwork's `until`: earlier BatchNorms folded, exactly as served).
 */
export function layerPictures(
  source: PictureSource,
  input: Float32Array,
  rows: number,
  bins = PICTURE_BINS,
): LayerPicture[] {
  const modules = namedModules(source.network).filter(
    (entry): entry is [string, BatchNorm] => entry[1] instanceof BatchNorm,
  );
  // The layers' outputs and robustRange's copies reuse two arrays of the widest layer: fresh ones
  // per layer cost more in first-touch page faults than the pictures' arithmetic.
  let widest = 0;
  const prefixes = modules.map(([path]) => {
    const plan = compileNetwork(source.network, source.inputTransform, source.inputShape, {
      until: path,
    });
    widest = Math.max(widest, plan.outputWidth);
    return plan;
  });
  const outputs = new Float64Array(rows * widest);
  const scratch = new Float64Array(rows * widest);
  return modules.map(([path, bn], index) => {
    const prefix = prefixes[index]!;
    // An executor for one call: no helper threads (threads 1), its memory collected with it.
    const executor = createExecutor(prefix, {
      engine: source.engine ?? 'wasm',
      maxBatchSize: Math.max(1, rows),
    });
    const x = executor.run(input, rows);
    const width = prefix.outputWidth;
    const channels = bn.numFeatures;
    const spatial = width / channels;
    const mean = bn.runningMean.data;
    const variance = bn.runningVar.data;
    const gamma = bn.weight?.value.data;
    const beta = bn.bias?.value.data;
    const std = Array.from(variance, (v) => Math.sqrt(v + bn.eps));
    const y = outputs.subarray(0, x.length);
    const sum = new Float64Array(channels);
    const sumSq = new Float64Array(channels);
    let negative = 0;
    let i = 0;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < channels; c++) {
        const m = mean[c]!;
        const sd = std[c]!;
        const g = gamma ? gamma[c]! : 1;
        const b = beta ? beta[c]! : 0;
        // Added in the order of the values, as one running sum per channel.
        let s = sum[c]!;
        let sq = sumSq[c]!;
        for (let k = 0; k < spatial; k++, i++) {
          const v = x[i]!;
          s += v;
          sq += v * v;
          const out = ((v - m) / sd) * g + b;
          y[i] = out;
          if (out < 0) negative++;
        }
        sum[c] = s;
        sumSq[c] = sq;
      }
    }
    const n = rows * spatial;
    const liveMean = Array.from(sum, (s) => (n > 0 ? s / n : 0));
    const liveStd = liveMean.map((m, c) =>
      Math.sqrt(Math.max(0, n > 1 ? (sumSq[c]! - m * sum[c]!) / (n - 1) : 0) + bn.eps),
    );
    const [lo, hi] = robustRange(x, undefined, scratch);
    const [ylo, yhi] = robustRange(y, undefined, scratch);
    return {
      path,
      channels,
      before: histogram(x, lo, hi, bins),
      // The after range always shows 0, where the ReLU cuts.
      after: histogram(y, Math.min(ylo, -1), Math.max(yhi, 1), bins),
      below_zero: y.length === 0 ? 0 : negative / y.length,
      running: { mean: Array.from(mean), std },
      live: { mean: liveMean, std: liveStd },
    };
  });
}

/**
 * The drift of every observable BatchNorm of a plan for `rows` input rows, through the executor's
 * statistics taps (Executor.accumulate; the offline report's drift table).
 */
export function driftOfRows(
  source: PictureSource,
  input: Float32Array,
  rows: number,
): LayerDrift[] {
  const inputs = batchNormInputsOf(
    source.plan,
    source.plan.batchNormInputs.filter((b) => b.tap).map((b) => b.path),
  );
  const executor = new PlanExecutor(source.plan, Math.max(1, Math.min(rows, 4096)));
  const probe = executor.createProbe(batchNormTaps(inputs));
  const width = source.plan.inputWidth;
  for (let r = 0; r < rows; r += 4096) {
    const k = Math.min(4096, rows - r);
    executor.accumulate(input.subarray(r * width, (r + k) * width), k, probe);
  }
  const modules = new Map(namedModules(source.network));
  return inputs.map((b, i) => {
    const bn = modules.get(b.path) as BatchNorm;
    return layerDrift(
      { path: b.path, mean: bn.runningMean.data, variance: bn.runningVar.data, eps: bn.eps },
      batchNormMoments(b, probe.sums[i]!),
    );
  });
}

import { setImmediate as nextTurn } from 'node:timers/promises';
import {
  type Histogram,
  histogram,
  type LayerDrift,
  layerDrift,
  robustRange,
  TURN_ROWS,
} from '../drift/index.js';
import {
  batchNormMoments,
  type CompiledPlan,
  compileNetwork,
  createExecutor,
  type EngineName,
  type Executor,
  PlanExecutor,
} from '../inference/index.js';
import {
  BatchNorm,
  channelM2,
  type FeatureTransform,
  namedModules,
  type Sequential,
  unbiasedVariance,
} from '../nn/index.js';
import { DEFAULT_CHUNK_ROWS } from '../recalibration/index.js';
import { liveDriftTaps } from './version-drift.js';

/** What the pictures of a version are computed from (a served version or a model directory). */
export interface PictureSource {
  network: Sequential;
  inputTransform: FeatureTransform | undefined;
  inputShape: readonly number[];
  /** The version's fused plan (where each BatchNorm input is observable). */
  plan: CompiledPlan;
  /**
   * The engine that serves the version (default wasm), which also runs the pictures' prefix
   * plans: their values are the served engine's, and digits-cnn's pictures took ~5× the CPU
   * time with the prefixes on the JavaScript reference (docs/drift.md, Pictures).
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

/** Rows a prefix executor holds at once; more rows run through it in slices of this many. */
const PREFIX_BATCH_ROWS = 256;

/** One BatchNorm of a version with the prefix plan that stops at it, and that plan's executor. */
export interface Prefix {
  path: string;
  bn: BatchNorm;
  plan: CompiledPlan;
  executor: Executor;
}

/** A drawing's arrays: the layer's values (float32, as its prefix gives them) and its outputs. */
interface PictureBuffers {
  values: Float32Array;
  outputs: Float64Array;
}

/** The prefixes of a version's plan for one engine, and the pictures' reused arrays. */
interface KeptPrefixes {
  engine: EngineName;
  prefixes: Prefix[];
  /**
   * Arrays for PREFIX_BATCH_ROWS rows of the widest layer, made on the first pictures and taken
   * by one drawing at a time (another one meanwhile makes its own): fresh arrays per call (3 MiB
   * for digits-cnn's 256 rows) cost more in first-touch page faults than the loop that fills them.
   */
  buffers: PictureBuffers | undefined;
}

/**
 * The prefixes of each version's fused plan (its CompiledPlan, which never changes once compiled),
 * made on its first pictures and kept with it. A wasm executor's shared memory is reclaimed only
 * by a full collection, which its size does not prompt: an executor per layer and call grew a
 * server's RSS by ~6 MB per GET …/drift/layers of digits-cnn (3.7 GB after 600 calls).
 */
const prefixesOf = new WeakMap<CompiledPlan, KeptPrefixes>();

function keptPrefixes(source: PictureSource): KeptPrefixes {
  const engine = source.engine ?? 'wasm';
  const known = prefixesOf.get(source.plan);
  if (known?.engine === engine) return known;
  const prefixes = namedModules(source.network)
    .filter((entry): entry is [string, BatchNorm] => entry[1] instanceof BatchNorm)
    .map(([path, bn]) => {
      const plan = compileNetwork(source.network, source.inputTransform, source.inputShape, {
        until: path,
      });
      // No helper threads (threads 1).
      return {
        path,
        bn,
        plan,
        executor: createExecutor(plan, { engine, maxBatchSize: PREFIX_BATCH_ROWS }),
      };
    });
  const kept: KeptPrefixes = { engine, prefixes, buffers: undefined };
  prefixesOf.set(source.plan, kept);
  return kept;
}

/** The BatchNorms of a version with their prefix plans and executors, made once per plan. */
export function picturePrefixes(source: PictureSource): readonly Prefix[] {
  return keptPrefixes(source).prefixes;
}

/**
 * The before/after pictures of every BatchNorm of a network for `rows` input rows
 * ([rows, inputWidth]): each layer's input is the output of the prefix plan that stops at it
 * (compileNetwork's `until`: earlier BatchNorms folded, exactly as served), run by the engine
 * that serves the version.
 */
export function layerPictures(
  source: PictureSource,
  input: Float32Array,
  rows: number,
  bins = PICTURE_BINS,
): LayerPicture[] {
  const drawing = drawLayers(source, input, rows, bins);
  for (;;) {
    const step = drawing.next();
    if (step.done) return step.value;
  }
}

/**
 * layerPictures' pictures, the same bit for bit, drawn over several turns of the event loop: a
 * pause after each TURN_ROWS rows through a prefix, after a layer's statistics and after each
 * histogram's work, so requests that arrive meanwhile wait for a few milliseconds of it instead
 * of the whole drawing (digits-cnn's 256 rows: docs/drift.md, Pictures). `input` must not change
 * until it settles.
 */
export async function layerPicturesInTurns(
  source: PictureSource,
  input: Float32Array,
  rows: number,
  bins = PICTURE_BINS,
): Promise<LayerPicture[]> {
  const drawing = drawLayers(source, input, rows, bins);
  for (;;) {
    const step = drawing.next();
    if (step.done) return step.value;
    await nextTurn();
  }
}

/** Which of a float64's two 32-bit words holds its sign and exponent. */
const HIGH_WORD = new Int32Array(Float64Array.of(-1).buffer)[1] === -1074790400 ? 1 : 0;

/**
 * A layer's outputs γ·(x − running_mean)/σ + β into `y`, with per channel Σx and the
 * count of outputs below 0.
 */
export function normalise(
  bn: BatchNorm,
  std: readonly number[],
  x: Float32Array,
  y: Float64Array,
  rows: number,
  spatial: number,
): { sum: Float64Array; negative: number } {
  const channels = bn.numFeatures;
  const mean = bn.runningMean.data;
  const gamma = bn.weight?.value.data;
  const beta = bn.bias?.value.data;
  const sum = new Float64Array(channels);
  const words = new Int32Array(y.buffer, y.byteOffset, 2 * y.length);
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
      for (let k = 0; k < spatial; k++, i++) {
        const v = x[i]!;
        s += v;
        const out = ((v - m) / sd) * g + b;
        y[i] = out;
        // out < 0 from the sign bit of what was stored, without a branch on it: the signs of a
        // layer's outputs follow no pattern, and a branch mispredicted on them cost more than the
        // rest of the loop. −0 and a NaN may carry the bit: taken back.
        const sign = words[2 * i + HIGH_WORD]! >>> 31;
        negative += sign;
        if (out === 0 || Number.isNaN(out)) negative -= sign;
      }
      sum[c] = s;
    }
  }
  return { sum, negative };
}

/**
 * The pictures, one piece of work between two yields: a prefix on TURN_ROWS rows (rows are
 * independent, so its values are those of one call on every row), a layer's statistics, the
 * picture of its inputs, the picture of its outputs.
 */
function* drawLayers(
  source: PictureSource,
  input: Float32Array,
  rows: number,
  bins: number,
): Generator<void, LayerPicture[], void> {
  const kept = keptPrefixes(source);
  const layers = kept.prefixes;
  const widest = layers.reduce((w, p) => Math.max(w, p.plan.outputWidth), 0);
  const reused = rows <= PREFIX_BATCH_ROWS;
  let buffers: PictureBuffers;
  if (reused && kept.buffers) {
    buffers = kept.buffers;
    kept.buffers = undefined;
  } else {
    const size = (reused ? PREFIX_BATCH_ROWS : rows) * widest;
    buffers = { values: new Float32Array(size), outputs: new Float64Array(size) };
  }
  const pictures: LayerPicture[] = [];
  try {
    for (const { path, bn, plan: prefix, executor } of layers) {
      const width = prefix.outputWidth;
      const x = buffers.values.subarray(0, rows * width);
      for (let r = 0; r < rows; r += TURN_ROWS) {
        const n = Math.min(TURN_ROWS, rows - r);
        const part = input.subarray(r * prefix.inputWidth, (r + n) * prefix.inputWidth);
        x.set(executor.run(part, n), r * width);
        yield;
      }
      const channels = bn.numFeatures;
      const spatial = width / channels;
      const std = Array.from(bn.runningVar.data, (v) => Math.sqrt(v + bn.eps));
      const y = buffers.outputs.subarray(0, x.length);
      const { sum, negative } = normalise(bn, std, x, y, rows, spatial);
      const n = rows * spatial;
      const liveMean = Array.from(sum, (s) => (n > 0 ? s / n : 0));
      // Two passes: a channel whose mean is large against its spread keeps its variance.
      const m2 = channelM2(x, rows, channels, spatial, liveMean);
      const liveStd = liveMean.map((_, c) => Math.sqrt(unbiasedVariance(m2[c]!, n) + bn.eps));
      yield;
      // Both read in place (robustRange copies nothing out of a typed array).
      const [lo, hi] = robustRange(x);
      const before = histogram(x, lo, hi, bins);
      yield;
      const [ylo, yhi] = robustRange(y);
      pictures.push({
        path,
        channels,
        before,
        // The after range always shows 0, where the ReLU cuts.
        after: histogram(y, Math.min(ylo, -1), Math.max(yhi, 1), bins),
        below_zero: y.length === 0 ? 0 : negative / y.length,
        running: { mean: Array.from(bn.runningMean.data), std },
        live: { mean: liveMean, std: liveStd },
      });
      yield;
    }
  } finally {
    if (reused) kept.buffers = buffers;
  }
  return pictures;
}

/**
 * The drift of every observable BatchNorm of a plan for `rows` input rows, through the executor's
 * statistics taps (Executor.accumulate; the offline report's drift table). The taps are live
 * drift's (liveDriftTaps: each value winsorized at running_mean ± LIVE_DRIFT_CLIP_SIGMAS running σ,
 * summed about running_mean), so the report's score, judged by DRIFT_THRESHOLD and
 * DRIFT_MIN_ROWS, is the one the server computes from the same rows; the pictures read the exact
 * values.
 */
export function driftOfRows(
  source: PictureSource,
  input: Float32Array,
  rows: number,
): LayerDrift[] {
  const { inputs, running, taps } = liveDriftTaps(source.plan, source.network);
  const executor = new PlanExecutor(source.plan, Math.max(1, Math.min(rows, DEFAULT_CHUNK_ROWS)));
  const probe = executor.createProbe(taps);
  const width = source.plan.inputWidth;
  for (let r = 0; r < rows; r += DEFAULT_CHUNK_ROWS) {
    const k = Math.min(DEFAULT_CHUNK_ROWS, rows - r);
    executor.accumulate(input.subarray(r * width, (r + k) * width), k, probe);
  }
  return inputs.map((b, i) => layerDrift(running[i]!, batchNormMoments(b, probe.sums[i]!)));
}

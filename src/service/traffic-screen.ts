import { setImmediate as nextTurn } from 'node:timers/promises';
import {
  keptMoments,
  type LayerDrift,
  LayerRowFeatures,
  layerDrift,
  modelDriftScore,
  OUTLIER_BOUND,
  rowOutlyingness,
  rowSummary,
  type SamplePredictions,
  TURN_ROWS,
} from '../drift/index.js';
import { picturePrefixes } from './layer-pictures.js';
import type { AvailableVersion } from './model-registry.js';
import { runBatch } from './predict.js';

/** A traffic sample without its outlying rows, and its drift without them. */
export interface ScreenedSample {
  /** The rows kept ([count, inputWidth]; `rows` itself when none was left out). */
  rows: Float32Array;
  count: number;
  /** Rows left out as outlying (docs/drift.md, "Outlying rows"). */
  outliers: number;
  /** The largest robust distance D_r of a kept row (0 when none is kept). */
  largestKeptDistance: number;
  /** The drift of the kept rows against the served version's running statistics. */
  score: number;
  layers: LayerDrift[];
}

/**
 * The rows of a traffic sample the served version answered, without those lying more than
 * `bound` (AUTO_RECALIBRATE_OUTLIER_BOUND, default OUTLIER_BOUND) robust standard deviations from the sample's median at some BatchNorm input
 * (drift/outlying-rows.ts), and the drift score of the rows kept — every BatchNorm's exact input
 * moments over them, through the prefix plans the pictures use (their values are the served
 * engine's). An automatic recalibration uses both: the score says whether the drift is the
 * traffic's or a few rows', the rows are what it recalibrates from. Runs TURN_ROWS rows per turn
 * of the event loop; `rows` must not change until it settles.
 */
export async function screenTrafficSample(
  served: AvailableVersion,
  rows: Float32Array,
  count: number,
  bound = OUTLIER_BOUND,
): Promise<ScreenedSample> {
  const prefixes = picturePrefixes({
    network: served.checkpoint.network,
    inputTransform: served.checkpoint.config.input_transform,
    inputShape: served.compiled.inputShape,
    plan: served.compiled.plan,
    engine: served.compiled.executor.engine,
  });
  const width = served.compiled.inputWidth;
  const layers = [];
  for (const { path, bn, plan, executor } of prefixes) {
    const channels = bn.numFeatures;
    const features = new LayerRowFeatures(count, channels, plan.outputWidth / channels);
    for (let r = 0; r < count; r += TURN_ROWS) {
      const n = Math.min(TURN_ROWS, count - r);
      // Read before the next run: the executor's output may be a view of its own memory.
      features.add(r, n, executor.run(rows.subarray(r * width, (r + n) * width), n));
      await nextTurn();
    }
    const running = {
      path,
      mean: bn.runningMean.data,
      variance: bn.runningVar.data,
      eps: bn.eps,
    };
    layers.push({ features, running, runningVar: bn.runningVar.data, eps: bn.eps });
  }
  const distance = rowOutlyingness(layers, count);
  const kept: number[] = [];
  let largestKeptDistance = 0;
  for (let r = 0; r < count; r++)
    if (distance[r]! <= bound) {
      kept.push(r);
      largestKeptDistance = Math.max(largestKeptDistance, distance[r]!);
    }
  const drifts = layers.map((l) => layerDrift(l.running, keptMoments(l.features, kept)));
  const outliers = count - kept.length;
  let keptRows = rows;
  if (outliers > 0) {
    keptRows = new Float32Array(kept.length * width);
    kept.forEach((r, i) => {
      keptRows.set(rows.subarray(r * width, (r + 1) * width), i * width);
    });
  }
  return {
    rows: keptRows,
    count: kept.length,
    outliers,
    largestKeptDistance,
    score: modelDriftScore(drifts),
    layers: drifts,
  };
}

/**
 * How a version classifies a sample's rows (promotionRefusal's evidence): rows per predicted
 * label, rows whose outputs are not finite, and the mean entropy of the finite rows' class
 * probabilities, TURN_ROWS rows per turn of the event loop. Run on the version directly: these
 * rows are not traffic, and no statistics are gathered.
 */
export async function samplePredictions(
  version: AvailableVersion,
  rows: Float32Array,
  count: number,
): Promise<SamplePredictions> {
  const width = version.compiled.inputWidth;
  const counts = new Map<string, number>();
  let nonFinite = 0;
  let entropy = 0;
  let classified = false;
  for (let r = 0; r < count; r += TURN_ROWS) {
    const n = Math.min(TURN_ROWS, count - r);
    const out = runBatch(version, rows.subarray(r * width, (r + n) * width), n);
    for (let i = 0; i < n; i++) {
      const row = out.outputs.subarray(i * out.outputWidth, (i + 1) * out.outputWidth);
      if (!row.every(Number.isFinite)) nonFinite++;
      else if (out.labels && out.probabilities) {
        classified = true;
        counts.set(out.labels[i]!, (counts.get(out.labels[i]!) ?? 0) + 1);
        entropy += rowSummary(out.probabilities, i * out.outputWidth, out.outputWidth).entropy;
      }
    }
    await nextTurn();
  }
  const finite = count - nonFinite;
  return {
    rows: count,
    counts: [...counts.values()],
    nonFinite,
    meanEntropy: classified && finite > 0 ? entropy / finite : undefined,
  };
}

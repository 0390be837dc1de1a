import {
  type DriftRule,
  type LayerDrift,
  layerDrift,
  modelDriftScore,
  type RunningStatistics,
  recalibrationRecommended,
  WindowedMoments,
} from '../drift/index.js';
import {
  type BatchNormInput,
  batchNormMoments,
  batchNormTaps,
  type StatisticsProbe,
} from '../inference/index.js';
import { BatchNorm, namedModules } from '../nn/index.js';
import type { AvailableVersion } from './model-registry.js';

/** Rows gathered in a probe before they are merged into the current window. */
const FOLD_ROWS = 64;

export interface DriftWindowingOptions {
  windowMs: number;
  windows: number;
}

/** One version's drift: per BatchNorm layer and for the whole model. */
export interface VersionDriftReport {
  version: number;
  /** Rows whose statistics are in the horizon (the last windows·windowMs). */
  rows: number;
  score: number;
  recommended: boolean;
  layers: LayerDrift[];
  /** BatchNorms whose inputs cannot be observed on the fused plan, with why. */
  unobserved: { path: string; reason: string }[];
  /** Per time window inside the horizon: its start, rows and model score. */
  timeline: { start: string; rows: number; score: number }[];
}

/**
 * The live statistics of one served version: the executor's probe on every BatchNorm input the
 * fused plan can observe, folded every few dozen rows into a ring of time windows, compared with
 * the running statistics the version was trained (or recalibrated) with.
 */
export class VersionDrift {
  readonly probe: StatisticsProbe;
  readonly inputs: BatchNormInput[];
  readonly running: RunningStatistics[];
  readonly unobserved: { path: string; reason: string }[];
  readonly moments: WindowedMoments;
  private pendingRows = 0;
  private pendingWindow = Number.NaN;

  constructor(
    readonly served: AvailableVersion,
    options: DriftWindowingOptions,
  ) {
    const plan = served.compiled.plan;
    this.inputs = plan.batchNormInputs.filter((b) => b.tap !== undefined);
    this.unobserved = plan.batchNormInputs
      .filter((b) => b.tap === undefined)
      .map((b) => ({ path: b.path, reason: b.reason ?? 'not observable' }));
    const modules = new Map(namedModules(served.checkpoint.network));
    this.running = this.inputs.map((b) => {
      const bn = modules.get(b.path);
      if (!(bn instanceof BatchNorm)) throw new Error(`the network has no BatchNorm ${b.path}`);
      return {
        path: b.path,
        mean: bn.runningMean.data,
        variance: bn.runningVar.data,
        eps: bn.eps,
      };
    });
    this.probe = served.compiled.executor.createProbe(batchNormTaps(this.inputs));
    this.moments = new WindowedMoments(
      this.inputs.map((b) => b.channels),
      options.windowMs,
      options.windows,
    );
  }

  /** After an engine call that carried the probe: merge now and then, and at window changes. */
  gathered(rows: number, now: number): void {
    const window = Math.floor(now / this.moments.windowMs);
    if (this.pendingRows > 0 && window !== this.pendingWindow) this.fold(now);
    this.pendingWindow = window;
    this.pendingRows += rows;
    if (this.pendingRows >= FOLD_ROWS) this.fold(now);
  }

  /** Merges the probe's sums into the current window and resets them. */
  fold(now: number): void {
    if (this.pendingRows === 0) return;
    const moments = this.inputs.map((b, i) => batchNormMoments(b, this.probe.sums[i]!));
    this.moments.add(now, this.pendingRows, moments);
    this.probe.reset();
    this.pendingRows = 0;
  }

  /** The model score and rows over the horizon (the report without its per-window timeline). */
  score(now: number): { score: number; rows: number } {
    this.fold(now);
    const merged = this.moments.merged(now);
    return {
      score: modelDriftScore(this.running.map((r, i) => layerDrift(r, merged.layers[i]!))),
      rows: merged.rows,
    };
  }

  report(now: number, rule: DriftRule): VersionDriftReport {
    this.fold(now);
    const merged = this.moments.merged(now);
    const layers = this.running.map((r, i) => layerDrift(r, merged.layers[i]!));
    const score = modelDriftScore(layers);
    const timeline = this.moments.windowsAt(now).map((w) => ({
      start: new Date(w.start).toISOString(),
      rows: w.rows,
      score: modelDriftScore(
        this.running.map((r, i) => {
          const m = w.layers[i]!;
          return layerDrift(r, { count: m.count, mean: m.mean, m2: m.m2 });
        }),
      ),
    }));
    return {
      version: this.served.version,
      rows: merged.rows,
      score,
      recommended: recalibrationRecommended(rule, score, merged.rows),
      layers,
      unobserved: this.unobserved,
      timeline,
    };
  }
}

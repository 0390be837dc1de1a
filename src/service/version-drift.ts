import {
  type DriftRule,
  type LayerDrift,
  LIVE_DRIFT_CLIP_SIGMAS,
  layerDrift,
  modelDriftScore,
  type RunningStatistics,
  recalibrationRecommended,
  WindowedMoments,
} from '../drift/index.js';
import {
  type BatchNormInput,
  batchNormMoments,
  type CompiledPlan,
  clippedBatchNormTaps,
  type StatisticsProbe,
  type StatisticsTap,
} from '../inference/index.js';
import type { Module } from '../nn/index.js';
import { batchNormLookup } from './batch-norm-lookup.js';
import type { SharedWindow } from './drift-share.js';
import type { AvailableVersion } from './model-registry.js';

/**
 * Rows gathered in a probe at most before they are merged into the current window. Reads (score,
 * report, share) and window changes fold too, so this only bounds how long Σx and Σx² grow before
 * they become moments (merged pairwise, Chan et al.); folding every call would cost a 256-row call
 * 1 %.
 */
const FOLD_ROWS = 4096;

export interface DriftWindowingOptions {
  windowMs: number;
  windows: number;
  /** Other processes serve the same versions: keep what this one saw for takeShare. */
  share?: boolean;
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
 * What live drift reads of a version: the BatchNorm inputs the fused plan can observe, with the
 * running statistics they are compared with and the executor's taps that read them — each value
 * winsorized at its channel's running_mean ± LIVE_DRIFT_CLIP_SIGMAS running σ, so a few absurd rows
 * cannot move the windowed moments far (recalibration's taps are exact) —, and those it cannot,
 * with why. VersionDrift's probe, and the taps a version's load warms up (inference/warm-up.ts,
 * given them by model-registry.ts' warmUpTaps).
 */
export function liveDriftTaps(
  plan: CompiledPlan,
  network: Module,
): {
  inputs: BatchNormInput[];
  running: RunningStatistics[];
  unobserved: { path: string; reason: string }[];
  taps: StatisticsTap[];
} {
  const inputs = plan.batchNormInputs.filter((b) => b.tap !== undefined);
  const unobserved = plan.batchNormInputs
    .filter((b) => b.tap === undefined)
    .map((b) => ({ path: b.path, reason: b.reason ?? 'not observable' }));
  const batchNormAt = batchNormLookup(network);
  const running = inputs.map((b) => {
    const bn = batchNormAt(b.path);
    return { path: b.path, mean: bn.runningMean.data, variance: bn.runningVar.data, eps: bn.eps };
  });
  const taps = clippedBatchNormTaps(inputs, running, LIVE_DRIFT_CLIP_SIGMAS);
  return { inputs, running, unobserved, taps };
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
  /** Every process's traffic this one knows of: its own and what the others shared. */
  readonly moments: WindowedMoments;
  /** This process's own traffic since its last share (shared: WORKERS > 1). */
  private readonly unshared: WindowedMoments;
  /** Per layer, where fold puts a batch's moments and score merges the windows (reused). */
  private readonly batch: { mean: Float64Array; m2: Float64Array }[];
  private pendingRows = 0;
  /** Whether other processes are told (WORKERS > 1): then unshared collects too. */
  private readonly sharing: boolean;
  private pendingWindow = Number.NaN;
  /**
   * Until then every call is folded as it ends (ms since the epoch): set for a window after a
   * refused call, so that the next refused call drops its own sums only, not the other requests'
   * since the last fold (a client sending one overflowing row now and then cannot keep the drift
   * statistics empty).
   */
  private foldEachCallUntil = Number.NEGATIVE_INFINITY;

  constructor(
    readonly served: AvailableVersion,
    options: DriftWindowingOptions,
  ) {
    const observed = liveDriftTaps(served.compiled.plan, served.checkpoint.network);
    this.inputs = observed.inputs;
    this.unobserved = observed.unobserved;
    this.running = observed.running;
    this.probe = served.compiled.executor.createProbe(observed.taps);
    const channels = this.inputs.map((b) => b.channels);
    this.moments = new WindowedMoments(channels, options.windowMs, options.windows);
    this.unshared = new WindowedMoments(channels, options.windowMs, options.windows);
    this.sharing = options.share ?? false;
    this.batch = channels.map((c) => ({ mean: new Float64Array(c), m2: new Float64Array(c) }));
  }

  /** After an engine call that carried the probe: merge now and then, and at window changes. */
  gathered(rows: number, now: number): void {
    const window = Math.floor(now / this.moments.windowMs);
    if (this.pendingRows > 0 && window !== this.pendingWindow) this.fold(now);
    this.pendingWindow = window;
    this.pendingRows += rows;
    if (this.pendingRows >= FOLD_ROWS || now < this.foldEachCallUntil) this.fold(now);
  }

  /**
   * An engine call that carried the probe had a request refused, and the taps cannot tell its
   * rows from the others': drops the probe's sums since the last fold — at most FOLD_ROWS rows,
   * and for a window after a refusal only that call's (every call is folded as it ends then).
   */
  refused(now: number): void {
    this.discard();
    this.foldEachCallUntil = now + this.moments.windowMs;
  }

  /** Drops the probe's sums since the last fold. */
  private discard(): void {
    this.probe.reset();
    this.pendingRows = 0;
  }

  /**
   * Merges the probe's sums into the current window and resets them. Sums that are not finite (a
   * value overflowed inside the network, yet its row's outputs were finite, e.g. −∞ clamped by a
   * ReLU) are dropped with the rows they came with: one such value would make every score of the
   * horizon NaN until its window expires. As after a refused call, every call is then folded as
   * it ends for a window, so that the next such row drops its own call's sums only.
   */
  fold(now: number): void {
    if (this.pendingRows === 0) return;
    // On the request path: typed arrays of more than 64 bytes live outside V8's heap and cost
    // microseconds each to allocate, so the moments go into arrays kept for the purpose.
    const moments = this.inputs.map((b, i) =>
      batchNormMoments(b, this.probe.sums[i]!, this.batch[i]),
    );
    if (moments.every(finiteMoments)) {
      this.moments.add(now, this.pendingRows, moments);
      if (this.sharing) this.unshared.add(now, this.pendingRows, moments);
    } else this.foldEachCallUntil = now + this.moments.windowMs;
    this.discard();
  }

  /**
   * The moments of this process's own traffic since the last call, per window (the arrays are
   * copies), for the other processes; empty when nothing new was seen.
   */
  takeShare(now: number): SharedWindow[] {
    this.fold(now);
    const windows = this.unshared.windowsAt(now).map((w) => ({
      start: w.start,
      rows: w.rows,
      layers: w.layers.map((m) => ({ count: m.count, mean: [...m.mean], m2: [...m.m2] })),
    }));
    this.unshared.reset();
    return windows;
  }

  /** Merges windows another process shared (their layers must be this version's). */
  mergeShared(now: number, windows: readonly SharedWindow[]): void {
    for (const w of windows) {
      if (
        w.layers.length !== this.inputs.length ||
        w.layers.some(
          (m, i) => m.mean.length !== this.inputs[i]!.channels || m.m2.length !== m.mean.length,
        )
      )
        throw new RangeError(
          `shared drift statistics of ${this.served.name} version ${this.served.version} do not fit its BatchNorms`,
        );
      this.moments.addWindow(now, w.start, w.rows, w.layers);
    }
  }

  /** The model score and rows over the horizon (the report without its per-window timeline). */
  score(now: number): { score: number; rows: number } {
    this.fold(now);
    const merged = this.moments.mergedInPlace(now);
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

function finiteMoments(m: { mean: Float64Array; m2: Float64Array }): boolean {
  for (let c = 0; c < m.mean.length; c++)
    if (!Number.isFinite(m.mean[c]!) || !Number.isFinite(m.m2[c]!)) return false;
  return true;
}

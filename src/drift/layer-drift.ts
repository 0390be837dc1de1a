import { unbiasedVariance } from '../nn/index.js';

/**
 * K of the live drift statistics' clip: each value a live drift tap reads is winsorized at
 * running_mean_c ± K·√(running_var_c + ε) of its BatchNorm channel before it is summed, so that a
 * row's influence on the windowed moments is bounded (docs/drift.md, "Bounded influence").
 */
export const LIVE_DRIFT_CLIP_SIGMAS = 16;

/** What a layer's live inputs look like against its running (training) statistics. */
export interface LayerDrift {
  /** The BatchNorm's state-dict prefix: `"1"`, or `"3.body.1"` inside a residual block. */
  path: string;
  channels: number;
  /** Values per channel seen (rows × H·W for a BatchNorm2d). */
  count: number;
  /** Mean over channels of |μ_live − μ_run| / √(σ²_run + ε): the standardised mean shift. */
  mean_shift: number;
  /** Mean over channels of ln(√(σ²_live + ε) / √(σ²_run + ε)): < 0 narrower, > 0 wider. */
  log_std_ratio: number;
  /** Mean over channels of |standardised shift| + |log std ratio|: 0 when nothing moved. */
  score: number;
}

/** The moments a layer was trained with (running_mean, running_var) and its ε. */
export interface RunningStatistics {
  path: string;
  mean: ArrayLike<number>;
  variance: ArrayLike<number>;
  eps: number;
}

/**
 * Live moments: count per channel, mean and M2 = Σ(x − mean)² — on the live path of the values
 * winsorized at running_mean ± LIVE_DRIFT_CLIP_SIGMAS·√(running_var + ε) (version-drift.ts).
 */
export interface LiveMoments {
  count: number;
  mean: ArrayLike<number>;
  m2: ArrayLike<number>;
}

/**
 * The drift of one BatchNorm: per channel c, z_c = (μ_live − μ_run)/σ_run and
 * r_c = ln(σ_live/σ_run) with σ = √(variance + ε) (ε as in the normalisation itself, so a constant
 * channel cannot divide by zero; σ²_live is the unbiased M2/(n − 1), PyTorch's running_var
 * convention; μ_live and σ²_live are those of `live`: for live traffic, of the winsorized
 * values, so m rows among N move z_c by at most m·(K + |z̄_c|)/N, K = LIVE_DRIFT_CLIP_SIGMAS:
 * test/drift/bounded-influence.test.ts), averaged over channels. A shift of the mean by one training standard deviation
 * scores 1; so does a spread e ≈ 2.72 times wider or narrower.
 */
export function layerDrift(running: RunningStatistics, live: LiveMoments): LayerDrift {
  const channels = running.mean.length;
  let shift = 0;
  let logRatio = 0;
  let score = 0;
  const n = live.count;
  for (let c = 0; c < channels; c++) {
    const sigmaRun = Math.sqrt(running.variance[c]! + running.eps);
    const liveVar = unbiasedVariance(live.m2[c]!, n);
    const z = Math.abs(live.mean[c]! - running.mean[c]!) / sigmaRun;
    const r = Math.log(Math.sqrt(liveVar + running.eps) / sigmaRun);
    shift += z;
    logRatio += r;
    score += z + Math.abs(r);
  }
  const per = (v: number) => (channels === 0 || n < 2 ? 0 : v / channels);
  return {
    path: running.path,
    channels,
    count: n,
    mean_shift: per(shift),
    log_std_ratio: per(logRatio),
    score: per(score),
  };
}

/** A model's drift: its worst layer's score (a shift anywhere in the network matters). */
export function modelDriftScore(layers: readonly LayerDrift[]): number {
  return layers.reduce((worst, l) => Math.max(worst, l.score), 0);
}

export interface DriftRule {
  /** Scores above this recommend recalibration (DRIFT_THRESHOLD). */
  threshold: number;
  /** Rows needed before a score is trusted (DRIFT_MIN_ROWS). */
  minRows: number;
}

/** Whether `rows` are too few for the rule to decide anything (fewer than DRIFT_MIN_ROWS). */
export function tooFewRows(rule: Pick<DriftRule, 'minRows'>, rows: number): boolean {
  return rows < rule.minRows;
}

/** Recalibration is recommended when enough rows were seen and the score is above the threshold. */
export function recalibrationRecommended(rule: DriftRule, score: number, rows: number): boolean {
  return !tooFewRows(rule, rows) && score > rule.threshold;
}

export { distinctRows } from './distinct-rows.js';
export { rowsWithFiniteStatistics, rowsWithFiniteStatisticsInBlocks } from './finite-rows.js';
export { type Histogram, histogram, robustRange } from './histogram.js';
export {
  type DriftRule,
  type LayerDrift,
  LIVE_DRIFT_CLIP_SIGMAS,
  type LiveMoments,
  layerDrift,
  modelDriftScore,
  type RunningStatistics,
  recalibrationRecommended,
  tooFewRows,
} from './layer-drift.js';
export {
  keptMoments,
  LayerRowFeatures,
  MAD_TO_SIGMA,
  massPoint,
  median,
  OUTLIER_BOUND,
  rowOutlyingness,
  SCALE_FLOOR,
} from './outlying-rows.js';
export {
  COLLAPSE_SHARE,
  entropyChange,
  promotionRefusal,
  type SamplePredictions,
  topClassShare,
} from './promotion-guard.js';
export { RecentRows } from './recent-rows.js';
export { Reservoir } from './reservoir.js';
export { allocateDraw, type UniformSample, uniformUnion } from './sample-union.js';
export { rowSummary, ShadowComparison, type ShadowSummary } from './shadow-comparison.js';
export { TURN_ROWS } from './turn-rows.js';
export { type MomentWindow, WindowedMoments } from './windowed-moments.js';

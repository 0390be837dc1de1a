export { createRecalibrator, recalibrate } from './create-recalibrator.js';
export type { LayerShift } from './layer-shift.js';
export {
  BATCH_SIZE_RANGE,
  DEFAULT_BATCH_SIZE,
  DEFAULT_CHUNK_ROWS,
  DEFAULT_MAX_SAMPLES,
  DEFAULT_PRIOR_STRENGTH,
  MAX_PRIOR_STRENGTH,
  MAX_RECALIBRATION_BATCH_SIZE,
  PRIOR_STRENGTH_RANGE,
  RECALIBRATION_MODES,
  type RecalibrationMode,
  type RecalibrationOptions,
  type RecalibrationProgress,
} from './recalibration-options.js';
export type { RecalibrationResult, Recalibrator } from './recalibrator.js';
export { MemoryRowStore, type RowBlockSource, type RowStore, ViewRowStore } from './row-store.js';
export { checkCapacity, tooManySamples } from './row-validation.js';

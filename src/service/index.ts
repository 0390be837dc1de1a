export {
  MAX_BATCH_SIZE as MAX_RECALIBRATION_BATCH_SIZE,
  MAX_PRIOR_STRENGTH,
} from '../recalibration/index.js';
export { JOBS_DIR, loadModelDirectory } from '../repository/index.js';
export { featureNamesOf } from './feature-names.js';
export { jobRecordSchema, type TraceContext, traceContextSchema } from './job-record.js';
export {
  JOB_RETENTION_MS,
  JOB_SWEEP_INTERVAL_MS,
  type Job,
  JobRegistry,
  type JobState,
} from './job-registry.js';
export { type Log, silentLog } from './logger.js';
export {
  type AvailableVersion,
  ModelRegistry,
  type ModelSnapshot,
  type RegistryOptions,
  type ServedVersion,
  type VersionState,
} from './model-registry.js';
export { exportModelOnnx, type OnnxExport, type OnnxExportRequest } from './onnx-export.js';
export {
  checkRowWidths,
  type PredictInput,
  type PredictOutput,
  packRows,
  predict,
  runBatch,
} from './predict.js';
export { type OpenedModel, openModelDirectory } from './predict-directory.js';
export { publishCheckpoint } from './publish-checkpoint.js';
export {
  type RecalibrationOutcome,
  type RecalibrationRequest,
  RecalibrationService,
  RecalibrationSession,
} from './recalibration-service.js';
export { parseServerConfig, type ServerConfig, serverConfigSchema } from './server-config.js';
export {
  INPUT_TENSOR,
  LABEL_TENSOR,
  PROBABILITIES_TENSOR,
  rawOutputTensor,
} from './tensor-names.js';

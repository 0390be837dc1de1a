export {
  MAX_BATCH_SIZE as MAX_RECALIBRATION_BATCH_SIZE,
  MAX_PRIOR_STRENGTH,
} from '../recalibration/index.js';
export { JOBS_DIR, loadModelDirectory } from '../repository/index.js';
export { featureNamesOf } from './feature-names.js';
export { type Job, JobRegistry, type JobState, jobRecordSchema } from './job-registry.js';
export { type Log, silentLog } from './logger.js';
export {
  type AvailableVersion,
  ModelRegistry,
  type ModelSnapshot,
  type RegistryOptions,
  type ServedVersion,
  type VersionState,
} from './model-registry.js';
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

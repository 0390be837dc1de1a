export { JOBS_DIR, loadModelDirectory } from '../repository/index.js';
export { bearerCheck } from './bearer-token.js';
export { type Accepts, compileAccepts } from './compiled-schema.js';
export { type BatchingPolicy, type BatchReport, DynamicBatcher } from './dynamic-batcher.js';
export { InferenceService, type InferenceServiceOptions } from './inference-service.js';
export { type Job, JobRegistry, type JobState } from './job-registry.js';
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
  checkInputTensor,
  failInput,
  INPUT_NAME,
  type InputTensorHeader,
  modelMetadata,
  OIP_EXTENSIONS,
  type OutputName,
  type OutputTensor,
  outputNames,
  outputTensor,
  requestedOutputs,
} from './open-inference.js';
export {
  checkBatchSize,
  checkFiniteOutputs,
  checkRowWidths,
  type PredictInput,
  type PredictOutput,
  packRows,
  predict,
  runBatch,
  runSources,
} from './predict.js';
export { type OpenedModel, openModelDirectory } from './predict-directory.js';
export { publishCheckpoint } from './publish-checkpoint.js';
export {
  type RecalibrationOutcome,
  type RecalibrationRequest,
  RecalibrationService,
  RecalibrationSession,
} from './recalibration-service.js';
export {
  flatRows,
  float32Rows,
  type InputBuffer,
  nestedRows,
  type RowSource,
} from './row-source.js';
export { parseServerConfig, type ServerConfig, serverConfigSchema } from './server-config.js';
export {
  bytesTensor,
  checkFinite,
  FP32_BYTES,
  float32Bytes,
  readFloat32,
} from './tensor-codec.js';

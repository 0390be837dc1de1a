// A version's metrics.json, by which train tells the directory it staged once renamed.
export {
  METRICS_FILE,
  MODEL_NAME_CHARS,
  MODEL_NAME_FIRST_CHARS,
  MODEL_NAME_PATTERN,
  modelNameSchema,
  recalibrationMetricsSchema,
  type Task,
  taskSchema,
  trainingMetricsSchema,
} from '../checkpoint/index.js';
// The opset the export writes, for the descriptions of the route and the CLI.
export { ONNX_OPSET } from '../inference/index.js';
export {
  BATCH_SIZE_RANGE as RECALIBRATION_BATCH_SIZE_RANGE,
  checkCapacity as checkRecalibrationCapacity,
  DEFAULT_BATCH_SIZE as DEFAULT_RECALIBRATION_BATCH_SIZE,
  DEFAULT_CHUNK_ROWS,
  DEFAULT_PRIOR_STRENGTH,
  MAX_PRIOR_STRENGTH,
  PRIOR_STRENGTH_RANGE,
  RECALIBRATION_MODES,
  type RecalibrationMode,
  tooManySamples,
} from '../recalibration/index.js';
export {
  ACTIVE_RECORD_LOCK_WAIT_MS,
  // The server's start-up cleanup words the pins it dropped as the registry does.
  droppedPinsWords,
  intentsReplacedWords,
  isThisProcess,
  JOBS_DIR,
  type LockOwner,
  loadModelDirectory,
  // train --out: a model's or a version's directory is no repository.
  modelContentAt,
  // The recalibrate CLI checks its interrupt released the lock before saying so.
  modelLockHolder,
  STALE_AFTER_MS,
  // The errnos of STORAGE_FULL and STORAGE_UNAVAILABLE, for the API's documentation.
  storageErrnos,
  VERSION_NAME_PATTERN,
} from '../repository/index.js';
// The CSV reader of an upload as it arrives, for http/ (which imports service/ only).
export { type CsvRecord, csvRecords } from '../training/index.js';
export { autoCandidateSchema, autoStatusSchema } from './auto-status-schema.js';
export { bearerTokenCheck } from './bearer-token.js';
export { type CallerSignal, callerGone } from './caller-signal.js';
export {
  CLASSIFICATION_PARAMETER,
  checkClassifications,
  classificationCount,
  classifiedTensor,
} from './classification.js';
export { type Accepts, compileAccepts } from './compiled-schema.js';
export {
  createServices,
  type ServiceMetricsSink,
  type Services,
  type ServicesOptions,
} from './compose.js';
export {
  type CsvFeatureModel,
  CsvFeatureReader,
  checkNamedLabelColumn,
  csvFeatureColumns,
  csvFeatureRows,
  labelColumnFor,
  labelColumnWithoutColumns,
  noCsvDataRows,
} from './csv-features.js';
export {
  type AutoRecalibrationStatus,
  type DriftOptions,
  type DriftReport,
  DriftService,
  type LayerPictures,
  type LeftOut,
  PEER_RECENT_REUSE_MS,
  type PeerSampleCollector,
  PICTURE_SAMPLE_ROWS,
  recentRowsOf,
  SAMPLE_KINDS,
  SAMPLE_ROWS_PER_CALL,
  type SampleKind,
} from './drift-service.js';
export {
  AUTO_RECALIBRATE_MODES,
  type AutoRecalibrate,
  DEFAULT_DRIFT_THRESHOLD,
} from './drift-settings.js';
export {
  type DriftShare,
  decodeSampleRows,
  driftShareSchema,
  encodeSampleRows,
  type TrafficSampleMessage,
  trafficSampleSchema,
} from './drift-share.js';
export {
  type BatchingPolicy,
  type BatchReport,
  type CallerCount,
  DynamicBatcher,
} from './dynamic-batcher.js';
export { defaultEngineThreads, nodeEngineOptions, prepareWasmRuntime } from './engine-runtime.js';
export { trainingInfoOf } from './feature-names.js';
export type { InferenceObservation, InferenceObserver } from './inference-observation.js';
export {
  InferenceService,
  type InferenceServiceOptions,
  OVERLOADED_RETRY_AFTER_SECONDS,
} from './inference-service.js';
export {
  FINITE_NUMBER_MESSAGE,
  FLOAT32_MAX,
  FLOAT32_RANGE_MESSAGE,
  failInput,
  float32Value,
  InputShape,
  notANumberMessage,
  ROW_ARRAY_MESSAGE,
  roundsToFiniteFloat32,
  rowWidthMessage,
} from './input-shape.js';
export { jobRecordSchema, type TraceContext, traceContextSchema } from './job-record.js';
export {
  JOB_RETENTION_MS,
  JOB_SWEEP_INTERVAL_MS,
  type Job,
  JobRegistry,
  type JobState,
  jobIdSchema,
} from './job-registry.js';
export {
  type ChannelSummary,
  driftOfRows,
  type LayerPicture,
  layerPictures,
  layerPicturesInTurns,
  type PictureSource,
  picturePrefixes,
} from './layer-pictures.js';
export { type CompiledLayer, compiledLayers, foldedBatchNorms } from './layer-report.js';
export { type LoadedModel, type LoadModelOptions, loadModel } from './load-model.js';
export { type Log, silentLog } from './logger.js';
export { checkModeOptions, type ModeOptionNames } from './mode-options.js';
export {
  type AvailableVersion,
  isAvailable,
  ModelRegistry,
  type ModelSnapshot,
  type PublishResult,
  type ReadRetries,
  type RegistryOptions,
  readRetryScan,
  type ServedVersion,
  unavailableRetryAfterSeconds,
} from './model-registry.js';
export { type ModelReport, openReportModel, type ReportModel } from './model-report.js';
export { type NdjsonRowProblem, readNdjsonRow } from './ndjson-row.js';
export {
  exportModelOnnx,
  noProbabilities,
  type OnnxExport,
  type OnnxExportRequest,
} from './onnx-export.js';
export {
  checkInputTensor,
  type InputTensorHeader,
  isModelReady,
  modelReadiness,
  OIP_EXTENSIONS,
  type OutputName,
  type OutputTensor,
  oipModelMetadata,
  outputNames,
  outputTensor,
  requestedOutputs,
  tensorBytes,
} from './open-inference.js';
export {
  batchLimit,
  batchTooLarge,
  checkBatchSize,
  checkFiniteOutputs,
  inputShapeOf,
  type PredictInput,
  type PredictOutput,
  predict,
  runBatch,
  runSources,
} from './predict.js';
export {
  type OpenedModel,
  openModelDirectory,
  repositoryDirectoryHolding,
} from './predict-directory.js';
export {
  nextVersionPath,
  publishCheckpoint,
  removeOwnPublishTemporariesSync,
} from './publish-checkpoint.js';
export {
  LINEAGE_ANCESTORS,
  type Lineage,
  type LineageAncestor,
  lineageOf,
  trainedVersion,
} from './recalibration-lineage.js';
export {
  NOT_ACTIVATED_CODES,
  type NotActivated,
  type RecalibrationOutcome,
  recalibrationOutcomeSchema,
} from './recalibration-outcome.js';
export {
  type RecalibrateOptions,
  type RecalibrationRequest,
  type RecalibrationRows,
  RecalibrationService,
  type RecalibrationStarted,
} from './recalibration-service.js';
export { RecalibrationSession, slices } from './recalibration-session.js';
export { LIMITS, noteSchema } from './request-limits.js';
export {
  isWellFormedRequestId,
  parseTraceparent,
  REQUEST_ID_LOG_FIELD,
  REQUEST_ID_PATTERN,
  requestIdFrom,
  type Traceparent,
} from './request-trace.js';
export {
  chunkPair,
  csvRowChunks,
  ndjsonRowChunks,
  type RowChunkOptions,
  type RowsReceived,
  uploadChunkRows,
} from './row-chunks.js';
export {
  flatRows,
  float32Rows,
  type InputBuffer,
  nestedRows,
  type RowSource,
  sampleRows,
} from './row-source.js';
export {
  DEFAULT_MAX_BATCH_SIZE,
  decimalText,
  misspelledConfigVariables,
  parseServerConfig,
  parseServerConfigVariables,
  type ServerConfig,
  serverConfigSchema,
} from './server-config.js';
export {
  DRAIN_RESERVE_MS,
  drainLastStepsMs,
  type Readiness,
  SERVING_PHASES,
  ServingPhase,
  type ServingPhaseName,
  SHUTTING_DOWN_REASON,
  SHUTTING_DOWN_RETRY_AFTER_SECONDS,
  STARTING_REASON,
  serverReadiness,
} from './serving-phase.js';
export { type StorageWarning, storageWarningOf, storageWarningSchema } from './storage-warning.js';
export {
  bytesTensor,
  checkFinite,
  FP32_BYTES,
  float32Bytes,
  readFloat32,
} from './tensor-codec.js';
export {
  INPUT_TENSOR,
  LABEL_TENSOR,
  PROBABILITIES_TENSOR,
  rawOutputTensor,
  unknownInputMessage,
} from './tensor-names.js';
export type { TrafficObserver } from './traffic-observer.js';
export type { VersionDriftReport } from './version-drift.js';

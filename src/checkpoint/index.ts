export {
  type BuildRngs,
  buildLayer,
  buildSequential,
  networkFromCheckpoint,
} from './build-model.js';
export {
  assembleCheckpoint,
  type Checkpoint,
  CONFIG_FILE,
  EXTRA_TENSORS_PARSED,
  type LoadedCheckpoint,
  loadingWeights,
  loadWeights,
  METRICS_FILE,
  networkForWeights,
  parseCheckpoint,
  parseConfigFile,
  serializeCheckpoint,
  WEIGHTS_FILE,
  weightsExpectation,
} from './checkpoint-files.js';
export { formatJson } from './json-format.js';
export type { LayerDefinition, Shape } from './layers/layer-definition.js';
export {
  type BatchNormInput,
  batchNormInputs,
  checkLayerChain,
  holdsBatchNormStatistics,
  type LayerFootprint,
  type LayerSpec,
  type LayerType,
  layerDefinition,
  layerDefinitions,
  layerFootprint,
  layerListSchema,
  layerSchema,
  layerTypes,
  MAX_BLOCK_DEPTH,
  MAX_LAYERS,
  MAX_SAMPLE_VALUES,
  minimumTrainingBatchRows,
  networkOutputWidth,
  stateSignatures,
  trainingBatchProblem,
} from './layers/registry.js';
export type { ResidualLayerSpec } from './layers/residual.js';
export type {
  TrainingFootprint,
  TrainingFootprintContext,
  TrainingFrame,
} from './layers/training-footprint.js';
export {
  type EpochMetrics,
  epochMetricsSchema,
  layerShiftSchema,
  type MetricsFile,
  metricsFileSchema,
  parseMetricsFile,
  recalibrationMetricsSchema,
  type TrainingMetrics,
  trainingMetricsSchema,
} from './metrics-file.js';
export * from './model-config.js';
export * from './safetensors.js';

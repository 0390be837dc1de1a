export {
  type BuildRngs,
  buildLayer,
  buildSequential,
  networkFromCheckpoint,
} from './build-model.js';
export {
  type Checkpoint,
  CONFIG_FILE,
  type LoadedCheckpoint,
  METRICS_FILE,
  parseCheckpoint,
  serializeCheckpoint,
  WEIGHTS_FILE,
} from './checkpoint-files.js';
export { formatJson } from './json-format.js';
export type { LayerDefinition, Shape } from './layers/layer-definition.js';
export {
  checkLayerChain,
  holdsBatchNormStatistics,
  type LayerFootprint,
  type LayerSpec,
  type LayerType,
  layerDefinition,
  layerDefinitions,
  layerFootprint,
  layerSchema,
  layerTypes,
} from './layers/registry.js';
export type { ResidualLayerSpec } from './layers/residual.js';
export * from './model-config.js';
export * from './safetensors.js';

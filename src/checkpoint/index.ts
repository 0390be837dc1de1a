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
export * from './model-config.js';
export * from './safetensors.js';

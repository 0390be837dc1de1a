export type { EpochMetrics, TrainingMetrics } from '../checkpoint/index.js';
export {
  type Architecture,
  architectureSchema,
  layersFromArchitecture,
} from './architecture.js';
export {
  type CsvRecord,
  type CsvTable,
  checkCsvRowWidth,
  csvHeader,
  csvNumber,
  csvPlace,
  csvRecords,
  emptyCsv,
  numericCell,
  parseCsv,
} from './csv-table.js';
export {
  type Dataset,
  datasetFromTable,
  type FixedColumns,
  type LabeledDataset,
  selectRows,
  unknownLabelColumn,
} from './dataset.js';
export { argmaxRow, type Evaluation, evaluate } from './evaluate.js';
export { type FitQuality, fitQuality, regressionFit } from './fit-quality.js';
export {
  type InputFileParts,
  inputFileParts,
  MAX_INPUT_FILE_BYTES,
  readInputFile,
  readInputText,
} from './input-file.js';
export { loadCsvDataset, loadTrainingConfig, readTrainingConfigJson } from './load-data.js';
export {
  MAX_GUESSED_CLASSES,
  modelNameFromPath,
  type ResolvedTrainingConfig,
  resolveTrainingConfig,
} from './resolve-config.js';
export { fitStandardScaler } from './standard-scaler.js';
export { fitTargetScale, type TargetScale } from './target-scaling.js';
export {
  type BatchProgress,
  checkTrainingSetup,
  type InitialModel,
  type TrainOutput,
  train,
} from './trainer.js';
export {
  DEFAULT_LABEL_COLUMN,
  MAX_EPOCHS,
  OPTIMIZER_TYPES,
  type OptimizerConfig,
  parseTrainingConfig,
  type TrainingConfig,
  trainingConfigSchema,
} from './training-config.js';

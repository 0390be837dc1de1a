export { type CsvTable, numericCell, parseCsv } from './csv-table.js';
export { type Dataset, datasetFromTable, type LabeledDataset, selectRows } from './dataset.js';
export { argmaxRow, type Evaluation, evaluate } from './evaluate.js';
export { loadCsvDataset, loadTrainingConfig } from './load-data.js';
export { fitStandardScaler } from './standard-scaler.js';
export {
  type BatchProgress,
  type EpochMetrics,
  type InitialModel,
  type TrainingMetrics,
  type TrainOutput,
  train,
} from './trainer.js';
export {
  type OptimizerConfig,
  parseTrainingConfig,
  type TrainingConfig,
  trainingConfigSchema,
} from './training-config.js';

import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Task } from '../checkpoint/index.js';
import { NormserveError, parseJsonText } from '../errors/index.js';
import { parseCsv } from './csv-table.js';
import { datasetFromTable, type FixedColumns, type LabeledDataset } from './dataset.js';
import { readInputFile, readInputText } from './input-file.js';
import { parseTrainingConfig, type TrainingConfig } from './training-config.js';

/** A config file's top level: an object (its fields are the schema's to check). */
const configObjectSchema = z.record(z.string(), z.unknown());

/**
 * A training config file read as a JSON object, before the schema fills its defaults: the train
 * CLI writes its flags into it first (loadTrainingConfig parses it as it is).
 */
export async function readTrainingConfigJson(path: string): Promise<Record<string, unknown>> {
  const text = await readInputText(path, 'training config ', 'TRAINING_CONFIG_INVALID');
  const value = parseJsonText(text, path, 'TRAINING_CONFIG_INVALID');
  const parsed = configObjectSchema.safeParse(value);
  if (!parsed.success)
    throw new NormserveError('TRAINING_CONFIG_INVALID', `${path}: must be a JSON object`);
  return parsed.data;
}

export async function loadTrainingConfig(path: string): Promise<TrainingConfig> {
  return parseTrainingConfig(await readTrainingConfigJson(path), path);
}

/**
 * Reads a CSV data file into a data set, with the sha256 of its bytes (recorded in metrics). No
 * task means classification (resolveTrainingConfig then checks that the labels look like classes).
 * `fixed`: what a checkpoint being fine-tuned fixes (its labels, its feature columns by name).
 * `labelColumnNamedBy`: what named the label column, for the error when the file has no such
 * column (unknownLabelColumn).
 */
export async function loadCsvDataset(
  path: string,
  labelColumn: string,
  task: Task | undefined,
  fixed: FixedColumns = {},
  labelColumnNamedBy?: string,
): Promise<{ data: LabeledDataset; sha256: string }> {
  const bytes = await readInputFile(path, 'data file ');
  const table = parseCsv(bytes.toString('utf8'), path);
  if (table.rows.length === 0)
    throw new NormserveError('DATA_INVALID', `${path}: no data rows after the header`);
  return {
    data: datasetFromTable(table, labelColumn, task ?? 'classification', fixed, labelColumnNamedBy),
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
}

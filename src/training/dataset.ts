import type { Task } from '../checkpoint/index.js';
import { NormserveError, quote, quoteList } from '../errors/index.js';
import { type CsvTable, csvPlace, numericCell } from './csv-table.js';

/** Features as a row-major float32 matrix and targets (class indices or regression values). */
export interface Dataset {
  featureNames: string[];
  features: Float32Array;
  rows: number;
  width: number;
  /** Class index per row (classification) or target value (regression). */
  targets: Float32Array;
}

export interface LabeledDataset extends Dataset {
  /** Class names in index order (classification only). */
  labels: string[] | undefined;
}

/** A label column that is not a column of the CSV, refused naming the columns there are. */
export const unknownLabelColumn = (
  source: string,
  column: string,
  header: readonly string[],
): NormserveError =>
  new NormserveError(
    'DATA_INVALID',
    `${source}: unknown label column ${quote(column)} (columns: ${quoteList(header)})`,
  );

/**
 * Turns a CSV table into features and targets. Classification labels are the distinct values of
 * the label column, sorted numerically when all are numbers, else lexicographically; `labels`
 * fixes them instead (fine-tuning keeps the model's label order).
 */
export function datasetFromTable(
  table: CsvTable,
  labelColumn: string,
  task: Task,
  labels?: readonly string[],
): LabeledDataset {
  const labelIndex = table.header.indexOf(labelColumn);
  if (labelIndex < 0) throw unknownLabelColumn(table.source, labelColumn, table.header);
  const featureColumns = table.header.map((_, i) => i).filter((i) => i !== labelIndex);
  if (featureColumns.length === 0)
    throw new NormserveError('DATA_INVALID', `${table.source}: no feature columns`);
  const rows = table.rows.length;
  const width = featureColumns.length;
  const features = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    featureColumns.forEach((c, j) => {
      features[r * width + j] = numericCell(table, r, c);
    });
  }
  const targets = new Float32Array(rows);
  let classNames: string[] | undefined;
  if (task === 'classification') {
    const raw = table.rows.map((row) => row[labelIndex]!);
    // An empty cell is a missing label, as an empty feature cell is a missing number: refused,
    // not made a class "".
    const empty = raw.indexOf('');
    if (empty >= 0) {
      throw new NormserveError(
        'DATA_INVALID',
        `${csvPlace(table, empty, labelIndex)}: the label is empty (a row without a label cannot be trained on)`,
      );
    }
    classNames = labels ? [...labels] : sortLabels([...new Set(raw)]);
    const index = new Map(classNames.map((l, i) => [l, i]));
    raw.forEach((value, r) => {
      const k = index.get(value);
      if (k === undefined) {
        throw new NormserveError(
          'DATA_INVALID',
          `${csvPlace(table, r, labelIndex)}: label ${quote(value)} is not one of the model's labels`,
        );
      }
      targets[r] = k;
    });
  } else {
    for (let r = 0; r < rows; r++) targets[r] = numericCell(table, r, labelIndex);
  }
  return {
    featureNames: featureColumns.map((c) => table.header[c]!),
    features,
    rows,
    width,
    targets,
    labels: classNames,
  };
}

function sortLabels(values: string[]): string[] {
  const numeric = values.every((v) => v !== '' && Number.isFinite(Number(v)));
  return numeric ? values.sort((a, b) => Number(a) - Number(b)) : values.sort();
}

/** The rows of `indices`, in that order. */
export function selectRows<T extends Dataset>(data: T, indices: ArrayLike<number>): T {
  const width = data.width;
  const features = new Float32Array(indices.length * width);
  const targets = new Float32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const r = indices[i]!;
    features.set(data.features.subarray(r * width, (r + 1) * width), i * width);
    targets[i] = data.targets[r]!;
  }
  return { ...data, features, targets, rows: indices.length };
}

import type { Task } from '../checkpoint/index.js';
import { closestName, inFile, NormserveError, quote, quoteList } from '../errors/index.js';
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

/** `did you mean "label"? ` for a likely misspelling of a column of `header`; else ''. */
const meant = (column: string, header: readonly string[]): string => {
  const name = closestName(column, header);
  return name === undefined ? '' : `did you mean ${quote(name)}? `;
};

/**
 * A label column that is not a column of the CSV, refused naming the columns there are (the last
 * one always, where a label column most often is: a newcomer's 65-column CSV had it past the cut),
 * the one it is likely a misspelling of (`lable`, `Label`) and, when given, what named it
 * (`namedBy`: the train CLI's "the default; name the column to predict with --label-column", as
 * a newcomer whose CSV had no `label` column was not told the flag).
 */
export const unknownLabelColumn = (
  source: string,
  column: string,
  header: readonly string[],
  namedBy?: string,
): NormserveError =>
  new NormserveError(
    'DATA_INVALID',
    inFile(
      source,
      `unknown label column ${quote(column)} (${namedBy === undefined ? '' : `${namedBy}; `}${meant(column, header)}columns: ${quoteList(header, undefined, true)})`,
    ),
  );

/** What a checkpoint being fine-tuned fixes of its data: its classes and its input columns. */
export interface FixedColumns {
  /** Class names in the model's index order. */
  labels?: readonly string[] | undefined;
  /** The feature columns by name, in the model's input order (its `training.feature_names`). */
  featureNames?: readonly string[] | undefined;
}

/**
 * The feature columns of a header: every column but the label's, in file order; or, when a
 * checkpoint names its features, those columns in its order, wherever they are in the file (as
 * the predict CLI matches them). A named feature the file lacks, or a column that is neither a
 * feature nor the label, is refused: the checkpoint's per-column input transform and first layer
 * would otherwise read the wrong column.
 */
function featureColumnsOf(
  table: CsvTable,
  labelIndex: number,
  featureNames: readonly string[] | undefined,
): number[] {
  const { header, source } = table;
  if (featureNames === undefined) return header.map((_, i) => i).filter((i) => i !== labelIndex);
  const missing = featureNames.filter((name) => !header.includes(name));
  if (missing.length > 0) {
    throw new NormserveError(
      'DATA_INVALID',
      `${source}: no column named ${quoteList(missing, 64)}; the model was trained on the columns ${quoteList(featureNames, 64)} (matched by name)`,
    );
  }
  const extra = header.filter((name, i) => i !== labelIndex && !featureNames.includes(name));
  if (extra.length > 0) {
    throw new NormserveError(
      'DATA_INVALID',
      `${source}: the column${extra.length === 1 ? '' : 's'} ${quoteList(extra, 64)} ${extra.length === 1 ? 'is' : 'are'} not among the model's features (${quoteList(featureNames, 64)}); remove ${extra.length === 1 ? 'it' : 'them'}`,
    );
  }
  return featureNames.map((name) => header.indexOf(name));
}

/**
 * Turns a CSV table into features and targets. Classification labels are the distinct values of
 * the label column, sorted numerically when all are numbers, else lexicographically; `fixed`
 * gives a fine-tuned checkpoint's labels (its order) and feature columns (by name) instead.
 */
export function datasetFromTable(
  table: CsvTable,
  labelColumn: string,
  task: Task,
  fixed: FixedColumns = {},
  labelColumnNamedBy?: string,
): LabeledDataset {
  const { labels } = fixed;
  const labelIndex = table.header.indexOf(labelColumn);
  if (labelIndex < 0)
    throw unknownLabelColumn(table.source, labelColumn, table.header, labelColumnNamedBy);
  const featureColumns = featureColumnsOf(table, labelIndex, fixed.featureNames);
  if (featureColumns.length === 0)
    throw new NormserveError('DATA_INVALID', `${table.source}: no feature columns`);
  const rows = table.rows.length;
  const width = featureColumns.length;
  const features = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    featureColumns.forEach((c, j) => {
      try {
        features[r * width + j] = numericCell(table, r, c);
      } catch (e) {
        // A text column (penguins' "species" beside the label body_mass_g): say what the rule is
        // and the ways out, which "is not a finite number" alone did not (review60).
        // A text column: none of its first rows' cells is a number (a stray "x" in a numeric
        // column, or an empty cell, a missing number, keeps the plain message).
        const text = table.rows
          .slice(0, 20)
          .every((row) => row[c] === '' || !Number.isFinite(Number(row[c])));
        if (!(e instanceof NormserveError) || table.rows[r]![c] === '' || !text) throw e;
        throw new NormserveError(
          'DATA_INVALID',
          `${e.message}; every column but the label (${quote(labelColumn)}) is a numeric feature: drop or encode column ${quote(table.header[c]!)}, or make it the label (--label-column)`,
        );
      }
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

import { NormserveError, quoteList } from '../errors/index.js';
import { type CsvTable, numericCell } from '../training/index.js';

/**
 * The feature rows of a CSV for a model: its recorded feature names' columns when all are present,
 * else every column but the label's; and the label column's cells, if there is one. A CSV of a
 * header alone is an error, and so is a number of feature columns other than the model's width
 * (named once, for the file, rather than as every row's width).
 */
export function csvFeatureRows(
  table: CsvTable,
  model: { name: string; inputWidth: number; featureNames: readonly string[] | undefined },
  labelColumn: string,
): { rows: number[][]; labels: string[] | undefined } {
  const { featureNames } = model;
  // Nothing to compute: an exit 0 with an empty answer (and "accuracy NaN") would hide the mistake.
  if (table.rows.length === 0)
    throw new NormserveError('DATA_INVALID', `${table.source}: no data rows after the header`);
  const labelIndex = table.header.indexOf(labelColumn);
  const columns = featureNames?.every((f) => table.header.includes(f))
    ? featureNames.map((f) => table.header.indexOf(f))
    : table.header.map((_, i) => i).filter((i) => i !== labelIndex);
  if (columns.length !== model.inputWidth) {
    const missing = featureNames?.filter((f) => !table.header.includes(f)) ?? [];
    throw new NormserveError(
      'DATA_INVALID',
      `${table.source}: ${columns.length} feature column${columns.length === 1 ? '' : 's'}; model "${model.name}" takes ${model.inputWidth}${missing.length > 0 ? ` (no column named ${quoteList(missing, 64)})` : ''}`,
    );
  }
  return {
    rows: table.rows.map((_, r) => columns.map((c) => numericCell(table, r, c))),
    labels: labelIndex >= 0 ? table.rows.map((row) => row[labelIndex]!) : undefined,
  };
}

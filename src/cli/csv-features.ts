import { NormserveError } from '../errors/index.js';
import { type CsvTable, numericCell } from '../training/index.js';

/**
 * The feature rows of a CSV for a model: its recorded feature names' columns when all are present,
 * else every column but the label's; and the label column's cells, if there is one. A CSV of a
 * header alone is an error.
 */
export function csvFeatureRows(
  table: CsvTable,
  featureNames: readonly string[] | undefined,
  labelColumn: string,
): { rows: number[][]; labels: string[] | undefined } {
  // Nothing to compute: an exit 0 with an empty answer (and "accuracy NaN") would hide the mistake.
  if (table.rows.length === 0)
    throw new NormserveError('DATA_INVALID', `${table.source}: no data rows after the header`);
  const labelIndex = table.header.indexOf(labelColumn);
  const columns = featureNames?.every((f) => table.header.includes(f))
    ? featureNames.map((f) => table.header.indexOf(f))
    : table.header.map((_, i) => i).filter((i) => i !== labelIndex);
  return {
    rows: table.rows.map((_, r) => columns.map((c) => numericCell(table, r, c))),
    labels: labelIndex >= 0 ? table.rows.map((row) => row[labelIndex]!) : undefined,
  };
}

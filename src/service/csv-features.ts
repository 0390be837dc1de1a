import { inFile, NormserveError, quoteList } from '../errors/index.js';
import {
  type CsvTable,
  checkCsvRowWidth,
  csvHeader,
  csvNumber,
  DEFAULT_LABEL_COLUMN,
  numericCell,
  unknownLabelColumn,
} from '../training/index.js';

/** What the column rule needs of a model: its width and what training recorded. */
export interface CsvFeatureModel {
  name: string;
  inputWidth: number;
  featureNames: readonly string[] | undefined;
  /** The column training predicted (config.json's training.label_column). */
  labelColumn?: string | undefined;
}

/** The label column a reader of a CSV leaves out: the one named, else the model's, else `label`. */
export const labelColumnFor = (model: CsvFeatureModel, named: string | undefined): string =>
  named ?? model.labelColumn ?? DEFAULT_LABEL_COLUMN;

/**
 * A label column named by the caller (--label-column) must be a column of the CSV: a misspelt one
 * would be read by nothing (no accuracy, or a feature column taken for the label's absence).
 * The default one (the model's, else `label`) may be absent: a CSV of features alone.
 */
export function checkNamedLabelColumn(
  header: readonly string[],
  named: string | undefined,
  source: string,
): void {
  if (named !== undefined && !header.includes(named))
    throw unknownLabelColumn(source, named, header);
}

/** A --label-column given with JSON or NDJSON rows, which have no columns: read by nothing. */
export const labelColumnWithoutColumns = (named: string, source: string): NormserveError =>
  new NormserveError(
    'DATA_INVALID',
    `--label-column ${named}: names a column of a CSV input; ${source} holds JSON rows, which have no columns`,
  );

/**
 * The feature columns of a CSV header for a model, in the model's input order: its recorded
 * feature names' columns when all are present, every column but the label's when none is (a file
 * with names of its own, read in order), refused when only some are. A number of
 * feature columns other than the model's width is an error, named once for the whole CSV (with
 * the recorded names it lacks) rather than as every row's width. The CLIs (a file read whole) and
 * the recalibration upload (a CSV read as it arrives) pick columns by this rule alone.
 */
export function csvFeatureColumns(
  header: readonly string[],
  model: CsvFeatureModel,
  labelColumn: string,
  source: string,
): number[] {
  const { featureNames } = model;
  const labelIndex = header.indexOf(labelColumn);
  const missing = featureNames?.filter((f) => !header.includes(f)) ?? [];
  const columns =
    featureNames && missing.length === 0
      ? featureNames.map((f) => header.indexOf(f))
      : header.map((_, i) => i).filter((i) => i !== labelIndex);
  if (columns.length !== model.inputWidth) {
    throw new NormserveError(
      'DATA_INVALID',
      inFile(
        source,
        `${columns.length} feature column${columns.length === 1 ? '' : 's'}; model "${model.name}" takes ${model.inputWidth}${missing.length > 0 ? ` (no column named ${quoteList(missing, 64)})` : ''}`,
      ),
    );
  }
  if (featureNames && missing.length > 0 && missing.length < featureNames.length) {
    // Some names match and some do not: a renamed or misspelt column. Read in file order, a file
    // whose columns are also in another order gives wrong answers with exit 0 — and a
    // recalibration from it publishes them (review60).
    throw new NormserveError(
      'DATA_INVALID',
      inFile(
        source,
        `no column named ${quoteList(missing, 64)}: the header has ${featureNames.length - missing.length} of the ${featureNames.length} feature names model "${model.name}" was trained with, so its columns are not matched by name; rename the column${missing.length === 1 ? '' : 's'}, or give a header with none of those names to read the columns in file order`,
      ),
    );
  }
  return columns;
}

/**
 * A CSV of a header alone: nothing to compute (an exit 0 with an empty answer, "accuracy NaN",
 * or a recalibration refused for too few rows would hide the mistake).
 */
export const noCsvDataRows = (source: string): NormserveError =>
  new NormserveError('DATA_INVALID', inFile(source, 'no data rows after the header'));

/**
 * The feature rows of a CSV read whole for a model (csvFeatureColumns), and the label column's
 * cells, if there is one.
 */
export function csvFeatureRows(
  table: CsvTable,
  model: CsvFeatureModel,
  labelColumn: string,
): { rows: number[][]; labels: string[] | undefined } {
  if (table.rows.length === 0) throw noCsvDataRows(table.source);
  const columns = csvFeatureColumns(table.header, model, labelColumn, table.source);
  const labelIndex = table.header.indexOf(labelColumn);
  return {
    rows: table.rows.map((_, r) => columns.map((c) => numericCell(table, r, c))),
    labels: labelIndex >= 0 ? table.rows.map((row) => row[labelIndex]!) : undefined,
  };
}

/**
 * A CSV taken record by record, as an upload arrives (training's csvRecords): the first record is
 * the header, checked (parseCsv's rule) and mapped to the feature columns (csvFeatureColumns);
 * each later one is checked and its features written as float32 values, each cell by numericCell's
 * rule. The same rules and words as a file read whole.
 */
export class CsvFeatureReader {
  private header: string[] | undefined;
  private columns: number[] = [];
  /** Data rows taken so far. */
  rows = 0;

  constructor(
    private readonly model: CsvFeatureModel,
    private readonly labelColumn: string,
    private readonly source: string,
    /** A label column the caller named (--label-column): refused unless the header has it. */
    private readonly namedLabelColumn?: string | undefined,
  ) {}

  /** Takes a record: false for the header; for a data row, true, its features at out[offset…]. */
  take(record: readonly string[], line: number, out: Float32Array, offset: number): boolean {
    const header = this.header;
    if (header === undefined) {
      this.header = csvHeader(record, this.source);
      checkNamedLabelColumn(this.header, this.namedLabelColumn, this.source);
      this.columns = csvFeatureColumns(this.header, this.model, this.labelColumn, this.source);
      return false;
    }
    checkCsvRowWidth(record, header, line, this.source);
    const columns = this.columns;
    for (let c = 0; c < columns.length; c++) {
      const column = columns[c]!;
      out[offset + c] = csvNumber(record[column]!, this.source, line, header[column]!);
    }
    this.rows++;
    return true;
  }

  /**
   * After the last record: a header alone is an error (nothing to compute). No record at all is
   * left to the caller: an empty upload is answered alike whatever its form.
   */
  finish(): void {
    if (this.header === undefined) return;
    if (this.rows === 0) throw noCsvDataRows(this.source);
  }
}

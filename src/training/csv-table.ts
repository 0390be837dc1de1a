import { parse } from 'csv-parse/sync';
import { fileLine, NormserveError, printable, quote } from '../errors/index.js';
import { FLOAT32_RANGE_MESSAGE, roundsToFiniteFloat32 } from '../nn/index.js';

/** A numeric CSV read into memory: the header and the cells as strings, row by row. */
export interface CsvTable {
  source: string;
  header: string[];
  /** Data rows (header excluded). */
  rows: string[][];
  /** The file line of each data row (1-based; blank lines and multi-line cells counted). */
  lines: number[];
}

/**
 * Why csv-parse refused a text, in our words: its own messages quote the field it stopped in
 * (hundreds of bytes of a binary file given as a CSV) and a raw character; these quote a short,
 * escaped prefix of the field at most. Other codes cannot occur with the options below.
 */
function csvSyntaxMessage(error: unknown, source: string): string {
  const e = error as { code?: string; lines?: number; field?: string; message: string };
  if (e.code === 'CSV_QUOTE_NOT_CLOSED')
    return `${source}: not valid CSV: a quoted cell is still open at the end of the file`;
  const where = typeof e.lines === 'number' ? fileLine(source, e.lines) : source;
  const why =
    e.code === 'INVALID_OPENING_QUOTE'
      ? `a quote inside the unquoted cell ${quote(String(e.field ?? ''))}`
      : e.code === 'CSV_INVALID_CLOSING_QUOTE' ||
          e.code === 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE'
        ? 'a quoted cell is followed by more than a comma or the end of the line'
        : printable(e.message);
  return `${where}: not valid CSV: ${why}`;
}

/**
 * Parses CSV text (RFC 4180 quoting, CRLF or LF, a BOM is dropped) with a header row. Every row
 * must have as many cells as the header. Messages name the file and line, and quote what they
 * echo (a header name, a cell) with quote(): short, escaped, one line even for a binary file.
 */
export function parseCsv(text: string, source: string): CsvTable {
  let records: string[][];
  let lines: number[];
  try {
    const parsed = parse(text, {
      bom: true,
      skip_empty_lines: true,
      trim: true,
      relax_column_count: true,
      info: true,
    }) as unknown as { record: string[]; info: { lines: number } }[];
    records = parsed.map((p) => p.record);
    lines = parsed.map((p) => p.info.lines);
  } catch (e) {
    throw new NormserveError('DATA_INVALID', csvSyntaxMessage(e, source));
  }
  if (records.length === 0)
    throw new NormserveError('DATA_INVALID', `${source}: the file is empty`);
  const header = records[0]!;
  if (header.every((h) => h !== '' && Number.isFinite(Number(h)))) {
    throw new NormserveError(
      'DATA_INVALID',
      `${source}: no header row (line 1 holds only numbers); the first line must name the columns`,
    );
  }
  const seen = new Set<string>();
  header.forEach((name, i) => {
    if (name === '')
      throw new NormserveError('DATA_INVALID', `${source}: header column ${i + 1} has no name`);
    if (seen.has(name))
      throw new NormserveError(
        'DATA_INVALID',
        `${source}: header names column ${quote(name)} twice`,
      );
    seen.add(name);
  });
  const rows = records.slice(1);
  const rowLines = lines.slice(1);
  rows.forEach((row, i) => {
    if (row.length !== header.length) {
      throw new NormserveError(
        'DATA_INVALID',
        `${fileLine(source, rowLines[i]!)} has ${row.length} cells, the header has ${header.length}`,
      );
    }
  });
  return { source, header, rows, lines: rowLines };
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Where a cell (or, without a column, a row) of a table is: `data.csv: line 7, column "b"`. */
export function csvPlace(table: CsvTable, row: number, column?: number): string {
  return fileLine(
    table.source,
    table.lines[row]!,
    column === undefined ? undefined : table.header[column],
  );
}

/**
 * The numeric value of a cell, or an error naming its line and column: a cell that is no decimal
 * number is "not a finite number"; a number beyond float32's range (1e39, which would become
 * ±Infinity in the engine's float32 storage) is refused in the words of every other reader.
 */
export function numericCell(table: CsvTable, row: number, column: number): number {
  const cell = table.rows[row]![column]!;
  // Decimal notation only: Number() would also take "0x10", "0b1" and "" (as 0).
  const value = DECIMAL.test(cell) ? Number(cell) : Number.NaN;
  if (!roundsToFiniteFloat32(value)) {
    throw new NormserveError(
      'DATA_INVALID',
      `${csvPlace(table, row, column)}: ${quote(cell)} is ${Number.isNaN(value) ? 'not a finite number' : FLOAT32_RANGE_MESSAGE}`,
    );
  }
  return value;
}

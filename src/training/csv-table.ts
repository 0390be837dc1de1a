import { parse } from 'csv-parse/sync';
import { NormserveError } from '../errors/index.js';
import { roundsToFiniteFloat32 } from '../nn/index.js';

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
 * Parses CSV text (RFC 4180 quoting, CRLF or LF, a BOM is dropped) with a header row. Every row
 * must have as many cells as the header.
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
    throw new NormserveError('DATA_INVALID', `${source}: not valid CSV: ${(e as Error).message}`);
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
      throw new NormserveError('DATA_INVALID', `${source}: header names column "${name}" twice`);
    seen.add(name);
  });
  const rows = records.slice(1);
  const rowLines = lines.slice(1);
  rows.forEach((row, i) => {
    if (row.length !== header.length) {
      throw new NormserveError(
        'DATA_INVALID',
        `${source}: line ${rowLines[i]} has ${row.length} cells, the header has ${header.length}`,
      );
    }
  });
  return { source, header, rows, lines: rowLines };
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** The numeric value of a cell, or an error naming its line and column. */
export function numericCell(table: CsvTable, row: number, column: number): number {
  const cell = table.rows[row]![column]!;
  // Decimal notation only: Number() would also take "0x10", "0b1" and "" (as 0).
  const value = DECIMAL.test(cell) ? Number(cell) : Number.NaN;
  // Beyond float32's range the value would become ±Infinity in the engine's float32 storage.
  if (!roundsToFiniteFloat32(value)) {
    throw new NormserveError(
      'DATA_INVALID',
      `${table.source}: line ${table.lines[row]}, column "${table.header[column]}": ${JSON.stringify(cell)} is not a finite number`,
    );
  }
  return value;
}

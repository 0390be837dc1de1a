import { Readable } from 'node:stream';
import { CsvError, parse as csvParser } from 'csv-parse';
import { type Info, type Options, parse } from 'csv-parse/sync';
import {
  DECIMAL_TEXT,
  fileLine,
  inFile,
  NormserveError,
  printable,
  quote,
} from '../errors/index.js';
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

/** One record of a CSV and the file line it ends on (1-based; blank lines counted). */
export interface CsvRecord {
  record: string[];
  line: number;
}

/**
 * How every CSV normserve reads is parsed, a file whole (parseCsv) or an upload as it arrives
 * (csvRecords): RFC 4180 quoting, CRLF or LF, a BOM dropped, blank lines skipped, cells trimmed;
 * rows of any length reach the checks below, which name the line.
 */
const CSV_OPTIONS = {
  bom: true,
  skip_empty_lines: true,
  trim: true,
  relax_column_count: true,
  info: true,
} as const;

/**
 * A CSV text's records, each with the line it ends on, parsed with CSV_OPTIONS (`info: true`) and
 * `extra` (an on_record hook). csv-parse's synchronous typings say string[][] whatever the options;
 * with `info: true` it returns these pairs (csv-parse 6's `info` option), hence the one cast here.
 */
const parseWithInfo = (
  text: string,
  extra: Pick<Options, 'on_record'> = {},
): { record: string[]; info: Pick<Info, 'lines'> }[] =>
  parse(text, { ...CSV_OPTIONS, ...extra }) as unknown as {
    record: string[];
    info: Pick<Info, 'lines'>;
  }[];

/**
 * The row that follows line `afterLine`, the line the last whole record ended on (0: none did,
 * the header's): where an open quote began. csv-parse names the line it stopped on, which for a
 * quote left open is the end of the file, or a megabyte further (an upload's bound).
 */
const rowAfter = (afterLine: number): string =>
  afterLine === 0 ? 'the first row' : `the row after line ${afterLine}`;

/**
 * csv-parse's `on_record`, told the line each record ends on (plus `offset`, the lines read
 * before the parser started) as the parser takes it, the record handed on as it is (with `info`,
 * `{ record, info }`): a syntax error is placed after the last record taken (rowAfter).
 */
const recordLines =
  (offset: number, ended: (line: number) => void) =>
  <T>(record: T, context: { lines: number }): T => {
    ended(context.lines + offset);
    return record;
  };

/** A record past an upload's bound (csvRecords). */
const tooLong = (source: string, afterLine: number): string =>
  inFile(
    source,
    `not valid CSV: ${rowAfter(afterLine)} is longer than any row of numbers (a quoted cell left open?)`,
  );

/**
 * Why csv-parse refused a text, in our words: its own messages quote the field it stopped in
 * (hundreds of bytes of a binary file given as a CSV) and a raw character; these quote a short,
 * escaped prefix of the field at most. Other codes cannot occur with the options above.
 */
function csvSyntaxMessage(error: unknown, source: string, afterLine: number): string {
  const e = error as { code?: string; lines?: number; field?: string; message: string };
  if (e.code === 'CSV_QUOTE_NOT_CLOSED')
    return inFile(
      source,
      `not valid CSV: a quoted cell of ${rowAfter(afterLine)} is still open at the end of the file`,
    );
  if (e.code === 'CSV_MAX_RECORD_SIZE') return tooLong(source, afterLine);
  const where = typeof e.lines === 'number' ? fileLine(source, e.lines) : source;
  const why =
    e.code === 'INVALID_OPENING_QUOTE'
      ? `a quote inside the unquoted cell ${quote(String(e.field ?? ''))}`
      : e.code === 'CSV_INVALID_CLOSING_QUOTE' ||
          e.code === 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE'
        ? 'a quoted cell is followed by more than a comma or the end of the line'
        : printable(e.message);
  return inFile(where, `not valid CSV: ${why}`);
}

/**
 * The separator `text` looks joined by: ';' or a tab between printable names, two or more of them
 * not empty (empty ones too: a spreadsheet's export often ends its header with a separator,
 * `p0;p1;label;`, or leaves a column unnamed).
 */
function separatorOf(text: string): ';' | '\t' | undefined {
  for (const separator of [';', '\t'] as const) {
    const names = text.split(separator);
    // Printable: no control character, no U+FFFD (bytes that are no UTF-8).
    if (
      names.filter((n) => n.trim() !== '').length > 1 &&
      names.every((n) => !/[\p{Cc}\ufffd]/u.test(n))
    )
      return separator;
  }
  return undefined;
}

/**
 * The header row, checked: it names every column, once, and is not a row of numbers (a CSV
 * without a header would lose its first row to it).
 */
export function csvHeader(record: readonly string[], source: string): string[] {
  // A JSON array or object read as CSV: its "header" is the first line's text cut at commas
  // (review60: `[[5.1,3.5]]` in a .csv was "no data rows after the header").
  if (/^[[{]/.test(record[0] ?? ''))
    throw new NormserveError(
      'DATA_INVALID',
      inFile(
        source,
        `the first line starts with ${quote(record[0]![0]!)}: JSON or NDJSON rows, not CSV (a header row naming the columns, then one row per line)`,
      ),
    );
  // A spreadsheet's export in a comma-decimal locale separates with semicolons (tabs: a TSV): read
  // as CSV its header is one column, and the error came later as "1 feature column; the model
  // takes 64" (review60). A one-column table whose name is names joined by one of them is no
  // table we read; a binary file's first "line" (which may hold a ';' byte) is left to the
  // checks that name it as such.
  const separator = record.length === 1 ? separatorOf(record[0]!) : undefined;
  if (separator !== undefined)
    throw new NormserveError(
      'DATA_INVALID',
      inFile(
        source,
        `the header is one column holding ${separator === ';' ? 'semicolons' : 'tabs'} (${quote(record[0]!)}): columns are separated by commas (RFC 4180); save the file as comma-separated values`,
      ),
    );
  if (record.every((h) => h !== '' && Number.isFinite(Number(h)))) {
    throw new NormserveError(
      'DATA_INVALID',
      inFile(
        source,
        'no header row (line 1 holds only numbers); the first line must name the columns',
      ),
    );
  }
  const seen = new Set<string>();
  record.forEach((name, i) => {
    if (name === '')
      throw new NormserveError(
        'DATA_INVALID',
        inFile(source, `header column ${i + 1} has no name`),
      );
    if (seen.has(name))
      throw new NormserveError(
        'DATA_INVALID',
        inFile(source, `header names column ${quote(name)} twice`),
      );
    seen.add(name);
  });
  return [...record];
}

/** A data row must have as many cells as the header. */
export function checkCsvRowWidth(
  row: readonly string[],
  header: readonly string[],
  line: number,
  source: string,
): void {
  if (row.length !== header.length) {
    throw new NormserveError(
      'DATA_INVALID',
      `${fileLine(source, line)} has ${row.length} cells, the header has ${header.length}`,
    );
  }
}

/**
 * Parses CSV text (RFC 4180 quoting, CRLF or LF, a BOM is dropped) with a header row. Every row
 * must have as many cells as the header. Messages name the file and line, and quote what they
 * echo (a header name, a cell) with quote(): short, escaped, one line even for a binary file.
 */
export function parseCsv(text: string, source: string): CsvTable {
  let records: string[][];
  let lines: number[];
  /** The line the last record ended on, for a syntax error's message. */
  let lastLine = 0;
  try {
    const parsed = parseWithInfo(text, {
      on_record: recordLines(0, (line) => {
        lastLine = line;
      }),
    });
    records = parsed.map((p) => p.record);
    lines = parsed.map((p) => p.info.lines);
  } catch (e) {
    throw new NormserveError('DATA_INVALID', csvSyntaxMessage(e, source, lastLine));
  }
  if (records.length === 0) throw emptyCsv(source);
  const header = csvHeader(records[0]!, source);
  const rows = records.slice(1);
  const rowLines = lines.slice(1);
  rows.forEach((row, i) => {
    checkCsvRowWidth(row, header, rowLines[i]!, source);
  });
  return { source, header, rows, lines: rowLines };
}

/** A CSV without a record (nothing, or blank lines only): it has not even a header. */
export const emptyCsv = (source: string): NormserveError =>
  new NormserveError('DATA_INVALID', `${source}: the file is empty`);

/** A data line the fast path takes as it is: no quote, no whitespace (trim would change nothing). */
const PLAIN_LINE = /^[^\s"]*$/;

/** A line feed's character code. */
const LF = 0x0a;

/**
 * The records of a CSV that arrives in pieces (an upload), parsed as they arrive, as parseCsv
 * parses a whole text (its options, its syntax messages); the header is a record like the others
 * (check it with csvHeader, the rows with checkCsvRowWidth). A record longer than
 * `maxRecordChars` is refused rather than held: an unclosed quote would otherwise keep the rest
 * of the upload in memory. An error of the input (a body over its limit, a closed connection)
 * is thrown as it is.
 *
 * csv-parse reads about 10 MB/s, a tenth of the NDJSON reader, so the plain lines of the usual
 * upload (numbers and commas, the header's line end) are split here, as csv-parse would split
 * them; from the first line that is not plain (a quote, a space, a tab, another line end) to the
 * end, csv-parse reads the rest, its line numbers counted from there (it hands a record on once
 * a character past its line end has arrived: a line end may be CRLF). The header is parsed by
 * csv-parse alone. test/training/csv-stream.test.ts holds both to parseCsv's records, lines and
 * messages.
 */
export async function* csvRecords(
  input: AsyncIterable<string>,
  source: string,
  maxRecordChars: number,
): AsyncGenerator<CsvRecord> {
  const parts = input[Symbol.asyncIterator]();
  let pending = '';
  /** Lines taken (the header's included; blank lines too). */
  let lines = 0;
  /** The line the last record yielded ended on, for a syntax error's message (rowAfter). */
  let lastLine = 0;
  /** The header's line end, which csv-parse would take for every line: CRLF or LF. */
  let crlf = false;
  let ended = false;
  let slowFrom: number | undefined;
  /**
   * Characters at the start of `pending` already searched for a line end (and, before the
   * header, for a CR): each part's text is searched once, so a long line sent in small pieces
   * costs its length, not its length squared.
   */
  let scanned = 0;
  plain: while (!ended) {
    const part = await parts.next();
    if (part.done) ended = true;
    else pending += part.value;
    if (lines === 0) {
      // A CR that does not end a CRLF before the header's line end: CR line ends (or a CR in a
      // quoted field), which csv-parse reads, as parseCsv does; the split below knows only LF.
      const cr = pending.indexOf('\r', Math.max(0, scanned - 1));
      const lf = pending.indexOf('\n', Math.max(0, scanned - 1));
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        const next = cr + 1 < pending.length ? pending.charCodeAt(cr + 1) : undefined;
        if (next !== undefined ? next !== LF : ended) {
          slowFrom = 0;
          break;
        }
      }
    }
    let start = 0;
    for (;;) {
      let end = pending.indexOf('\n', Math.max(start, scanned));
      if (end === -1) {
        if (!ended || start >= pending.length) break;
        end = pending.length; // the last line, without a line end
      }
      const text = pending.slice(start, end);
      if (lines === 0) {
        const header = headerRecord(text, end < pending.length, source);
        if (header === undefined) {
          slowFrom = start;
          break plain;
        }
        crlf = text.endsWith('\r');
        yield { record: header, line: 1 };
        lastLine = 1;
      } else {
        const body = crlf && end < pending.length ? text.slice(0, -1) : text;
        if (!PLAIN_LINE.test(body) || (crlf && end < pending.length && !text.endsWith('\r'))) {
          slowFrom = start;
          break plain;
        }
        if (body !== '') {
          yield { record: body.split(','), line: lines + 1 };
          lastLine = lines + 1;
        }
      }
      lines++;
      start = end + 1;
    }
    pending = pending.slice(start);
    scanned = pending.length;
    if (pending.length > maxRecordChars) {
      throw new NormserveError('DATA_INVALID', tooLong(source, lastLine));
    }
  }
  if (slowFrom === undefined) return;
  // csv-parse from the first line that is not plain, with the line end the header set (a BOM
  // past the start of the text is a character of its cell, as for a whole parse).
  const rest = pending.slice(slowFrom);
  const offset = lines;
  async function* restOfText() {
    yield rest;
    for (let part = await parts.next(); !part.done; part = await parts.next()) yield part.value;
  }
  const parser = csvParser({
    ...CSV_OPTIONS,
    // As the parser takes each record: a record it took before failing on the same part (an
    // open quote, the bound) is never handed on, and a syntax error is placed after it.
    on_record: recordLines(offset, (line) => {
      lastLine = line;
    }),
    max_record_size: maxRecordChars,
    ...(offset > 0 ? { bom: false, record_delimiter: crlf ? '\r\n' : '\n' } : {}),
  });
  const text = Readable.from(restOfText());
  text.on('error', (e) => parser.destroy(e));
  text.pipe(parser);
  try {
    for await (const parsed of parser as AsyncIterable<{
      record: string[];
      info: { lines: number };
    }>) {
      yield { record: parsed.record, line: parsed.info.lines + offset };
    }
  } catch (e) {
    if (e instanceof CsvError) {
      const lines = (e as { lines?: number }).lines;
      if (typeof lines === 'number') Object.assign(e, { lines: lines + offset });
      throw new NormserveError('DATA_INVALID', csvSyntaxMessage(e, source, lastLine));
    }
    throw e;
  } finally {
    text.destroy();
  }
}

/**
 * The header, the first line of a CSV arriving in pieces, parsed by csv-parse alone (its
 * BOM, quotes, spaces); undefined when it is not one whole record on its own (blank, a quoted cell
 * that goes on past the line): then csv-parse reads the text from its start.
 */
function headerRecord(line: string, lineEnded: boolean, source: string): string[] | undefined {
  if ((line.match(/"/g)?.length ?? 0) % 2 !== 0) return undefined;
  let parsed: ReturnType<typeof parseWithInfo>;
  try {
    parsed = parseWithInfo(lineEnded ? `${line}\n` : line);
  } catch (e) {
    throw new NormserveError('DATA_INVALID', csvSyntaxMessage(e, source, 0));
  }
  return parsed.length === 1 && parsed[0]!.info.lines === 1 ? parsed[0]!.record : undefined;
}

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
  return csvNumber(
    table.rows[row]![column]!,
    table.source,
    table.lines[row]!,
    table.header[column]!,
  );
}

/** numericCell's rule for a cell on `line` of `source`, in column `column` (its name). */
export function csvNumber(cell: string, source: string, line: number, column: string): number {
  // Decimal notation only: Number() would also take "0x10", "0b1" and "" (as 0).
  const value = DECIMAL_TEXT.test(cell) ? Number(cell) : Number.NaN;
  if (!roundsToFiniteFloat32(value)) {
    throw new NormserveError(
      'DATA_INVALID',
      `${fileLine(source, line, column)}: ${quote(cell)} is ${Number.isNaN(value) ? 'not a finite number' : FLOAT32_RANGE_MESSAGE}`,
    );
  }
  return value;
}

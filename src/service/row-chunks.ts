import { fileLine, NormserveError } from '../errors/index.js';
import { DEFAULT_CHUNK_ROWS } from '../recalibration/index.js';
import { csvRecords } from '../training/index.js';
import { type CsvFeatureModel, CsvFeatureReader } from './csv-features.js';
import { type NdjsonRowProblem, readNdjsonRow } from './ndjson-row.js';
import { parseNumberRow } from './number-row-parser.js';

/**
 * Rows of text (NDJSON lines, CSV records) read as they arrive — an HTTP upload, a CLI's data
 * file — and handed on as float32 chunks of whole rows, never as one JS array per row: memory
 * is the two chunks, whatever the number of rows. Two chunks are filled in turn, so that the
 * consumer can take one while the next is read (RecalibrationSession.pushAll): a yielded chunk
 * stays unchanged until the one after it has been yielded and the next is asked for.
 *
 * A bad line is DATA_INVALID naming its place, `fileLine(source, line)` (`data.ndjson: line 7`;
 * `line 7` for a request body, source ''); the HTTP readers turn it into a 400 INVALID_INPUT.
 */
export interface RowChunkOptions {
  /** Where the text comes from, for the messages: a file's name, or '' for a request body. */
  source: string;
  /** Rows per chunk (the last may hold fewer). */
  chunkRows: number;
  /** Counts the rows read so far, those of the chunk still being filled included. */
  received?: RowsReceived | undefined;
}

/**
 * The rows a reader has read so far (whole rows, the chunk it is filling included), for what an
 * upload that stops half-way says it had sent: its chunks are handed on only when full.
 */
export interface RowsReceived {
  rows: number;
}

/**
 * Bytes per chunk of an upload at most, so memory is bounded by the chunk whatever the width; and
 * at most recalibration's executor batch (DEFAULT_CHUNK_ROWS) of rows.
 */
const CHUNK_BYTES = 4 * 1024 * 1024;

/** Rows per chunk of an upload for rows of `width` float32 values. */
export const uploadChunkRows = (width: number): number =>
  Math.max(1, Math.min(DEFAULT_CHUNK_ROWS, Math.floor(CHUNK_BYTES / (4 * width))));

/** The two chunks of `chunkRows` rows a reader fills in turn. */
export const chunkPair = (chunkRows: number, width: number): [Float32Array, Float32Array] => [
  new Float32Array(chunkRows * width),
  new Float32Array(chunkRows * width),
];

/** A run of line ends, matched where lastIndex says (sticky). */
const LINE_ENDS = /\n+/y;

/** Whether text[start, end) holds JSON whitespace only (space, tab, carriage return). */
function isBlank(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d) return false;
  }
  return true;
}

/**
 * NDJSON: one JSON array of `width` finite numbers per line (blank lines skipped, a line counted
 * whether blank or not). Lines are parsed without allocating (parseNumberRow) and by JSON.parse
 * (readNdjsonRow) only when that declines, which gives the exact error; a line longer than
 * `maxLineChars` without a line end is refused rather than held.
 */
export async function* ndjsonRowChunks(
  text: AsyncIterable<string>,
  width: number,
  { source, chunkRows, maxLineChars, received }: RowChunkOptions & { maxLineChars: number },
): AsyncGenerator<Float32Array> {
  let pending = '';
  let line = 0;
  const chunks = chunkPair(chunkRows, width);
  let chunk = chunks[0];
  let rows = 0;
  /** Rows of the chunks handed on. */
  let handedOn = 0;
  /** text[start, end) is a line (text[end] is its line end or past the string). */
  const takeLine = (text: string, start: number, end: number): void => {
    if (parseNumberRow(text, start, end, width, chunk, rows * width)) {
      line++;
      rows++;
      return;
    }
    parseLine(text.slice(start, end));
  };
  // The slow way: JSON.parse, with the exact error for a line the fast scan did not take.
  const parseLine = (text: string): void => {
    line++;
    const fail = ({ column, message }: NdjsonRowProblem): never => {
      const path = `${fileLine(source, line)}${column === undefined ? '' : `[${column}]`}`;
      throw new NormserveError('DATA_INVALID', `${path}: ${message}`, {
        errors: [{ path, message }],
      });
    };
    if (readNdjsonRow(text, width, chunk, rows * width, fail)) rows++;
  };
  for await (const part of text) {
    // Only the new text is searched for line ends, so the work is linear in the input.
    let start = 0;
    for (let end = part.indexOf('\n'); end !== -1; end = part.indexOf('\n', start)) {
      // A blank line is only counted: through the parsers, each cost ~0.7 µs, so a 305 KB gzip
      // upload of line ends (300 MB decoded, no row) held the model's lock for a minute of CPU
      // (attack review of 2026-12-06).
      if (pending === '' && isBlank(part, start, end)) {
        start = end + 1;
        line++;
        // A run of empty lines at once, matched natively.
        if (part.charCodeAt(start) === 0x0a) {
          LINE_ENDS.lastIndex = start;
          LINE_ENDS.test(part);
          line += LINE_ENDS.lastIndex - start;
          start = LINE_ENDS.lastIndex;
        }
        continue;
      }
      if (pending === '') {
        takeLine(part, start, end);
      } else {
        const whole = pending + part.slice(start, end);
        takeLine(whole, 0, whole.length);
        pending = '';
      }
      start = end + 1;
      if (rows === chunkRows) {
        if (received) received.rows = handedOn + rows;
        handedOn += rows;
        yield chunk;
        chunk = chunk === chunks[0] ? chunks[1] : chunks[0];
        rows = 0;
      }
    }
    if (received) received.rows = handedOn + rows;
    pending += part.slice(start);
    if (pending.length > maxLineChars) {
      const path = fileLine(source, line + 1);
      const message = `longer than ${maxLineChars} characters without a line end: one row per line is expected`;
      throw new NormserveError('DATA_INVALID', `${path}: ${message}`, {
        errors: [{ path, message }],
      });
    }
  }
  takeLine(pending, 0, pending.length);
  if (received) received.rows = handedOn + rows;
  if (rows > 0) yield chunk.subarray(0, rows * width);
}

/**
 * CSV: a header row, then rows (training's csvRecords: parseCsv's syntax), the model's feature
 * columns of each (service's CsvFeatureReader: the rules and words of a file read whole, the
 * line named). `namedLabelColumn`, a label column the caller named, must be a column of the
 * header (checkNamedLabelColumn). A record longer than `maxRecordChars` is refused rather than
 * held (an unclosed quote would otherwise keep the rest of the text).
 */
export async function* csvRowChunks(
  text: AsyncIterable<string>,
  model: CsvFeatureModel,
  labelColumn: string,
  {
    source,
    chunkRows,
    maxRecordChars,
    namedLabelColumn,
    received,
  }: RowChunkOptions & { maxRecordChars: number; namedLabelColumn?: string | undefined },
): AsyncGenerator<Float32Array> {
  const width = model.inputWidth;
  const chunks = chunkPair(chunkRows, width);
  let chunk = chunks[0];
  let rows = 0;
  const reader = new CsvFeatureReader(model, labelColumn, source, namedLabelColumn);
  for await (const { record, line } of csvRecords(text, source, maxRecordChars)) {
    if (!reader.take(record, line, chunk, rows * width)) continue;
    if (received) received.rows++;
    if (++rows === chunkRows) {
      yield chunk;
      chunk = chunk === chunks[0] ? chunks[1] : chunks[0];
      rows = 0;
    }
  }
  reader.finish();
  if (rows > 0) yield chunk.subarray(0, rows * width);
}

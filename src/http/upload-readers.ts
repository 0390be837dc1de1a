import { NormserveError } from '../errors/index.js';
import {
  type CsvFeatureModel,
  CsvFeatureReader,
  csvRecords,
  type NdjsonRowProblem,
  readNdjsonRow,
} from '../service/index.js';
import { parseNumberRow } from './number-row-parser.js';
import { notUtf8 } from './utf8-body.js';

/**
 * Rows are handed on in chunks of at most this many (recalibration's executor batch) and at most
 * CHUNK_BYTES, so memory is bounded by the chunk whatever the width. Two chunks are filled in
 * turn, so that the consumer can take one while the next is read (RecalibrationSession.pushAll):
 * a yielded chunk stays unchanged until the one after it has been yielded and the next is asked
 * for.
 */
const CHUNK_ROWS = 4096;
const CHUNK_BYTES = 4 * 1024 * 1024;

/** Rows per chunk for rows of `width` float32 values. */
const chunkRowsFor = (width: number): number =>
  Math.max(1, Math.min(CHUNK_ROWS, Math.floor(CHUNK_BYTES / (4 * width))));

/** The two chunks of chunkRowsFor(width) rows a reader fills in turn. */
const chunkPair = (width: number): [Float32Array, Float32Array] => [
  new Float32Array(chunkRowsFor(width) * width),
  new Float32Array(chunkRowsFor(width) * width),
];

/** Node's error for a request whose connection closed before its body ended. */
const isClientAbort = (e: unknown): boolean =>
  (e as NodeJS.ErrnoException | undefined)?.code === 'ECONNRESET';

/**
 * The upload's bytes, at most `maxBytes` of them. The stream is read with next() alone, never by
 * for-await: a for-await left early (a bad line, a body over its limit, a row the consumer
 * refuses) calls the iterator's return, and a request stream's return destroys the request before
 * its end, which Node marks aborted: Fastify then runs onRequestAbort and the refusal's 400 or 413
 * was recorded as the client's 499 (request-log.ts). Left early, the rest of the body stays unread
 * (at most the stream's buffer is read into memory), as Fastify leaves a JSON body over its
 * limit, and the connection is closed once the response is sent (app.ts, bodyLeftUnread).
 */
async function* limitedBytes(
  stream: AsyncIterable<Buffer | string>,
  maxBytes: number,
): AsyncGenerator<Buffer> {
  const parts = stream[Symbol.asyncIterator]();
  let total = 0;
  try {
    for (let part = await parts.next(); !part.done; part = await parts.next()) {
      const buffer = typeof part.value === 'string' ? Buffer.from(part.value) : part.value;
      total += buffer.length;
      if (total > maxBytes) {
        throw new NormserveError(
          'BODY_TOO_LARGE',
          `upload larger than ${maxBytes} bytes (RECALIBRATION_BODY_LIMIT_BYTES)`,
        );
      }
      yield buffer;
    }
  } catch (e) {
    if (!isClientAbort(e)) throw e;
    throw new NormserveError(
      'CLIENT_ABORTED',
      `the client closed the connection after ${total} bytes, before the upload ended`,
      { cause: e },
    );
  }
}

/**
 * `application/x-ndjson`: one JSON array of `width` finite numbers per line (blank lines
 * skipped), read as the bytes arrive and handed on as float32 chunks of whole rows. Lines are
 * parsed without allocating (parseNumberRow) and by JSON.parse only when that declines; two
 * chunks are filled in turn (see CHUNK_ROWS).
 */
export async function* ndjsonRows(
  stream: AsyncIterable<Buffer | string>,
  width: number,
  maxBytes: number,
): AsyncGenerator<Float32Array> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let pending = '';
  let line = 0;
  const chunkRows = chunkRowsFor(width);
  const chunks = chunkPair(width);
  let chunk = chunks[0];
  let rows = 0;
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
      const path = column === undefined ? `line ${line}` : `line ${line}[${column}]`;
      throw new NormserveError('INVALID_INPUT', `${path}: ${message}`, {
        errors: [{ path, message }],
      });
    };
    if (readNdjsonRow(text, width, chunk, rows * width, fail)) rows++;
  };
  // A row of `width` numbers fits in this many characters; a longer line is not a row (and would
  // otherwise grow without bound while no newline comes).
  const maxLineChars = width * 32 + 1024;
  for await (const bytes of limitedBytes(stream, maxBytes)) {
    let text: string;
    try {
      text = decoder.decode(bytes, { stream: true });
    } catch {
      throw notUtf8();
    }
    // Only the new text is searched for line ends, so the work is linear in the upload.
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      if (pending === '') {
        takeLine(text, start, end);
      } else {
        const whole = pending + text.slice(start, end);
        takeLine(whole, 0, whole.length);
        pending = '';
      }
      start = end + 1;
      if (rows === chunkRows) {
        yield chunk;
        chunk = chunk === chunks[0] ? chunks[1] : chunks[0];
        rows = 0;
      }
    }
    pending += text.slice(start);
    if (pending.length > maxLineChars) {
      const message = `longer than ${maxLineChars} characters without a line end: one row per line is expected`;
      throw new NormserveError('INVALID_INPUT', `line ${line + 1}: ${message}`, {
        errors: [{ path: `line ${line + 1}`, message }],
      });
    }
  }
  const last = pending + decoder.decode();
  takeLine(last, 0, last.length);
  if (rows > 0) yield chunk.subarray(0, rows * width);
}

/** The text of UTF-8 bytes, decoded as they arrive (a character split between parts included). */
async function* utf8Text(bytes: AsyncIterable<Buffer>): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  try {
    for await (const part of bytes) yield decoder.decode(part, { stream: true });
    yield decoder.decode();
  } catch (e) {
    if (e instanceof TypeError) throw notUtf8();
    throw e;
  }
}

/**
 * `text/csv`: a header row, then rows, read as the bytes arrive (training's csvRecords: parseCsv's
 * syntax) and handed on as float32 chunks of whole rows, two filled in turn (see
 * CHUNK_ROWS). The columns are the CLIs' (the model's feature names when the header has them all,
 * else every column but `labelColumn`) and so are the rules and words for a cell, a row and the
 * header (service's CsvFeatureReader), naming the line: `line 7, column "b": "x" is not a finite
 * number`. What the CLIs call a bad file (DATA_INVALID) is a bad request here (INVALID_INPUT, as
 * an NDJSON line's). A row may hold columns the model does not read (an id, a timestamp), so its
 * bound is looser than an NDJSON line's, but an unclosed quote still cannot hold the upload.
 */
export async function* csvRows(
  stream: AsyncIterable<Buffer | string>,
  model: CsvFeatureModel,
  labelColumn: string,
  maxBytes: number,
): AsyncGenerator<Float32Array> {
  const width = model.inputWidth;
  const chunkRows = chunkRowsFor(width);
  const chunks = chunkPair(width);
  let chunk = chunks[0];
  let rows = 0;
  const reader = new CsvFeatureReader(model, labelColumn, '');
  const maxRecordChars = Math.max(1 << 20, width * 64);
  try {
    const text = utf8Text(limitedBytes(stream, maxBytes));
    for await (const { record, line } of csvRecords(text, '', maxRecordChars)) {
      if (!reader.take(record, line, chunk, rows * width)) continue;
      if (++rows === chunkRows) {
        yield chunk;
        chunk = chunk === chunks[0] ? chunks[1] : chunks[0];
        rows = 0;
      }
    }
    reader.finish();
  } catch (e) {
    if (e instanceof NormserveError && e.code === 'DATA_INVALID')
      throw new NormserveError('INVALID_INPUT', e.message, { cause: e });
    throw e;
  }
  if (rows > 0) yield chunk.subarray(0, rows * width);
}

/** Whether this machine stores float32 little-endian (as uploads are): then bytes copy as they are. */
const LITTLE_ENDIAN = new Uint8Array(new Float32Array([1]).buffer)[3] === 0x3f;

/**
 * `application/octet-stream`: little-endian float32 rows of `width` values, back to back; read as
 * the bytes arrive. The bytes are copied once, straight into a float32 chunk of whole rows
 * (byte order swapped only on a big-endian machine); two chunks are filled in turn (see
 * CHUNK_ROWS). A body that ends inside a row is an error.
 */
export async function* float32Rows(
  stream: AsyncIterable<Buffer | string>,
  width: number,
  maxBytes: number,
): AsyncGenerator<Float32Array> {
  const rowBytes = width * 4;
  const chunks = chunkPair(width);
  let chunk = chunks[0];
  let bytes = new Uint8Array(chunk.buffer);
  let filled = 0;
  const ready = (length: number): Float32Array => {
    const values = chunk.subarray(0, length / 4);
    if (!LITTLE_ENDIAN) {
      const view = new DataView(chunk.buffer, 0, length);
      for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(i * 4, true);
    }
    return values;
  };
  for await (const part of limitedBytes(stream, maxBytes)) {
    let offset = 0;
    while (offset < part.length) {
      const n = Math.min(bytes.length - filled, part.length - offset);
      bytes.set(part.subarray(offset, offset + n), filled);
      filled += n;
      offset += n;
      if (filled === bytes.length) {
        yield ready(filled);
        chunk = chunk === chunks[0] ? chunks[1] : chunks[0];
        bytes = new Uint8Array(chunk.buffer);
        filled = 0;
      }
    }
  }
  if (filled % rowBytes !== 0) {
    throw new NormserveError(
      'INVALID_INPUT',
      `the body ends inside a row: its length is not a multiple of ${rowBytes} bytes (${width} float32 values per row)`,
    );
  }
  if (filled > 0) yield ready(filled);
}

import { errnoOf, NormserveError } from '../errors/index.js';
import {
  type CsvFeatureModel,
  chunkPair,
  csvRowChunks,
  ndjsonRowChunks,
  type RowsReceived,
  uploadChunkRows,
} from '../service/index.js';
import { notUtf8 } from './utf8-body.js';

/**
 * Rows are handed on in chunks of at most 4,096 rows (recalibration's executor batch) and at
 * most 4 MiB (service's uploadChunkRows), so memory is bounded by the chunk whatever the width.
 * Two chunks are filled in turn, so that the consumer can take one while the next is read
 * (RecalibrationSession.pushAll): a yielded chunk stays unchanged until the one after it has been
 * yielded and the next is asked for. The text readers are service's (row-chunks.ts), shared with
 * the recalibrate CLI's data file; what they call a bad file (DATA_INVALID) is a bad request
 * here (INVALID_INPUT), in the same words.
 */
async function* asRequestErrors(
  chunks: AsyncGenerator<Float32Array>,
): AsyncGenerator<Float32Array> {
  try {
    yield* chunks;
  } catch (e) {
    if (e instanceof NormserveError && e.code === 'DATA_INVALID')
      throw new NormserveError('INVALID_INPUT', e.message, { errors: e.errors, cause: e });
    throw e;
  }
}

/** Node's error for a request whose connection closed before its body ended. */
const isClientAbort = (e: unknown): boolean => errnoOf(e) === 'ECONNRESET';

/** An upload over RECALIBRATION_BODY_LIMIT_BYTES: as it is read, or by its declared length. */
export const uploadTooLarge = (maxBytes: number): NormserveError =>
  new NormserveError(
    'BODY_TOO_LARGE',
    `upload larger than ${maxBytes} bytes (RECALIBRATION_BODY_LIMIT_BYTES)`,
  );

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
        throw uploadTooLarge(maxBytes);
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
 * skipped), read as the bytes arrive and handed on as float32 chunks of whole rows
 * (service's ndjsonRowChunks: lines parsed without allocating, by JSON.parse only when that
 * declines); a line is at most a row's worth of characters, so one without a line end cannot
 * hold the upload.
 */
export function ndjsonRows(
  stream: AsyncIterable<Buffer | string>,
  width: number,
  maxBytes: number,
  received?: RowsReceived,
): AsyncGenerator<Float32Array> {
  // A row of `width` numbers fits in this many characters; a longer line is not a row (and would
  // otherwise grow without bound while no newline comes).
  const maxLineChars = width * 32 + 1024;
  return asRequestErrors(
    ndjsonRowChunks(utf8Text(limitedBytes(stream, maxBytes)), width, {
      source: '',
      chunkRows: uploadChunkRows(width),
      maxLineChars,
      received,
    }),
  );
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
 * asRequestErrors). The columns are the CLIs' (the model's feature names when the header has them all,
 * else every column but `labelColumn`) and so are the rules and words for a cell, a row and the
 * header (service's CsvFeatureReader), naming the line: `line 7, column "b": "x" is not a finite
 * number`. What the CLIs call a bad file (DATA_INVALID) is a bad request here (INVALID_INPUT, as
 * an NDJSON line's). A row may hold columns the model does not read (an id, a timestamp), so its
 * bound is looser than an NDJSON line's, but an unclosed quote still cannot hold the upload.
 */
export function csvRows(
  stream: AsyncIterable<Buffer | string>,
  model: CsvFeatureModel,
  labelColumn: string,
  maxBytes: number,
  /** The label column the request named (`label_column`): refused unless the header has it. */
  namedLabelColumn?: string | undefined,
  received?: RowsReceived,
): AsyncGenerator<Float32Array> {
  const width = model.inputWidth;
  return asRequestErrors(
    csvRowChunks(utf8Text(limitedBytes(stream, maxBytes)), model, labelColumn, {
      source: '',
      chunkRows: uploadChunkRows(width),
      maxRecordChars: Math.max(1 << 20, width * 64),
      namedLabelColumn,
      received,
    }),
  );
}

/** Whether this machine stores float32 little-endian (as uploads are): then bytes copy as they are. */
const LITTLE_ENDIAN = new Uint8Array(new Float32Array([1]).buffer)[3] === 0x3f;

/**
 * `application/octet-stream`: little-endian float32 rows of `width` values, back to back; read as
 * the bytes arrive. The bytes are copied once, straight into a float32 chunk of whole rows
 * (byte order swapped only on a big-endian machine); two chunks are filled in turn (see
 * asRequestErrors). A body that ends inside a row is an error.
 */
export async function* float32Rows(
  stream: AsyncIterable<Buffer | string>,
  width: number,
  maxBytes: number,
  received?: RowsReceived,
): AsyncGenerator<Float32Array> {
  const rowBytes = width * 4;
  let bytesRead = 0;
  const chunks = chunkPair(uploadChunkRows(width), width);
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
    bytesRead += part.length;
    if (received) received.rows = Math.floor(bytesRead / rowBytes);
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

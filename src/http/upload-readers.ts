import { NormserveError } from '../errors/index.js';
import { FINITE_NUMBER_MESSAGE, FLOAT32_MAX, FLOAT32_RANGE_MESSAGE } from '../service/index.js';

/** Rows are handed on in chunks of this many, so memory is bounded by the chunk. */
const CHUNK_ROWS = 1024;

/** Node's error for a request whose connection closed before its body ended. */
const isClientAbort = (e: unknown): boolean =>
  (e as NodeJS.ErrnoException | undefined)?.code === 'ECONNRESET';

async function* limitedBytes(
  stream: AsyncIterable<Buffer | string>,
  maxBytes: number,
): AsyncGenerator<Buffer> {
  let total = 0;
  try {
    for await (const part of stream) {
      const buffer = typeof part === 'string' ? Buffer.from(part) : part;
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
 * skipped), read as the bytes arrive and handed on as float32 chunks of whole rows.
 */
export async function* ndjsonRows(
  stream: AsyncIterable<Buffer | string>,
  width: number,
  maxBytes: number,
): AsyncGenerator<Float32Array> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let pending = '';
  let line = 0;
  let chunk = new Float32Array(CHUNK_ROWS * width);
  let rows = 0;
  const parseLine = (text: string): void => {
    line++;
    const trimmed = text.trim();
    if (trimmed === '') return;
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch {
      throw new NormserveError('INVALID_INPUT', `line ${line}: not valid JSON`, {
        errors: [{ path: `line ${line}`, message: 'not valid JSON' }],
      });
    }
    if (!Array.isArray(value) || value.length !== width) {
      const message = Array.isArray(value)
        ? `expected ${width} values, got ${value.length}`
        : `expected an array of ${width} numbers`;
      throw new NormserveError('INVALID_INPUT', `line ${line}: ${message}`, {
        errors: [{ path: `line ${line}`, message }],
      });
    }
    for (let c = 0; c < width; c++) {
      const v = value[c];
      if (typeof v !== 'number' || !(Math.abs(v) <= FLOAT32_MAX)) {
        const message = typeof v === 'number' ? FLOAT32_RANGE_MESSAGE : FINITE_NUMBER_MESSAGE;
        throw new NormserveError('INVALID_INPUT', `line ${line}[${c}]: ${message}`, {
          errors: [{ path: `line ${line}[${c}]`, message }],
        });
      }
      chunk[rows * width + c] = v;
    }
    rows++;
  };
  // A row of `width` numbers fits in this many characters; a longer line is not a row (and would
  // otherwise grow without bound while no newline comes).
  const maxLineChars = width * 32 + 1024;
  for await (const bytes of limitedBytes(stream, maxBytes)) {
    let text: string;
    try {
      text = decoder.decode(bytes, { stream: true });
    } catch {
      throw new NormserveError('INVALID_INPUT', 'the upload is not valid UTF-8');
    }
    // Only the new text is searched for line ends, so the work is linear in the upload.
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      parseLine(pending + text.slice(start, end));
      pending = '';
      start = end + 1;
      if (rows === CHUNK_ROWS) {
        yield chunk;
        chunk = new Float32Array(CHUNK_ROWS * width);
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
  parseLine(pending + decoder.decode());
  if (rows > 0) yield chunk.subarray(0, rows * width);
}

/**
 * `application/octet-stream`: little-endian float32 rows of `width` values, back to back; read as
 * the bytes arrive. A body that ends inside a row is an error.
 */
export async function* float32Rows(
  stream: AsyncIterable<Buffer | string>,
  width: number,
  maxBytes: number,
): AsyncGenerator<Float32Array> {
  const rowBytes = width * 4;
  let carry = Buffer.alloc(0);
  for await (const bytes of limitedBytes(stream, maxBytes)) {
    const data = carry.length > 0 ? Buffer.concat([carry, bytes]) : bytes;
    const whole = Math.floor(data.length / rowBytes);
    for (let start = 0; start < whole; start += CHUNK_ROWS) {
      const n = Math.min(CHUNK_ROWS, whole - start);
      const chunk = new Float32Array(n * width);
      const view = new DataView(data.buffer, data.byteOffset + start * rowBytes, n * rowBytes);
      for (let i = 0; i < n * width; i++) chunk[i] = view.getFloat32(i * 4, true);
      yield chunk;
    }
    carry = Buffer.from(data.subarray(whole * rowBytes));
  }
  if (carry.length > 0) {
    throw new NormserveError(
      'INVALID_INPUT',
      `the body ends inside a row: its length is not a multiple of ${rowBytes} bytes (${width} float32 values per row)`,
    );
  }
}

import type { FastifyReply, FastifyRequest } from 'fastify';
import { isNormserveError, NormserveError } from '../errors/index.js';
import { failInput } from '../service/index.js';
import { OCTET_STREAM } from './accepted-types.js';
import { parseJsonBody } from './json-body.js';
import { utf8Body } from './utf8-body.js';

/**
 * The Open Inference Protocol's binary tensor data extension over HTTP, as Triton documents it
 * (docs/protocol/extension_binary_data.md): the body is a JSON header of
 * `Inference-Header-Content-Length` bytes followed by the raw tensors in the order of the
 * header's inputs, each `parameters.binary_data_size` bytes; outputs with
 * `parameters.binary_data: true` (or every output, with the request parameter
 * `binary_data_output: true`) come back the same way.
 */
export { OCTET_STREAM };
export const HEADER_LENGTH = 'inference-header-content-length';
const HEADER_LENGTH_NAME = 'Inference-Header-Content-Length';

/**
 * Binary requests are recognised by their Inference-Header-Content-Length header, as Triton and
 * KServe do (clients such as tritonclient send no Content-Type): such a body is read as bytes.
 */
export function binaryContentType(
  request: FastifyRequest,
  _reply: FastifyReply,
  done: () => void,
): void {
  if (request.headers[HEADER_LENGTH] !== undefined) request.headers['content-type'] = OCTET_STREAM;
  done();
}

/**
 * Triton's raw binary request: `Inference-Header-Content-Length: 0` says the body has no JSON
 * header, only the input's bytes (extension_binary_data.md, "Raw Binary Request").
 */
export function isRawBinary(headerLength: string | string[] | undefined): boolean {
  return typeof headerLength === 'string' && /^\s*0+\s*$/.test(headerLength);
}

/** Splits a binary body into its JSON header text and the bytes after it. */
export function splitInferBody(
  body: Buffer,
  headerLength: string | string[] | undefined,
): { json: string; binary: Buffer } {
  if (headerLength === undefined) {
    try {
      return { json: utf8Body(body), binary: body.subarray(0, 0) };
    } catch (e) {
      throw withoutLengthHint(e as Error); // tensor bytes read as text, likely
    }
  }
  const value = Array.isArray(headerLength) ? headerLength.join(',') : headerLength;
  if (!/^[0-9]{1,15}$/.test(value.trim())) {
    failInput(
      `headers.${HEADER_LENGTH}`,
      `expected the byte length of the JSON header, got "${value.slice(0, 40)}"`,
    );
  }
  const length = Number(value.trim());
  if (length > body.length) {
    failInput(
      `headers.${HEADER_LENGTH}`,
      `the JSON header is said to be ${length} bytes but the body has ${body.length}`,
    );
  }
  try {
    return { json: utf8Body(body, 0, length), binary: body.subarray(length) };
  } catch (e) {
    throw withLengthHint(e as Error, length); // a length that ends inside a character, likely
  }
}

/**
 * Whether a JSON syntax error in a header cut at its declared length looks like a wrong length:
 * the text ends inside the JSON (too short), or holds a whole JSON value before the error (too
 * long: the tensor bytes after it). Any other error — a NaN, a key too many — is the JSON's own.
 */
function cutWrong(error: Error, text: string): boolean {
  if (!isNormserveError(error) || error.code !== 'INVALID_JSON') return false;
  const offset = (error.extra.position as { offset?: unknown } | undefined)?.offset;
  if (typeof offset !== 'number') return false;
  if (offset >= text.trimEnd().length) return true;
  const end = firstValueEnd(text);
  return end !== -1 && offset >= end;
}

/**
 * The index just past the first top-level object or array of `text`, by its brackets outside
 * strings (no parse, no allocation), or -1 when it does not close.
 */
function firstValueEnd(text: string): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // a backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) depth++;
    else if ((c === 0x7d || c === 0x5d) && --depth === 0) return i + 1;
  }
  return -1;
}

/**
 * A JSON header that is not UTF-8 or not JSON, cut where Inference-Header-Content-Length says:
 * a wrong length (one ending inside a character or short of the JSON's end, or one reaching into
 * the tensor bytes) gives exactly that, so the message names the length as well.
 */
function withLengthHint(error: Error, length: number): Error {
  if (!isNormserveError(error) || (error.code !== 'INVALID_JSON' && error.code !== 'INVALID_INPUT'))
    return error;
  return new NormserveError(
    error.code,
    `${error.message.replace(/^the request body /, 'the JSON header ')} (the JSON header is the body's first ${length} bytes, as ${HEADER_LENGTH_NAME} says: check that it is the header's length in bytes)`,
    { errors: error.errors, extra: { ...error.extra }, cause: error },
  );
}

/**
 * An application/octet-stream body without Inference-Header-Content-Length is read whole as the
 * JSON header: when that is not JSON, or not even UTF-8 text (utf8Body's INVALID_INPUT), the
 * likely cause is the missing header, so say so.
 */
function withoutLengthHint(error: Error): Error {
  if (!isNormserveError(error) || (error.code !== 'INVALID_JSON' && error.code !== 'INVALID_INPUT'))
    return error;
  return new NormserveError(
    error.code,
    `${error.message} (no ${HEADER_LENGTH_NAME} header: a binary body is a JSON header of that many bytes followed by the tensor bytes)`,
    { errors: error.errors, extra: { ...error.extra }, cause: error },
  );
}

/** The JSON header of a binary body (`text`, from splitInferBody), parsed but not yet validated. */
export function parseInferHeader(
  request: FastifyRequest,
  text: string,
  lengthGiven: boolean,
): unknown {
  if (text.trim() === '') failInput(`headers.${HEADER_LENGTH}`, 'the JSON header is empty');
  let parsed: unknown;
  let error: Error | null = null;
  // The JSON bodies' own parser (synchronous): the same refusals and error positions.
  parseJsonBody(request, text, (e, value) => {
    error = e;
    parsed = value;
  });
  if (error)
    throw !lengthGiven
      ? withoutLengthHint(error)
      : cutWrong(error, text)
        ? withLengthHint(error, Buffer.byteLength(text))
        : error;
  return parsed;
}

/** A parameter that must be a boolean when given (`binary_data`, `binary_data_output`). */
export function booleanParameter(
  parameters: Record<string, unknown> | undefined,
  key: string,
  path: string,
): boolean | undefined {
  const value = parameters?.[key];
  if (value === undefined || typeof value === 'boolean') return value;
  return failInput(`${path}.${key}`, 'expected a boolean');
}

/** `binary_data_size` of an input: a byte count when given. */
export function binaryDataSize(
  parameters: Record<string, unknown> | undefined,
  path: string,
): number | undefined {
  const value = parameters?.binary_data_size;
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    return failInput(`${path}.binary_data_size`, 'expected a byte count (an integer ≥ 0)');
  return value;
}

/** A binary response body: the JSON header, then the tensors' bytes. */
export function binaryBody(
  json: string,
  parts: readonly Buffer[],
): { body: Buffer; headerLength: number } {
  const header = Buffer.from(json, 'utf8');
  return { body: Buffer.concat([header, ...parts]), headerLength: header.length };
}

/** The inputs' binary_data_size must account for exactly the bytes after the header. */
export function checkBinaryConsumed(used: number, available: number): void {
  if (used !== available) {
    failInput(
      'inputs',
      `the binary_data_size values add up to ${used} bytes, but ${available} bytes follow the JSON header`,
    );
  }
}

export { HEADER_LENGTH_NAME };

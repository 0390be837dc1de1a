import { isUtf8 } from 'node:buffer';
import { NormserveError } from '../errors/index.js';

/**
 * A request body (or the part of one read as text) whose bytes are no UTF-8: the JSON bodies, the
 * JSON header of a binary infer request, the NDJSON and CSV uploads. gRPC says the same of a
 * string field (wire-check.ts).
 */
export const notUtf8 = (): NormserveError =>
  new NormserveError('INVALID_INPUT', 'the request body is not valid UTF-8');

/**
 * `bytes[start, end)` as text, refused (notUtf8) when they are no UTF-8: Buffer's decoder would put
 * U+FFFD for each bad byte, and a client's id or string would come back changed. isUtf8 is
 * simdutf's validator (microseconds for a 40 KB body); the decode is the one copy a text needs.
 */
export function utf8Body(bytes: Buffer, start = 0, end = bytes.length): string {
  if (!isUtf8(bytes.subarray(start, end))) throw notUtf8(); // a view, not a copy
  return bytes.toString('utf8', start, end);
}

import { NormserveError } from '../errors/index.js';

/**
 * The 413 of a body over its limit, as sent or once decoded (Content-Encoding): one wording,
 * naming the setting and its value (`BODY_LIMIT_BYTES: 2048 bytes`).
 */
export const bodyTooLarge = (
  body: 'request body' | 'decoded request body',
  limit: { name: string; bytes: number },
): NormserveError =>
  new NormserveError(
    'BODY_TOO_LARGE',
    `the ${body} is larger than the limit (${limit.name}: ${limit.bytes} bytes)`,
  );

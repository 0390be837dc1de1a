import { NormserveError, quote } from '../errors/index.js';

/**
 * `text/csv` (RFC 4180, RFC 7111): the CSV uploads of :recalibrate, read as UTF-8 with a header
 * row, as the CLIs read a CSV file. `application/csv` is no registered type, and curl, pandas and
 * browsers send text/csv; it stays a 415 that names text/csv.
 */
export const CSV = 'text/csv';

/** Charsets whose bytes are UTF-8's (US-ASCII is RFC 4180's default and a subset). */
const UTF8_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii']);

/** A media type's parameters, names lower-cased, values unquoted: `charset=UTF-8` → charset: UTF-8. */
function mediaTypeParameters(contentType: string): Map<string, string> {
  const parameters = new Map<string, string>();
  for (const part of contentType.split(';').slice(1)) {
    const at = part.indexOf('=');
    if (at === -1) continue;
    const value = part.slice(at + 1).trim();
    parameters.set(
      part.slice(0, at).trim().toLowerCase(),
      value.startsWith('"') && value.endsWith('"') && value.length >= 2
        ? value.slice(1, -1)
        : value,
    );
  }
  return parameters;
}

/**
 * A text/csv Content-Type the upload reader can honour: no charset or a UTF-8 one (the cells are
 * decoded as UTF-8; latin-1 bytes would be refused as invalid UTF-8 halfway through the upload),
 * and a header row (`header=absent` would hand the first row to the column rule). A 415 before
 * any byte of the body is read.
 */
export function checkCsvMediaType(contentType: string): void {
  const parameters = mediaTypeParameters(contentType);
  const charset = parameters.get('charset');
  if (charset !== undefined && !UTF8_CHARSETS.has(charset.toLowerCase())) {
    throw new NormserveError(
      'UNSUPPORTED_MEDIA_TYPE',
      `${CSV} with charset ${quote(charset)} is not read: send the CSV as UTF-8 (charset=utf-8, or no charset)`,
    );
  }
  if (parameters.get('header')?.toLowerCase() === 'absent') {
    throw new NormserveError(
      'UNSUPPORTED_MEDIA_TYPE',
      `${CSV} with header=absent is not read: the first line must name the columns`,
    );
  }
}

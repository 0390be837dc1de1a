import { NormserveError } from '../errors/index.js';
import { checkUtf8Charset, mediaTypeParameters } from './media-type.js';

/**
 * `text/csv` (RFC 4180, RFC 7111): the CSV uploads of :recalibrate, read as UTF-8 with a header
 * row, as the CLIs read a CSV file. `application/csv` is no registered type, and curl, pandas and
 * browsers send text/csv; it stays a 415 that names text/csv.
 */
export const CSV = 'text/csv';

/**
 * A text/csv Content-Type the upload reader can honour: no charset or a UTF-8 one (the cells are
 * decoded as UTF-8; latin-1 bytes would be refused as invalid UTF-8 halfway through the upload),
 * and a header row (`header=absent` would hand the first row to the column rule). A 415 before
 * any byte of the body is read.
 */
export function checkCsvMediaType(contentType: string): void {
  const parameters = mediaTypeParameters(contentType);
  checkUtf8Charset(parameters, CSV, 'the CSV');
  if (parameters.get('header')?.toLowerCase() === 'absent') {
    throw new NormserveError(
      'UNSUPPORTED_MEDIA_TYPE',
      `${CSV} with header=absent is not read: the first line must name the columns`,
    );
  }
}

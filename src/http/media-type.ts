import { NormserveError, quote } from '../errors/index.js';

/** Charsets whose bytes are UTF-8's (US-ASCII is a subset, and RFC 4180's default for CSV). */
const UTF8_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii']);

/**
 * A request that names no media type: no Content-Type header, or an empty one (Node keeps
 * `Content-Type:` as ''). untypedBodyAsJson reads such a body as JSON; a 415 says the type is missing.
 */
export const noContentType = (type: string | undefined): boolean =>
  type === undefined || type.trim() === '';

/**
 * The media type a Content-Type header names, without its parameters, lower-cased (RFC 9110
 * §8.3.1: type and subtype are case-insensitive): `Text/CSV; charset=utf-8` → `text/csv`; ''
 * for no header.
 */
export const mediaTypeOf = (contentType: string | undefined): string =>
  (contentType ?? '').split(';')[0]!.trim().toLowerCase();

/**
 * The parts of a Content-Type between `;`s, a `;` inside a parameter's quoted value (RFC 9110
 * §5.6.4, §5.6.6: a value that starts with `"`, `\` escaping the next character) kept in its
 * part: `text/csv; foo="x;charset=latin1"` has one parameter, foo. A `"` elsewhere is a plain
 * character, and a quoted value never closed makes the header read as plain `;`-separated parts
 * (h264: a stray quote must not hide a charset or header parameter after it).
 */
function mediaTypeParts(contentType: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < contentType.length; i++) {
    const c = contentType[i];
    if (c === ';') {
      parts.push(contentType.slice(start, i));
      start = i + 1;
    } else if (c === '"' && /=\s*$/.test(contentType.slice(start, i))) {
      let end = i + 1;
      while (end < contentType.length && contentType[end] !== '"')
        end += contentType[end] === '\\' ? 2 : 1;
      if (end >= contentType.length) return contentType.split(';');
      i = end;
    }
  }
  parts.push(contentType.slice(start));
  return parts;
}

/** A media type's parameters, names lower-cased, values unquoted: `charset=UTF-8` → charset: UTF-8. */
export function mediaTypeParameters(contentType: string): Map<string, string> {
  const parameters = new Map<string, string>();
  for (const part of mediaTypeParts(contentType).slice(1)) {
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
 * The one charset rule of the text bodies (JSON, CSV): they are decoded as UTF-8, so a charset
 * parameter other than a UTF-8 one is a 415 naming it (UNSUPPORTED_MEDIA_TYPE), rather than bytes
 * refused as invalid UTF-8 or malformed JSON halfway through. `type` is the media type as the
 * message names it, `noun` what the client sends (`the JSON`, `the CSV`).
 */
export function checkUtf8Charset(
  parameters: ReadonlyMap<string, string>,
  type: string,
  noun: string,
): void {
  const charset = parameters.get('charset');
  if (charset !== undefined && !UTF8_CHARSETS.has(charset.toLowerCase())) {
    throw new NormserveError(
      'UNSUPPORTED_MEDIA_TYPE',
      `${type} with charset ${quote(charset)} is not read: send ${noun} as UTF-8 (charset=utf-8, or no charset)`,
    );
  }
}

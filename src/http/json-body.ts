import type { FastifyReply, FastifyRequest } from 'fastify';
import { parse as locateJsonErrors } from 'jsonc-parser';
import secureJson from 'secure-json-parse';
import { NormserveError, repeatedKey, textPosition } from '../errors/index.js';
import { JSON_BODY_TYPES, NDJSON, OCTET_STREAM, otherBodyTypes } from './accepted-types.js';
import { CSV } from './csv-media-type.js';
import { overJsonBudget } from './json-budget.js';
import { checkUtf8Charset, mediaTypeOf, mediaTypeParameters, noContentType } from './media-type.js';
import { utf8Body } from './utf8-body.js';

/**
 * An onRequest hook for the routes whose clients post JSON without a Content-Type: a body sent
 * with none (or an empty one) is read as application/json, by the same parser with the same limits
 * and error positions. tritonclient.http sends its JSON infer requests with only Host and
 * Content-Length, and KServe's InferenceRESTClient posts `httpx.post(content=orjson.dumps(...))`,
 * untyped, to v1 predict and v2 infer. A request without a body stays bodiless, as Fastify leaves
 * it (the same test as its handle-request.js), so the schema names what is missing. An explicit
 * type other than JSON's is untouched: still a 415.
 */
export function untypedBodyAsJson(
  request: FastifyRequest,
  _reply: FastifyReply,
  done: () => void,
): void {
  const headers = request.headers;
  if (noContentType(headers['content-type'])) {
    const length = headers['content-length'];
    const hasBody =
      headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
    if (hasBody) {
      headers['content-type'] = JSON_BODY_TYPES[0];
      typedAsJson.add(request);
    } else delete headers['content-type'];
  }
  done();
}

/** The requests untypedBodyAsJson gave a Content-Type: an error names no type their client sent. */
const typedAsJson = new WeakSet<FastifyRequest>();

/**
 * A JSON body of no bytes (parseJsonBody here, Fastify's own parser in problem.ts), naming the
 * Content-Type sent: curl's `-d ''` sends application/x-www-form-urlencoded, which is read as JSON
 * (JSON_BODY_TYPES), and was told it had sent application/json (h253).
 */
export const emptyJsonBody = (contentType: string = JSON_BODY_TYPES[0]): string =>
  contentType === JSON_BODY_TYPES[0]
    ? `the body is empty but Content-Type is ${contentType}`
    : `the body is empty but Content-Type is ${contentType} (read as JSON); expected a JSON object`;

/** The same, of a request sent with no Content-Type (an empty chunked body: untypedBodyAsJson). */
export const EMPTY_UNTYPED_BODY =
  'the body is empty (sent with no Content-Type, it is read as JSON); expected a JSON object';

/**
 * The offset of the first syntax error. V8's message states it for most errors ("… in JSON at
 * position 21"), not for an unexpected token ("Unexpected token 'x', "…" is not valid JSON") or
 * the end of the input; then jsonc-parser (strict: no comments, no trailing commas) finds it.
 * Only run on text JSON.parse refused, so it costs nothing on valid bodies.
 */
function errorOffset(text: string, message: string): number {
  const stated = /at position (\d+)/.exec(message);
  if (stated) return Number(stated[1]);
  if (message.startsWith('Unexpected end')) return text.length;
  const errors: { offset: number }[] = [];
  locateJsonErrors(text, errors as never, {
    disallowComments: true,
    allowTrailingComma: false,
    allowEmptyContent: false,
  });
  return errors[0]?.offset ?? text.length;
}

/**
 * The bare token NaN, Infinity or -Infinity (or RapidJSON's Inf, -Inf) where JSON.parse stopped:
 * TF Serving's REST API documents such bodies as valid (its parser takes them), so a client
 * sending one is told that non-finite inputs are refused rather than that its JSON is malformed.
 * V8 stops at the token, or, for a minus sign, at the character after it.
 */
const NON_FINITE = /^-?(?:NaN|Infinity|Inf)(?![A-Za-z0-9_])/;

/**
 * V8's (Node 20) refusals of a value it cannot start: `Unexpected token 'N', …` (or 'I'), `"NaN" is
 * not valid JSON` when that word is the whole body, `No number after minus sign`. A token V8
 * refused for another reason is a plain syntax error: `[1 NaN]` ("Expected ',' or ']' after array
 * element", a missing comma) and `{NaN: 1}` ("Expected property name or '}'", an unquoted key).
 */
const VALUE_REFUSED =
  /^(?:Unexpected token '[NI]'|"(?:NaN|Infinity)" is not valid JSON$|No number after minus sign)/;

/** Where a JSON value may start: after `[`, `,` or `:` (or at the start of the text). */
function atValuePosition(text: string, offset: number): boolean {
  let i = offset - 1;
  while (i >= 0 && ' \t\n\r'.includes(text.charAt(i))) i--;
  return i < 0 || '[,:'.includes(text.charAt(i));
}

function nonFiniteToken(
  text: string,
  offset: number,
  message: string,
): { token: string; offset: number } | null {
  if (!VALUE_REFUSED.test(message)) return null;
  const start = text[offset - 1] === '-' && text[offset] !== '-' ? offset - 1 : offset;
  const match = NON_FINITE.exec(text.slice(start, start + 10));
  return match && atValuePosition(text, start) ? { token: match[0], offset: start } : null;
}

/**
 * The parser app.ts registers for JSON_BODY_TYPES: a charset other than UTF-8's is a 415 naming
 * it, as for CSV (JSON is UTF-8, RFC 8259 §8.1; checkUtf8Charset); the body's bytes are refused
 * when they are no UTF-8 (utf8Body: a string parser would have put U+FFFD in their place, and an
 * `id` would come back changed), then parsed as text (parseJsonBody).
 */
export function parseJsonBytes(
  request: FastifyRequest,
  body: Buffer,
  done: (error: Error | null, value?: unknown) => void,
): void {
  let text: string;
  try {
    const contentType = request.headers['content-type'] ?? '';
    const semicolon = contentType.indexOf(';');
    if (semicolon !== -1) {
      const type = contentType.slice(0, semicolon).trim().toLowerCase();
      checkUtf8Charset(mediaTypeParameters(contentType), type, 'the JSON');
    }
    text = utf8Body(body);
  } catch (e) {
    done(e as Error);
    return;
  }
  parseJsonBody(request, text, done);
}

/**
 * V8's (Node 20) messages that quote the body: `Unexpected token 'x', "<body>" is not valid JSON`,
 * with `...` before and/or after the quote when it cuts the copy to the ten characters around the
 * token (`"hello-this"... is not valid JSON`, `..."1, 2, x, 3"...`, `..."1, 2, x]"`), and a whole
 * body of NaN, Infinity, undefined or `[object Object]` quoted alone (`"undefined" is not valid
 * JSON`). A reply never carries the body's bytes (a secret, a client's binary rows).
 */
const QUOTES_BODY =
  /^(?:Unexpected token '([\s\S])', )?(?:\.\.\.)?"[\s\S]*"(?:\.\.\.)? is not valid JSON$/;

/** A character of the body as a reply names it: printable ASCII quoted, any other as U+XXXX. */
function showCharacter(character: string): string {
  const code = character.codePointAt(0) ?? 0;
  return code > 0x20 && code < 0x7f
    ? `'${character}'`
    : `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** V8's reason without the position and without any of the body (QUOTES_BODY). */
function reason(message: string, text: string, offset: number): string {
  const quoted = QUOTES_BODY.exec(message);
  if (quoted) {
    // The body's whole code point where V8 names one UTF-16 unit (an emoji's first half).
    const atOffset = String.fromCodePoint(text.codePointAt(offset) ?? 0);
    const token = quoted[1] === undefined || atOffset.startsWith(quoted[1]) ? atOffset : quoted[1];
    return `Unexpected token ${showCharacter(token)}`;
  }
  return message.replace(/ in JSON at position \d+.*$/s, '').replace(/ of JSON input$/, '');
}

/** Whether `text` holds a character no text file does (a C0 control but tab, LF, CR): binary. */
function looksBinary(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) return true;
  }
  return false;
}

/**
 * Why a body that is not JSON was read as JSON, on a route that reads other types too, and the
 * type to name: curl's `-d @night.csv` or `--data-binary` without -H sends
 * application/x-www-form-urlencoded, which is read as JSON (JSON_BODY_TYPES), and a CSV upload to
 * :recalibrate got only "Unexpected token 'p'" (newcomer review of 2026-12-04). Said for a body that
 * is no JSON from its first character (a CSV header, a byte-order mark, float32 bytes), or a number
 * or array followed by more (NDJSON lines, a CSV without a header), never for an object with a
 * mistake in it nor for a body sent as application/json. The type named is one the body looks
 * like: binary bytes the route's application/octet-stream, text its CSV or NDJSON; a text body on
 * a route that reads only JSON and binary (predict, infer) gets none (float32 rows read from a
 * CSV's bytes answered 200 with nonsense).
 */
function readAsJsonHint(
  request: FastifyRequest,
  body: string,
  offset: number,
  message: string,
): string {
  const start = body.length - body.trimStart().length;
  const trailing =
    /^Unexpected non-whitespace character after JSON/.test(message) &&
    /^[[\d-]/.test(body[start] ?? '');
  if (offset > start && !trailing) return '';
  const header = request.headers['content-type'];
  const sent = typedAsJson.has(request) || header === undefined ? undefined : mediaTypeOf(header);
  if (sent === JSON_BODY_TYPES[0]) return '';
  const others = otherBodyTypes(request);
  const binary = looksBinary(body.slice(0, 256));
  const looksLike = binary
    ? [OCTET_STREAM]
    : body[start] === '[' && body.includes('\n')
      ? [NDJSON, CSV]
      : [CSV, NDJSON];
  const example = looksLike.find((type) => others.includes(type));
  if (example === undefined) return '';
  const why =
    sent === undefined
      ? 'it was sent with no Content-Type'
      : `its Content-Type is ${sent}, which curl sends for -d and --data-binary without -H`;
  return ` (read as JSON because ${why}; this route also reads ${others.join(', ')}: name the body's type, e.g. -H 'Content-Type: ${example}')`;
}

/**
 * Fastify's JSON body parser with a position in its error: the same secure-json-parse refusals of
 * `__proto__` and `constructor.prototype` keys, but a syntax error names its line and column
 * (and carries them as `position` in the problem document), so a client can find it in a body
 * of thousands of rows. A body with more arrays and objects, or more strings and keys, than its
 * route reads is refused before it is parsed, with the route's 413 (json-budget.ts).
 */
export function parseJsonBody(
  request: FastifyRequest,
  body: string,
  done: (error: Error | null, value?: unknown) => void,
): void {
  if (body.length === 0) {
    const untyped = typedAsJson.has(request);
    // One of the types this parser is registered for (JSON_BODY_TYPES), never other header text.
    const sent = JSON_BODY_TYPES.find(
      (type) => type === mediaTypeOf(request.headers['content-type']),
    );
    done(new NormserveError('INVALID_JSON', untyped ? EMPTY_UNTYPED_BODY : emptyJsonBody(sent)));
    return;
  }
  const refused = overJsonBudget(request, body);
  if (refused) {
    done(refused);
    return;
  }
  let value: unknown;
  try {
    value = secureJson.parse(body, { protoAction: 'error', constructorAction: 'error' });
  } catch (e) {
    const message = (e as Error).message;
    if (/forbidden prototype property/.test(message)) {
      done(
        new NormserveError(
          'INVALID_JSON',
          'malformed JSON: a "__proto__" or "constructor.prototype" key is refused',
        ),
      );
      return;
    }
    const offset = errorOffset(body, message);
    const nonFinite = nonFiniteToken(body, offset, message);
    if (nonFinite) {
      const position = textPosition(body, nonFinite.offset);
      done(
        new NormserveError(
          'INVALID_JSON',
          `non-finite number at line ${position.line}, column ${position.column}: ${nonFinite.token} is not accepted as an input (NaN, Infinity and -Infinity are refused; send finite numbers)`,
          { extra: { position } },
        ),
      );
      return;
    }
    const position = textPosition(body, offset);
    done(
      new NormserveError(
        'INVALID_JSON',
        `malformed JSON at line ${position.line}, column ${position.column}: ${reason(message, body, offset)}${readAsJsonHint(request, body, offset, message)}`,
        { extra: { position } },
      ),
    );
    return;
  }
  // A key written twice: JSON.parse keeps the last value, RapidJSON (TF Serving, Triton) the first.
  const repeated = repeatedKey(body);
  if (repeated) {
    done(
      new NormserveError('INVALID_JSON', repeated.detail, {
        extra: { position: repeated.position },
      }),
    );
    return;
  }
  done(null, value);
}

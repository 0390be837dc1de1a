import type { FastifyRequest } from 'fastify';
import { z } from 'zod';

/** What stands for a value the log leaves out: pino's own censor, as for the Authorization header. */
export const REDACTED = '[Redacted]';

/** A value check: the zod schema of one querystring field. */
type FieldCheck = Pick<z.ZodType, 'safeParse'>;

/** The query parameters a route reads, with their schemas (none without a querystring schema). */
const readParamsOf = new WeakMap<object, ReadonlyMap<string, FieldCheck>>();
const NONE: ReadonlyMap<string, FieldCheck> = new Map();

function readParams(request: FastifyRequest): ReadonlyMap<string, FieldCheck> {
  const schema = (request.routeOptions.schema as { querystring?: unknown } | undefined)
    ?.querystring;
  if (!(schema instanceof z.ZodObject)) return NONE;
  let fields = readParamsOf.get(schema);
  if (fields === undefined) {
    fields = new Map(Object.entries(schema.shape as Record<string, z.ZodType>));
    readParamsOf.set(schema, fields);
  }
  return fields;
}

/** A query component as the route would read it, or undefined if it does not decode. */
function decoded(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}

/** The path as sent, with what follows a `;` (path parameters: `;jsessionid=…`) left out. */
function loggedPath(path: string): string {
  const semicolonAt = path.indexOf(';');
  return semicolonAt === -1 ? path : `${path.slice(0, semicolonAt)};${REDACTED}`;
}

/**
 * The URL a request's log line records: the path as sent, and the query with the value of every
 * parameter the route does not read replaced by `[Redacted]` (a bare word, which could be a
 * token, wholly). Clients put credentials in URLs (`?access_token=` is RFC 6750 §2.3's form,
 * `?api_key=` many SDKs', `#access_token=` OAuth's implicit grant, `;jsessionid=` servlet
 * containers'); normserve reads none there (auth.ts takes the Authorization header) and refuses
 * or ignores them, but the line is written all the same, and logs are kept and shipped where
 * secrets must not be. The parameters a route reads (`fused`, `mode`, `note`, …: its zod
 * querystring schema) stay readable where their value is one the field accepts, since they say
 * what was asked; a value it refuses (`fused=false;access_token=…`, a second `fused` carrying
 * something else) is redacted like any other. A fragment (refused: request-target.ts) and path
 * parameters after a `;` are logged as `[Redacted]`. A URL with none of `?`, `#` and `;` is
 * returned as it is (the predict routes' case: no work on that path).
 */
export function loggedUrl(url: string, reads: ReadonlyMap<string, FieldCheck>): string {
  const hashAt = url.indexOf('#');
  const beforeFragment = hashAt === -1 ? url : url.slice(0, hashAt);
  const fragment = hashAt === -1 ? '' : `#${REDACTED}`;
  const queryAt = beforeFragment.indexOf('?');
  if (queryAt === -1) return `${loggedPath(beforeFragment)}${fragment}`;
  const pairs = beforeFragment.slice(queryAt + 1).split('&');
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i]!;
    if (pair === '') continue;
    const equalsAt = pair.indexOf('=');
    const rawName = equalsAt === -1 ? pair : pair.slice(0, equalsAt);
    const name = decoded(rawName);
    const field = name === undefined ? undefined : reads.get(name);
    if (field !== undefined) {
      // A bare name carries no value; a value is kept only as one the route would accept.
      if (equalsAt === -1) continue;
      const value = decoded(pair.slice(equalsAt + 1));
      if (value !== undefined && field.safeParse(value).success) continue;
    }
    pairs[i] = equalsAt === -1 ? REDACTED : `${rawName}=${REDACTED}`;
  }
  return `${loggedPath(beforeFragment.slice(0, queryAt))}?${pairs.join('&')}${fragment}`;
}

/** What makes a URL's logged form differ from it (loggedUrl). */
const REDACTABLE = /[?#;]/;

/**
 * The most characters of a URL a log line keeps. Node takes a request line of up to ~16 KiB
 * (its header limit), and Docker's json-file driver, containerd and CRI-O split a line at 16 KiB:
 * an unauthenticated request with a long path would break the line's JSON for a shipper that does
 * not join the parts (h258). Routes' paths are short; what is cut says how long the URL was.
 */
export const LOGGED_URL_MAX_CHARS = 2048;

/**
 * `url` (the logged form of a URL `sentChars` long as sent), cut to LOGGED_URL_MAX_CHARS with
 * the length sent said, never inside a surrogate pair. The logged form may be longer than the
 * URL (each redacted value is `[Redacted]`) or shorter.
 */
export function cappedUrl(url: string, sentChars = url.length): string {
  if (url.length <= LOGGED_URL_MAX_CHARS) return url;
  let end = LOGGED_URL_MAX_CHARS;
  const last = url.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${url.slice(0, end)}…[cut: ${sentChars} characters as sent]`;
}

/** `loggedUrl` of a request, by the parameters its route reads, capped (cappedUrl). */
export const requestLoggedUrl = (request: FastifyRequest): string =>
  cappedUrl(
    REDACTABLE.test(request.url) ? loggedUrl(request.url, readParams(request)) : request.url,
    request.url.length,
  );

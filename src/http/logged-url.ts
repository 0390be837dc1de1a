import type { FastifyRequest } from 'fastify';
import { z } from 'zod';

/** What stands for a value the log leaves out: pino's own censor, as for the Authorization header. */
export const REDACTED = '[Redacted]';

/** The query parameters a route reads, by its querystring schema (none without one). */
const readParamsOf = new WeakMap<object, ReadonlySet<string>>();
const NONE: ReadonlySet<string> = new Set();

function readParams(request: FastifyRequest): ReadonlySet<string> {
  const schema = (request.routeOptions.schema as { querystring?: unknown } | undefined)
    ?.querystring;
  if (!(schema instanceof z.ZodObject)) return NONE;
  let names = readParamsOf.get(schema);
  if (names === undefined) {
    names = new Set(Object.keys(schema.shape));
    readParamsOf.set(schema, names);
  }
  return names;
}

/** A query parameter's name as the route would read it, or undefined if it does not decode. */
function decodedName(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}

/**
 * The URL a request's log line records: the path as sent, and the query with the value of every
 * parameter the route does not read replaced by `[Redacted]` (a bare word, which could be a
 * token, wholly). Clients put credentials in URLs (`?access_token=` is RFC 6750 §2.3's form,
 * `?api_key=` many SDKs'); normserve reads none there (auth.ts takes the Authorization header)
 * and refuses or ignores such a parameter, but the line is written all the same, and logs are
 * kept and shipped where secrets must not be. The parameters a route reads (`fused`, `mode`,
 * `note`, …: its zod querystring schema) stay readable, since they say what was asked. A URL
 * without a query is returned as it is (the predict routes' case: no work on that path).
 */
export function loggedUrl(url: string, readNames: ReadonlySet<string>): string {
  const queryAt = url.indexOf('?');
  if (queryAt === -1) return url;
  const pairs = url.slice(queryAt + 1).split('&');
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i]!;
    if (pair === '') continue;
    const equalsAt = pair.indexOf('=');
    const rawName = equalsAt === -1 ? pair : pair.slice(0, equalsAt);
    const name = decodedName(rawName);
    if (name !== undefined && readNames.has(name)) continue;
    pairs[i] = equalsAt === -1 ? REDACTED : `${rawName}=${REDACTED}`;
  }
  return `${url.slice(0, queryAt)}?${pairs.join('&')}`;
}

/** `loggedUrl` of a request, by the parameters its route reads. */
export const requestLoggedUrl = (request: FastifyRequest): string =>
  request.url.indexOf('?') === -1 ? request.url : loggedUrl(request.url, readParams(request));

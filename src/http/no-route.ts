import type { FastifyRequest } from 'fastify';
import { NormserveError } from '../errors/index.js';
import { unservedExtension } from './unserved-extensions.js';

/**
 * The 404 of a path nothing is served at, in one wording: the not-found handler's, and the error
 * handler's for the static files of /docs, which refuse a path climbing out of their directory
 * (`/docs/static/../../package.json`) with a 403: answered as a missing file is, so a probe
 * learns nothing of what lies outside (problem.ts).
 */
export function noRoute(request: FastifyRequest): NormserveError {
  const path = request.url.split('?')[0]!;
  const unserved = unservedExtension(path);
  return new NormserveError(
    'NOT_FOUND',
    `no route ${request.method} ${path}; ${unserved === undefined ? '' : `${unserved}. `}GET / lists the entry points, /docs every route`,
  );
}

import type { FastifyRequest } from 'fastify';
import type { NormserveError } from '../errors/index.js';
import { bearerTokenCheck } from '../service/index.js';

/**
 * Checks a request's `Authorization: Bearer <token>`: undefined when it is right, else the 401
 * error to send (the comparison: service/bearer-token.ts, shared with gRPC).
 */
export function bearerCheck(
  token: string,
  realm: string,
): (request: FastifyRequest) => NormserveError | undefined {
  const check = bearerTokenCheck(token, realm);
  return (request) => check(request.headers.authorization);
}

/**
 * A hook requiring `Authorization: Bearer <token>`. Failures are 401 problems with
 * `WWW-Authenticate: Bearer` (set by the error handler).
 */
export function requireBearer(token: string, realm: string) {
  const check = bearerCheck(token, realm);
  return async (request: FastifyRequest): Promise<void> => {
    const failure = check(request);
    if (failure) throw failure;
  };
}

import type { FastifyRequest } from 'fastify';
import { bearerCheck } from '../service/index.js';

/**
 * A hook requiring `Authorization: Bearer <token>` (the comparison: service/bearer-token.ts).
 * Failures are 401 problems with `WWW-Authenticate: Bearer` (set by the error handler).
 */
export function requireBearer(token: string, realm: string) {
  const check = bearerCheck(token, realm);
  return async (request: FastifyRequest): Promise<void> => {
    check(request.headers.authorization);
  };
}

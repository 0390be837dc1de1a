import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { NormserveError } from '../errors/index.js';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * A preHandler requiring `Authorization: Bearer <token>`. Both sides are hashed to equal-length
 * digests and compared with timingSafeEqual, so the time taken says nothing about the token.
 * Failures are 401 problems with `WWW-Authenticate: Bearer` (set by the error handler).
 */
export function requireBearer(token: string, realm: string) {
  const expected = digest(token);
  return async (request: FastifyRequest): Promise<void> => {
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
    if (!match) {
      throw new NormserveError(
        'UNAUTHORIZED',
        `${realm} routes need "Authorization: Bearer <token>"`,
      );
    }
    if (!timingSafeEqual(digest(match[1]!), expected)) {
      throw new NormserveError('UNAUTHORIZED', `the bearer token is not valid for ${realm} routes`);
    }
  };
}

import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { NormserveError } from '../errors/index.js';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * Checks `Authorization: Bearer <token>`: undefined when it is right, else the 401 error to send.
 * Both sides are hashed to equal-length digests and compared with timingSafeEqual, so the time
 * taken says nothing about the token.
 */
export function bearerCheck(
  token: string,
  realm: string,
): (request: FastifyRequest) => NormserveError | undefined {
  const expected = digest(token);
  return (request) => {
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
    if (!match) {
      return new NormserveError(
        'UNAUTHORIZED',
        `${realm} routes need "Authorization: Bearer <token>"`,
      );
    }
    if (!timingSafeEqual(digest(match[1]!), expected)) {
      return new NormserveError(
        'UNAUTHORIZED',
        `the bearer token is not valid for ${realm} routes`,
      );
    }
    return undefined;
  };
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

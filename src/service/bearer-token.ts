import { createHash, timingSafeEqual } from 'node:crypto';
import { NormserveError } from '../errors/index.js';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * A check of `Authorization: Bearer <token>` values, for every transport (HTTP headers, gRPC
 * metadata). Both sides are hashed to equal-length digests and compared with timingSafeEqual, so
 * the time taken says nothing about the token. Failures are UNAUTHORIZED errors.
 */
export function bearerCheck(token: string, realm: string): (authorization: unknown) => void {
  const expected = digest(token);
  return (authorization) => {
    const match =
      typeof authorization === 'string' ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization) : null;
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

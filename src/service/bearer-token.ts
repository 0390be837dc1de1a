import { createHash, timingSafeEqual } from 'node:crypto';
import { NormserveError } from '../errors/index.js';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * Where a realm's token comes from, for the 401 of a request without one: a newcomer's first
 * admin call met the bare rule and had to search for the token (the README's newcomer, 2026-12-05).
 */
const tokenSource = (realm: string): string =>
  realm === 'admin'
    ? "the server's ADMIN_TOKEN (a server started without it logged the token it made up)"
    : "the server's API_TOKEN";

/**
 * Checks an `Authorization: Bearer <token>` value (an HTTP header, gRPC metadata): undefined when
 * it is right, else the UNAUTHORIZED error to send. Both sides are hashed to equal-length digests
 * and compared with timingSafeEqual, so the time taken says nothing about the token.
 */
export function bearerTokenCheck(
  token: string,
  realm: string,
): (authorization: unknown) => NormserveError | undefined {
  const expected = digest(token);
  return (authorization) => {
    const match =
      typeof authorization === 'string' ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization) : null;
    if (!match) {
      return new NormserveError(
        'UNAUTHORIZED',
        `${realm} routes need "Authorization: Bearer <token>" with ${tokenSource(realm)}`,
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

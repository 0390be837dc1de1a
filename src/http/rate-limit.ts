import type { FastifyRateLimitStore, RateLimitPluginOptions } from '@fastify/rate-limit';
import type { FastifyRequest } from 'fastify';
import { NormserveError } from '../errors/index.js';
import type { AppDeps } from './app-types.js';
import { bearerCheck } from './auth.js';
import { FixedWindowCounter, type RateLimitCounter } from './fixed-window-counter.js';

/** A @fastify/rate-limit store class counting with `counter` (the plugin's store interface). */
export function rateLimitStore(counter: RateLimitCounter) {
  return class CounterStore implements FastifyRateLimitStore {
    incr(
      key: string,
      callback: (error: Error | null, result?: { current: number; ttl: number }) => void,
      timeWindow?: number,
    ): void {
      Promise.resolve()
        .then(() => counter.hit(key, timeWindow ?? WINDOW_MS))
        .then(
          (hit) => callback(null, { current: hit.count, ttl: hit.resetInMs }),
          (e: unknown) => callback(e instanceof Error ? e : new Error(String(e))),
        );
    }

    child(): FastifyRateLimitStore {
      return this;
    }
  };
}

/** Rate-limit keys: requests with the valid token and failed authentications are counted apart. */
const AUTHORIZED = 'admin:';
const AUTH_FAILED = 'admin-auth-failure:';
const WINDOW_MS = 60_000;

/**
 * @fastify/rate-limit's options for the admin routes: per client address and minute,
 * ADMIN_RATE_LIMIT_PER_MINUTE requests with the valid token and, counted apart,
 * ADMIN_AUTH_FAILURES_PER_MINUTE without it, so a neighbour behind the same address who fails
 * cannot use up the admin's budget. Runs onRequest, before the 401 guard (preParsing), so
 * failures beyond their budget get 429. The 429 message and Retry-After give the real time left
 * in the client's window.
 */
export function adminRateLimit(deps: AppDeps): RateLimitPluginOptions {
  const checkToken = bearerCheck(deps.adminToken, 'admin');
  const failed = (request: FastifyRequest) => checkToken(request) !== undefined;
  return {
    global: true,
    hook: 'onRequest',
    timeWindow: WINDOW_MS,
    store: rateLimitStore(deps.rateLimitCounter ?? new FixedWindowCounter()),
    keyGenerator: (request) => `${failed(request) ? AUTH_FAILED : AUTHORIZED}${request.ip}`,
    max: (_request, key) =>
      key.startsWith(AUTH_FAILED)
        ? deps.config.ADMIN_AUTH_FAILURES_PER_MINUTE
        : deps.config.ADMIN_RATE_LIMIT_PER_MINUTE,
    errorResponseBuilder: (request, context) => {
      const retry = `retry in ${Math.max(1, Math.ceil(context.ttl / 1000))} s`;
      return new NormserveError(
        'RATE_LIMITED',
        failed(request)
          ? `at most ${context.max} failed admin authentications per minute from one client address; ${retry} (requests with the valid token are counted apart)`
          : `at most ${context.max} admin requests per minute from one client address; ${retry}`,
      );
    },
  };
}

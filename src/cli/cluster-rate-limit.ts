import type { Worker } from 'node:cluster';
import type { RateLimitCounter } from '../http/fixed-window-counter.js';
import { type FromWorker, type PrimaryChannel, sendToWorker } from './cluster-messages.js';

/**
 * The admin rate limit of a server with WORKERS > 1: one counter, the primary's, which every
 * worker asks over IPC (one round trip per admin request), so a client gets the configured
 * number of admin requests per minute from the whole server, whichever workers take them.
 */

/**
 * How long a worker waits for the primary's count before failing the request (503
 * CLUSTER_PRIMARY_TIMEOUT with Retry-After: PrimaryChannel.request).
 */
export const RATE_LIMIT_TIMEOUT_MS = 2_000;

/** A worker's counter: asks the primary. */
export function clusterRateLimitCounter(channel: PrimaryChannel): RateLimitCounter {
  return {
    hit: async (key, windowMs) => {
      const answer = await channel.request(
        { type: 'normserve:rate-limit', key, windowMs },
        'normserve:rate-limited',
        RATE_LIMIT_TIMEOUT_MS,
      );
      return { count: answer.count, resetInMs: answer.resetInMs };
    },
  };
}

/** The primary's answer to a worker's count request, from the server's one counter. */
export async function answerRateLimit(
  counter: RateLimitCounter,
  worker: Worker,
  message: Extract<FromWorker, { type: 'normserve:rate-limit' }>,
): Promise<void> {
  const hit = await counter.hit(message.key, message.windowMs);
  sendToWorker(worker, { type: 'normserve:rate-limited', id: message.id, ...hit });
}

/**
 * A cluster primary that does not answer a worker's request in time (WORKERS > 1): the request is
 * CLUSTER_PRIMARY_TIMEOUT (503, Retry-After), whichever caller asked — PrimaryChannel.request
 * itself, the metrics scrape, and an admin request waiting for the primary's rate-limit count.
 * The channel's messages go nowhere (its `send` is replaced), as to a primary that never answers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  PRIMARY_TIMEOUT_RETRY_AFTER_SECONDS,
  PrimaryChannel,
} from '../../src/cli/cluster-messages.js';
import { clusterScrape } from '../../src/cli/cluster-metrics.js';
import { clusterRateLimitCounter } from '../../src/cli/cluster-rate-limit.js';
import { NormserveError } from '../../src/errors/index.js';
import { ADMIN, expectProblem, type LoggedApp, makeLoggedApp } from '../helpers/admin.js';

let t: LoggedApp | undefined;
const listeners: NodeJS.MessageListener[] = [];
afterEach(async () => {
  await t?.close();
  t = undefined;
  for (const l of listeners.splice(0)) process.off('message', l);
});

/** A worker's channel to a primary that never answers; `sent` gets what it was asked. */
function silentPrimary(): { channel: PrimaryChannel; sent: unknown[] } {
  const before = new Set(process.listeners('message'));
  const channel = new PrimaryChannel();
  for (const l of process.listeners('message')) if (!before.has(l)) listeners.push(l);
  const sent: unknown[] = [];
  channel.send = (message) => {
    sent.push(message);
  };
  return { channel, sent };
}

/** What `promise` rejected with, which must be a NormserveError. */
async function rejection(promise: Promise<unknown>): Promise<NormserveError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(NormserveError);
  return error as NormserveError;
}

describe('a cluster primary that does not answer in time', () => {
  it('PrimaryChannel.request rejects with CLUSTER_PRIMARY_TIMEOUT: 503, Retry-After, the request named', async () => {
    const { channel, sent } = silentPrimary();
    const error = await rejection(
      channel.request({ type: 'normserve:scrape' }, 'normserve:scraped', 5),
    );
    expect(sent).toEqual([{ type: 'normserve:scrape', id: 0 }]);
    expect(error.code).toBe('CLUSTER_PRIMARY_TIMEOUT');
    expect(error.status).toBe(503);
    expect(error.retryAfterSeconds).toBe(PRIMARY_TIMEOUT_RETRY_AFTER_SECONDS);
    expect(error.message).toBe(
      `the cluster primary did not answer this worker's normserve:scrape within 5 ms; retry in ${PRIMARY_TIMEOUT_RETRY_AFTER_SECONDS} s`,
    );
  });

  it('the metrics scrape keeps the code and Retry-After', async () => {
    const { channel } = silentPrimary();
    // clusterScrape's own timeout is seconds long: the channel's request is given a short one.
    const request = channel.request.bind(channel);
    channel.request = ((message, answerType) =>
      request(message, answerType, 5)) as typeof channel.request;
    const error = await rejection(clusterScrape(channel)());
    expect(error.code).toBe('CLUSTER_PRIMARY_TIMEOUT');
    expect(error.retryAfterSeconds).toBe(PRIMARY_TIMEOUT_RETRY_AFTER_SECONDS);
    expect(error.message).toMatch(
      /^cluster metrics are unavailable: the cluster primary did not answer this worker's normserve:scrape within 5 ms/,
    );
  });

  it('an admin request whose rate-limit count does not come is 503 CLUSTER_PRIMARY_TIMEOUT with Retry-After', async () => {
    const { channel, sent } = silentPrimary();
    const request = channel.request.bind(channel);
    channel.request = ((message, answerType) =>
      request(message, answerType, 5)) as typeof channel.request;
    t = await makeLoggedApp({ rateLimitCounter: clusterRateLimitCounter(channel) });
    const res = await t.app.inject({ method: 'GET', url: '/v1/jobs/nope', headers: ADMIN });
    const problem = expectProblem(res, 503, 'CLUSTER_PRIMARY_TIMEOUT', '/v1/jobs/nope');
    expect(res.headers['retry-after']).toBe(String(PRIMARY_TIMEOUT_RETRY_AFTER_SECONDS));
    expect(problem.detail).toMatch(
      /^the cluster primary did not answer this worker's normserve:rate-limit within 5 ms/,
    );
    expect(sent).toHaveLength(1);
  });
});

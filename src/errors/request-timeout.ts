import { NormserveError } from './normserve-error.js';

/**
 * REQUEST_TIMEOUT: a request that did not arrive whole within REQUEST_TIMEOUT_MS, in the words
 * both transports answer it with (HTTP's 408, gRPC's DEADLINE_EXCEEDED).
 */
export const requestNotArrived = (): NormserveError =>
  new NormserveError('REQUEST_TIMEOUT', 'the request did not arrive within REQUEST_TIMEOUT_MS');

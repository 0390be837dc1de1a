import { NormserveError } from '../errors/index.js';

/**
 * How a request learns that its caller has gone (an HTTP client that closed its connection, a
 * cancelled gRPC call): `signal` aborts then. The inference service reads it only when a request
 * has to wait (queued for a dynamic batch), so a transport can make the signal on first read —
 * the HTTP reply's and the gRPC call's getters do — and a request that runs at once makes none.
 * An AbortController is one too.
 */
export interface CallerSignal {
  readonly signal: AbortSignal;
}

/** What a request whose caller went before it ran is rejected with (nginx's 499). */
export const callerGone = (): NormserveError =>
  new NormserveError('CLIENT_ABORTED', 'the caller went away before its request ran');

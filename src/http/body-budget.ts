import type { preParsingHookHandler, RouteOptions } from 'fastify';
import { NormserveError } from '../errors/index.js';
import { OVERLOADED_RETRY_AFTER_SECONDS } from '../service/index.js';
import { preParsingOf } from './route-pre-parsing.js';

/**
 * MAX_BODY_BYTES_IN_FLIGHT: the bytes of prediction bodies (predict, infer: the routes anyone may
 * call when API_TOKEN is unset) a process holds at once while they arrive and are answered. Each
 * such body is read whole before it is parsed, so without a bound a process holds
 * MAX_CONNECTIONS × BODY_LIMIT_BYTES: 60 clients sending 16 MiB bodies and holding back their last
 * byte took a WORKERS=2 server from 356 MiB to 1.6 GB, past the 1 GiB of deploy/kubernetes, and
 * the memory stayed (attack review of 2026-12-06).
 *
 * A request is admitted by what it declares, before a byte of its body is read: its Content-Length,
 * or BODY_LIMIT_BYTES when it has none (chunked) or is compressed (its decoded size is unknown up
 * to that limit). Admitted, it holds that many bytes until its response is done or its connection
 * closes; refused, it is answered 503 OVERLOADED with Retry-After and its body is not read. A
 * request is always admitted when no other body is held, so a bound below BODY_LIMIT_BYTES refuses
 * no request alone. A body over BODY_LIMIT_BYTES by its Content-Length holds nothing: it is
 * answered 413 as before.
 */
export class BodyBudget {
  private held = 0;

  constructor(
    /** 0: no bound. */
    readonly maxBytes: number,
    private readonly onRefused: (model: string) => void = () => {},
  ) {}

  /** Bytes the admitted bodies hold now. */
  get heldBytes(): number {
    return this.held;
  }

  /** The preParsing hook that admits a body or refuses it. */
  readonly admit: preParsingHookHandler = (request, reply, payload, done) => {
    if (this.maxBytes === 0) return done(null, payload);
    const limit = request.routeOptions.bodyLimit;
    const declared = Number(request.headers['content-length']);
    const encoded = request.headers['content-encoding'] !== undefined;
    const bytes = Number.isFinite(declared) && !encoded ? declared : limit;
    // Fastify refuses it by its length (413) without reading it.
    if (bytes > limit || bytes === 0) return done(null, payload);
    if (this.held > 0 && this.held + bytes > this.maxBytes) {
      const { name } = request.params as { name?: string };
      if (name !== undefined) this.onRefused(name);
      return done(
        new NormserveError(
          'OVERLOADED',
          `the prediction bodies this process is receiving and answering hold ${this.held} bytes, and this one's ${bytes} would pass MAX_BODY_BYTES_IN_FLIGHT (${this.maxBytes}); retry in ${OVERLOADED_RETRY_AFTER_SECONDS} s`,
          { retryAfterSeconds: OVERLOADED_RETRY_AFTER_SECONDS },
        ),
      );
    }
    this.held += bytes;
    let released = false;
    // 'close' comes once, when the response is done or the connection went before it was.
    reply.raw.once('close', () => {
      if (released) return;
      released = true;
      this.held -= bytes;
    });
    done(null, payload);
  };

  /**
   * An onRoute hook giving each prediction route (POST, `access: 'prediction'`) the admission, after
   * its guards (a caller without the token is refused as before) and before the body's decoding
   * and the 100 Continue.
   */
  readonly onRoute = (route: RouteOptions): void => {
    if (route.config?.access !== 'prediction' || route.method !== 'POST') return;
    route.preParsing = [...preParsingOf(route), this.admit];
  };
}

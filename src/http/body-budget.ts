import type { Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import type { preParsingHookHandler, RouteOptions } from 'fastify';
import { NormserveError } from '../errors/index.js';
import { OVERLOADED_RETRY_AFTER_SECONDS } from '../service/index.js';
import { preParsingOf } from './route-pre-parsing.js';

/**
 * MAX_BODY_BYTES_IN_FLIGHT: the bytes of prediction bodies (predict, infer: the routes anyone may
 * call when API_TOKEN is unset) a process holds at once. Each such body is read whole before it
 * is parsed, so without a bound a process holds MAX_CONNECTIONS × BODY_LIMIT_BYTES: 60 clients
 * sending 16 MiB bodies and holding back their last byte took a WORKERS=2 server from 356 MiB to
 * 1.6 GB, past the 1 GiB of deploy/kubernetes, and the memory stayed (attack review of
 * 2026-12-06).
 *
 * The bytes are counted as they arrive, decoded (after the Content-Encoding's decoder), never as
 * declared: a request head announcing 16 MiB, chunked or compressed, holds nothing until its bytes
 * come (counted by its Content-Length instead, four such heads of ~100 bytes each blocked every
 * prediction: second reading of 2026-12-06). A body whose next bytes would take the total past the
 * bound while other bodies hold bytes is answered 503 OVERLOADED with Retry-After, the rest of it
 * unread; a body alone is never refused, so a bound below BODY_LIMIT_BYTES refuses no request
 * alone. What a body holds is given back when its response is done or its connection closes —
 * the connection too, for a request pipelined behind an unfinished response, whose own response
 * never closes once the connection has gone.
 */
export class BodyBudget {
  private held = 0;
  /** The releases of the bodies each connection holds, run when it closes (one listener each). */
  private readonly bySocket = new WeakMap<Socket, Set<() => void>>();

  constructor(
    /** 0: no bound. */
    readonly maxBytes: number,
    /** A body refused; `model` when the request names a model of the registry. */
    private readonly onRefused: (model: string | undefined) => void = () => {},
  ) {}

  /** Bytes the bodies hold now. */
  get heldBytes(): number {
    return this.held;
  }

  /** The preParsing hook that counts a body's bytes as they arrive, or refuses the body. */
  readonly admit: preParsingHookHandler = (request, reply, payload, done) => {
    if (this.maxBytes === 0) return done(null, payload);
    let taken = 0;
    let released = false;
    const socket = request.raw.socket as Socket | null;
    const release = () => {
      if (released) return;
      released = true;
      this.held -= taken;
      taken = 0;
      reply.raw.off('close', release);
      if (socket) this.bySocket.get(socket)?.delete(release);
    };
    reply.raw.once('close', release);
    if (socket) this.onClose(socket, release);

    const counted = new PassThrough();
    // Fastify reads the decoded stream's encoded length (its zip-bomb check, its Content-Length
    // check): told through.
    Object.defineProperty(counted, 'receivedEncodedLength', {
      get: () => (payload as Readable & { receivedEncodedLength?: number }).receivedEncodedLength,
    });
    // Fastify hears errors while it reads the body; after, nothing would, and an 'error' event
    // without a listener ends the process.
    counted.on('error', () => {});
    const stop = () => {
      payload.off('data', onData);
      payload.off('end', onEnd);
      // The rest is read and dropped: the response closes the connection (app.ts, decideClose).
      payload.resume();
    };
    const onData = (chunk: Buffer) => {
      if (!released) {
        const others = this.held - taken;
        if (others > 0 && this.held + chunk.length > this.maxBytes) {
          stop();
          release();
          const model = request.modelName;
          this.onRefused(model);
          counted.destroy(
            new NormserveError(
              'OVERLOADED',
              `the prediction bodies this process is receiving and answering hold ${others} bytes, and this one's ${taken + chunk.length} so far would take them past MAX_BODY_BYTES_IN_FLIGHT (${this.maxBytes}); retry in ${OVERLOADED_RETRY_AFTER_SECONDS} s`,
              { retryAfterSeconds: OVERLOADED_RETRY_AFTER_SECONDS },
            ),
          );
          return;
        }
        this.held += chunk.length;
        taken += chunk.length;
      }
      if (!counted.write(chunk)) payload.pause();
    };
    const onEnd = () => counted.end();
    counted.on('drain', () => payload.resume());
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', (error) => counted.destroy(error));
    done(null, counted);
  };

  /** Runs `release` when `socket` closes, with one 'close' listener per connection. */
  private onClose(socket: Socket, release: () => void): void {
    let releases = this.bySocket.get(socket);
    if (releases === undefined) {
      const all = new Set<() => void>();
      releases = all;
      this.bySocket.set(socket, all);
      socket.once('close', () => {
        for (const r of [...all]) r();
      });
    }
    releases.add(release);
  }

  /**
   * An onRoute hook giving each prediction route (POST, `access: 'prediction'`) the count, after
   * its guards and the body's decoding (app.ts adds it after decodeBeforeBody): decoded bytes are
   * what a body holds.
   */
  readonly onRoute = (route: RouteOptions): void => {
    if (route.config?.access !== 'prediction' || route.method !== 'POST') return;
    route.preParsing = [...preParsingOf(route), this.admit];
  };
}

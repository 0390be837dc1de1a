import type { Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import type {
  FastifyRequest,
  preParsingHookHandler,
  preValidationHookHandler,
  RouteOptions,
} from 'fastify';
import { NormserveError } from '../errors/index.js';
import { OVERLOADED_RETRY_AFTER_SECONDS } from '../service/index.js';
import { preParsingOf } from './route-pre-parsing.js';

/** The largest declared body not counted (BodyBudget says why). */
export const SMALL_BODY_BYTES = 131_072;

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
 * unread (at once, before a 100 Continue, when the bound is reached already); a body alone is
 * never refused, so a bound below BODY_LIMIT_BYTES refuses no request alone. What a body holds is
 * given back once it has been parsed (the request reaches validation), or when its response is
 * done or its connection closes before — the connection too, for a request pipelined behind an
 * unfinished response, whose own response never closes once the connection has gone. Given back
 * at the parse, not the response: a client that never reads its answer kept its body counted for
 * good (third reading of 2026-12-06), while the body's bytes were garbage already.
 *
 * A body that declares at most SMALL_BODY_BYTES and no Content-Encoding is not counted: the
 * counting stream costs a request ~50–100 µs of server CPU (a 1-row predict 106 → 156 µs; a
 * 256-row OIP binary request, 66 KB, 554 → 654 µs: bench/ab-trees.ts), and such bodies are bounded
 * already by the connections: MAX_CONNECTIONS × SMALL_BODY_BYTES, 128 MiB at the defaults. So a
 * process holds at most MAX_BODY_BYTES_IN_FLIGHT + that, plus one body alone, and a few clients
 * sending large bodies slowly can keep the larger ones refused for up to REQUEST_TIMEOUT_MS (small
 * ones never are).
 */
export class BodyBudget {
  private held = 0;
  /** The releases of the bodies each connection holds, run when it closes (one listener each). */
  private readonly bySocket = new WeakMap<Socket, Set<() => void>>();
  /** The release of each request whose body is counted, for `parsed`. */
  private readonly releases = new WeakMap<FastifyRequest, () => void>();

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
    const declared = Number(request.headers['content-length']);
    if (declared <= SMALL_BODY_BYTES && request.headers['content-encoding'] === undefined)
      return done(null, payload);
    // Full already: refused before a byte is read (and before a 100 Continue asks for them).
    if (this.held >= this.maxBytes) return done(this.refusal(request, this.held, 0));
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
      this.releases.delete(request);
    };
    this.releases.set(request, release);
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
      // Answered already (a 415, Fastify's 413): read to be dropped, neither counted nor refused.
      if (!released && reply.sent) release();
      if (!released) {
        const others = this.held - taken;
        if (others > 0 && this.held + chunk.length > this.maxBytes) {
          stop();
          release();
          counted.destroy(this.refusal(request, others, taken + chunk.length));
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
    payload.on('error', (error) => {
      // Its client went (the request aborted): the body will never be whole.
      release();
      counted.destroy(error);
    });
    done(null, counted);
  };

  /** The OVERLOADED error of a refused body, counted (`onRefused`). */
  private refusal(request: FastifyRequest, others: number, own: number): NormserveError {
    this.onRefused(request.modelName);
    return new NormserveError(
      'OVERLOADED',
      `the prediction bodies this process is receiving hold ${others} bytes, and this one's ${own} so far would take them past MAX_BODY_BYTES_IN_FLIGHT (${this.maxBytes}); retry in ${OVERLOADED_RETRY_AFTER_SECONDS} s`,
      { retryAfterSeconds: OVERLOADED_RETRY_AFTER_SECONDS },
    );
  }

  /** The preValidation hook that gives back a parsed body's bytes. */
  readonly parsed: preValidationHookHandler = (request, _reply, done) => {
    this.releases.get(request)?.();
    done();
  };

  /** Runs `release` when `socket` ends or closes, with one listener of each per connection. */
  private onClose(socket: Socket, release: () => void): void {
    let releases = this.bySocket.get(socket);
    if (releases === undefined) {
      const all = new Set<() => void>();
      releases = all;
      this.bySocket.set(socket, all);
      const releaseAll = () => {
        for (const r of [...all]) r();
      };
      // 'end' too: once the client has half-closed, no body on the connection grows any more,
      // and Node keeps the socket open while a response is still due (a request pipelined
      // behind a waiting one then held its bytes until that answer, maybe a minute).
      socket.once('end', releaseAll);
      socket.once('close', releaseAll);
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
    route.preValidation = [
      this.parsed,
      ...(route.preValidation ? [route.preValidation].flat() : []),
    ];
  };
}

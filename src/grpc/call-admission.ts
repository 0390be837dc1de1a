import {
  type Metadata,
  ServerInterceptingCall,
  type ServerInterceptor,
  ServerListenerBuilder,
} from '@grpc/grpc-js';
import { NormserveError, requestNotArrived } from '../errors/index.js';
import { SHUTTING_DOWN_RETRY_AFTER_SECONDS } from '../service/index.js';
import { errorStatus } from './grpc-status.js';

export interface CallAdmissionOptions {
  /**
   * Refuses a call from its path and metadata alone (API_TOKEN: ModelInfer without the bearer
   * token), before any of its message is read; undefined admits it.
   */
  refuse?: ((path: string, metadata: Metadata) => NormserveError | undefined) | undefined;
  /**
   * REQUEST_TIMEOUT_MS: the time a call's request (its message and the end of its stream) has to
   * arrive from its metadata on; 0 = no limit.
   */
  receiveTimeoutMs: number;
}

/** A call whose request has not arrived whole yet: `end` ends it with that error. */
type Receiving = (error: NormserveError) => void;

/**
 * What a call must pass before grpc-js reads its request for a handler, as HTTP's hooks and
 * timeouts do for a body (a server interceptor: `interceptor`, after callRecorder so the calls it
 * ends are recorded):
 * - its metadata: a call `refuse` refuses (UNAUTHENTICATED without the token) is answered at once,
 *   from its headers — grpc-js had read the whole message (up to BODY_LIMIT_BYTES) before the
 *   handler checked the token, and held it as long as the client kept the stream open;
 * - its arrival: a call whose request (one message, then the end of the client's stream; every
 *   method served here takes one) has not arrived within `receiveTimeoutMs` ends with
 *   DEADLINE_EXCEEDED (REQUEST_TIMEOUT, grpc-status.ts), as HTTP answers 408 to a body that has
 *   not, and what it had received is freed (request-reset.ts resets the stream). A call whose
 *   request arrived is not timed here: a health Watch streams on for as long as its client keeps
 *   it, and a ModelInfer computing is bounded by its client's deadline;
 * - the drain (`drain`): a call still receiving its request when the server drains is given a
 *   grace to finish it, and ended with SHUTTING_DOWN (UNAVAILABLE, retry pushback 1 s) after it.
 */
export class CallAdmission {
  private readonly receiving = new Set<Receiving>();
  /** From the end of the drain's grace: a call still receiving is ended at once. */
  private closed = false;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: CallAdmissionOptions) {}

  readonly interceptor: ServerInterceptor = (descriptor, next) => {
    let timer: NodeJS.Timeout | undefined;
    let receiving: Receiving | undefined;
    /** The request arrived, or the call ended: no longer timed nor drained. */
    const settle = () => {
      clearTimeout(timer);
      if (receiving) this.receiving.delete(receiving);
      receiving = undefined;
    };
    const end: Receiving = (error) => {
      if (receiving === undefined) return;
      settle();
      endCall(error);
    };
    /** Request messages received (a unary call takes one). */
    let messages = 0;
    /** A status was sent: the call is over whatever arrives. */
    let ended = false;
    const endCall = (error: NormserveError) => {
      if (ended) return;
      ended = true;
      settle();
      next.sendStatus(errorStatus(error));
    };
    return new ServerInterceptingCall(next, {
      start: (go) =>
        go(
          new ServerListenerBuilder()
            .withOnReceiveMetadata((metadata, pass) => {
              const refused = this.options.refuse?.(descriptor.path, metadata);
              if (refused) {
                // Not passed on: the handler never reads the call.
                endCall(refused);
                return;
              }
              // A client stream has no one request to wait for; none is served here.
              if (!descriptor.requestStream) {
                receiving = end;
                this.receiving.add(end);
                if (this.closed) {
                  end(shuttingDown());
                  return;
                }
                const ms = this.options.receiveTimeoutMs;
                if (ms > 0) timer = setTimeout(() => end(requestNotArrived()), ms);
              }
              pass(metadata);
            })
            // A unary call takes exactly one message. grpc-js answers none, or a second, with
            // UNIMPLEMENTED ("Received no request message for server streaming method"), the
            // status of a method that does not exist, for what is the client's mistake (gRPC
            // attacker review of 2026-12-04, finding 4): INVALID_ARGUMENT, saying what was wrong.
            .withOnReceiveMessage((message, pass) => {
              if (ended) return;
              if (!descriptor.requestStream && ++messages > 1) {
                endCall(malformedCall('a second request message arrived'));
                return;
              }
              pass(message);
            })
            .withOnReceiveHalfClose((pass) => {
              settle();
              if (ended) return;
              if (!descriptor.requestStream && messages === 0) {
                endCall(malformedCall('the request ended without its message'));
                return;
              }
              pass();
            })
            .withOnCancel(settle)
            .build(),
        ),
      sendStatus: (sent, pass) => {
        settle();
        ended = true;
        pass(sent);
      },
    });
  };

  /**
   * The server drains: each call still receiving its request has `graceMs` more to finish it (and
   * its own REQUEST_TIMEOUT_MS, whichever ends first), then ends with SHUTTING_DOWN, as does a call
   * arriving after that. So no client holds the drain by not finishing its request: grpc-js's
   * tryShutdown waits for every call.
   */
  drain(graceMs: number): void {
    if (this.graceTimer !== undefined || this.closed) return;
    this.graceTimer = setTimeout(() => {
      this.closed = true;
      for (const end of [...this.receiving]) end(shuttingDown());
    }, graceMs);
    // The streams it would end keep the process running; nothing else should.
    this.graceTimer.unref();
  }
}

/** A unary call whose stream did not carry exactly one request message. */
const malformedCall = (what: string) =>
  new NormserveError(
    'INVALID_INPUT',
    `${what}: a call of this method carries exactly one request message, then the end of its stream`,
  );

const shuttingDown = () =>
  new NormserveError(
    'SHUTTING_DOWN',
    'the server is shutting down and the request had not arrived; retry on another instance',
    { retryAfterSeconds: SHUTTING_DOWN_RETRY_AFTER_SECONDS },
  );

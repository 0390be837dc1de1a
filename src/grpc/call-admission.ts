import type { Metadata, ServerMethodDefinition } from '@grpc/grpc-js';
import { NormserveError, requestNotArrived } from '../errors/index.js';
import { SHUTTING_DOWN_RETRY_AFTER_SECONDS } from '../service/index.js';
import type { CallEnding, CallHooks, CallLayer, SentStatus } from './call-interceptor.js';
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

/**
 * What a call must pass before grpc-js reads its request for a handler, as HTTP's hooks and
 * timeouts do for a body (a call layer, call-interceptor.ts: `layer`, after callRecorder so the
 * calls it ends are recorded):
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
  private readonly state: AdmissionState;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(options: CallAdmissionOptions) {
    this.state = { options, receiving: new Set(), closed: false };
  }

  readonly layer: CallLayer = (descriptor, _call, ending) =>
    new AdmittedCall(this.state, descriptor, ending);

  /**
   * The server drains: each call still receiving its request has `graceMs` more to finish it (and
   * its own REQUEST_TIMEOUT_MS, whichever ends first), then ends with SHUTTING_DOWN, as does a call
   * arriving after that. So no client holds the drain by not finishing its request: grpc-js's
   * tryShutdown waits for every call.
   */
  drain(graceMs: number): void {
    if (this.graceTimer !== undefined || this.state.closed) return;
    this.graceTimer = setTimeout(() => {
      this.state.closed = true;
      for (const call of [...this.state.receiving]) call.stopReceiving(shuttingDown());
    }, graceMs);
    // The streams it would end keep the process running; nothing else should.
    this.graceTimer.unref();
  }
}

/** What a CallAdmission's calls share. */
interface AdmissionState {
  readonly options: CallAdmissionOptions;
  /** The calls whose request has not arrived whole yet. */
  readonly receiving: Set<AdmittedCall>;
  /** From the end of the drain's grace: a call still receiving is ended at once. */
  closed: boolean;
}

/** One call's admission: its hooks (CallAdmission). */
class AdmittedCall implements CallHooks {
  private timer: NodeJS.Timeout | undefined;
  /** In its admission's `receiving`: its request has not arrived whole yet. */
  private receiving = false;
  /** Request messages received (a unary call takes one). */
  private messages = 0;
  /** A status was sent: the call is over whatever arrives. */
  private ended = false;

  constructor(
    private readonly admission: AdmissionState,
    private readonly descriptor: ServerMethodDefinition<unknown, unknown>,
    private readonly ending: CallEnding,
  ) {}

  /** The request arrived, or the call ended: no longer timed nor drained. */
  private settle(): void {
    clearTimeout(this.timer);
    if (this.receiving) this.admission.receiving.delete(this);
    this.receiving = false;
  }

  /** Ends the call with `error` if its request is still arriving. */
  stopReceiving(error: NormserveError): void {
    if (!this.receiving) return;
    this.settle();
    this.endCall(error);
  }

  private endCall(error: NormserveError): void {
    if (this.ended) return;
    this.ended = true;
    this.settle();
    this.ending.end(errorStatus(error));
  }

  receiveMetadata(metadata: Metadata): boolean {
    const refused = this.admission.options.refuse?.(this.descriptor.path, metadata);
    if (refused) {
      // Not passed on: the handler never reads the call.
      this.endCall(refused);
      return false;
    }
    // A client stream has no one request to wait for; none is served here.
    if (!this.descriptor.requestStream) {
      this.receiving = true;
      this.admission.receiving.add(this);
      if (this.admission.closed) {
        this.stopReceiving(shuttingDown());
        return false;
      }
      const ms = this.admission.options.receiveTimeoutMs;
      if (ms > 0) this.timer = setTimeout(requestTimedOut, ms, this);
    }
    return true;
  }

  // A unary call takes exactly one message. grpc-js answers none, or a second, with
  // UNIMPLEMENTED ("Received no request message for server streaming method"), the status of a
  // method that does not exist, for what is the client's mistake (gRPC attacker review of
  // 2026-12-04, finding 4): INVALID_ARGUMENT, saying what was wrong.
  receiveMessage(): boolean {
    if (this.ended) return false;
    if (!this.descriptor.requestStream && ++this.messages > 1) {
      this.endCall(malformedCall('a second request message arrived'));
      return false;
    }
    return true;
  }

  receiveHalfClose(): boolean {
    this.settle();
    if (this.ended) return false;
    if (!this.descriptor.requestStream && this.messages === 0) {
      this.endCall(malformedCall('the request ended without its message'));
      return false;
    }
    return true;
  }

  cancel(): void {
    this.settle();
  }

  sendStatus(sent: SentStatus): SentStatus {
    this.settle();
    this.ended = true;
    return sent;
  }
}

const requestTimedOut = (call: AdmittedCall) => call.stopReceiving(requestNotArrived());

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

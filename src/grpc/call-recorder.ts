import { sensitiveHeaders } from 'node:http2';
import {
  type Deadline,
  Metadata,
  type ServerInterceptingCallInterface,
  status,
} from '@grpc/grpc-js';
import { type InferenceObservation, parseTraceparent, requestIdFrom } from '../service/index.js';
import type { CallHooks, CallLayer, SentStatus } from './call-interceptor.js';
import { statusMessage } from './grpc-status.js';

/** One call as the server records it (its log line and its count in the metrics). */
export interface CallRecord {
  /** The method's name (`ModelInfer`). */
  readonly method: string;
  /** Its path (`/inference.GRPCInferenceService/ModelInfer`). */
  readonly path: string;
  /** performance.now() when the call reached the server. */
  readonly startedMs: number;
  /** The model asked for, once a handler has read the request and found it in the registry. */
  model: string;
  /** The version that served it (ModelInfer), or the one asked for (ModelReady, ModelMetadata). */
  version?: number;
  /** Rows of a ModelInfer request, once read. */
  rows?: number;
  /** What an answered ModelInfer computed, for the metrics (service's InferenceObservation). */
  inference?: InferenceObservation;
  /**
   * The call's request id: its `x-request-id` metadata when well-formed (as HTTP's X-Request-Id,
   * service/request-trace.ts), else a new UUID; sent back in its `x-request-id` metadata.
   */
  requestId: string;
  /** Its W3C traceparent's trace-id and parent-id, when it sent a well-formed one. */
  traceId?: string;
  parentId?: string;
}

/** A metadata value given exactly once (a repeated one is refused, as a repeated header is). */
function single(metadata: Metadata, key: string): unknown {
  const values = metadata.get(key);
  return values.length === 1 ? values[0] : undefined;
}

/** The request id and trace of a call, from its metadata (HTTP's rules for headers). */
function readTrace(record: CallRecord, metadata: Metadata): void {
  record.requestId = requestIdFrom(single(metadata, REQUEST_ID_KEY));
  const trace = parseTraceparent(single(metadata, 'traceparent'));
  if (trace) {
    record.traceId = trace.traceId;
    record.parentId = trace.parentId;
  }
}

/** The metadata key of the request id, both ways (HTTP's X-Request-Id header). */
export const REQUEST_ID_KEY = 'x-request-id';

const NEVER_INDEXED = Object.freeze([REQUEST_ID_KEY]);

/**
 * Response metadata whose request id HPACK sends as a literal never indexed (RFC 7541 §6.2.3,
 * Node's `http2.sensitiveHeaders`), not added to the connection's dynamic table: every call's id
 * is new, so indexing it only evicted older entries, and it cost nghttp2's deflater 15–23 µs
 * per call against 2–3 µs (bench/README.md, issue 11's twenty-eighth round). grpc-js turns
 * metadata into headers with `toHttp2Headers` and copies it (`clone`) before sending a status, so
 * both keep the mark; grpc-js's own Object.assign copies the symbol.
 */
class RequestIdMetadata extends Metadata {
  override toHttp2Headers() {
    const headers = super.toHttp2Headers();
    (headers as Record<symbol, unknown>)[sensitiveHeaders] = NEVER_INDEXED;
    return headers;
  }

  // grpc-js's clone, the mark kept: its options, and its values copied (Buffers too).
  override clone(): Metadata {
    const copy = new RequestIdMetadata(this.getOptions());
    copy.merge(super.clone());
    return copy;
  }
}

/** The metadata to send, with the call's request id (never indexed: RequestIdMetadata). */
function withRequestId(metadata: Metadata | null | undefined, requestId: string): Metadata {
  const out = new RequestIdMetadata();
  if (metadata) out.merge(metadata);
  out.set(REQUEST_ID_KEY, requestId);
  return out;
}

/** Called once per call, with the status it ended with and that status's message. */
export type CallEnded = (record: CallRecord, code: status, details: string) => void;

/** Every call's record, by its request metadata (the object its handler sees as call.metadata). */
const records = new WeakMap<Metadata, CallRecord>();

/** The record of the call whose request metadata this is (a handler's `call.metadata`). */
export const callRecordOf = (metadata: Metadata): CallRecord | undefined => records.get(metadata);

/**
 * The status of a call that ended before it was answered (grpc-js's `cancelled`: its stream
 * closed): DEADLINE_EXCEEDED when its deadline has passed (grpc-js sent that status), else
 * CANCELLED (the client cancelled it or its connection went).
 */
export function endedStatus(deadline: Deadline, nowMs = Date.now()): status {
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) && nowMs >= ms - DEADLINE_SLACK_MS
    ? status.DEADLINE_EXCEEDED
    : status.CANCELLED;
}

/**
 * How close to its deadline a call that ends without a status counts as ended by it. grpc-js ends a
 * call at its deadline with a timer (setTimeout, on the monotonic clock), which may run a
 * millisecond or more before the wall clock (Date.now) reaches the deadline it computed (a CI run
 * recorded one such as CANCELLED). And the client's own deadline passes first: the server's is the
 * remaining time of the request's grpc-timeout counted from the request's arrival, so it lies the
 * request's transit later, and the client's cancellation (RST_STREAM) can arrive before it — on a
 * loaded machine by tens of milliseconds or more (a targeted test under load recorded such a call
 * as CANCELLED). A client that cancels of its own accord this close to its deadline is counted as
 * having run out of time.
 */
export const DEADLINE_SLACK_MS = 250;

/**
 * A call layer (call-interceptor.ts) that reports every call exactly once, wherever it ends:
 * - a status its handler sends (through this layer's sendStatus hook);
 * - a status grpc-js sends itself, before or instead of the handler: RESOURCE_EXHAUSTED for a
 *   message over grpc.max_receive_message_length, DEADLINE_EXCEEDED from its deadline timer.
 *   Those never pass an interceptor (grpc-js 1.14's BaseServerInterceptingCall calls its own
 *   sendStatus), so grpc-js's own call has its sendStatus observed; checked
 *   by test/grpc/grpc-call-records.test.ts, and without it such a call is still recorded, as
 *   CANCELLED or DEADLINE_EXCEEDED, by the next case;
 * - a stream that closed with no status (the client cancelled, its connection went), including a
 *   call cancelled before its handler ran: grpc-js then never runs the handler, and such a call
 *   used to leave no log line and no count.
 */
export function callRecorder(ended: CallEnded): CallLayer {
  return (descriptor, call) => new RecordedCall(descriptor.path, call, ended);
}

/** One call's record and its hooks (callRecorder). */
class RecordedCall implements CallHooks {
  private readonly record: CallRecord;
  /** Whether response headers went out: else the id goes in the trailers. */
  private headersSent = false;
  private done = false;
  /** Whether grpc-js's own sendStatus is observed (observeOwnStatuses). */
  private readonly observed: boolean;

  constructor(
    path: string,
    private readonly call: ServerInterceptingCallInterface,
    private readonly ended: CallEnded,
  ) {
    this.record = {
      method: path.slice(path.lastIndexOf('/') + 1),
      path,
      startedMs: performance.now(),
      model: '',
      requestId: '',
    };
    this.observed = observeOwnStatuses(call, this);
  }

  /** The call ended with this status: recorded once, the first. */
  end(code: status, details: string | undefined): void {
    if (this.done) return;
    this.done = true;
    this.ended(this.record, code, details ?? '');
  }

  receiveMetadata(metadata: Metadata): boolean {
    readTrace(this.record, metadata);
    records.set(metadata, this.record);
    return true;
  }

  // Also called once a status was sent: `end` keeps the first.
  cancel(): void {
    this.end(endedStatus(this.call.getDeadline()), undefined);
  }

  sendMetadata(metadata: Metadata): Metadata {
    this.headersSent = true;
    return this.record.requestId ? withRequestId(metadata, this.record.requestId) : metadata;
  }

  sendStatus(given: SentStatus): SentStatus {
    // Every status a handler sends passes here: its message made one grpc-js can encode — by
    // observeOwnStatuses when grpc-js's own sendStatus is observed (it does so for every status).
    const sent = this.observed ? given : { ...given, details: statusMessage(given.details) };
    if (!this.observed) this.end(sent.code, sent.details);
    return this.withId(sent);
  }

  /**
   * `sent` with the call's request id in its trailers when no headers carried it: a handler's
   * status, and grpc-js's own (observeOwnStatuses: a message over the receive limit, its deadline
   * timer, a malformed grpc-timeout), which never pass a layer. A status that has it already (a
   * handler's, through sendStatus) is sent as it is.
   */
  withId(sent: SentStatus): SentStatus {
    if (this.headersSent || !this.record.requestId || sent.metadata instanceof RequestIdMetadata)
      return sent;
    return { ...sent, metadata: withRequestId(sent.metadata, this.record.requestId) };
  }
}

/**
 * Sees the statuses grpc-js's own call object sends (see callRecorder), those of the handler
 * included, as they reach the stream: a status for a stream already closed (grpc-js drops it,
 * `checkCancelled`) is not seen — the call ended cancelled, and onCancel says so. False when the
 * object is not what grpc-js 1.14 hands the first interceptor.
 */
function observeOwnStatuses(call: ServerInterceptingCallInterface, seen: RecordedCall): boolean {
  const send = call.sendStatus;
  const closed = (call as { checkCancelled?: unknown }).checkCancelled;
  if (typeof send !== 'function' || typeof closed !== 'function') return false;
  call.sendStatus = (given) => {
    // grpc-js's own message may carry a client's text whole (a 60 KB malformed grpc-timeout):
    // bounded and made well-formed as a handler's is (a handler's passes again, unchanged).
    const sent = { ...given, details: statusMessage(given.details) };
    if (!closed.call(call)) seen.end(sent.code, sent.details);
    send.call(call, seen.withId(sent));
  };
  return true;
}

import {
  type Deadline,
  type Metadata,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  ServerListenerBuilder,
  status,
} from '@grpc/grpc-js';

/** One call as the server records it (its log line and its count in the metrics). */
export interface CallRecord {
  /** The method's name (`ModelInfer`). */
  readonly method: string;
  /** performance.now() when the call reached the server. */
  readonly startedMs: number;
  /** The model asked for, once a handler has read the request and found it in the registry. */
  model: string;
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
export function endedStatus(deadline: Deadline): status {
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) && Date.now() >= ms ? status.DEADLINE_EXCEEDED : status.CANCELLED;
}

/**
 * A server interceptor that reports every call exactly once, wherever it ends:
 * - a status its handler sends (through this interceptor's responder);
 * - a status grpc-js sends itself, before or instead of the handler: RESOURCE_EXHAUSTED for a
 *   message over grpc.max_receive_message_length, DEADLINE_EXCEEDED from its deadline timer.
 *   Those never pass an interceptor (grpc-js 1.14's BaseServerInterceptingCall calls its own
 *   sendStatus), so the call it hands the first interceptor has its sendStatus observed; checked
 *   by test/grpc/grpc-call-records.test.ts, and without it such a call is still recorded, as
 *   CANCELLED or DEADLINE_EXCEEDED, by the next case;
 * - a stream that closed with no status (the client cancelled, its connection went), including a
 *   call cancelled before its handler ran: grpc-js then never runs the handler, and such a call
 *   used to leave no log line and no count.
 */
export function callRecorder(ended: CallEnded): ServerInterceptor {
  return (descriptor, next) => {
    const record: CallRecord = {
      method: descriptor.path.slice(descriptor.path.lastIndexOf('/') + 1),
      startedMs: performance.now(),
      model: '',
    };
    let done = false;
    const end = (code: status, details: string | undefined) => {
      if (done) return;
      done = true;
      ended(record, code, details ?? '');
    };
    const observed = observeOwnStatuses(next, end);
    return new ServerInterceptingCall(next, {
      start: (go) =>
        go(
          new ServerListenerBuilder()
            .withOnReceiveMetadata((metadata, pass) => {
              records.set(metadata, record);
              pass(metadata);
            })
            // Also called once a status was sent: `end` keeps the first.
            .withOnCancel(() => end(endedStatus(next.getDeadline()), undefined))
            .build(),
        ),
      sendStatus: (sent, pass) => {
        if (!observed) end(sent.code, sent.details);
        pass(sent);
      },
    });
  };
}

/**
 * Sees the statuses grpc-js's own call object sends (see callRecorder), those of the handler
 * included, as they reach the stream: a status for a stream already closed (grpc-js drops it,
 * `checkCancelled`) is not seen — the call ended cancelled, and onCancel says so. False when the
 * object is not what grpc-js 1.14 hands the first interceptor.
 */
function observeOwnStatuses(
  call: ServerInterceptingCallInterface,
  seen: (code: status, details: string | undefined) => void,
): boolean {
  const send = call.sendStatus;
  const closed = (call as { checkCancelled?: unknown }).checkCancelled;
  if (typeof send !== 'function' || typeof closed !== 'function') return false;
  call.sendStatus = (sent) => {
    if (!closed.call(call)) seen(sent.code, sent.details);
    send.call(call, sent);
  };
  return true;
}

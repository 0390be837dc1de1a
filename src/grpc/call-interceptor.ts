import {
  Metadata,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServerMethodDefinition,
} from '@grpc/grpc-js';

/** A status as a call sends it (grpc-js's PartialStatusObject, which its index does not export). */
export type SentStatus = Parameters<ServerInterceptingCallInterface['sendStatus']>[0];

/**
 * One concept's part in a call (the request's reset, its receive limits, its record, its
 * content-type, its admission), run by the server's one interceptor (`callInterceptor`). Each hook is optional.
 * A `receive…` hook returns false when it ended the call or stops the event: neither that event nor
 * any later one goes further (the later layers and the handler see none of them; the cancel still
 * reaches every layer), as grpc-js holds every later event behind a listener that did not pass one.
 */
export interface CallHooks {
  receiveMetadata?(metadata: Metadata): boolean;
  receiveMessage?(message: unknown): boolean;
  receiveHalfClose?(): boolean;
  /** The call ended before or without its status being sent (grpc-js's onCancel). */
  cancel?(): void;
  /** The response metadata about to be sent: returns what is sent (the same object, or another). */
  sendMetadata?(metadata: Metadata): Metadata;
  /** The status about to be sent: returns what is sent (the same object, or another). */
  sendStatus?(status: SentStatus): SentStatus;
}

/** Sends a status on the call, as its handler would: through every layer's `sendStatus`. */
export interface CallEnding {
  end(status: SentStatus): void;
}

/**
 * A concept's layer, called once per call as it arrives with the method's descriptor, grpc-js's
 * own call object (the one grpc-js hands the first interceptor: its HTTP/2 stream, its decoder and
 * its own sendStatus are there) and the call's `CallEnding`. It may change grpc-js's call (its
 * limits, its sendStatus) and returns the call's hooks, or undefined when it has none: one object
 * of a class per call, its hooks methods (no closures made per call for them: LayeredCall says
 * why; a layer that wraps grpc-js's own sendStatus makes one).
 */
export type CallLayer = (
  descriptor: ServerMethodDefinition<unknown, unknown>,
  call: ServerInterceptingCallInterface,
  ending: CallEnding,
) => CallHooks | undefined;

/** grpc-js's own call, as a layer is given it. */
type OwnCall = ServerInterceptingCallInterface;

/**
 * The server's one interceptor: the layers in their order, with one intercepting call per call
 * (LayeredCall: the handler's call, grpc-js's listener and the layers' responder in one object) in
 * place of an interceptor per concept, each of which grpc-js gave a ServerInterceptingCall, a
 * listener and a responder of its own, through which every event and every send passed. The order
 * is the interceptor list's: received events go through the layers first to last, then to the
 * handler; sends from the handler go last to first, then to grpc-js's call. A call none of the
 * layers has hooks for is grpc-js's own call, untouched. bench/README.md (issue 11's
 * twenty-eighth round) has what the merge saved.
 */
export function callInterceptor(layers: readonly CallLayer[]): ServerInterceptor {
  return (descriptor, next) => {
    const call = new LayeredCall(next);
    for (const layer of layers) {
      const own = layer(descriptor, next, call);
      if (own) call.hooks.push(own);
    }
    return call.hooks.length === 0 ? (next as ServerInterceptingCall) : call;
  };
}

/** The listener grpc-js's call and the handler's call take (grpc-js exports no name for it). */
type CallListener = Parameters<OwnCall['start']>[0];

/**
 * One call through the layers' hooks: to the handler, the call it reads and answers (grpc-js's
 * ServerInterceptingCall, its start and sends overridden); to grpc-js's own call, the listener of
 * what arrives. No closure and no bound function per call: grpc-js's ServerInterceptingCall takes
 * its listener and responder as functions, and each made per call cost ~0.3 µs under tsx and the
 * bundle's keepNames, which name every closure as it is made. The hooks are synchronous, so nothing
 * waits here, where grpc-js's ServerInterceptingCall holds a message or a status back while an
 * asynchronous responder or listener has not passed the one before.
 */
class LayeredCall extends ServerInterceptingCall implements CallListener, CallEnding {
  readonly hooks: CallHooks[] = [];
  /** The handler's listener, from start. */
  private listener: CallListener | undefined;
  /** grpc-js's onCancel came: nothing more is received (as grpc-js's listener does). */
  private cancelled = false;
  /**
   * A layer's receive hook stopped an event: nothing more is received either, as grpc-js's own
   * listener holds every later event while a listener has not passed the one before.
   */
  private stopped = false;
  private metadataSent = false;

  // Its other methods (startRead, getPeer, getDeadline…) are grpc-js's: they ask `next`.
  constructor(private readonly next: OwnCall) {
    super(next);
  }

  // What arrives: the layers first to last, then the handler.
  onReceiveMetadata(metadata: Metadata): void {
    if (this.cancelled || this.stopped) return;
    for (const hook of this.hooks)
      if (hook.receiveMetadata && !hook.receiveMetadata(metadata)) {
        this.stopped = true;
        return;
      }
    this.listener?.onReceiveMetadata(metadata);
  }

  onReceiveMessage(message: unknown): void {
    if (this.cancelled || this.stopped) return;
    for (const hook of this.hooks)
      if (hook.receiveMessage && !hook.receiveMessage(message)) {
        this.stopped = true;
        return;
      }
    this.listener?.onReceiveMessage(message);
  }

  onReceiveHalfClose(): void {
    if (this.cancelled || this.stopped) return;
    for (const hook of this.hooks)
      if (hook.receiveHalfClose && !hook.receiveHalfClose()) {
        this.stopped = true;
        return;
      }
    this.listener?.onReceiveHalfClose();
  }

  onCancel(): void {
    this.cancelled = true;
    for (const hook of this.hooks) hook.cancel?.();
    this.listener?.onCancel();
  }

  // What the handler sends: the layers last to first, then grpc-js's call.
  override start(listener: CallListener): void {
    this.listener = listener;
    this.next.start(this);
  }

  override sendMetadata(metadata: Metadata): void {
    this.metadataSent = true;
    let sent = metadata;
    for (let i = this.hooks.length - 1; i >= 0; i--) {
      const hook = this.hooks[i]!;
      if (hook.sendMetadata) sent = hook.sendMetadata(sent);
    }
    this.next.sendMetadata(sent);
  }

  override sendMessage(message: unknown, callback: () => void): void {
    // The response headers go through the layers' sendMetadata first, as grpc-js's
    // ServerInterceptingCall sends them: grpc-js's own call would send them without.
    if (!this.metadataSent) this.sendMetadata(new Metadata());
    this.next.sendMessage(message, callback);
  }

  override sendStatus(status: SentStatus): void {
    let sent = status;
    for (let i = this.hooks.length - 1; i >= 0; i--) {
      const hook = this.hooks[i]!;
      if (hook.sendStatus) sent = hook.sendStatus(sent);
    }
    this.next.sendStatus(sent);
  }

  /** CallEnding: a layer sends a status as the handler would. */
  end(status: SentStatus): void {
    this.sendStatus(status);
  }
}

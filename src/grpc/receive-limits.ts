import type { ServerHttp2Stream } from 'node:http2';
import { Metadata, type ServerInterceptor, status } from '@grpc/grpc-js';

/**
 * The largest request message of the methods whose requests are a model's name and version, a
 * health service's name or nothing (every method but ModelInfer): a name is at most a few hundred
 * bytes, so this leaves room for any field a client adds and bounds what such a call holds.
 */
export const SMALL_MESSAGE_BYTES = 64 * 1024;

/** Room a ModelInfer message may take beyond its tensor values: names, shapes, parameters. */
export const INFER_ENVELOPE_BYTES = 64 * 1024;

/**
 * Bytes a ModelInfer message may spend per tensor value: 4 in `raw_input_contents` or packed
 * `fp32_contents`, 5 unpacked (a tag before each float, which protobuf parsers must accept);
 * 8 leaves room for the encodings a parser accepts and the check then refuses by type.
 */
export const INFER_BYTES_PER_VALUE = 8;

export interface ReceiveLimitsOptions {
  /** The largest message a call of `path` may send, in bytes (grpc.max_receive_message_length's role). */
  messageLimit: (path: string) => number;
  /**
   * Bytes of request messages one connection may have been sent and not yet all received, over
   * all its calls: as one HTTP/1.1 connection holds one body of at most BODY_LIMIT_BYTES.
   */
  connectionBudgetBytes: number;
  /** Called once if grpc-js's call has another shape than 1.14's (nothing is limited then). */
  unsupported: () => void;
}

/** The parts of grpc-js 1.14's BaseServerInterceptingCall used here (not in its typings). */
interface BaseCallInternals {
  stream?: unknown;
  maxReceiveMessageSize?: unknown;
  decoder?: { maxReadMessageLength?: unknown };
  sendStatus?: unknown;
}

/**
 * A server interceptor, placed right after resetUnfinishedRequests (it needs the call grpc-js
 * made, which that one hands on), that bounds what a call's request may make the server hold:
 * - per method, the message size: grpc-js has one grpc.max_receive_message_length for every
 *   method (BODY_LIMIT_BYTES), so a ServerLive or health Check — no token needed — could announce
 *   16 MiB and send 15 MB of it, 100 such calls on one connection: 1.1 GB held from one client
 *   (gRPC attacker review of 2026-12-04, finding 1). The limit is set on the call's decoder,
 *   which refuses a message whose length prefix is over it, RESOURCE_EXHAUSTED, before reading
 *   it (and the decompressed size too);
 * - per connection, the bytes of requests being received: past `connectionBudgetBytes` the call
 *   whose bytes went over ends RESOURCE_EXHAUSTED and its stream is reset
 *   (resetUnfinishedRequests), its bytes given back. A request counts from its first byte to the
 *   end of its client's stream (its message whole: the handler's, no longer being received).
 */
export function limitReceiving(options: ReceiveLimitsOptions): ServerInterceptor {
  let told = false;
  const receiving = new WeakMap<object, { bytes: number }>();
  return (descriptor, next) => {
    const call = next as unknown as BaseCallInternals;
    const stream = call.stream as ServerHttp2Stream | undefined;
    if (
      typeof call.maxReceiveMessageSize !== 'number' ||
      typeof call.decoder?.maxReadMessageLength !== 'number' ||
      typeof call.sendStatus !== 'function' ||
      typeof stream?.on !== 'function' ||
      typeof stream.session !== 'object' ||
      stream.session === null
    ) {
      if (!told) options.unsupported();
      told = true;
      return next as ReturnType<ServerInterceptor>;
    }
    const limit = Math.min(
      call.decoder.maxReadMessageLength,
      options.messageLimit(descriptor.path),
    );
    call.decoder.maxReadMessageLength = limit;
    call.maxReceiveMessageSize = limit;

    const session = stream.session;
    let connection = receiving.get(session);
    if (!connection) {
      connection = { bytes: 0 };
      receiving.set(session, connection);
    }
    const held = connection;
    let bytes = 0;
    let over = false;
    const release = () => {
      held.bytes -= bytes;
      bytes = 0;
    };
    // grpc-js's listener was added first (the call's constructor): it reads each chunk first.
    stream.on('data', (chunk: Buffer) => {
      if (over) return;
      bytes += chunk.length;
      held.bytes += chunk.length;
      if (held.bytes <= options.connectionBudgetBytes) return;
      over = true;
      const details = `this connection's requests being received hold more than ${options.connectionBudgetBytes} bytes (BODY_LIMIT_BYTES): finish or cancel some before sending more`;
      release();
      (next.sendStatus as (s: { code: status; details: string; metadata: Metadata }) => void).call(
        next,
        { code: status.RESOURCE_EXHAUSTED, details, metadata: new Metadata() },
      );
    });
    stream.once('end', release);
    stream.once('close', release);
    return next as ReturnType<ServerInterceptor>;
  };
}

import type { CallLayer } from './call-interceptor.js';

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
  /** Called once if grpc-js's call has another shape than 1.14's (nothing is limited then). */
  unsupported: () => void;
}

/** The parts of grpc-js 1.14's BaseServerInterceptingCall used here (not in its typings). */
interface BaseCallInternals {
  maxReceiveMessageSize?: unknown;
  decoder?: { maxReadMessageLength?: unknown };
}

/**
 * A call layer (call-interceptor.ts; it sets grpc-js's own call's limits, and has no hooks) that
 * bounds each call's message by its method: grpc-js has one
 * grpc.max_receive_message_length for every method (BODY_LIMIT_BYTES), so a ServerLive or health
 * Check — no token needed — could announce 16 MiB and send 15 MB of it, 100 such calls on one
 * connection: 1.1 GB held from one client (gRPC attacker review of 2026-12-04, finding 1). The
 * limit is set on the call's decoder, which refuses a message whose length prefix is over it,
 * RESOURCE_EXHAUSTED, before reading it, and on its decompression, which refuses a compressed
 * one once its decompressed bytes pass it.
 *
 * What one connection may hold is then its open calls (GRPC_MAX_CONCURRENT_STREAMS) times their
 * methods' limits. A budget of bytes per connection was tried and taken out the same day: it
 * refused valid clients that send their calls in parallel on one channel, as gRPC clients do (20
 * calls of 1 MB: 5 refused at 16 MiB), and it counted compressed bytes, not what they decompress
 * to (review of the session's diff).
 */
export function limitReceiving(options: ReceiveLimitsOptions): CallLayer {
  let told = false;
  return (descriptor, next) => {
    const call = next as unknown as BaseCallInternals;
    if (
      typeof call.maxReceiveMessageSize !== 'number' ||
      typeof call.decoder?.maxReadMessageLength !== 'number'
    ) {
      if (!told) options.unsupported();
      told = true;
      return undefined;
    }
    const limit = Math.min(
      call.decoder.maxReadMessageLength,
      options.messageLimit(descriptor.path),
    );
    call.decoder.maxReadMessageLength = limit;
    call.maxReceiveMessageSize = limit;
    return undefined;
  };
}

import type { Http2Server, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { status } from '@grpc/grpc-js';
import { NormserveError } from '../errors/index.js';
import type { CallEnding, CallHooks, CallLayer } from './call-interceptor.js';
import { errorStatus } from './grpc-status.js';

/**
 * A request `content-type` this server decodes: protobuf, gRPC's default — `application/grpc`,
 * `application/grpc+proto` (or `application/grpc+`, an empty subtype, which grpc-go's and
 * grpc-java's servers read as the default), then optional media-type parameters (`;
 * charset=utf-8`: RFC 9110 §8.3.1; gRPC's grammar, PROTOCOL-HTTP2.md, lists none, and grpc-go and
 * grpc-java accept them). Case-insensitive, as media types are (RFC 9110 §8.3.1).
 */
const SERVED = /^application\/grpc(?:\+(?:proto)?)?[ \t]*(?:;.*)?$/i;

/** Whether a request's `content-type` names a codec this server has (protobuf). */
export const servedContentType = (value: string): boolean => SERVED.test(value);

/** The part of grpc-js 1.14's BaseServerInterceptingCall used here (not in its typings). */
interface BaseCallInternals {
  stream?: unknown;
}

/**
 * Refuses a call whose `content-type` names a message codec other than protobuf
 * (`application/grpc+json`, `+thrift`, …), which grpc-js 1.14 admits — it checks only that the
 * value starts with `application/grpc` (`_verifyContentType`) — and decodes as protobuf whatever
 * it says. gRPC's HTTP/2 spec lets the subtype name any codec (`"application/grpc"
 * [("+proto" / "+json" / {custom})]`) and says nothing of the status for one a server lacks;
 * grpc-go's client refuses to send with a codec it lacks (INTERNAL, "no codec registered for
 * content-subtype"), and its server still falls back to protobuf with a warning ("This will
 * start to fail in future releases"). Here the call is answered UNIMPLEMENTED naming the
 * content-type and what the server speaks, as gRPC's compression spec answers an encoding the
 * server lacks (compression.md) and as Connect's conformance suite accepts for an unknown codec:
 * the server does not implement it, and a retry will not help.
 *
 * grpc-js drops `content-type` from the metadata a call's interceptors see, and keeps no request
 * header on the call, so the header is read where grpc-js reads it: the HTTP/2 servers' `stream`
 * event (`watch`, a listener put before grpc-js's, which hands the call to the interceptor in the
 * same turn). A stream with such a content-type is noted, and the call's layer (after the
 * recorder, which records it; before the admission, whose timer and drain it never enters) ends
 * it from its metadata, its message never read, its handler never run.
 */
export class ContentTypeCheck {
  /** Streams grpc-js admits whose content-type names another codec: that content-type. */
  private readonly refused = new WeakMap<object, string>();
  private watching = false;

  /** Follows the streams of grpc-js's HTTP/2 servers (http2ServersOf, after bindAsync). */
  watch(servers: readonly Http2Server[]): void {
    this.watching = true;
    for (const server of servers) server.prependListener('stream', this.noteStream);
  }

  private readonly noteStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const type = headers['content-type'];
    // A value grpc-js refuses itself (HTTP 415) never becomes a call.
    if (typeof type === 'string' && type.startsWith('application/grpc') && !SERVED.test(type))
      this.refused.set(stream, type);
  };

  /** The call layer: hooks only for a call whose stream was noted. */
  readonly layer: CallLayer = (_descriptor, call, ending) => {
    if (!this.watching) return undefined;
    const stream = (call as unknown as BaseCallInternals).stream;
    const type = typeof stream === 'object' && stream !== null && this.refused.get(stream);
    return type ? new RefusedCall(type, ending) : undefined;
  };
}

/** A call whose content-type names a codec this server lacks: ended from its metadata. */
class RefusedCall implements CallHooks {
  constructor(
    private readonly contentType: string,
    private readonly ending: CallEnding,
  ) {}

  receiveMetadata(): boolean {
    const error = new NormserveError(
      'UNSUPPORTED_MEDIA_TYPE',
      `content-type ${JSON.stringify(this.contentType.slice(0, 100))} is not served: this server speaks protobuf, application/grpc or application/grpc+proto`,
    );
    // UNIMPLEMENTED, not the catalogue code's INVALID_ARGUMENT (grpc-status.ts): the message may
    // be valid in its codec; the server does not implement that codec (ContentTypeCheck).
    this.ending.end({ ...errorStatus(error), code: status.UNIMPLEMENTED });
    // Stopped here: neither its message nor its end reaches a later layer or the handler.
    return false;
  }
}

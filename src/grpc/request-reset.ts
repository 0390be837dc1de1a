import { constants, type ServerHttp2Stream } from 'node:http2';
import type { ServerInterceptingCallInterface } from '@grpc/grpc-js';
import type { CallLayer } from './call-interceptor.js';

/** The part of grpc-js 1.14's BaseServerInterceptingCall used here (not in its typings). */
interface BaseCallInternals {
  stream?: unknown;
}

/**
 * A call layer (call-interceptor.ts; the first: it wraps grpc-js's own sendStatus before the
 * recorder does) that resets a call's HTTP/2 stream with RST_STREAM NO_ERROR once its status is
 * sent while its client is still sending the request, as grpc-go's server does (http2_server.go,
 * WriteStatus: "Send a RST_STREAM after the trailers if the client has not already half-closed")
 * and RFC 9113 §8.1 allows ("a server can send a complete response prior to the client sending an
 * entire request … the server MAY request that the client abort transmission of a request without
 * error by sending a RST_STREAM with an error code of NO_ERROR after sending a complete response").
 *
 * grpc-js 1.14 does not: after the status it reads on and drops whatever the client sends, and
 * the part of the message received before the status (up to BODY_LIMIT_BYTES) stays in the call's
 * decoder until the stream closes — a refused call (UNAUTHENTICATED, REQUEST_TIMEOUT, a message
 * over the size limit) held its buffer as long as its client kept the stream open. Node sends the
 * frames already queued (the status) before the RST_STREAM (Http2Stream::SubmitRstStream).
 *
 * It has no hooks: it wraps grpc-js's call's sendStatus, and nothing else changes. A call of
 * another shape (grpc-js's internals changed) is left untouched and `unsupported` called, once;
 * test/grpc/grpc-admission.test.ts checks the reset.
 */
export function resetUnfinishedRequests(
  unsupported: () => void,
  streams?: UnreadAnswers,
): CallLayer {
  let told = false;
  return (_descriptor, call) => {
    const stream = http2StreamOf(call);
    if (stream === undefined) {
      if (!told) unsupported();
      told = true;
      return undefined;
    }
    wrapSendStatus(call, stream);
    streams?.add(stream);
    return undefined;
  };
}

/**
 * The calls' streams, for the drain's end: a client that does not read its answers — a window of
 * 0 — keeps its streams open, and with them the gRPC server's graceful shutdown, to
 * SHUTDOWN_TIMEOUT_MS's end and an exit 1 as if work were lost (gRPC attacker review of
 * 2026-12-04, finding 2). `cancelUnread` resets the streams whose answer waits in their write
 * buffer for the client's window (the reply, or a health watch's last message): the server's work
 * on them is done. A call still computing has nothing buffered and is left to finish.
 */
export class UnreadAnswers {
  private readonly open = new Set<ServerHttp2Stream>();

  /** A call's stream, forgotten when it closes. */
  add(stream: ServerHttp2Stream): void {
    if (stream.closed || stream.destroyed) return;
    this.open.add(stream);
    stream.once('close', () => this.open.delete(stream));
  }

  /** Resets (RST_STREAM CANCEL) every open stream whose answer its client has not taken. */
  cancelUnread(): number {
    let cancelled = 0;
    for (const stream of this.open) {
      if (stream.closed || stream.destroyed || stream.writableLength === 0) continue;
      stream.close(constants.NGHTTP2_CANCEL);
      cancelled++;
    }
    return cancelled;
  }
}

/** The call's server stream: an object with the Http2Stream methods used here. */
function http2StreamOf(call: object): ServerHttp2Stream | undefined {
  const stream = (call as BaseCallInternals).stream as Partial<ServerHttp2Stream> | undefined;
  return typeof stream === 'object' &&
    stream !== null &&
    typeof stream.close === 'function' &&
    typeof stream.once === 'function' &&
    typeof stream.headersSent === 'boolean'
    ? (stream as ServerHttp2Stream)
    : undefined;
}

function wrapSendStatus(next: ServerInterceptingCallInterface, stream: ServerHttp2Stream): void {
  const send = next.sendStatus;
  next.sendStatus = (sent) => {
    const headersSent = stream.headersSent;
    send.call(next, sent);
    // The client has sent its whole request (its END_STREAM read), or the stream is gone.
    if (stream.readableEnded || stream.closed || stream.destroyed) return;
    const reset = () => {
      if (!stream.closed && !stream.destroyed) stream.close(constants.NGHTTP2_NO_ERROR);
    };
    // A trailers-only status was submitted just now (HEADERS with END_STREAM); trailers after
    // response headers are submitted on 'wantTrailers' (grpc-js's listener, added first, runs first).
    if (headersSent) stream.once('wantTrailers', reset);
    else reset();
  };
}

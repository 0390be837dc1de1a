import { PassThrough, type Readable } from 'node:stream';
import { createGunzip, createInflate, type Gunzip, type Inflate } from 'node:zlib';
import type { FastifyRequest, preParsingHookHandler, RouteOptions } from 'fastify';
import { NormserveError } from '../errors/index.js';
import { bodyTooLarge } from './body-too-large.js';
import { preParsingOf } from './route-pre-parsing.js';
import { readAsStream } from './streamed-body.js';

/**
 * Request bodies compressed as Triton's HTTP endpoint accepts them (`Content-Encoding: gzip` or
 * `deflate`; `identity` is no encoding), decompressed as they arrive, so every body reader (JSON,
 * float32, the binary tensor extension, NDJSON uploads) reads the decoded bytes. Any other
 * encoding is a 415: read as it is, compressed bytes would be taken for float32 values or text.
 */
export const CONTENT_ENCODINGS = ['gzip', 'deflate', 'identity'] as const;

/** What the OpenAPI document says of it, on every route that reads a body of rows. */
export const CONTENT_ENCODING_DOC =
  'A body may be compressed with `Content-Encoding: gzip` or `deflate` (another encoding is a 415); lengths and limits count the decoded bytes.';

const decoders: Record<string, () => Gunzip | Inflate> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
};

/** A body stream with the encoded size read so far, which Fastify compares with Content-Length. */
type DecodedBody = PassThrough & { receivedEncodedLength: number };

/** preParsing: the body decoded by its Content-Encoding; 415 for an encoding not supported. */
export const decodeContentEncoding: preParsingHookHandler = (request, reply, payload, done) => {
  const encoding = encodingOf(request);
  if (encoding === undefined) return done(null, payload);
  const decoder = decoders[encoding];
  if (!decoder) {
    return done(
      new NormserveError(
        'UNSUPPORTED_MEDIA_TYPE',
        `unsupported Content-Encoding ${JSON.stringify(request.headers['content-encoding'])}; send the body as ${CONTENT_ENCODINGS.join(', ')}`,
      ),
    );
  }
  const limit = readAsStream(request)
    ? { bytes: Number.POSITIVE_INFINITY, name: '' }
    : { bytes: request.routeOptions.bodyLimit, name: 'BODY_LIMIT_BYTES' };
  const out = decodedBody(payload, decoder(), encoding, limit);
  // A body answered before it was read (a 415, a refusal of a later hook or the handler) would keep
  // its decoder paused half-read: once the response is out, it is dropped (and the connection
  // closed, app.ts's onSend hook).
  reply.raw.once('finish', () => {
    if (!out.readableEnded) out.destroy();
  });
  done(null, out);
};

/**
 * An onRoute hook, added after the access guards' and before the 100 Continue's: the route's
 * body is decoded after its guards, so that a request without its token gets its 401 whatever
 * its Content-Encoding (an unsupported one was a 415 before the guard: the third reader of
 * 2026-12-04), and before the 100, so that a 415 comes in its place.
 */
export function decodeBeforeBody(route: RouteOptions): void {
  route.preParsing = [...preParsingOf(route), decodeContentEncoding];
}

/** The app-level hook for a path no route serves, whose body the not-found handler reads. */
export const decodeNotFound: preParsingHookHandler = function (request, reply, payload, done) {
  if (request.is404) return decodeContentEncoding.call(this, request, reply, payload, done);
  done(null, payload);
};

/** The one encoding named, lower case; undefined for none, identity, or no body. */
function encodingOf(request: FastifyRequest): string | undefined {
  const { headers } = request;
  const header = headers['content-encoding'];
  // A request without a body (a GET) has nothing to decode, whatever it says.
  if (header === undefined) return undefined;
  if (headers['content-length'] === undefined && headers['transfer-encoding'] === undefined)
    return undefined;
  const encoding = header.trim().toLowerCase();
  return encoding === '' || encoding === 'identity' ? undefined : encoding;
}

/**
 * The decoded body. Decoding costs CPU that a small body can multiply a thousandfold (a "zip
 * bomb"), so it stops as soon as nobody needs more: past the decoded limit (a 413), when the
 * reader stops (Fastify after its own 413, an upload reader that gave up: it destroys the stream)
 * or never reads (a 415 or a 401 before the body: unread, the decoded bytes back up and pause the
 * decoder, and the hook destroys the stream once the response is out). The rest of the body is
 * then read and dropped, undecoded.
 */
export function decodedBody(
  payload: Readable,
  decoder: Gunzip | Inflate,
  encoding: string,
  limit: { bytes: number; name: string },
): Readable {
  const out = new PassThrough() as DecodedBody;
  out.receivedEncodedLength = 0;
  let decodedBytes = 0;
  let stopped = false;
  // Fastify hears errors while it reads the body; once it has stopped, or when it never reads,
  // nothing else would, and an 'error' event without a listener ends the process.
  out.on('error', () => {});
  const stop = () => {
    if (stopped) return;
    stopped = true;
    payload.unpipe(decoder);
    decoder.destroy();
    payload.resume();
  };
  const fail = (error: Error) => {
    stop();
    out.destroy(error);
  };
  payload.on('data', (chunk: Buffer) => {
    out.receivedEncodedLength += chunk.length;
  });
  payload.on('error', fail);
  const invalid = (why: string) =>
    fail(
      new NormserveError(
        'INVALID_INPUT',
        `the body is not valid ${encoding} data (Content-Encoding): ${why}`,
      ),
    );
  decoder.on('error', (error) => invalid(error.message));
  decoder.on('data', (chunk: Buffer) => {
    if (stopped) return;
    decodedBytes += chunk.length;
    if (decodedBytes > limit.bytes) {
      fail(bodyTooLarge('decoded request body', limit));
      return;
    }
    // A reader that took data in flowing mode and then let go (Fastify after a 413) takes no more.
    if (out.readableFlowing === true && out.listenerCount('data') === 0) return stop();
    if (!out.write(chunk)) decoder.pause();
  });
  out.on('drain', () => decoder.resume());
  // The body ends where its compressed data ends. zlib's inflate stops at the end of its stream
  // and drops whatever follows, unread, while gunzip reads what follows as the next member and
  // fails on garbage (though it skips zero bytes): bytes the decoder never consumed
  // (`bytesWritten` counts what it did) make either body invalid, with gunzip's 400. The check
  // waits for both ends: inflate may end before the rest of the body has arrived.
  let decoderEnded = false;
  const finish = () => {
    if (stopped) return;
    const trailing = out.receivedEncodedLength - decoder.bytesWritten;
    if (trailing > 0)
      return invalid(
        `${trailing} byte${trailing === 1 ? '' : 's'} after the end of the compressed data`,
      );
    out.end();
  };
  decoder.on('end', () => {
    decoderEnded = true;
    if (payload.readableEnded) finish();
  });
  payload.on('end', () => {
    if (decoderEnded) finish();
  });
  out.on('close', stop);
  payload.pipe(decoder);
  return out;
}

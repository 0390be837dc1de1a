import { PassThrough, type Readable } from 'node:stream';
import { createGunzip, createInflate, type Gunzip, type Inflate } from 'node:zlib';
import type { FastifyRequest, preParsingHookHandler } from 'fastify';
import { NormserveError } from '../errors/index.js';

/**
 * Request bodies compressed as Triton's HTTP endpoint accepts them (`Content-Encoding: gzip` or
 * `deflate`; `identity` is no encoding), decompressed as they arrive, so every body reader (JSON,
 * float32, the binary tensor extension, NDJSON uploads) reads the decoded bytes. Any other
 * encoding is a 415: read as it is, compressed bytes would be taken for float32 values or text.
 */
export const CONTENT_ENCODINGS = ['gzip', 'deflate', 'identity'] as const;

const decoders: Record<string, () => Gunzip | Inflate> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
};

/**
 * A body stream with a receivedEncodedLength, which Fastify compares with Content-Length (the
 * encoded size) and with bodyLimit; the decoded bytes it counts itself are held to bodyLimit too,
 * so a small compressed body cannot expand past the limit (a "zip bomb" ends in a 413).
 */
type DecodedBody = PassThrough & { receivedEncodedLength: number };

/** preParsing: the body decoded by its Content-Encoding; 415 for an encoding not supported. */
export const decodeContentEncoding: preParsingHookHandler = (request, _reply, payload, done) => {
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
  done(null, decoded(payload, decoder(), encoding));
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

function decoded(payload: Readable, decoder: Gunzip | Inflate, encoding: string): Readable {
  const out = new PassThrough() as DecodedBody;
  out.receivedEncodedLength = 0;
  payload.on('data', (chunk: Buffer) => {
    out.receivedEncodedLength += chunk.length;
  });
  payload.on('error', (error) => out.destroy(error));
  decoder.on('error', (error) =>
    out.destroy(
      new NormserveError(
        'INVALID_INPUT',
        `the body is not valid ${encoding} data (Content-Encoding): ${error.message}`,
      ),
    ),
  );
  // The decoder stops reading when its reader does (a body refused as too large, a client gone).
  out.on('close', () => payload.unpipe(decoder));
  payload.pipe(decoder).pipe(out);
  return out;
}

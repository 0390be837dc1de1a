/**
 * Raw gRPC calls on a node:http2 client session, as an attacker or a careless client sends them:
 * any headers, any frames, part of a message, or never the end of the stream.
 */
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  type IncomingHttpHeaders,
} from 'node:http2';

/** A client session to the gRPC server on `port`, once it has the server's settings. */
export async function rawSession(port: number): Promise<ClientHttp2Session> {
  const s = connect(`http://127.0.0.1:${port}`);
  s.on('error', () => {});
  await new Promise((resolve) => s.once('remoteSettings', resolve));
  return s;
}

/** One raw gRPC stream: its response headers (a trailers-only status among them), its end. */
export interface RawCall {
  stream: ClientHttp2Stream;
  headers?: IncomingHttpHeaders;
  trailers?: IncomingHttpHeaders;
  dataBytes: number;
  /** The stream has closed: both ends' END_STREAM, or the server's RST_STREAM, have arrived. */
  readonly closed: boolean;
}

/** A call of `path` (`content-type: application/grpc` unless `headers` says otherwise), open. */
export function openRawCall(
  s: ClientHttp2Session,
  path: string,
  headers: Record<string, string> = {},
): RawCall {
  const stream = s.request({
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/grpc',
    te: 'trailers',
    ...headers,
  });
  const call: RawCall = {
    stream,
    dataBytes: 0,
    // Node marks the stream closed when the RST_STREAM arrives, but emits 'close' only once the
    // client's own writes have finished, and writes still waiting for the stream's window when it
    // is reset never do (Node 20: 65,541 bytes left queued under load, no 'close').
    get closed() {
      return stream.closed;
    },
  };
  stream.on('error', () => {});
  stream.on('response', (h) => {
    call.headers = h;
  });
  stream.on('trailers', (h) => {
    call.trailers = h;
  });
  stream.on('data', (chunk: Buffer) => {
    call.dataBytes += chunk.length;
  });
  return call;
}

/** The headers a call's status came in: its trailers, or a trailers-only answer's headers. */
const statusHeaders = (call: RawCall) => call.trailers ?? call.headers;

/** The gRPC status of a call's trailers-only answer, or of its trailers. */
export const statusOf = (call: RawCall): number =>
  Number(statusHeaders(call)?.['grpc-status'] ?? Number.NaN);

/** Its status message, percent-decoded. */
export const messageOf = (call: RawCall): string =>
  decodeURIComponent(String(statusHeaders(call)?.['grpc-message'] ?? ''));

/** Its `normserve-code` (the catalogue's code of the error). */
export const codeOf = (call: RawCall) => statusHeaders(call)?.['normserve-code'];

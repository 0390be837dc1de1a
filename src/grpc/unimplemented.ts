import { type Server, type ServerDuplexStream, status } from '@grpc/grpc-js';

/** The method name a call to an unregistered path is counted under (bounded metric labels). */
export const UNKNOWN_METHOD = 'unknown';

/** The parts of grpc-js 1.14's Server used here (not in its typings; checked at run time). */
interface ServerInternals {
  /** The handler registered for a path, or null: grpc-js then answers UNIMPLEMENTED itself. */
  _retrieveHandler?: (path: string) => unknown;
}

/**
 * Calls to a method no service registers are answered UNIMPLEMENTED, as grpc-js does, but by a
 * handler of ours, so that they pass the server's interceptors and are logged and counted like
 * every other call. grpc-js 1.14 answers them itself (`_respondWithError` in its stream handler),
 * before and without any interceptor, so its handler look-up is wrapped: a path it has no handler
 * for gets this one (a bidi handler: it answers at once, whatever the client streams, reading
 * nothing). grpc-js is pinned to an exact version; if the look-up is gone, this returns false and
 * such calls go unrecorded again (test/grpc/grpc-health.test.ts checks they are recorded).
 */
export function recordUnimplemented(server: Server): boolean {
  const internals = server as unknown as ServerInternals;
  const retrieve = internals._retrieveHandler;
  if (typeof retrieve !== 'function') return false;
  internals._retrieveHandler = function (this: unknown, path: string) {
    return retrieve.call(this, path) ?? unimplementedHandler(path);
  };
  return true;
}

const identity = (bytes: Buffer): Buffer => bytes;

function unimplementedHandler(path: string) {
  return {
    type: 'bidi',
    path,
    serialize: identity,
    deserialize: identity,
    func: (call: ServerDuplexStream<Buffer, Buffer>) => {
      // grpc-js's own words (getUnimplementedStatusResponse), the path bounded.
      call.emit('error', {
        code: status.UNIMPLEMENTED,
        details: `The server does not implement the method ${path.slice(0, 200)}`,
      });
    },
  };
}

import type { Http2Server } from 'node:http2';
import type { Server } from '@grpc/grpc-js';

/** The part of grpc-js 1.14's Server used here (not in its typings; checked at run time). */
interface ServerInternals {
  /** The http2 servers it listens with (filled by bindAsync). */
  http2Servers?: Map<Http2Server, unknown>;
}

/**
 * The http2 servers a grpc-js server listens with, after bindAsync: one per address its host
 * resolves to (`localhost`: 127.0.0.1 and ::1). grpc-js has no public way to them; undefined if
 * its internals changed (grpc-js is pinned to an exact version, and each user says what it loses).
 */
export function http2ServersOf(server: Server): Http2Server[] | undefined {
  const servers = (server as unknown as ServerInternals).http2Servers;
  return servers instanceof Map ? [...servers.keys()] : undefined;
}

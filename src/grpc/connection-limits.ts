import type { Http2Server } from 'node:http2';
import type { Server } from '@grpc/grpc-js';

/** The part of grpc-js 1.14's Server used here (not in its typings; checked at run time). */
interface ServerInternals {
  /** The http2 servers it listens with (filled by bindAsync). */
  http2Servers?: Map<Http2Server, unknown>;
}

/**
 * At most `max` open connections on the gRPC port, as MAX_CONNECTIONS is for HTTP's: Node closes
 * the ones above it as they arrive (net.Server's maxConnections, 'drop'), before any HTTP/2
 * byte; the client sees UNAVAILABLE and tries again. grpc-js 1.14 has no option for it, so its
 * http2 servers are reached after bindAsync; false (and no cap) if grpc-js's internals changed —
 * test/grpc/grpc-connections.test.ts checks the cap.
 */
export function limitGrpcConnections(server: Server, max: number, dropped: () => void): boolean {
  const servers = (server as unknown as ServerInternals).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) return false;
  for (const http2Server of servers.keys()) {
    http2Server.maxConnections = max;
    http2Server.on('drop', dropped);
  }
  return true;
}

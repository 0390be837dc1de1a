import type { Server as NetServer, Socket } from 'node:net';
import type { Server } from '@grpc/grpc-js';
import { http2ServersOf } from './http2-servers.js';

/**
 * At most `max` open connections on the gRPC port, as MAX_CONNECTIONS is for HTTP's: Node closes
 * the ones above it as they arrive (net.Server's maxConnections, 'drop'), before any HTTP/2
 * byte; the client sees UNAVAILABLE and tries again. grpc-js 1.14 has no option for it, so its
 * http2 servers are reached after bindAsync; false (and no cap) if grpc-js's internals changed —
 * test/grpc/grpc-connections.test.ts checks the cap. grpc-js listens with one http2 server per
 * address the host resolves to (`localhost`: 127.0.0.1 and ::1), and the cap is the port's:
 * shared by all of them (shareConnectionLimit).
 */
export function limitGrpcConnections(server: Server, max: number, dropped: () => void): boolean {
  const servers = http2ServersOf(server);
  if (servers === undefined || servers.length === 0) return false;
  shareConnectionLimit(servers, max, dropped);
  return true;
}

/**
 * At most `max` connections open on `servers` together. Each server keeps Node's own check
 * (maxConnections: a connection arriving when it holds that many is closed before its first byte
 * is read, and 'drop' emitted), its maxConnections kept at `max` less the connections the others
 * hold, updated on every connection opened or closed: so a server drops exactly when the
 * servers hold `max` between them. Node 20's check is `maxConnections && connections >=
 * maxConnections`: 0 would mean no limit, so a server with no room is given −1 (every arrival
 * dropped). A closed connection is counted until its socket's 'close', a tick after Node's own
 * count: never more than `max` open.
 */
export function shareConnectionLimit(
  servers: readonly NetServer[],
  max: number,
  dropped: () => void,
): void {
  const open = new Map<NetServer, number>(servers.map((s) => [s, 0]));
  let total = 0;
  const update = () => {
    for (const [s, own] of open) {
      const room = max - (total - own);
      s.maxConnections = room > 0 ? room : -1;
    }
  };
  for (const s of servers) {
    s.on('drop', dropped);
    s.on('connection', (socket: Socket) => {
      open.set(s, open.get(s)! + 1);
      total++;
      update();
      socket.once('close', () => {
        open.set(s, open.get(s)! - 1);
        total--;
        update();
      });
    });
  }
  update();
}

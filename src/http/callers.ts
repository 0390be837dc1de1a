import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { InferenceService } from '../service/index.js';

/**
 * Follows the server's callers: tells the dynamic batcher how many there are — its open
 * connections, those with no request in progress, and the requests in progress on them — and
 * calls `left` for each request whose client went before its response was sent whole.
 *
 * A request leaves the count once: when its response closes (sent or abandoned) or, for requests
 * still queued behind it on a pipelining connection (Node never attaches their responses to the
 * socket, so they get no 'close'), when the connection closes. Its client left when its response
 * closed before it finished, or when the connection closed with its response unfinished; the
 * counts are updated first, so the batcher sees who remains when it hears of the departure.
 */
export function trackCallers(
  server: Server,
  inference: InferenceService,
  left: (response: ServerResponse) => void,
): void {
  const callers = { connections: 0, idleConnections: 0, requests: 0 };
  // The responses in progress per open connection; a closed connection is forgotten.
  const inProgress = new Map<Socket, Set<ServerResponse>>();
  server.on('connection', (socket: Socket) => {
    callers.connections++;
    callers.idleConnections++;
    const open = new Set<ServerResponse>();
    inProgress.set(socket, open);
    socket.once('close', () => {
      inProgress.delete(socket);
      callers.connections--;
      callers.requests -= open.size;
      if (open.size === 0) {
        callers.idleConnections--;
        return;
      }
      const abandoned = [...open];
      open.clear();
      for (const response of abandoned) if (!response.writableFinished) left(response);
    });
  });
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const open = inProgress.get(request.socket);
    if (open === undefined) return; // its connection already closed: nothing to count
    if (open.size === 0) callers.idleConnections--;
    open.add(response);
    callers.requests++;
    response.once('close', () => {
      if (!open.delete(response)) return; // the connection's close took it off already
      callers.requests--;
      if (open.size === 0) callers.idleConnections++;
      if (!response.writableFinished) left(response);
    });
  });
  inference.countCallers(() => callers);
}

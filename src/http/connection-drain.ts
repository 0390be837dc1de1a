import type { Server, ServerResponse } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';

/**
 * How long a kept-alive connection must have been quiet — no response in progress, no byte
 * received — before a shutdown closes it. A client in a loop sends its next request as soon as it
 * has read a response; one whose request is on its way when the connection is closed gets
 * ECONNRESET and cannot tell whether a POST was served. Half a second leaves room for a client on
 * a loaded machine; an idle connection (a prober, a pool) holds a shutdown this long at most.
 */
export const IDLE_LINGER_MS = 500;

/**
 * Graceful drain of an HTTP/1.1 server's connections, as Envoy's and nginx's drains do: stop
 * accepting connections, answer every request that arrives on an open one (the app sends
 * `Connection: close` with each response while closing, and Node closes the connection once it
 * is written), and close a kept-alive connection only once it has been quiet for IDLE_LINGER_MS.
 *
 * Node 20's `server.close()` closes the idle connections at once (`httpServerPreClose` in
 * lib/_http_server.js calls `closeIdleConnections()`): "idle" there means no request parsed yet,
 * so a request already sent and still in the socket's buffer or on the wire was dropped unread
 * and its client saw ECONNRESET. `drain()` stops listening with net.Server's close instead, which
 * leaves the connections alone; Fastify's own `server.close()` afterwards finds none left.
 */
export function drainableConnections(server: Server, lingerMs = IDLE_LINGER_MS) {
  /** Every open connection and the number of responses in progress on it. */
  const open = new Map<Socket, number>();
  server.on('connection', (socket: Socket) => {
    open.set(socket, 0);
    socket.once('close', () => open.delete(socket));
  });
  server.on('request', (request, response: ServerResponse) => {
    const socket = request.socket;
    const busy = open.get(socket);
    if (busy === undefined) return;
    open.set(socket, busy + 1);
    response.once('close', () => {
      const now = open.get(socket);
      if (now !== undefined) open.set(socket, now - 1);
    });
  });

  /**
   * Closes `socket` once it has been quiet for a whole linger. The check runs in a setImmediate
   * after the timer: the event loop's poll phase comes between, so bytes already in the kernel's
   * buffer when the linger ends are read (and count as activity) before the connection is judged
   * quiet.
   */
  const closeWhenQuiet = (socket: Socket): Promise<void> =>
    new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      let bytesSeen = socket.bytesRead;
      const check = () => {
        if (socket.destroyed) return;
        const bytes = socket.bytesRead;
        if (bytes === bytesSeen && open.get(socket) === 0) {
          socket.destroy();
          return;
        }
        bytesSeen = bytes;
        timer = setTimeout(() => setImmediate(check), lingerMs);
      };
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      if (socket.destroyed) resolve();
      else timer = setTimeout(() => setImmediate(check), lingerMs);
    });

  return {
    /**
     * Stops accepting connections and resolves once every open connection has closed: those with
     * a request in progress after its response, the others once quiet for the linger. Unbounded
     * itself: SHUTDOWN_TIMEOUT_MS bounds the whole shutdown (cli/server-worker.ts).
     */
    async drain(): Promise<void> {
      if (server.listening) NetServer.prototype.close.call(server);
      await Promise.all([...open.keys()].map(closeWhenQuiet));
    },
  };
}

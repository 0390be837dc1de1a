import type { Http2Server, ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';

/** How long a connection whose HTTP/2 session has ended waits for its client to close it. */
export const CLOSE_WAIT_MS = 10_000;

/**
 * The gRPC port's TCP connections whose HTTP/2 session has ended but whose client has not closed
 * them. Node ends such a session gracefully (finishSessionClose in lib/internal/http2/core.js):
 * GOAWAY, its socket's end, and then it waits for the client's FIN, for ever. The http2 server's
 * close, and with it grpc-js's tryShutdown, waits for that connection: a client that never closes
 * it holds the drain to SHUTDOWN_TIMEOUT_MS and an exit 1, as if work were lost. Node's own http2
 * client does this when a stream the server reset still had writes queued for its window: that
 * stream never emits 'close', so its session never closes its socket (a refused upload, seen
 * under load in test/process/grpc-unfinished-request.test.ts).
 *
 * The same wait held every connection whose session grpc-js ended while serving — past
 * GRPC_MAX_CONNECTION_AGE_MS, after a keepalive's unanswered ping — open for ever, counted against
 * MAX_CONNECTIONS. Such a connection is destroyed `closeWaitMs` after its session ended, and
 * `destroyEnded` destroys those left at once, and from then on each as its session ends: their
 * server side has nothing left to do.
 */
export class LingeringConnections {
  private readonly sessions = new Map<Socket, ServerHttp2Session>();
  private ending = false;

  /**
   * @param closeWaitMs how long a connection whose session has ended waits for its client's close
   *   (a client closes at once on the server's FIN; ten seconds cover a loaded one)
   */
  constructor(private readonly closeWaitMs = CLOSE_WAIT_MS) {}

  /** Follows every connection `servers` accept (bindAsync's http2 servers). */
  watch(servers: readonly Http2Server[]): void {
    for (const server of servers) {
      // Node's http2 server creates a connection's session in its own 'connection' listener,
      // registered first, and emits 'session' from it: so the session met last is this socket's.
      // That holds for the plaintext port grpc-server.ts binds (createInsecure). Over TLS the
      // session is made on 'secureConnection' instead: no socket here would find its session, and
      // this class would do nothing — pair on that event if gRPC ever gains TLS.
      let latest: ServerHttp2Session | undefined;
      server.on('session', (session: ServerHttp2Session) => {
        latest = session;
      });
      server.on('connection', (socket: Socket) => {
        const session = latest;
        latest = undefined;
        if (session === undefined || session.socket?.remotePort !== socket.remotePort) return;
        this.sessions.set(socket, session);
        socket.once('close', () => this.sessions.delete(socket));
        // Node ends the socket when the session has ended (finishSessionClose), and only then.
        socket.once('finish', () => {
          if (!session.destroyed) return;
          if (this.ending) {
            socket.destroy();
            return;
          }
          const timer = setTimeout(() => socket.destroy(), this.closeWaitMs);
          timer.unref();
          socket.once('close', () => clearTimeout(timer));
        });
      });
    }
  }

  /**
   * Destroys every connection still open whose session has ended, and those whose session ends
   * later; returns how many now.
   */
  destroyEnded(): number {
    this.ending = true;
    let destroyed = 0;
    for (const [socket, session] of this.sessions) {
      if (!session.destroyed || socket.destroyed) continue;
      socket.destroy();
      destroyed++;
    }
    return destroyed;
  }
}

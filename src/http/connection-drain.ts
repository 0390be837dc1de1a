import { once } from 'node:events';
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
 * Closing a listening socket resets the connections the kernel had completed and queued on it but
 * no process had accepted yet (Linux: inet_csk_listen_stop): their clients saw the connection
 * open, then ECONNRESET with their request unread. Clients that connect again as soon as they are
 * answered keep that queue filled, so the drain holds the requests that arrive while the server
 * still listens (new connections and kept-alive ones): the answered clients come back on new
 * connections and wait there, new arrivals stop, and once none came for ACCEPT_QUIET_MS (at most
 * HOLD_MAX_MS) the socket closes, right after an accept pass, and the held requests are answered.
 */
export const ACCEPT_QUIET_MS = 50;
/** The longest the drain holds requests before it stops listening regardless. */
export const HOLD_MAX_MS = 1_000;

/**
 * With WORKERS > 1 the workers share one listening socket and node:cluster's primary holds a copy
 * of it too: the worker's own copy is not the last, so the primary closes it once quiet
 * (cli/cluster-listener.ts) instead of this drain.
 */
export interface ListenerHandover {
  /**
   * Called as the drain begins, while `server` still listens: resolves once it may close its
   * listening socket (once the cluster primary has taken the socket over when this worker is the
   * last to listen).
   */
  beforeStopListening(server: Server): Promise<void>;
  /**
   * Called once `server` has stopped listening: resolves once no more connections will be handed
   * to it (each emitted as its `connection`, and drained like the others).
   */
  stoppedListening(): Promise<void>;
}

/**
 * Graceful drain of an HTTP/1.1 server's connections, as Envoy's and nginx's drains do: stop
 * accepting connections, answer every request that arrives on an open one (the app sends
 * `Connection: close` with each response while closing, and Node closes the connection once it
 * is written), and close a kept-alive connection only once it has been quiet for IDLE_LINGER_MS
 * with no request partly received on it.
 *
 * Node 20's `server.close()` closes the idle connections at once (`httpServerPreClose` in
 * lib/_http_server.js calls `closeIdleConnections()`): "idle" there means no request parsed yet,
 * so a request already sent and still in the socket's buffer or on the wire was dropped unread
 * and its client saw ECONNRESET. `drain()` stops listening with net.Server's close instead, which
 * leaves the connections alone; Fastify's own `server.close()` afterwards finds none left.
 */
export function drainableConnections(
  server: Server,
  lingerMs = IDLE_LINGER_MS,
  handover?: ListenerHandover,
  quietMs = ACCEPT_QUIET_MS,
) {
  /** While the drain holds requests: resolves once the server has stopped listening. */
  let stopped: Promise<void> | undefined;
  /**
   * Every open connection: the responses in progress on it, and the bytes it had sent when its
   * last response ended (more since: a request is arriving, its headers or body not yet whole).
   */
  const open = new Map<Socket, { busy: number; settledBytes: number }>();
  server.on('connection', (socket: Socket) => {
    open.set(socket, { busy: 0, settledBytes: 0 });
    socket.once('close', () => open.delete(socket));
  });
  server.on('request', (request, response: ServerResponse) => {
    const socket = request.socket;
    const state = open.get(socket);
    if (state === undefined) return;
    state.busy++;
    response.once('close', () => {
      state.busy--;
      state.settledBytes = socket.bytesRead;
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
        const state = open.get(socket);
        // Quiet: nothing received during the linger, no response in progress, and no request
        // partly received (its last bytes may be on their way: the headers' timeout bounds it).
        if (bytes === bytesSeen && state?.busy === 0 && bytes === state.settledBytes) {
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
     * During the drain, while the server still listens: resolves once it has stopped (answer a
     * request then, not before: see ACCEPT_QUIET_MS). Undefined otherwise.
     */
    get listenerClosing(): Promise<void> | undefined {
      return stopped;
    },
    /**
     * Stops accepting connections (once accepts were quiet, or the handover allows) and resolves
     * once every open connection has closed, those handed over too: those with a request in
     * progress after its response, the others once quiet for the linger. Unbounded itself:
     * SHUTDOWN_TIMEOUT_MS bounds the whole shutdown (cli/server-worker.ts).
     */
    async drain(): Promise<void> {
      let handedOver: Promise<void> | undefined;
      if (server.listening) {
        let release: () => void = () => undefined;
        stopped = new Promise<void>((resolve) => {
          release = resolve;
        });
        if (handover) await handover.beforeStopListening(server);
        else await quietAccepts(server, quietMs);
        NetServer.prototype.close.call(server);
        stopped = undefined;
        release();
        handedOver = handover?.stoppedListening();
      }
      // Until the last connection is handed over, each that comes joins the drain.
      let more = handedOver !== undefined;
      void handedOver?.then(() => {
        more = false;
      });
      const draining = new Map<Socket, Promise<void>>();
      for (;;) {
        for (const socket of open.keys())
          if (!draining.has(socket)) draining.set(socket, closeWhenQuiet(socket));
        if (more) {
          // The wait's listeners go with it, whichever of the two came first.
          const waited = new AbortController();
          try {
            await Promise.race([handedOver, once(server, 'connection', { signal: waited.signal })]);
          } finally {
            waited.abort();
          }
        } else {
          await Promise.all(draining.values());
          if ([...open.keys()].every((socket) => draining.has(socket))) return;
        }
      }
    },
  };
}

/**
 * Resolves once `server` accepted no connection for `quietMs` (at most HOLD_MAX_MS), in the
 * event loop's check phase right after a poll phase, whose accept pass took what the kernel had
 * queued: the caller closes the listening socket then.
 */
function quietAccepts(server: Server, quietMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(quiet);
      clearTimeout(deadline);
      server.off('connection', accepted);
      setImmediate(resolve);
    };
    const quiet = setTimeout(done, quietMs);
    const deadline = setTimeout(done, HOLD_MAX_MS);
    const accepted = () => quiet.refresh();
    server.on('connection', accepted);
  });
}

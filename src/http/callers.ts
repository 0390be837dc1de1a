import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { InferenceService } from '../service/index.js';

/** The log line of a request received behind a response that closed its connection. */
export const REQUEST_DISCARDED =
  'request discarded: it came behind a response that closed its connection';

/** The requests received on one connection, and where it ends. */
interface Connection {
  /** Requests received on it so far. */
  received: number;
  /**
   * The place of the first request whose response closes the connection (none: Infinity): noted
   * as such a response is written, or fixed beforehand by closesConnection.
   */
  lastPlace: number;
  /** The latest place whose response has been built (answerBuilt), in any order. */
  built: number;
}
// Set once per connection and per request, as properties: no WeakMap entry or object per request
// on the 1-row path (side by side with the tree before them, `bench/ab-trees.ts … "JSON 1 row"`,
// 10 rounds on 2026-12-05: 0.97×, rounds 0.87–1.05, within the pair's spread).
const placeKey = Symbol('normserve.place');
const connectionKey = Symbol('normserve.connection');
type Placed = IncomingMessage & { [placeKey]?: number };
type Followed = Socket & { [connectionKey]?: Connection };

/** The request's place on its connection, and that connection (undefined if not followed). */
function placeOf(request: IncomingMessage): { place: number; connection: Connection } | undefined {
  const place = (request as Placed)[placeKey];
  const connection = (request.socket as Followed | null)?.[connectionKey];
  return place === undefined || connection === undefined ? undefined : { place, connection };
}

/**
 * Whether `request` came on its connection behind a request whose response closes it (the
 * server's `Connection: close`: while draining or in the lame duck, or after a body left
 * unread): RFC 9112 §9.6 has a server process no request after that one, and Node never sends
 * their responses (it closes the socket once that response is written). Known as it arrives
 * when that response's head is written by then, else from its end. (A client's own close needs
 * no place: Node's parser refuses whatever follows such a request, HPE_CLOSED_CONNECTION.)
 */
export function behindConnectionEnd(request: IncomingMessage): boolean {
  const place = (request as Placed)[placeKey];
  if (place === undefined) return false;
  const connection = (request.socket as Followed | null)?.[connectionKey];
  return connection !== undefined && place > connection.lastPlace;
}

/**
 * Whether `request`'s response is to close its connection when the server closes connections
 * after their last request (the lame duck, the drain). The first time it is asked on a connection,
 * the closing place is fixed: the last request received by then, so that those pipelined behind
 * this one are answered too, or the next to arrive if that one's response was already built (a
 * pipelined answer built before an earlier one, before the phase began, went without the close).
 * Requests received after that place are behind the connection's end (behindConnectionEnd: not
 * processed), so a client that always keeps a request in flight still meets the close after what
 * it had sent (the lame-duck review of 2026-12-05, finding 4: before, it never did).
 */
export function closesConnection(request: IncomingMessage): boolean {
  const found = placeOf(request);
  if (found === undefined) return true;
  const { place, connection } = found;
  connection.lastPlace = Math.min(
    connection.lastPlace,
    Math.max(connection.received, connection.built + 1),
  );
  return place >= connection.lastPlace;
}

/** Notes that `request`'s response has been built: its head can no longer take a close. */
export function answerBuilt(request: IncomingMessage): void {
  const found = placeOf(request);
  if (found !== undefined && found.place > found.connection.built)
    found.connection.built = found.place;
}

/**
 * Notes the end of its connection when `response` is to be its last: its head was written with
 * `Connection: close` (Node's own flag for it, lib/_http_outgoing.js, which resOnFinish reads).
 */
function noteEnd(response: ServerResponse): void {
  if ((response as ServerResponse & { _last?: boolean })._last !== true) return;
  const found = placeOf(response.req);
  if (found !== undefined)
    found.connection.lastPlace = Math.min(found.connection.lastPlace, found.place);
}

/**
 * Follows the server's callers: tells the dynamic batcher how many there are — its open
 * connections, those with no request in progress, and the requests in progress on them — and
 * calls `left` for each request that got no response sent whole.
 *
 * A request leaves the count once: when its response closes (sent or abandoned) or, for requests
 * still queued behind it on a pipelining connection (Node never attaches their responses to the
 * socket, so they get no 'close'), when the connection closes. It got no response when its
 * response closed before it finished, or when the connection closed with its response
 * unfinished; the counts are updated first, so the batcher sees who remains when it hears of the
 * departure. Its place on the connection is known before Fastify's hooks run (the listener is
 * the server's first), for `behindConnectionEnd`.
 */
export function trackCallers(
  server: Server,
  inference: InferenceService,
  left: (response: ServerResponse) => void,
): void {
  const callers = { connections: 0, idleConnections: 0, requests: 0 };
  // The responses in progress per open connection; a closed connection is forgotten.
  const inProgress = new Map<Socket, { open: Set<ServerResponse>; connection: Connection }>();
  server.on('connection', (socket: Socket) => {
    callers.connections++;
    callers.idleConnections++;
    const open = new Set<ServerResponse>();
    const connection: Connection = { received: 0, lastPlace: Infinity, built: 0 };
    (socket as Followed)[connectionKey] = connection;
    inProgress.set(socket, { open, connection });
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
      // A last response whose own 'close' has not come yet (it usually comes first: Node emits
      // it on the next tick, and closes the connection only once that response's end is written).
      for (const response of abandoned) noteEnd(response);
      for (const response of abandoned) if (!response.writableFinished) left(response);
    });
  });
  server.prependListener('request', (request: IncomingMessage, response: ServerResponse) => {
    const tracked = inProgress.get(request.socket);
    if (tracked === undefined) return; // its connection already closed: nothing to count
    const { open, connection } = tracked;
    (request as Placed)[placeKey] = ++connection.received;
    // Behind a response already written as the connection's last (a request answered at once).
    if (open.size > 0) for (const earlier of open) noteEnd(earlier);
    if (open.size === 0) callers.idleConnections--;
    open.add(response);
    callers.requests++;
    response.once('close', () => {
      noteEnd(response);
      if (!open.delete(response)) return; // the connection's close took it off already
      callers.requests--;
      if (open.size === 0) callers.idleConnections++;
      if (!response.writableFinished) left(response);
    });
  });
  inference.countCallers(() => callers);
}

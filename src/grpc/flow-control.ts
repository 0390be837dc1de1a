import type { ServerHttp2Session } from 'node:http2';
import type { Server } from '@grpc/grpc-js';
import { http2ServersOf } from './http2-servers.js';

/**
 * The HTTP/2 receive window the gRPC server offers its clients, per stream and per connection.
 * HTTP/2 starts both at 65,535 bytes (RFC 9113 §6.9.2), less than one 256-row digits request
 * (256 × 64 float32 values are 65,536 bytes before the protobuf framing): the client sends the
 * first 65,535 bytes and waits for a WINDOW_UPDATE, one more round trip — two more wake-ups of
 * each process — per call. 4 MiB covers BODY_LIMIT_BYTES' default of 16 MiB in four steps and is
 * what gRPC's C core grows its windows to (BDP probing) on fast links.
 */
export const GRPC_RECEIVE_WINDOW_BYTES = 4 * 1024 * 1024;

/** The part of grpc-js 1.14's Server used here (not in its typings; checked at run time). */
interface ServerInternals {
  /** Options every http2 server it creates is made with (its `settings` are sent to clients). */
  commonServerOptions?: { settings?: Record<string, unknown> };
}

/**
 * Offers clients `GRPC_RECEIVE_WINDOW_BYTES` of receive window. grpc-js 1.14 has a channel option
 * for this (`grpc-node.flow_control_window`) but none for its server, so the server's own HTTP/2
 * settings are given here: call before `bindAsync` (stream windows, in the SETTINGS frame of every
 * connection), and `widenConnectionWindows` after it (each connection's own window, which only a
 * WINDOW_UPDATE can raise). grpc-js is pinned to an exact version; if its internals change, this
 * returns false and the server runs with HTTP/2's defaults (slower, still correct) —
 * test/grpc/flow-control.test.ts checks the windows a client is offered.
 */
export function widenStreamWindows(server: Server): boolean {
  const internals = server as unknown as ServerInternals;
  const options = internals.commonServerOptions;
  if (typeof options !== 'object' || options === null) return false;
  options.settings = { ...options.settings, initialWindowSize: GRPC_RECEIVE_WINDOW_BYTES };
  return true;
}

/** After bindAsync: every new connection's window is raised to `GRPC_RECEIVE_WINDOW_BYTES`. */
export function widenConnectionWindows(server: Server): boolean {
  const servers = http2ServersOf(server);
  if (servers === undefined) return false;
  for (const http2Server of servers) {
    http2Server.on('session', (session: ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(GRPC_RECEIVE_WINDOW_BYTES);
      } catch {
        // A connection already torn down: nothing to widen.
      }
    });
  }
  return servers.length > 0;
}

/**
 * The real server process (src/cli/server.ts) with API_TOKEN and a gRPC port, against a
 * node:http2 client that starts ModelInfer messages and never finishes them: without the token
 * the call is refused from its headers and reset; with it, a SIGTERM's drain ends the unfinished
 * call SHUTTING_DOWN and the process exits 0 (it used to be held to SHUTDOWN_TIMEOUT_MS and exit 1,
 * "killed by timeout").
 */
import { type ClientHttp2Stream, connect, constants, type IncomingHttpHeaders } from 'node:http2';
import { connect as connectTcp } from 'node:net';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { HTTP2_CLIENT_PREFACE, modelInferFrame } from '../helpers/grpc.js';
import {
  digitsRepositoryCopy,
  exitWithin,
  freePort,
  killServersAfterEach,
  servingEnv,
  startServer,
} from '../helpers/server-process.js';

const TOKEN = 'grpc-unfinished-token-0123456789abcdef';
/** Generous: the drain gives an unfinished request half of SHUTDOWN_TIMEOUT_MS (below, 4 s). */
const EXIT_WITHIN_MS = 30_000;
const POLL = { timeout: 20_000, interval: 20 };

killServersAfterEach();

/** A server process (WORKERS=1) with a gRPC port and a 4 s SHUTDOWN_TIMEOUT_MS, listening. */
async function startGrpcServer(env: Record<string, string> = {}) {
  const grpcPort = await freePort();
  const server = startServer(
    servingEnv(digitsRepositoryCopy(), '1', {
      GRPC_PORT: String(grpcPort),
      SHUTDOWN_TIMEOUT_MS: '4000',
      ...env,
    }),
  );
  await server.waitForLog((l) => l.msg === 'gRPC server listening', 'gRPC server listening');
  return { grpcPort, server };
}

/** The process, sent SIGTERM before, exits 0 with its drain not cut short by the timeout. */
async function drainedCleanly(server: ReturnType<typeof startServer>): Promise<void> {
  const { code, signal } = await exitWithin(server, EXIT_WITHIN_MS);
  expect({ code, signal }, server.stderr()).toEqual({ code: 0, signal: null });
  expect(
    server.logs.some((l) =>
      /killed by timeout|did not end within SHUTDOWN_TIMEOUT_MS/.test(String(l.msg)),
    ),
  ).toBe(false);
}

interface Unfinished {
  stream: ClientHttp2Stream;
  answer?: IncomingHttpHeaders;
  /** The stream has closed: here, the server's RST_STREAM has arrived (its client never ends it). */
  readonly closed: boolean;
}

describe('gRPC requests that never finish, in the real server process', () => {
  it('WORKERS=1: refused without the token and reset; with it, SIGTERM ends the call SHUTTING_DOWN and the process exits 0', async () => {
    const { grpcPort, server } = await startGrpcServer({ API_TOKEN: TOKEN });
    const session = connect(`http://127.0.0.1:${grpcPort}`);
    session.on('error', () => {});
    try {
      const start = (headers: Record<string, string>): Unfinished => {
        const stream = session.request({
          ':method': 'POST',
          ':path': '/inference.GRPCInferenceService/ModelInfer',
          'content-type': 'application/grpc',
          te: 'trailers',
          ...headers,
        });
        const call: Unfinished = {
          stream,
          // Not the 'close' event: Node emits it only once the client's own writes have
          // finished, and writes still waiting for the stream's window when the server resets it
          // never do (Node 20, under load: 65,541 bytes left queued, the stream closed, no 'close').
          get closed() {
            return stream.closed;
          },
        };
        stream.on('error', () => {});
        stream.on('response', (h) => {
          call.answer = h;
        });
        stream.on('trailers', (h) => {
          call.answer = h;
        });
        // 1 MiB announced, 64 KiB sent, never the end.
        const prefix = Buffer.alloc(5);
        prefix.writeUInt32BE(1024 * 1024, 1);
        stream.write(prefix);
        stream.write(Buffer.alloc(64 * 1024, 1));
        return call;
      };
      const anonymous = start({});
      await expect.poll(() => anonymous.closed, POLL).toBe(true);
      expect(Number(anonymous.answer?.['grpc-status'])).toBe(status.UNAUTHENTICATED);
      expect(anonymous.stream.rstCode).toBe(constants.NGHTTP2_NO_ERROR);

      const held = start({ authorization: `Bearer ${TOKEN}` });
      await new Promise<void>((resolve, reject) =>
        session.ping((e) => (e ? reject(e) : resolve())),
      );
      expect(held.closed).toBe(false);
      server.child.kill('SIGTERM');
      await drainedCleanly(server);
      expect(held.answer?.['normserve-code']).toBe('SHUTTING_DOWN');
      expect(Number(held.answer?.['grpc-status'])).toBe(status.UNAVAILABLE);
    } finally {
      session.destroy();
    }
  });

  it('WORKERS=1: a client that reads none of its answers (a window of 0) is cancelled before SHUTDOWN_TIMEOUT_MS ends, and the process exits 0', async () => {
    const { grpcPort, server } = await startGrpcServer();
    // A window of 0: the server can send this client no DATA, so no answer of its ever ends.
    const session = connect(`http://127.0.0.1:${grpcPort}`, { settings: { initialWindowSize: 0 } });
    session.on('error', () => {});
    try {
      await new Promise((resolve) => session.once('remoteSettings', resolve));
      const calls = [
        ['/inference.GRPCInferenceService/ModelInfer', modelInferFrame()],
        // An empty HealthCheckRequest: the server's health, watched.
        ['/grpc.health.v1.Health/Watch', Buffer.alloc(5)],
      ].map(([path, frame]) => {
        const stream = session.request({
          ':method': 'POST',
          ':path': path as string,
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        const call = { stream, headers: false };
        stream.on('error', () => {});
        stream.on('response', () => {
          call.headers = true;
        });
        stream.end(frame as Buffer);
        return call;
      });
      // Both answered (their response headers need no window) and unread.
      await expect.poll(() => calls.every((c) => c.headers), POLL).toBe(true);
      server.child.kill('SIGTERM');
      await drainedCleanly(server);
      expect(
        server.logs.find(
          (l) =>
            l.msg ===
            'gRPC: answers their clients had not yet read were cancelled to end the drain',
        ),
      ).toMatchObject({ level: 40, calls: 2 });
    } finally {
      session.destroy();
    }
  });

  it("WORKERS=1: a client that never closes its connection after the server has ended it is cut at the drain's last step, and the process exits 0", async () => {
    const { grpcPort, server } = await startGrpcServer();
    // An HTTP/2 client that opens its connection and then ignores the GOAWAY and the server's FIN
    // (allowHalfOpen): Node's own client does so when a stream the server reset still had writes
    // queued. The server's http2 close waited for this connection to the drain's end (exit 1).
    const socket = connectTcp({ port: grpcPort, host: '127.0.0.1', allowHalfOpen: true });
    let received = 0;
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    try {
      socket.write(HTTP2_CLIENT_PREFACE);
      // The server's SETTINGS: its session is up.
      await expect.poll(() => received, POLL).toBeGreaterThan(0);
      server.child.kill('SIGTERM');
      await drainedCleanly(server);
      expect(
        server.logs.find(
          (l) =>
            l.msg ===
            'gRPC: connections their clients had not closed after their last call were destroyed to end the drain',
        ),
      ).toMatchObject({ level: 40, connections: 1 });
    } finally {
      socket.destroy();
    }
  });
});

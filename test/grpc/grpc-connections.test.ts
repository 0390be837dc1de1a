/**
 * The gRPC port's connections: at most MAX_CONNECTIONS open (more are closed as they arrive and
 * counted), and a connection older than GRPC_MAX_CONNECTION_AGE_MS is sent a GOAWAY, so its
 * client reconnects (how channels rebalance behind a Kubernetes Service). Real grpc-js clients,
 * each on its own connection.
 */
import {
  createServer as createHttp2Server,
  type Http2Server,
  connect as http2Connect,
  constants as http2Constants,
  type ServerHttp2Session,
} from 'node:http2';
import { connect, type Socket } from 'node:net';
import { Client, credentials, type ServiceError, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { shareConnectionLimit } from '../../src/grpc/connection-limits.js';
import { createGrpcServer, listenGrpc } from '../../src/grpc/grpc-server.js';
import { parseServerConfig, silentLog } from '../../src/service/index.js';
import { waitFor } from '../helpers/admin.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp | undefined;
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await t?.close();
  t = undefined;
});

const until = (ok: () => boolean, what: string) =>
  waitFor(() => (ok() ? true : undefined), what, 30_000);

async function serve(options: {
  maxConnections?: number;
  onConnectionDropped?: () => void;
  maxConnectionAgeMs?: number;
  maxConnectionAgeGraceMs?: number;
  keepaliveTimeMs?: number;
  keepaliveTimeoutMs?: number;
}) {
  t = await makeTestApp();
  const server = createGrpcServer({
    inference: t.app.deps.inference,
    version: '0.0.0-test',
    maxBatchSize: t.config.MAX_BATCH_SIZE,
    maxMessageBytes: t.config.BODY_LIMIT_BYTES,
    log: silentLog,
    ...options,
  });
  const handle = await listenGrpc(server, '127.0.0.1', 0);
  closers.push(() => handle.close(5_000));
  return { server, port: handle.port };
}

/** A client on a connection of its own (grpc-js shares connections between equal channels). */
function ownClient(port: number, options: Record<string, number> = {}): Client {
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    ...options,
  });
  closers.push(() => client.close());
  return client;
}

const serverLive = (client: Client) =>
  new Promise<number>((resolve) =>
    client.makeUnaryRequest(
      '/inference.GRPCInferenceService/ServerLive',
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.alloc(0),
      (error: ServiceError | null) => resolve(error?.code ?? status.OK),
    ),
  );

describe('gRPC connections', () => {
  it('MAX_CONNECTIONS: the connections above the cap are closed on arrival, and counted', async () => {
    let dropped = 0;
    const { port } = await serve({ maxConnections: 3, onConnectionDropped: () => dropped++ });
    const first = [ownClient(port), ownClient(port), ownClient(port)];
    // The first three connect and stay open (a channel keeps its connection).
    expect(await Promise.all(first.map(serverLive))).toEqual([status.OK, status.OK, status.OK]);
    const more = [ownClient(port), ownClient(port), ownClient(port)];
    expect(await Promise.all(more.map(serverLive))).toEqual([
      status.UNAVAILABLE,
      status.UNAVAILABLE,
      status.UNAVAILABLE,
    ]);
    expect(dropped).toBeGreaterThanOrEqual(3);
    // One of the first goes: a new one gets its place.
    first[0]!.close();
    let code: number = status.UNAVAILABLE;
    await waitFor(
      async () => {
        code = await serverLive(ownClient(port));
        return code === status.OK ? true : undefined;
      },
      'a connection in the freed place',
      30_000,
      200,
    );
    expect(code).toBe(status.OK);
  });

  it("MAX_CONNECTIONS is the port's: shared by the http2 servers of a host with several addresses", async () => {
    // grpc-js listens on `localhost` with one http2 server per address (127.0.0.1, ::1); two
    // servers on two ports of 127.0.0.1 stand for them wherever localhost has one address.
    let dropped = 0;
    const servers = [createHttp2Server(), createHttp2Server()];
    shareConnectionLimit(servers, 3, () => dropped++);
    const ports = await Promise.all(
      servers.map(
        (s) =>
          new Promise<number>((resolve) =>
            s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port)),
          ),
      ),
    );
    const accepted = servers.map(() => 0);
    servers.forEach((s, i) => {
      s.on('connection', () => accepted[i]!++);
    });
    const sockets: Socket[] = [];
    closers.push(async () => {
      for (const socket of sockets) socket.destroy();
      await Promise.all(servers.map((s) => new Promise((done) => s.close(done))));
    });
    /** A TCP connection to server i, open until the server accepts or drops it. */
    const open = (i: number) => {
      const socket = connect(ports[i]!, '127.0.0.1');
      socket.on('error', () => {});
      sockets.push(socket);
      return socket;
    };
    open(0);
    open(1);
    open(0);
    await until(() => accepted[0] === 2 && accepted[1] === 1, 'three connections accepted');
    // Three open between them: one more on either is dropped, though each holds fewer than 3.
    const refused = [open(1), open(0)];
    await until(() => dropped === 2, 'two connections dropped');
    expect(accepted).toEqual([2, 1]);
    await until(() => refused.every((socket) => socket.closed), 'the dropped ones closed');
    // One closes: its place is free on the other server too.
    sockets[0]!.destroy();
    await until(() => servers[0]!.maxConnections === 2 && servers[1]!.maxConnections === 2, 'room');
    open(1);
    await until(() => accepted[1] === 2, 'a connection in the freed place');
    expect(dropped).toBe(2);
  });

  it('GRPC_MAX_CONNECTION_AGE_MS: an old connection is sent a GOAWAY and its client reconnects', async () => {
    const { server, port } = await serve({ maxConnectionAgeMs: 200, maxConnectionAgeGraceMs: 200 });
    // Sessions as the server sees them (grpc-js 1.14's http2 servers, as flow-control.ts reads).
    const sessions: ServerHttp2Session[] = [];
    const http2Servers = (server as unknown as { http2Servers: Map<Http2Server, unknown> })
      .http2Servers;
    for (const h of http2Servers.keys()) h.on('session', (s) => sessions.push(s));
    const client = ownClient(port);
    expect(await serverLive(client)).toBe(status.OK);
    await until(() => sessions.length >= 1 && sessions[0]!.closed, 'the first connection closed');
    expect(await serverLive(client)).toBe(status.OK);
    expect(sessions.length).toBeGreaterThanOrEqual(2);
  });

  it('a connection nghttp2 stopped reading (a client cancelling over 1,000 calls) is closed once its client leaves', async () => {
    // nghttp2 answers more than 1,000 RST_STREAMs on one connection (its Rapid Reset limit) with a
    // GOAWAY and reads no more of it: the client's FIN is never read and the socket stayed in
    // CLOSE-WAIT, counted against MAX_CONNECTIONS, until something destroyed the session.
    const { server, port } = await serve({
      maxConnections: 3,
      keepaliveTimeMs: 200,
      keepaliveTimeoutMs: 200,
    });
    const http2Servers = [
      ...(server as unknown as { http2Servers: Map<Http2Server, unknown> }).http2Servers.keys(),
    ];
    let sessions = 0;
    for (const h of http2Servers) h.on('session', () => sessions++);
    const open = async () => {
      let n = 0;
      for (const h of http2Servers)
        n += await new Promise<number>((done) => h.getConnections((_, count) => done(count)));
      return n;
    };
    // A client that cancels each health Watch as soon as its first status arrives, as grpcio's
    // `call.cancel()` does (RST_STREAM CANCEL), until the server ends the connection, then closes
    // its socket without a GOAWAY of its own (as grpcio does; grpc-js's client sends one first,
    // which the server reads, and its connection mostly closed).
    const socket = connect(port, '127.0.0.1');
    const session = http2Connect(`http://127.0.0.1:${port}`, { createConnection: () => socket });
    session.on('error', () => {});
    const ended = new Promise<void>((done) => {
      session.once('goaway', () => done());
      session.once('close', () => done());
    });
    let gone = false;
    void ended.then(() => {
      gone = true;
    });
    const watchAndCancel = () =>
      new Promise<void>((done) => {
        if (gone || session.destroyed || session.closed) return done();
        const stream = session.request({
          ':method': 'POST',
          ':path': '/grpc.health.v1.Health/Watch',
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        stream.on('error', () => {});
        stream.on('close', () => done());
        stream.once('data', () => stream.close(http2Constants.NGHTTP2_CANCEL));
        // One message: uncompressed, 0 bytes (HealthCheckRequest with service "").
        stream.end(Buffer.alloc(5));
      });
    for (let calls = 0; !gone && calls < 100_000; calls += 50)
      await Promise.all(Array.from({ length: 50 }, watchAndCancel));
    expect(gone).toBe(true);
    socket.destroy();
    expect(sessions).toBe(1);
    let count = -1;
    await waitFor(
      async () => {
        count = await open();
        return count === 0 ? true : undefined;
      },
      'every connection closed',
      30_000,
      100,
    );
    expect(count).toBe(0);
    // As many later clients as MAX_CONNECTIONS are served.
    expect(await Promise.all([1, 2, 3].map(() => serverLive(ownClient(port))))).toEqual([
      status.OK,
      status.OK,
      status.OK,
    ]);
  });

  it('the settings: connection age 30 min and a 30 s grace, keepalive pings every 30 s answered within 10 s, by default; 0 = off', () => {
    const base = { MODEL_REPOSITORY: '/tmp' };
    const defaults = parseServerConfig(base);
    expect([
      defaults.GRPC_MAX_CONNECTION_AGE_MS,
      defaults.GRPC_MAX_CONNECTION_AGE_GRACE_MS,
    ]).toEqual([1_800_000, 30_000]);
    expect([defaults.GRPC_KEEPALIVE_TIME_MS, defaults.GRPC_KEEPALIVE_TIMEOUT_MS]).toEqual([
      30_000, 10_000,
    ]);
    expect(() => parseServerConfig({ ...base, GRPC_KEEPALIVE_TIMEOUT_MS: '0' })).toThrow();
    expect(
      parseServerConfig({ ...base, GRPC_MAX_CONNECTION_AGE_MS: '0' }).GRPC_MAX_CONNECTION_AGE_MS,
    ).toBe(0);
    expect(() => parseServerConfig({ ...base, GRPC_MAX_CONNECTION_AGE_MS: '-1' })).toThrow();
  });
});

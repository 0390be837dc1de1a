/**
 * The gRPC port's connections: at most MAX_CONNECTIONS open (more are closed as they arrive and
 * counted), and a connection older than GRPC_MAX_CONNECTION_AGE_MS is sent a GOAWAY, so its
 * client reconnects (how channels rebalance behind a Kubernetes Service). Real grpc-js clients,
 * each on its own connection.
 */
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { Client, credentials, type ServiceError, status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
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

  it('the settings: connection age 30 min and a 30 s grace by default, 0 = off', () => {
    const base = { MODEL_REPOSITORY: '/tmp' };
    const defaults = parseServerConfig(base);
    expect([
      defaults.GRPC_MAX_CONNECTION_AGE_MS,
      defaults.GRPC_MAX_CONNECTION_AGE_GRACE_MS,
    ]).toEqual([1_800_000, 30_000]);
    expect(
      parseServerConfig({ ...base, GRPC_MAX_CONNECTION_AGE_MS: '0' }).GRPC_MAX_CONNECTION_AGE_MS,
    ).toBe(0);
    expect(() => parseServerConfig({ ...base, GRPC_MAX_CONNECTION_AGE_MS: '-1' })).toThrow();
  });
});

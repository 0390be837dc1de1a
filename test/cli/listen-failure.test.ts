/**
 * Which start-up errors are a listen failure naming PORT/GRPC_PORT or HOST (src/cli/listen-failure.ts),
 * from the errors Fastify's listen and grpc-js's bind really give.
 */
import { createServer } from 'node:net';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { listenFailed, listenProblem } from '../../src/cli/listen-failure.js';
import { isNormserveError } from '../../src/errors/index.js';
import { bindError } from '../../src/grpc/grpc-server.js';

const HTTP = { prefix: '', portHint: 'set PORT to a free port' };
const GRPC = { prefix: 'gRPC: ', portHint: 'set GRPC_PORT to a free port' };

/** What Fastify's listen rejects with for `host` and `port`, and the app closed. */
async function fastifyListen(
  host: string,
  setUp: (app: ReturnType<typeof Fastify>) => void = () => {},
  port = 0,
): Promise<unknown> {
  const app = Fastify({ pluginTimeout: 1 });
  setUp(app);
  try {
    await app.listen({ port, host });
    return undefined;
  } catch (e) {
    return e;
  } finally {
    await app.close().catch(() => {});
  }
}

/** What grpc-js's bind gives (through bindError) for `address`. */
function grpcBind(address: string): Promise<Error | undefined> {
  const server = new Server();
  return new Promise((resolve) =>
    server.bindAsync(address, ServerCredentials.createInsecure(), (error) => {
      server.forceShutdown();
      resolve(error ? bindError(error) : undefined);
    }),
  );
}

describe('listenFailed', () => {
  it('a host name that does not resolve names HOST, not PORT (HTTP and gRPC)', async () => {
    const http = listenFailed(await fastifyListen('foo.invalid'), HTTP);
    expect(isNormserveError(http) && http.code).toBe('LISTEN_FAILED');
    // ENOTFOUND, or EAI_AGAIN where no name server answers.
    expect((http as Error).message).toMatch(
      /^getaddrinfo (ENOTFOUND|EAI_AGAIN) foo\.invalid; set HOST to an address of this machine/,
    );
    const grpc = listenFailed(await grpcBind('foo.invalid:0'), GRPC);
    expect((grpc as Error).message).toMatch(/^gRPC: Name resolution failed .*; set HOST to /);
  });

  it('an address that is not this machine’s names HOST', async () => {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): no machine has it.
    const http = listenFailed(await fastifyListen('192.0.2.1'), HTTP);
    expect((http as Error).message).toMatch(/EADDRNOTAVAIL.*192\.0\.2\.1; set HOST to /);
    const grpc = listenFailed(await grpcBind('192.0.2.1:0'), GRPC);
    expect((grpc as Error).message).toMatch(/^gRPC: listen EADDRNOTAVAIL.*; set HOST to /);
  });

  it('a taken port names the port variable', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as { port: number };
    try {
      const http = listenFailed(await fastifyListen('127.0.0.1', () => {}, port), HTTP);
      expect((http as Error).message).toBe(
        `listen EADDRINUSE: address already in use 127.0.0.1:${port}; set PORT to a free port`,
      );
      const grpc = listenFailed(await grpcBind(`127.0.0.1:${port}`), GRPC);
      expect((grpc as Error).message).toMatch(
        new RegExp(
          `^gRPC: listen EADDRINUSE.*127\\.0\\.0\\.1:${port}; set GRPC_PORT to a free port$`,
        ),
      );
    } finally {
      holder.close();
    }
  });

  it('an error of plugin loading (avvio, through Fastify’s listen) stays what it is', async () => {
    // A plugin that never finishes: avvio's timeout (pluginTimeout 1 ms) rejects the listen.
    const error = await fastifyListen('127.0.0.1', (app) => {
      app.register((_instance: unknown, _options: unknown, _done: () => void) => {});
    });
    expect((error as { code?: string }).code).toMatch(/^(AVV|FST)_ERR_/);
    expect(listenProblem(error)).toBeUndefined();
    expect(listenFailed(error, HTTP)).toBe(error);
  });

  it('a plugin’s own errno error (a missing file) is no listen failure', () => {
    const missing = Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), {
      code: 'ENOENT',
      syscall: 'open',
    });
    expect(listenFailed(missing, HTTP)).toBe(missing);
    // Only listen/bind errors name the port.
    const other = Object.assign(new Error('x'), { code: 'EADDRINUSE', syscall: 'connect' });
    expect(listenProblem(other)).toBeUndefined();
  });
});

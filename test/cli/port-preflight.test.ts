/**
 * checkPortsBindable (src/cli/port-preflight.ts): a taken PORT or GRPC_PORT, or a HOST that does
 * not resolve, is said before the models load, in the words of the real listen's failure; free
 * ports and port 0 pass and are left free.
 */
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { checkPortsBindable } from '../../src/cli/port-preflight.js';

const held: Server[] = [];
afterEach(async () => {
  await Promise.all(held.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A port held on 127.0.0.1 for the test. */
async function takenPort(): Promise<number> {
  const server = createServer();
  held.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('checkPortsBindable', () => {
  it('passes free ports and port 0, and leaves them free', async () => {
    const port = await freePort();
    await checkPortsBindable({ HOST: '127.0.0.1', PORT: port, GRPC_PORT: 0 });
    await checkPortsBindable({ HOST: '127.0.0.1', PORT: 0, GRPC_PORT: 0 });
    // Still free: the probe closed it.
    const again = createServer();
    held.push(again);
    await new Promise<void>((resolve) => again.listen(port, '127.0.0.1', resolve));
  });

  it('names PORT or GRPC_PORT when it is taken, as the listen would', async () => {
    const taken = await takenPort();
    const free = await freePort();
    await expect(
      checkPortsBindable({ HOST: '127.0.0.1', PORT: taken, GRPC_PORT: 0 }),
    ).rejects.toMatchObject({
      code: 'LISTEN_FAILED',
      message: `listen EADDRINUSE: address already in use 127.0.0.1:${taken}; set PORT to a free port`,
    });
    await expect(
      checkPortsBindable({ HOST: 'localhost', PORT: free, GRPC_PORT: taken }),
    ).rejects.toMatchObject({
      code: 'LISTEN_FAILED',
      message: `gRPC: listen EADDRINUSE: address already in use 127.0.0.1:${taken}; set GRPC_PORT to a free port (0 = no gRPC server)`,
    });
  });

  it('names HOST when it does not resolve', async () => {
    await expect(
      checkPortsBindable({ HOST: 'foo.invalid', PORT: await freePort(), GRPC_PORT: 0 }),
    ).rejects.toMatchObject({
      code: 'LISTEN_FAILED',
      message: expect.stringMatching(
        /^getaddrinfo (ENOTFOUND|EAI_AGAIN) foo\.invalid; set HOST to an address of this machine/,
      ),
    });
  });
});

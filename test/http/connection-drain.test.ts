/**
 * The shutdown drain's rule for a kept-alive connection (src/http/connection-drain.ts): closed
 * once quiet for the linger, never while a request on it is partly received.
 */
import { createServer } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { drainableConnections } from '../../src/http/connection-drain.js';

/** A short linger, so that the test waits ten of them: the order of the timers decides. */
const LINGER_MS = 20;

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function serve() {
  const server = createServer((_request, response) => {
    response.setHeader('Connection', 'close');
    response.end('ok');
  });
  const drain = drainableConnections(server, LINGER_MS);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  closers.push(() => server.closeAllConnections());
  return { drain, port };
}

async function open(port: number): Promise<{ socket: Socket; received: () => string }> {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.on('data', (chunk) => {
    text += chunk.toString();
  });
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  closers.push(() => socket.destroy());
  return { socket, received: () => text };
}

const closed = (socket: Socket) =>
  new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });

describe('drainableConnections', () => {
  it('answers a request whose headers were partly sent before the drain, and finished after ten lingers', async () => {
    const { drain, port } = await serve();
    const { socket, received } = await open(port);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
    // The server has read the partial request before the drain starts.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const drained = drain.drain();
    await new Promise((resolve) => setTimeout(resolve, 10 * LINGER_MS));
    socket.write('\r\n');
    await closed(socket);
    await drained;
    expect(received()).toMatch(/^HTTP\/1\.1 200 OK/);
  });

  it('closes a kept-alive connection that sent nothing once it is quiet', async () => {
    const { drain, port } = await serve();
    const { socket, received } = await open(port);
    await drain.drain();
    await closed(socket);
    expect(received()).toBe('');
  });
});

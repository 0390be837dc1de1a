/**
 * The shutdown drain's rule for a kept-alive connection (src/http/connection-drain.ts): closed
 * once quiet for the linger, never while a request on it is partly received; and with a listener
 * handover (WORKERS > 1), the connections handed over after the server stopped listening are
 * drained too.
 */
import { createServer, type Server } from 'node:http';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { drainableConnections, type ListenerHandover } from '../../src/http/connection-drain.js';

/** A short linger, so that the test waits ten of them: the order of the timers decides. */
const LINGER_MS = 20;

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function serve(handover?: ListenerHandover) {
  const server = createServer((_request, response) => {
    response.setHeader('Connection', 'close');
    response.end('ok');
  });
  const drain = drainableConnections(server, LINGER_MS, handover);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  closers.push(() => server.closeAllConnections());
  return { drain, port, server };
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

  it('with a handover: stops listening once the handover allows, and drains the connections handed over until it says no more come', async () => {
    const steps: string[] = [];
    let handedOver: () => void = () => undefined;
    let served: Server | undefined;
    const { drain, port, server } = await serve({
      async beforeStopListening(server) {
        served = server;
        steps.push(`before stop, listening ${server.listening}`);
      },
      stoppedListening() {
        steps.push(`stopped, listening ${served?.listening}`);
        return new Promise<void>((resolve) => {
          handedOver = resolve;
        });
      },
    });
    // A connection accepted elsewhere (as the cluster primary does), handed to the server.
    const elsewhere = createNetServer((socket) => served!.emit('connection', socket));
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
    closers.push(() => elsewhere.close());
    const listeners = () => [server.listenerCount('connection'), server.listenerCount('error')];
    const before = listeners();
    let drainedAt = '';
    const drained = drain.drain().then(() => {
      drainedAt = steps.join(' / ');
    });
    await new Promise((resolve) => setTimeout(resolve, 10 * LINGER_MS));
    expect(steps).toEqual(['before stop, listening true', 'stopped, listening false']);
    // Refused: the server stopped listening.
    const refused = connect(port, '127.0.0.1');
    const refusal = await new Promise<string>((resolve) =>
      refused.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message)),
    );
    expect(refusal).toBe('ECONNREFUSED');

    const { socket, received } = await open((elsewhere.address() as { port: number }).port);
    // Ten lingers with nothing sent: a handed connection is drained like the others, and the
    // drain goes on while the handover may bring more.
    await new Promise((resolve) => setTimeout(resolve, 10 * LINGER_MS));
    await closed(socket);
    expect(received()).toBe('');
    const second = await open((elsewhere.address() as { port: number }).port);
    second.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await closed(second.socket);
    expect(second.received()).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(drainedAt).toBe('');
    steps.push('handed over');
    handedOver();
    await drained;
    expect(drainedAt).toBe('before stop, listening true / stopped, listening false / handed over');
    // The drain's waits for handed connections left no listener on the server.
    expect(listeners()).toEqual(before);
  });
});

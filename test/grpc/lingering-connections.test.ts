/**
 * Connections whose HTTP/2 session the server ended but whose client never closes them
 * (lingering-connections.ts): Node waits for that close for ever, so each held a socket, a place
 * under MAX_CONNECTIONS and, at shutdown, the drain (test/process/grpc-unfinished-request.test.ts
 * has the drain). A plain node:http2 server and a raw client that ignores the server's FIN.
 */
import { createServer, type Http2Server, type ServerHttp2Session } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LingeringConnections } from '../../src/grpc/lingering-connections.js';
import { HTTP2_CLIENT_PREFACE } from '../helpers/grpc.js';

const POLL = { timeout: 20_000, interval: 20 };
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A server, one raw client connected to it that never closes, and the server's ends of it. */
async function lingering(watch?: LingeringConnections) {
  const server: Http2Server = createServer();
  server.on('error', () => {});
  watch?.watch([server]);
  const sessions: ServerHttp2Session[] = [];
  const sockets: Socket[] = [];
  server.on('session', (s) => sessions.push(s));
  server.on('connection', (s: Socket) => sockets.push(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  // allowHalfOpen: the server's FIN does not end this side.
  const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  client.on('error', () => {});
  let ended = false;
  client.on('end', () => {
    ended = true;
  });
  client.resume();
  cleanups.push(() => {
    client.destroy();
    server.close();
    for (const s of sockets) s.destroy();
  });
  client.write(HTTP2_CLIENT_PREFACE);
  await expect.poll(() => sessions.length, POLL).toBe(1);
  return { session: sessions[0]!, socket: () => sockets[0]!, clientEnded: () => ended };
}

describe('connections whose session has ended and whose client never closes them', () => {
  it('are destroyed once the close wait is over, while serving', async () => {
    const { session, socket, clientEnded } = await lingering(new LingeringConnections(50));
    // What grpc-js does past GRPC_MAX_CONNECTION_AGE_MS: a graceful close, GOAWAY then FIN.
    session.close();
    await expect.poll(clientEnded, POLL).toBe(true);
    await expect.poll(() => socket().destroyed, POLL).toBe(true);
  });

  it('without it, Node keeps such a connection open (what the class is for)', async () => {
    const { session, socket, clientEnded } = await lingering();
    session.close();
    await expect.poll(clientEnded, POLL).toBe(true);
    // Its end written and read by the client: Node then waits on the client, however long.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(session.destroyed).toBe(true);
    expect(socket().destroyed).toBe(false);
  });

  it('destroyEnded destroys them at once, and then each as its session ends', async () => {
    const watch = new LingeringConnections(3_600_000);
    const first = await lingering(watch);
    first.session.close();
    await expect.poll(first.clientEnded, POLL).toBe(true);
    await expect.poll(() => first.session.destroyed, POLL).toBe(true);
    const second = await lingering(watch);
    expect(watch.destroyEnded()).toBe(1);
    expect(first.socket().destroyed).toBe(true);
    expect(second.socket().destroyed).toBe(false);
    second.session.close();
    await expect.poll(() => second.socket().destroyed, POLL).toBe(true);
  });
});

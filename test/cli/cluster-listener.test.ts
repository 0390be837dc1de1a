/**
 * The cluster primary's listener takeover (src/cli/cluster-listener.ts) in-process, with fake
 * workers: the order in which the primary sees a worker's exit and reads its last messages never
 * leaves the taken-over socket open, the hold ends at HOLD_MAX_MS after it began whatever the
 * workers do, and held connections that the last worker cannot take are closed, not leaked.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ListenerTakeover } from '../../src/cli/cluster-listener.js';

/** Bounds of the polls below: generous, as the machine may be busy. */
const POLL_BOUND_MS = 20_000;
const QUIET_MS = 20;
const HOLD_MAX_MS = 200;

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

interface FakeWorker {
  id: number;
  received: string[];
  alive: boolean;
  /** What the next sends with a socket call back with (null: sent). */
  sendError: Error | null;
}

function fakeWorker(id: number): { fake: FakeWorker; worker: never } {
  const fake: FakeWorker = { id, received: [], alive: true, sendError: null };
  const worker = {
    id,
    process: { pid: 1000 + id },
    isConnected: () => fake.alive,
    send: (
      message: { type: string },
      socket: Socket | undefined,
      callback: (e: Error | null) => void,
    ) => {
      fake.received.push(message.type);
      const error = socket ? fake.sendError : null;
      // node closes a socket it sent; a failed send leaves it to the sender.
      if (socket && !error) socket.destroy();
      process.nextTick(callback, error);
      return true;
    },
  };
  return { fake, worker: worker as never };
}

function logged(): { logger: pino.Logger; lines: { msg: string; [k: string]: unknown }[] } {
  const lines: { msg: string }[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n'))
        if (line) lines.push(JSON.parse(line) as { msg: string });
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

async function listeningServer(): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => server.close());
  return server;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > POLL_BOUND_MS)
      throw new Error(`not within ${POLL_BOUND_MS} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('ListenerTakeover', () => {
  for (const order of ['exit, then its stop-listening', 'its stop-listening, then exit']) {
    it(`a worker that dies during the shutdown (${order}) does not hold the socket open: the keeper gets handover-done`, async () => {
      const { logger } = logged();
      const takeover = new ListenerTakeover(logger, QUIET_MS, HOLD_MAX_MS);
      const one = fakeWorker(1);
      const two = fakeWorker(2);
      takeover.ready(one.worker);
      takeover.ready(two.worker);
      // Worker 2 said stop-listening, then exited; the primary may see the exit first.
      two.fake.alive = false;
      if (order.startsWith('exit')) {
        takeover.retire(two.worker);
        takeover.stopListening(two.worker, 1);
      } else {
        takeover.stopListening(two.worker, 1);
        takeover.retire(two.worker);
      }
      // Worker 1 is the last to listen: the keeper.
      takeover.stopListening(one.worker, 2);
      expect(one.fake.received).toEqual(['normserve:listener-wanted']);
      takeover.listener(one.worker, 3, await listeningServer());
      await until(() => one.fake.received.includes('normserve:listener-taken'), 'listener-taken');
      takeover.listenerClosed(one.worker);
      await until(() => one.fake.received.includes('normserve:handover-done'), 'handover-done');
      // Nothing was sent to the dead worker after its exit.
      expect(two.fake.received.filter((m) => m !== 'normserve:listener-wanted')).toEqual([]);
    });
  }

  it('ends the hold HOLD_MAX_MS after it began even when a stopping worker never says it stopped listening', async () => {
    const { logger } = logged();
    const takeover = new ListenerTakeover(logger, QUIET_MS, HOLD_MAX_MS);
    const one = fakeWorker(1);
    const two = fakeWorker(2);
    takeover.ready(one.worker);
    takeover.ready(two.worker);
    takeover.stopListening(two.worker, 1); // and never listener-closed
    takeover.stopListening(one.worker, 2);
    takeover.listener(one.worker, 3, await listeningServer());
    takeover.listenerClosed(one.worker);
    await until(() => one.fake.received.includes('normserve:handover-done'), 'handover-done');
  });

  it('closes the held connections that the last worker cannot take, and logs how many', async () => {
    const { logger, lines } = logged();
    const takeover = new ListenerTakeover(logger, QUIET_MS, HOLD_MAX_MS);
    const one = fakeWorker(1);
    takeover.ready(one.worker);
    takeover.stopListening(one.worker, 1);
    const listener = await listeningServer();
    const { port } = listener.address() as { port: number };
    takeover.listener(one.worker, 2, listener);
    await until(() => one.fake.received.includes('normserve:listener-taken'), 'listener-taken');
    // Two clients whose connections the primary accepts and holds.
    const clients = [connect(port, '127.0.0.1'), connect(port, '127.0.0.1')];
    const closed = clients.map(
      (client) =>
        new Promise<string>((resolve) => {
          client.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
          client.on('close', () => resolve('closed'));
        }),
    );
    for (const client of clients) closers.push(() => client.destroy());
    await Promise.all(clients.map((c) => new Promise((resolve) => c.once('connect', resolve))));
    one.fake.sendError = new Error('channel closed');
    takeover.listenerClosed(one.worker);
    await until(() => one.fake.received.includes('normserve:handover-done'), 'handover-done');
    expect(one.fake.received.filter((m) => m === 'normserve:connection')).toHaveLength(2);
    // Closed by the primary, not left open until it exits.
    expect(await Promise.all(closed)).toHaveLength(2);
    await until(() => lines.some((l) => l.lost === 2), 'the lost connections logged');
  });
});

/**
 * WORKERS > 1: how the workers stop listening without resetting the connections queued on their
 * shared listening socket.
 *
 * The workers accept from one kernel socket (SCHED_NONE, cluster-primary.ts). When the last copy
 * of that socket closes, Linux resets every connection that completed its handshake and sat in
 * the socket's accept queue (inet_csk_listen_stop): their clients saw the connection open, then
 * ECONNRESET with their request unread. A worker's drain holds requests until accepts are quiet
 * (http/connection-drain.ts), but its copy is not the last: node:cluster's primary keeps one
 * (its SharedHandle, for workers yet to come) and closes it only once told that every worker
 * closed theirs — connections queued meanwhile, with nobody accepting, were reset (29 in 5 of 5
 * shutdowns with clients opening a connection per request, bench/shutdown-resets.ts). So the last
 * worker to stop listening first sends its listening server to the primary, which accepts on the
 * socket too (with `pauseOnConnect`, reading nothing) and holds what it accepts; the worker then
 * stops listening. Clients that were answered come back on new connections, which the primary
 * holds, so new arrivals stop; once every stopping worker said it stopped listening (node:cluster's
 * copy closed with the last of them) and no connection came for ACCEPT_QUIET_MS (at most
 * HOLD_MAX_MS after the hold began, whatever the workers do), the primary closes the socket right after an accept pass, then hands every held
 * connection to that worker, which answers it (503 SHUTTING_DOWN with `Connection: close`, as any
 * request during the drain) before its drain ends. A connection attempted after that is refused
 * (ECONNREFUSED), which clients retry elsewhere.
 */
import type { Worker } from 'node:cluster';
import { createServer, Server, type Socket } from 'node:net';
import type pino from 'pino';
import { ACCEPT_QUIET_MS, HOLD_MAX_MS, type ListenerHandover } from '../http/connection-drain.js';
import { handoverSchema, type PrimaryChannel, sendToWorker } from './cluster-messages.js';

/** How long a worker waits for the primary's answer before it stops listening regardless. */
const ANSWER_TIMEOUT_MS = 10_000;

/**
 * The worker's end (server-worker.ts hands it to buildApp): asks the primary before its drain
 * stops listening, and serves the connections the primary hands it afterwards.
 */
export function listenerHandover(channel: PrimaryChannel, logger: pino.Logger): ListenerHandover {
  let served: Server | undefined;
  let done: () => void = () => undefined;
  const handedOver = new Promise<void>((resolve) => {
    done = resolve;
  });
  let keeper = false;
  process.on('message', (raw: unknown, handle: unknown) => {
    const parsed = handoverSchema.safeParse(raw);
    if (!parsed.success) return;
    if (parsed.data.type === 'normserve:handover-done') {
      done();
      return;
    }
    const socket = handle as Socket | undefined;
    if (socket === undefined) return;
    // As net.Server does with the connections it accepts (http.Server's listener parses it).
    if (served) served.emit('connection', socket);
    else socket.destroy();
  });
  // A primary that is gone hands nothing more (the worker exits on its own then).
  process.once('disconnect', () => done());
  return {
    async beforeStopListening(server) {
      served = server;
      if (!process.connected) return;
      try {
        const wanted = await channel.request(
          { type: 'normserve:stop-listening' },
          'normserve:listener-wanted',
          ANSWER_TIMEOUT_MS,
        );
        if (!wanted.send) return;
        keeper = true;
        await channel.request(
          { type: 'normserve:listener' },
          'normserve:listener-taken',
          ANSWER_TIMEOUT_MS,
          undefined,
          server,
        );
      } catch (e) {
        // The shutdown goes on: connections queued as the socket closes may be reset.
        logger.warn({ err: e }, 'the cluster primary did not take the listening socket over');
      }
    },
    stoppedListening() {
      channel.send({ type: 'normserve:listener-closed' });
      if (!keeper) done();
      return handedOver;
    },
  };
}

/**
 * The primary's end: which workers listen (ready, not stopping), the socket taken from the last
 * one, the connections accepted on it, held until it closes and then handed to that worker.
 */
export class ListenerTakeover {
  private readonly listening = new Set<number>();
  /** Workers stopping to listen that have not said they stopped yet. */
  private readonly stopping = new Set<number>();
  /** The worker whose socket the primary took, and the primary's server accepting on it. */
  private keeper: Worker | undefined;
  private acceptor: Server | undefined;
  private readonly held: Socket[] = [];
  /**
   * Workers seen exiting. The primary can see a worker's exit before it has read the worker's
   * last messages (cluster-primary.ts): a `stop-listening` read then would keep a dead worker
   * among those stopping, and the socket open, forever.
   */
  private readonly retired = new Set<number>();
  private quiet: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: pino.Logger,
    private readonly quietMs = ACCEPT_QUIET_MS,
    private readonly holdMaxMs = HOLD_MAX_MS,
  ) {}

  /** The worker listens (it said `ready`). */
  ready(worker: Worker): void {
    if (this.retired.has(worker.id)) return;
    this.listening.add(worker.id);
  }

  /** The worker is about to stop listening: the last one to listen is asked for its socket. */
  stopListening(worker: Worker, id: number): void {
    if (this.retired.has(worker.id)) return;
    this.listening.delete(worker.id);
    this.stopping.add(worker.id);
    const send = this.keeper === undefined && this.listening.size === 0;
    if (send) this.keeper = worker;
    sendToWorker(worker, { type: 'normserve:listener-wanted', id, send });
  }

  /** The keeper's listening server (`handle`): accept on it, reading nothing, until it closes. */
  listener(worker: Worker, id: number, handle: unknown): void {
    if (
      worker !== this.keeper ||
      this.retired.has(worker.id) ||
      !(handle instanceof Server) ||
      this.acceptor
    ) {
      if (handle instanceof Server) handle.close();
      return;
    }
    // node:child_process already listens on the handle it received (with a server of its own
    // that reads what it accepts); this one takes the handle over before any accept.
    const acceptor = createServer({ pauseOnConnect: true });
    this.acceptor = acceptor;
    acceptor.on('connection', (socket: Socket) => {
      // A client that goes away while held is the worker's to notice.
      socket.on('error', () => undefined);
      this.held.push(socket);
      if (this.quiet) this.quiet.refresh();
    });
    acceptor.on('error', (e) => this.logger.error({ err: e }, 'accepting for a stopping worker'));
    acceptor.listen(handle, () => sendToWorker(worker, { type: 'normserve:listener-taken', id }));
    // A hard bound on the hold, whatever the other workers do (one that never says it stopped
    // listening keeps the socket open on its side; closing here still ends the hold).
    this.deadline = setTimeout(() => this.close(), this.holdMaxMs);
  }

  /** The worker stopped listening. */
  listenerClosed(worker: Worker): void {
    if (this.retired.has(worker.id)) return;
    this.stopping.delete(worker.id);
    this.settle();
  }

  /** A worker is gone: held connections of a keeper that died cannot be served. */
  retire(worker: Worker): void {
    this.retired.add(worker.id);
    this.listening.delete(worker.id);
    this.stopping.delete(worker.id);
    if (worker === this.keeper) this.close();
    else this.settle();
  }

  /**
   * Once every stopping worker has stopped listening — each closed its copy of the socket first,
   * and node:cluster's own copy in this process closed with the last of them (its `close` message
   * comes before ours on the same channel) — the socket is open here only: close it once quiet
   * (or at the deadline armed when the hold began).
   */
  private settle(): void {
    if (this.acceptor === undefined || this.quiet || this.stopping.size > 0) return;
    this.quiet = setTimeout(() => this.close(), this.quietMs);
  }

  private close(): void {
    clearTimeout(this.quiet);
    clearTimeout(this.deadline);
    const acceptor = this.acceptor;
    const keeper = this.keeper;
    this.keeper = undefined;
    this.quiet = undefined;
    if (acceptor === undefined || keeper === undefined) return;
    this.acceptor = undefined;
    // After the next poll phase, whose accept pass empties the socket's queue (a timer runs
    // before it in the event loop's turn): what the kernel queued since would be reset.
    setImmediate(() => {
      acceptor.close();
      const held = this.held.splice(0);
      this.logger.info(
        { worker: keeper.process.pid, connections: held.length },
        'closed the listening socket; handing the connections it held to the last worker',
      );
      // A keeper that is exiting cannot take them: each is closed here (its client sees a reset,
      // as it would have when the socket closed), counted, and logged once.
      let left = held.length;
      let lost = 0;
      const sent = (error: Error | null) => {
        if (error) lost++;
        if (--left === 0 && lost > 0)
          this.logger.warn(
            { worker: keeper.process.pid, connections: held.length, lost },
            'the last worker could not take some held connections (it is exiting); closed them',
          );
      };
      for (const socket of held)
        sendToWorker(keeper, { type: 'normserve:connection' }, socket, sent);
      sendToWorker(keeper, { type: 'normserve:handover-done' });
    });
  }
}

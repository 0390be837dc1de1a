import cluster, { type Worker } from 'node:cluster';
import type { Server, Socket } from 'node:net';
import { z } from 'zod';
import { NormserveError } from '../errors/index.js';
import { SAMPLE_KINDS } from '../service/drift-service.js';
import { driftShareSchema, trafficSampleSchema } from '../service/drift-share.js';

/**
 * The messages the primary and its workers exchange over node:cluster's IPC channel (only with
 * WORKERS > 1). Every message is parsed on receipt; messages of other senders (none today) are
 * ignored. Requests carry an `id` the answer repeats.
 */

const id = z.number().int().nonnegative();
/** A model's served version as a write left it (null: none; absent: not said). */
const servedVersion = z.number().int().positive().nullable().optional();
/** Traffic sample or recent rows (service/drift-service.ts); traffic when absent. */
const sampleKind = z.enum(SAMPLE_KINDS).default('traffic');

/** One metric as prom-client's `Registry.getMetricsAsJSON()` gives it (values already collected). */
export const metricJsonSchema = z.object({
  name: z.string(),
  help: z.string(),
  type: z.enum(['counter', 'gauge', 'histogram', 'summary']),
  aggregator: z.enum(['sum', 'first', 'min', 'max', 'average', 'omit']).optional(),
  values: z.array(
    z.object({
      value: z.number(),
      labels: z.record(z.string(), z.union([z.string(), z.number()])),
      metricName: z.string().optional(),
    }),
  ),
});
export type MetricJson = z.output<typeof metricJsonSchema>;

/** worker → primary */
export const fromWorkerSchema = z.discriminatedUnion('type', [
  /**
   * The worker answers `collect` from now on (it has built its app). `startModels`: the models that
   * count for its strict readiness, which the primary gives the workers it forks later
   * (cluster-start-models.ts).
   */
  z.object({ type: z.literal('normserve:ready'), startModels: z.array(z.string()) }),
  /**
   * The worker cannot start (`message`: the one line saying why, e.g. a taken port) and exits
   * EXIT_START_FAILED next: before any worker has listened the primary prints the line once for
   * all workers, and stops; later (a replacement) it logs it and replaces the worker
   * (worker-deaths.ts).
   */
  z.object({ type: z.literal('normserve:start-failed'), message: z.string().max(4096) }),
  /** GET /metrics reached this worker: the primary answers with the whole server's metrics. */
  z.object({ type: z.literal('normserve:scrape'), id }),
  /** The worker's metrics, answering `collect`; `seq` grows with every answer of this worker. */
  z.object({
    type: z.literal('normserve:collected'),
    id,
    seq: id,
    service: z.array(metricJsonSchema),
    process: z.array(metricJsonSchema),
  }),
  /** What this worker's drift service saw since its last share: relayed to the other workers. */
  z.object({ type: z.literal('normserve:drift-share'), share: driftShareSchema }),
  /**
   * The deciding worker is about to recalibrate `model` from traffic (`kind` traffic), or a worker
   * draws the pictures of GET …/drift/layers (`kind` recent): the primary asks the other workers
   * for their samples of that kind, relays each (`sample-part`) and answers `sample-done`.
   */
  z.object({
    type: z.literal('normserve:sample-request'),
    id,
    model: z.string(),
    version: z.number().int().positive(),
    kind: sampleKind,
  }),
  /** A worker's traffic sample, answering the primary's `sample-ask` of the same id. */
  z.object({ type: z.literal('normserve:sample-answer'), id, sample: trafficSampleSchema }),
  /**
   * This worker changed what `model` serves (published, activated or deleted a version): the
   * primary asks every other worker to refresh it (`refresh-model`) and answers
   * `models-refreshed` once the ready ones did, or its wait ended (cluster-models.ts).
   */
  z.object({
    type: z.literal('normserve:model-written'),
    id,
    model: z.string().max(1024),
    /** The version the writer serves after its write (null: none). */
    active: servedVersion,
  }),
  /**
   * This worker refreshed the model of the primary's `refresh-model` of the same id; `problem`
   * when it does not serve what the writer serves (its refresh failed, or the version did not
   * load here).
   */
  z.object({
    type: z.literal('normserve:model-refreshed'),
    id,
    problem: z.string().max(1024).optional(),
  }),
  /** Count one admin request against `key` in the server's rate limit. */
  z.object({
    type: z.literal('normserve:rate-limit'),
    id,
    key: z.string().max(512),
    windowMs: z.number().int().positive(),
  }),
  /**
   * The worker's shutdown drain begins and it is about to stop listening: the primary answers
   * `listener-wanted`, asking for the listening socket when no other worker would listen after it
   * (cluster-listener.ts).
   */
  z.object({ type: z.literal('normserve:stop-listening'), id }),
  /** The worker's listening server, sent with this message, for the primary to accept on. */
  z.object({ type: z.literal('normserve:listener'), id }),
  /** The worker has stopped listening (after `listener-wanted`, or `listener-taken`). */
  z.object({ type: z.literal('normserve:listener-closed') }),
]);
export type FromWorker = z.output<typeof fromWorkerSchema>;

/** primary → worker */
export const fromPrimarySchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('normserve:collect'), id }),
  z.object({
    type: z.literal('normserve:scraped'),
    id,
    text: z.string().optional(),
    error: z.string().optional(),
  }),
  /** Another worker's drift share (cluster-drift.ts); `from` is its cluster worker id. */
  z.object({ type: z.literal('normserve:drift-shared'), from: id, share: driftShareSchema }),
  /** A worker wants this worker's sample of `model` of `kind` (answer: `sample-answer`). */
  z.object({ type: z.literal('normserve:sample-ask'), id, model: z.string(), kind: sampleKind }),
  /** One other worker's traffic sample, for the deciding worker's `sample-request` `id`. */
  z.object({
    type: z.literal('normserve:sample-part'),
    id,
    worker: id,
    sample: trafficSampleSchema,
  }),
  /** Every other worker answered, or the wait ended: who was asked and who was left out. */
  z.object({
    type: z.literal('normserve:sample-done'),
    id,
    asked: z.number().int().nonnegative(),
    left_out: z.array(z.object({ worker: id, reason: z.string() })),
  }),
  /** Another worker changed `model` in the repository: refresh it now (answer: `model-refreshed`). */
  z.object({
    type: z.literal('normserve:refresh-model'),
    id,
    model: z.string().max(1024),
    active: servedVersion,
  }),
  /** Answers `model-written`: the other ready workers refreshed, but for those left out. */
  z.object({
    type: z.literal('normserve:models-refreshed'),
    id,
    asked: z.number().int().nonnegative(),
    left_out: z.array(z.object({ worker: id, reason: z.string() })),
  }),
  /** Whether this worker is the one that acts on drift (AUTO_RECALIBRATE). */
  z.object({ type: z.literal('normserve:drift-decider'), decides: z.boolean() }),
  z.object({
    type: z.literal('normserve:rate-limited'),
    id,
    count: z.number().int().positive(),
    resetInMs: z.number().nonnegative(),
  }),
  /**
   * A SIGTERM or SIGINT the primary got, relayed: each counts once, as that signal would in a
   * single process (cli/lame-duck.ts). A worker's own signals do not count while its primary is
   * there: a signal to the whole process group reaches it directly too. `seq` numbers the
   * primary's signals from 1: a worker that has counted one does not count it again when the
   * primary replays the signals so far to a worker that says it is ready.
   */
  z.object({
    type: z.literal('normserve:signal'),
    signal: z.enum(['SIGTERM', 'SIGINT']),
    seq: z.number().int().positive(),
  }),
  /** Answers `stop-listening`: `send`, send the listening server (`listener`) before closing it. */
  z.object({ type: z.literal('normserve:listener-wanted'), id, send: z.boolean() }),
  /** Answers `listener`: the primary accepts on the socket; the worker may stop listening. */
  z.object({ type: z.literal('normserve:listener-taken'), id }),
]);
export type FromPrimary = z.output<typeof fromPrimarySchema>;

/**
 * primary → worker, to the worker whose listening socket the primary took (cluster-listener.ts):
 * not answers, so not read by PrimaryChannel.
 */
export const handoverSchema = z.discriminatedUnion('type', [
  /** A connection the primary accepted, sent with this message: serve it. */
  z.object({ type: z.literal('normserve:connection') }),
  /** The primary has closed the socket: no more connections come. */
  z.object({ type: z.literal('normserve:handover-done') }),
]);
export type Handover = z.output<typeof handoverSchema>;

/**
 * Sends to a worker; a worker that is exiting cannot receive, which is not an error here. A socket
 * sent along is the primary's to close when the send fails (node closes it once sent): `sent`
 * learns the outcome (null: sent).
 */
export function sendToWorker(
  worker: Worker,
  message: FromPrimary | Handover,
  socket?: Socket,
  sent: (error: Error | null) => void = () => undefined,
): void {
  const failed = (error: Error) => {
    socket?.destroy();
    sent(error);
  };
  if (!worker.isConnected()) {
    failed(new Error('the worker has disconnected'));
    return;
  }
  // A channel that closes meanwhile calls back with ERR_IPC_CHANNEL_CLOSED.
  worker.send(message, socket, (error: Error | null) => (error ? failed(error) : sent(null)));
}

/** The primary's end: every parsed message of every worker, with the handle it carried. */
export function onWorkerMessage(
  handler: (worker: Worker, message: FromWorker, handle: unknown) => void,
): void {
  cluster.on('message', (worker, raw: unknown, handle: unknown) => {
    const parsed = fromWorkerSchema.safeParse(raw);
    if (parsed.success) handler(worker, parsed.data, handle);
  });
}

/** What the primary sends unasked (besides collect requests): see PrimaryChannel.onNotice. */
const NOTICES = [
  'normserve:drift-shared',
  'normserve:drift-decider',
  'normserve:sample-ask',
  'normserve:sample-part',
] as const;
type Notice = Extract<FromPrimary, { type: (typeof NOTICES)[number] }>;
const isNotice = (m: FromPrimary): m is Notice => (NOTICES as readonly string[]).includes(m.type);
/** The primary's requests to a worker, each with its own handler. */
type PrimaryRequest =
  | { type: 'normserve:collect' }
  | { type: 'normserve:refresh-model' }
  | { type: 'normserve:signal' };
type Answer = Exclude<FromPrimary, PrimaryRequest | Notice>;
/** A worker's request without its id (distributed over the union). */
type Request = FromWorker extends infer M
  ? M extends { id: number }
    ? Omit<M, 'id'>
    : never
  : never;

/**
 * The Retry-After of CLUSTER_PRIMARY_TIMEOUT, in seconds: a primary whose event loop was held up
 * (a burst of IPC, a slow scrape) usually answers the next request, as OVERLOADED's queue drains
 * within a second; a primary that is gone makes the worker exit on its own ('disconnect').
 */
export const PRIMARY_TIMEOUT_RETRY_AFTER_SECONDS = 1;

/** The error of a request to the primary that got no answer within `timeoutMs`. */
export function primaryTimeout(type: Request['type'], timeoutMs: number): NormserveError {
  return new NormserveError(
    'CLUSTER_PRIMARY_TIMEOUT',
    `the cluster primary did not answer this worker's ${type} within ${timeoutMs} ms; retry in ${PRIMARY_TIMEOUT_RETRY_AFTER_SECONDS} s`,
    { retryAfterSeconds: PRIMARY_TIMEOUT_RETRY_AFTER_SECONDS },
  );
}

/**
 * A worker's end: requests to the primary that resolve with its answer (or reject after
 * `timeoutMs`), and the primary's `collect` and `refresh-model` requests handed to `onCollect` and
 * `onRefreshModel`.
 */
export class PrimaryChannel {
  /** Answers the primary's collect requests (set once the worker's metrics exist). */
  onCollect: (id: number) => void = () => undefined;
  /** Answers the primary's `refresh-model` requests (set once the worker's registry exists). */
  onRefreshModel: (id: number, model: string, active?: number | null) => void = () => undefined;
  /**
   * Handles the primary's notices (drift shares of other workers, the drift decider, requests for
   * this worker's traffic sample and other workers' samples for this worker's request).
   */
  onNotice: (notice: Notice) => void = () => undefined;
  /**
   * The primary's relay of a shutdown signal (set by lame-duck.ts once the worker can drain).
   * Before that the worker serves nothing yet: it exits at once, as the signal's default would.
   */
  onSignal: (signal: 'SIGTERM' | 'SIGINT') => void = () => process.exit(0);
  /** The `seq` of the last relayed signal counted. */
  private signalsCounted = 0;
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve: (answer: Answer) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();

  constructor() {
    process.on('message', (raw: unknown) => {
      const parsed = fromPrimarySchema.safeParse(raw);
      if (!parsed.success) return;
      const message = parsed.data;
      if (message.type === 'normserve:collect') {
        this.onCollect(message.id);
        return;
      }
      if (message.type === 'normserve:refresh-model') {
        this.onRefreshModel(message.id, message.model, message.active);
        return;
      }
      if (message.type === 'normserve:signal') {
        // A replay of a signal already counted (the primary's replay at normserve:ready) is
        // skipped; one lost before this listener existed (a worker still loading) is counted
        // when a later one arrives, each as a signal.
        while (this.signalsCounted < message.seq) {
          this.signalsCounted++;
          this.onSignal(message.signal);
        }
        return;
      }
      if (isNotice(message)) {
        this.onNotice(message);
        return;
      }
      const waiting = this.pending.get(message.id);
      if (!waiting) return; // answered after its timeout
      this.pending.delete(message.id);
      clearTimeout(waiting.timer);
      waiting.resolve(message);
    });
  }

  /** `server`: a listening server to send with the message (its socket, not closed here). */
  send(message: FromWorker, server?: Server): void {
    process.send?.(message, server, {}, () => undefined);
  }

  /**
   * Sends `message` and resolves with the primary's answer of type `answerType`; rejects with
   * CLUSTER_PRIMARY_TIMEOUT (503, Retry-After) when none came within `timeoutMs`, so every caller
   * answers a client the same way. `onId` learns the request's id before it is sent (for notices
   * that carry it).
   */
  request<T extends Answer['type']>(
    message: Request,
    answerType: T,
    timeoutMs: number,
    onId?: (id: number) => void,
    server?: Server,
  ): Promise<Extract<Answer, { type: T }>> {
    const requestId = this.nextId++;
    onId?.(requestId);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(primaryTimeout(message.type, timeoutMs));
      }, timeoutMs);
      this.pending.set(requestId, {
        resolve: (answer) => {
          if (answer.type === answerType) resolve(answer as Extract<Answer, { type: T }>);
          else
            reject(new Error(`the cluster primary answered ${message.type} with ${answer.type}`));
        },
        reject,
        timer,
      });
      this.send({ ...message, id: requestId } as FromWorker, server);
    });
  }
}

import { type CallerSignal, callerGone } from './caller-signal.js';
import type { AvailableVersion } from './model-registry.js';
import { inferSources, type PredictOutput } from './predict.js';
import type { RowSource } from './row-source.js';
import type { TrafficObserver } from './traffic-observer.js';

/** How one model version is batched (the server's BATCH_* settings or its config.json's). */
export interface BatchingPolicy {
  /** Longest wait of a request for others to join its batch, in microseconds; 0 = no batching. */
  maxDelayUs: number;
  /** Most rows per engine call; a request with more rows runs alone. */
  maxRows: number;
}

/**
 * Who could still add a request to a batch, as the transport sees it: its open connections and
 * the requests it is handling. A closed-loop client (one request per connection at a time) sends
 * nothing more while every one of its requests waits in the batcher.
 */
export interface CallerCount {
  /** Open HTTP/1.1 connections. */
  connections: number;
  /** Of those, the ones with no request in progress (a client that could send one now). */
  idleConnections: number;
  /** Requests received and not yet answered on them. */
  requests: number;
}

/** What one engine call of the batcher did, for metrics. */
export interface BatchReport {
  model: string;
  version: number;
  requests: number;
  rows: number;
  /** Seconds each request waited in the queue. */
  queueSeconds: number[];
  computeMs: number;
}

interface Pending {
  source: RowSource;
  enqueuedAt: number;
  resolve: (output: PredictOutput) => void;
  reject: (error: unknown) => void;
  /** One of the transport's counted requests in progress (submit's `counted`). */
  counted: boolean;
  /** The caller's signal and the listener that takes this request out of its queue on abort. */
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface Queue {
  served: AvailableVersion;
  items: Pending[];
  rows: number;
  /** performance.now() in ms when the oldest request's wait ends. */
  deadline: number;
  timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  /** The delay is over but the version's previous batch is still computing: runs when it ends. */
  due: boolean;
}

/**
 * Triton's dynamic batching for a single JavaScript thread: concurrent requests for the same
 * model version wait at most `maxDelayUs` and then run as one engine call (up to `maxRows` rows),
 * which amortises the weight traffic of a matrix-vector product over many rows. Queues are keyed
 * by the version object itself, so a batch never mixes versions and every request is answered by
 * the version it resolved. Delays of a millisecond or more wait on a timer; the last sub-millisecond
 * part re-checks the clock once per event-loop turn (setImmediate), so incoming requests are read
 * in between and the bound holds with sub-millisecond delays too. A batch big enough for the
 * engine's helper thread computes there (inferSources) while the next batch collects: as with
 * Triton's batcher in front of a busy model instance, a batch whose delay is over waits for the
 * version's batch in flight to end, taking in requests meanwhile up to `maxRows`. A full batch
 * (`maxRows` reached, or a request that would overflow it) goes at once, even with one in flight:
 * it can take in nobody more, and the engine's helper runs calls first in, first out, so it
 * queues there behind the one in flight instead of here.
 */
export class DynamicBatcher {
  private readonly queues = new Map<AvailableVersion, Queue>();
  private readonly onBatch: ((report: BatchReport) => void) | undefined;
  private readonly observer: TrafficObserver | undefined;
  private readonly engineAsync: boolean;
  /** Batches computing on a helper thread, per version. */
  private readonly computing = new Map<AvailableVersion, number>();
  /**
   * Requests of counted callers (submit's `counted`: the HTTP routes) queued in every queue plus
   * those of batches computing on a helper thread. Other callers' requests (gRPC) are not in it:
   * they stand for no HTTP request in progress.
   */
  private waiting = 0;
  private callers: (() => CallerCount) | undefined;

  constructor(
    options: {
      onBatch?: (report: BatchReport) => void;
      observer?: TrafficObserver;
      /** Batches with enough work compute on the engine's helper thread (inferSources). */
      engineAsync?: boolean;
    } = {},
  ) {
    this.engineAsync = options.engineAsync ?? false;
    this.onBatch = options.onBatch;
    this.observer = options.observer;
  }

  /**
   * Lets a batch run before its delay is over once no caller can add to it: when the transport
   * has at least one open connection, every connection has a request in progress, and every
   * request in progress is waiting here (queued or in a batch computing), waiting longer only
   * adds latency — no request can arrive until one of these is answered. Triton runs a batch at
   * once when it reaches its preferred or maximum size; a closed-loop set of clients smaller than
   * BATCH_MAX_ROWS is the size it can reach. Other transports' requests (gRPC, whose HTTP/2
   * connections carry many calls) count neither as callers nor as waiting: a gRPC-only load waits
   * out its delay as before, and a gRPC call queued never stands in for an HTTP request that is
   * still arriving. An idle connection (a keep-alive client, a prober, a metrics scraper between
   * scrapes) keeps the delay.
   */
  countCallers(callers: () => CallerCount): void {
    this.callers = callers;
  }

  /**
   * Queues the rows of one request; resolves with exactly its rows' results. `counted`: the
   * request is one of the requests in progress that countCallers' transport counts (HTTP).
   * `caller`: when its signal aborts while the request is still queued, the request leaves the
   * queue (its rows are never computed; the rest of the batch is unchanged) and is rejected with
   * CLIENT_ABORTED; once its batch has gone to the engine it runs to the end.
   */
  submit(
    served: AvailableVersion,
    source: RowSource,
    policy: BatchingPolicy,
    counted = false,
    caller?: CallerSignal,
  ): Promise<PredictOutput> {
    return new Promise((resolve, reject) => {
      const signal = caller?.signal;
      if (signal?.aborted) {
        reject(callerGone());
        return;
      }
      let queue = this.queues.get(served);
      // A request that would overflow the batch sends the queued ones off first.
      if (queue && queue.rows + source.rows > policy.maxRows) {
        this.flush(queue);
        queue = undefined;
      }
      const now = performance.now();
      if (!queue) {
        queue = {
          served,
          items: [],
          rows: 0,
          deadline: now + policy.maxDelayUs / 1000,
          timer: undefined,
          due: false,
        };
        this.queues.set(served, queue);
      }
      const item: Pending = {
        source,
        enqueuedAt: now,
        resolve,
        reject,
        counted,
        signal,
        onAbort: undefined,
      };
      queue.items.push(item);
      queue.rows += source.rows;
      if (counted) this.waiting++;
      if (signal) {
        const queued = queue;
        item.onAbort = () => this.drop(queued, item);
        signal.addEventListener('abort', item.onAbort, { once: true });
      }
      if (queue.rows >= policy.maxRows) this.flush(queue);
      else if (this.noMoreCallers()) this.flushReady();
      else if (queue.timer === undefined && !queue.due) this.schedule(queue);
    });
  }

  private noMoreCallers(): boolean {
    if (!this.callers) return false;
    const { connections, idleConnections, requests } = this.callers();
    return connections > 0 && idleConnections === 0 && this.waiting >= requests;
  }

  /** Runs every queue now, or, for a version with a batch computing, as soon as it ends. */
  private flushReady(): void {
    for (const queue of [...this.queues.values()]) {
      if (this.computing.has(queue.served)) queue.due = true;
      else this.flush(queue);
    }
  }

  /** Runs every queued batch now (shutdown). */
  flushAll(): void {
    for (const queue of [...this.queues.values()]) this.flush(queue);
  }

  private schedule(queue: Queue): void {
    const remainingMs = queue.deadline - performance.now();
    const check = () => {
      queue.timer = undefined;
      if (this.queues.get(queue.served) !== queue) return; // flushed meanwhile
      if (performance.now() < queue.deadline) this.schedule(queue);
      else if (this.computing.has(queue.served)) queue.due = true;
      else this.flush(queue);
    };
    queue.timer =
      remainingMs >= 1 ? setTimeout(check, Math.floor(remainingMs)) : setImmediate(check);
  }

  /**
   * A queued request whose caller went: out of its queue (and the waiting count), rejected. The
   * others keep their places and their delay, unless nobody else can add to their batch now.
   */
  private drop(queue: Queue, item: Pending): void {
    const at = queue.items.indexOf(item);
    if (at < 0) return; // defensive: flush removes the listener that calls this once a batch leaves
    queue.items.splice(at, 1);
    queue.rows -= item.source.rows;
    if (item.counted) this.waiting--;
    item.reject(callerGone());
    if (queue.items.length === 0) this.discard(queue);
    else if (this.noMoreCallers()) this.flushReady();
  }

  /** A queue leaves the batcher: no longer the one its version's requests join; its timer off. */
  private discard(queue: Queue): void {
    if (this.queues.get(queue.served) === queue) this.queues.delete(queue.served);
    if (queue.timer !== undefined) {
      clearTimeout(queue.timer as NodeJS.Timeout);
      clearImmediate(queue.timer as NodeJS.Immediate);
      queue.timer = undefined;
    }
  }

  /** The counted requests of a batch leave the waiting count (once, when it is answered). */
  private leave(items: readonly Pending[]): void {
    for (const p of items) if (p.counted) this.waiting--;
  }

  private flush(queue: Queue): void {
    this.discard(queue);
    const items = queue.items;
    if (items.length === 0) return;
    // From here on the batch is the engine's: a caller leaving no longer takes its request out.
    for (const p of items) if (p.onAbort) p.signal!.removeEventListener('abort', p.onAbort);
    const started = performance.now();
    // Synchronous batches leave the count now; batches on a helper thread when they are answered.
    let outputs: PredictOutput[] | Promise<PredictOutput[]>;
    try {
      outputs = inferSources(
        queue.served,
        items.map((p) => p.source),
        this.observer,
        this.engineAsync,
      );
    } catch (e) {
      this.leave(items);
      for (const p of items) p.reject(e);
      return;
    }
    if (!(outputs instanceof Promise)) {
      this.leave(items);
      this.deliver(queue, started, outputs);
      return;
    }
    const served = queue.served;
    this.computing.set(served, (this.computing.get(served) ?? 0) + 1);
    void outputs.then(
      (o) => {
        this.leave(items);
        try {
          this.deliver(queue, started, o);
        } finally {
          this.ended(served);
        }
      },
      (e: unknown) => {
        this.leave(items);
        try {
          for (const p of items) p.reject(e);
        } finally {
          this.ended(served);
        }
      },
    );
  }

  /** A batch of `served` computed on a helper thread ended: the next one runs if its delay is over. */
  private ended(served: AvailableVersion): void {
    const left = (this.computing.get(served) ?? 1) - 1;
    if (left > 0) {
      this.computing.set(served, left);
      return;
    }
    this.computing.delete(served);
    const next = this.queues.get(served);
    if (next?.due) this.flush(next);
  }

  /** Answers each request of a batch with its own rows; reports the batch. */
  private deliver(queue: Queue, started: number, outputs: PredictOutput[]): void {
    const items = queue.items;
    const queueSeconds = items.map((p) => (started - p.enqueuedAt) / 1000);
    for (let i = 0; i < items.length; i++) {
      outputs[i]!.queueMs = queueSeconds[i]! * 1000;
      items[i]!.resolve(outputs[i]!);
    }
    this.onBatch?.({
      model: queue.served.name,
      version: queue.served.version,
      requests: items.length,
      rows: queue.rows,
      queueSeconds,
      computeMs: outputs[0]!.computeMs,
    });
  }
}

import { NormserveError } from '../errors/index.js';
import type { CallerSignal } from './caller-signal.js';
import {
  type BatchingPolicy,
  type BatchReport,
  type CallerCount,
  DynamicBatcher,
} from './dynamic-batcher.js';
import type { AvailableVersion, ModelRegistry } from './model-registry.js';
import {
  inferSources,
  inferUnfused,
  offloadsSources,
  type PredictOutput,
  runSources,
} from './predict.js';
import type { RowSource } from './row-source.js';
import type { TrafficObserver } from './traffic-observer.js';

export interface InferenceServiceOptions {
  /** BATCH_MAX_DELAY_US: the server-wide batching delay (0 = off); config.json may override. */
  batchMaxDelayUs: number;
  /** BATCH_MAX_ROWS: the server-wide largest batch; config.json may override. */
  batchMaxRows: number;
  /** ENGINE_ASYNC: calls with enough work run on the engine's helper thread (inferSources). */
  engineAsync?: boolean | undefined;
  onBatch?: (report: BatchReport) => void;
  /** Sees every fused engine call (live drift statistics, traffic sample, shadow runs). */
  observer?: TrafficObserver | undefined;
  /**
   * MAX_QUEUED_REQUESTS: most requests waiting for the engine (queued for a dynamic batch, or
   * queued or computing on the engine's helper thread, or computing on the unfused path in
   * slices, or held by a transport while it waits to be computed: `hold`); one more is refused
   * with OVERLOADED. 0 or absent: no bound.
   */
  maxQueuedRequests?: number | undefined;
  /** A request refused with OVERLOADED, for metrics. */
  onOverload?: ((model: string) => void) | undefined;
}

/**
 * The Retry-After of OVERLOADED, in seconds: a queue of requests waiting for the engine drains in
 * a batch delay (≤ 1 s) and a few engine calls; a client that waits a second finds it shorter or
 * reaches another replica.
 */
export const OVERLOADED_RETRY_AFTER_SECONDS = 1;

/**
 * The inference use case every transport shares (HTTP JSON, HTTP binary, gRPC): resolve a
 * version, then run a request's validated rows on it, directly or through the dynamic batcher.
 */
export class InferenceService {
  readonly registry: ModelRegistry;
  private readonly options: InferenceServiceOptions;
  private readonly batcher: DynamicBatcher;
  private readonly policies = new WeakMap<AvailableVersion, BatchingPolicy>();
  /**
   * Requests waiting for the engine, every transport's: queued in the batcher, handed to the
   * engine's helper thread and not yet answered (calls there run one after another), or held by
   * a transport (`hold`: gRPC calls in their session's compute lane). A request computed at once
   * on the calling thread never waits here.
   */
  private waiting = 0;

  constructor(registry: ModelRegistry, options: InferenceServiceOptions) {
    this.registry = registry;
    this.options = options;
    this.batcher = new DynamicBatcher({
      ...(options.onBatch ? { onBatch: options.onBatch } : {}),
      ...(options.observer ? { observer: options.observer } : {}),
      engineAsync: options.engineAsync ?? false,
    });
  }

  /** The version a request runs on: the explicit one, else the active one (or a 404/503 error). */
  resolve(name: string, version?: number): AvailableVersion {
    return this.registry.resolve(name, version);
  }

  /**
   * resolve, or undefined where it would throw. For the prediction routes, whose errors follow
   * Fastify's order — a bad body before an unknown model — but whose fast path needs the version
   * (the body check is compiled for its input shape): they resolve first and, when this gives
   * nothing, call resolve for its error once the body has passed.
   */
  tryResolve(name: string, version?: number): AvailableVersion | undefined {
    try {
      return this.registry.resolve(name, version);
    } catch {
      return undefined;
    }
  }

  /** The batching policy of a version: its config.json's `dynamic_batching`, else the server's. */
  policy(served: AvailableVersion): BatchingPolicy {
    let policy = this.policies.get(served);
    if (!policy) {
      const own = served.checkpoint.config.dynamic_batching;
      policy = {
        maxDelayUs: own?.max_queue_delay_microseconds ?? this.options.batchMaxDelayUs,
        maxRows: own?.max_batch_rows ?? this.options.batchMaxRows,
      };
      this.policies.set(served, policy);
    }
    return policy;
  }

  /**
   * Runs one request's rows. Without batching the engine runs now and the result is returned as
   * is, or, for a call big enough for the engine's helper thread, arrives when that thread has run
   * it; with batching it arrives when the batch ran. The unfused debugging path (`fused` false)
   * runs in slices with the event loop's turns between them (inferUnfused), and waits as a queued
   * request does.
   * A request whose caller goes (`caller`'s signal aborts) while it still waits for its batch is
   * not computed: it is rejected with CLIENT_ABORTED. Work already on the engine runs to its end
   * (the transport does not send it); the signal is read only for a request that waits. A
   * request that would wait (for a batch or the helper thread, or between the unfused path's
   * slices) while MAX_QUEUED_REQUESTS already do is refused at once with OVERLOADED, thrown
   * before anything is queued; one computed at once on the calling thread waits for nothing and
   * is never refused.
   */
  infer(
    served: AvailableVersion,
    source: RowSource,
    fused = true,
    /** The request is one the HTTP server counts (countCallers); gRPC's are not. */
    counted = false,
    caller?: CallerSignal,
  ): PredictOutput | Promise<PredictOutput> {
    const policy = this.policy(served);
    if (!fused) {
      // Slices with turns between them: the request waits for the engine like a queued one.
      this.admit(served.name);
      return this.track(inferUnfused(served, source, caller));
    }
    if (policy.maxDelayUs === 0) {
      const offload = this.options.engineAsync ?? false;
      const sources = [source];
      if (!offloadsSources(served, sources, offload))
        return runSources(served, sources, true, this.options.observer)[0]!;
      this.admit(served.name);
      const out = inferSources(served, sources, this.options.observer, true);
      return this.track(Promise.resolve(out)).then((o) => o[0]!);
    }
    this.admit(served.name);
    return this.track(this.batcher.submit(served, source, policy, counted, caller));
  }

  /** Requests waiting for the engine now (queued for a batch, on the helper thread, held). */
  get queuedRequests(): number {
    return this.waiting;
  }

  /**
   * A place among the requests waiting for the engine, for a request that a transport keeps
   * waiting before it reaches `infer` (a gRPC call queued behind its session's calls in the
   * compute lane): refused with OVERLOADED exactly as `infer` refuses one, and counted until the
   * returned function gives it back (once: later calls do nothing). The transport gives it back
   * when the request leaves that wait — before calling `infer`, which takes a place of its own
   * if the request waits there too (and finds one: the request's own was just given back) — or
   * when its caller goes.
   */
  hold(model: string): () => void {
    this.admit(model);
    this.waiting++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.waiting--;
    };
  }

  /** Refuses a request that would wait for the engine when MAX_QUEUED_REQUESTS already do. */
  private admit(model: string): void {
    const max = this.options.maxQueuedRequests ?? 0;
    if (max === 0 || this.waiting < max) return;
    this.options.onOverload?.(model);
    throw new NormserveError(
      'OVERLOADED',
      `${max === 1 ? '1 request already waits' : `${max} requests already wait`} for the engine (MAX_QUEUED_REQUESTS); retry in ${OVERLOADED_RETRY_AFTER_SECONDS} s`,
      { retryAfterSeconds: OVERLOADED_RETRY_AFTER_SECONDS },
    );
  }

  /** Counts a request as waiting until its answer (or failure) arrives. */
  private track<T>(pending: Promise<T>): Promise<T> {
    this.waiting++;
    const left = () => {
      this.waiting--;
    };
    pending.then(left, left);
    return pending;
  }

  /**
   * The HTTP server's open connections and requests in progress: a batch runs before its delay
   * once every one of them waits in the batcher (DynamicBatcher.countCallers).
   */
  countCallers(callers: () => CallerCount): void {
    this.batcher.countCallers(callers);
  }

  /** Runs whatever is queued now (shutdown: requests in flight finish without waiting). */
  flush(): void {
    this.batcher.flushAll();
  }
}

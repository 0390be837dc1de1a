import { z } from 'zod';
import { BATCH_LIMITS } from '../checkpoint/batch-limits.js';
import { OUTLIER_BOUND } from '../drift/index.js';
import {
  DECIMAL_TEXT,
  describeLocations,
  issuesToLocations,
  NormserveError,
  type NumberRange,
  rangeMessage,
  safeParseWorded,
} from '../errors/index.js';
import { ENGINES } from '../inference/engine-name.js';
// The options file alone, not recalibration/'s index: the cluster primary parses this config
// and loads no engine code.
import { DEFAULT_MAX_SAMPLES } from '../recalibration/recalibration-options.js';
import { processCpus } from './available-cpus.js';
import { AUTO_RECALIBRATE_MODES, DEFAULT_DRIFT_THRESHOLD } from './drift-settings.js';
import { misspelledVariables } from './misspelled-variables.js';

/** A decimal number's text (DECIMAL_TEXT) as that number; any other value as it is. */
export const decimalText = (v: unknown) =>
  typeof v === 'string' && DECIMAL_TEXT.test(v) && Number.isFinite(Number(v)) ? Number(v) : v;

/**
 * The environment's text as a number ('  9000 ' is 9000) when it is a decimal number around
 * blanks (decimalText); other text stays text, so that the message quotes what was given. Empty
 * (or blank) text is no number: Number('') is 0, which made PORT='' a random port; a variable
 * with a default refuses it, as HOST and LOG_LEVEL do, and the optional ones (ENGINE_THREADS, the
 * tokens) read it as unset (emptyToUndefined).
 */
const numericText = (v: unknown) => {
  if (typeof v !== 'string') return v;
  const n = decimalText(v.trim());
  return typeof n === 'number' ? n : v;
};
/**
 * A number in a range, one message for every way to miss it (errors/issue-message.ts words it):
 * `expected an integer from 0 to 65535, got "abc"`.
 */
const inRange = (range: NumberRange, meaning = '') => {
  const error = (issue: { input?: unknown }) => rangeMessage(range, issue.input) + meaning;
  let n = z.number({ error });
  if (range.integer) n = n.int({ error });
  if (range.min !== undefined)
    n = range.minInclusive === false ? n.gt(range.min, { error }) : n.min(range.min, { error });
  if (range.max !== undefined)
    n = range.maxInclusive === false ? n.lt(range.max, { error }) : n.max(range.max, { error });
  return z.preprocess(numericText, n);
};
/** An integer from min to max; `meaning` follows the message (what a special value does). */
const int = (min: number, max?: number, meaning?: string) =>
  inRange({ integer: true, min, max }, meaning);
/** Node's timers hold at most 2^31 − 1 ms; a longer delay fires at once (with a warning). */
const MAX_TIMER_MS = 2 ** 31 - 1;
const ms = (min: number) => int(min, MAX_TIMER_MS);
const emptyToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
/** A bearer token: long enough, and not the placeholder of deploy/ left unchanged. */
const token = z
  .string()
  .min(16, 'must be at least 16 characters')
  .refine(
    (t) => !/^change-me/i.test(t),
    'is still the placeholder of the example files; set a random token',
  );

/**
 * The server's configuration, read once from the environment (names as in the README's table)
 * and passed down; nothing else reads process.env.
 */
/** Rows one request may carry unless MAX_BATCH_SIZE says otherwise. */
export const DEFAULT_MAX_BATCH_SIZE = 4096;

export const serverConfigSchema = z.object({
  PORT: int(0, 65535).default(8080),
  HOST: z.string().min(1, 'must not be empty').default('127.0.0.1'),
  MODEL_REPOSITORY: z.string().min(1, 'must not be empty').default('./models'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  MAX_BATCH_SIZE: int(1, 1_000_000).default(DEFAULT_MAX_BATCH_SIZE),
  /** A JSON body is read as one string: V8's strings end near 512 MiB, so 256 MiB at most. */
  BODY_LIMIT_BYTES: int(1024, 256 * 1024 * 1024).default(16 * 1024 * 1024),
  /** Bearer token for admin routes; generated at start-up (and logged once) when unset. */
  ADMIN_TOKEN: z.preprocess(emptyToUndefined, token.optional()),
  /** Bearer token for prediction routes; unset = predictions are open. */
  API_TOKEN: z.preprocess(emptyToUndefined, token.optional()),
  /** Admin requests with the valid token, per client address and minute, for the whole server. */
  ADMIN_RATE_LIMIT_PER_MINUTE: int(1).default(60),
  /**
   * Admin requests without the valid token, per client address and minute, counted apart: a
   * neighbour behind the same address who fails cannot use up the admin's budget.
   */
  ADMIN_AUTH_FAILURES_PER_MINUTE: int(1).default(30),
  /** Most rows one recalibration reads (the recalibration's own default); more is TOO_MANY_SAMPLES. */
  MAX_RECALIBRATION_SAMPLES: int(2).default(DEFAULT_MAX_SAMPLES),
  /** Recalibrations with more rows than this run as a job (202 + Location). */
  RECALIBRATION_ASYNC_ROWS: int(2).default(50_000),
  /**
   * Bytes of uploaded rows an exact/prior recalibration keeps in memory until every BatchNorm has
   * read them; beyond that they go to a temporary file (in os.tmpdir(), removed at the end).
   * 0 is faster (SpillingRowStore) but writes every upload to disk, which a default should not do
   * to data an operator did not expect at rest; in memory where no temporary directory can be
   * created.
   */
  RECALIBRATION_MEMORY_BYTES: int(0).default(64 * 1024 * 1024),
  /** Upper bound for a streamed recalibration upload (NDJSON or float32 rows). */
  RECALIBRATION_BODY_LIMIT_BYTES: int(1024).default(1024 * 1024 * 1024),
  /**
   * on (Triton's --strict-readiness, its default): the server is ready when every model that
   * counts serves a version — those of the repository at its start and those that have served
   * since (ModelRegistry.countsForReadiness), so a model directory added later that never loads
   * does not take every replica of a shared volume out of its load balancer; off: when at least
   * one model serves.
   */
  STRICT_READINESS: z.enum(['off', 'on']).default('on'),
  /** How often the repository is scanned for versions published by other processes; 0 = never. */
  MODEL_POLL_INTERVAL_MS: ms(0).default(2000),
  /**
   * Server processes sharing the port (node:cluster); 1 = a single process. Default: the CPUs the
   * process may use, its cgroup's CPU limit included (available-cpus.ts).
   */
  WORKERS: int(1, 256).default(processCpus),
  /** The executor of fused plans: wasm (WebAssembly SIMD) or js (the reference); wasm falls back to js where the runtime lacks WebAssembly SIMD. */
  ENGINE: z.enum(ENGINES).default('wasm'),
  /** Threads one large batch is split across, per process; default: the cores per worker process. */
  ENGINE_THREADS: z.preprocess(emptyToUndefined, int(1, 64).optional()),
  /**
   * on: an engine call with enough work (one a split would take) runs whole on the engine's helper
   * thread while the event loop serves other requests; off: it is split between the request's
   * thread and the helpers. Off by default: no gain measured on 2 cores (bench/README.md).
   */
  ENGINE_ASYNC: z.enum(['off', 'on']).default('off'),
  /**
   * V8's old-generation growth factor after a full collection, in percent
   * (`--heap-growing-percent`; cli/heap-growth.ts says why); 0 = V8's own choice. At most 300:
   * V8's own largest factor (4.0, heap-controller.cc).
   */
  V8_HEAP_GROWING_PERCENT: int(0, 300).default(200),
  /**
   * After SIGTERM/SIGINT, how long the server keeps serving as before while its readiness routes
   * answer 503 (the lame-duck phase, service/serving-phase.ts), before the drain: Kubernetes takes
   * a terminating pod out of its Service's endpoints asynchronously, and traffic still routed to it
   * meanwhile must not meet a closed port. 0 = drain at once (npm start, local use).
   */
  SHUTDOWN_DELAY_MS: ms(0).default(0),
  /** The drain after SHUTDOWN_DELAY_MS: a process still running this long after it began exits 1. */
  SHUTDOWN_TIMEOUT_MS: ms(100).default(10_000),
  /** Time to receive one whole request, headers and body; 0 = no limit (headers get 60 s). */
  REQUEST_TIMEOUT_MS: ms(0).default(60_000),
  /** Open connections per process; more are closed as they arrive (counted in /metrics). */
  MAX_CONNECTIONS: int(1, 1_000_000).default(1024),
  /** gRPC Open Inference Protocol port (inference.GRPCInferenceService); 0 = no gRPC server. */
  GRPC_PORT: int(0, 65535, ' (0 = no gRPC server)').default(8081),
  /**
   * A gRPC connection older than this (±10 % jitter) is sent a GOAWAY: its client reconnects, and
   * a Kubernetes Service (which balances connections, not calls) spreads the channels again after
   * a scale-up or a rollout; 0 = connections live on.
   */
  GRPC_MAX_CONNECTION_AGE_MS: ms(0).default(1_800_000),
  /** The time left to a GOAWAY'd connection's calls (and health watches); 0 = no limit. */
  GRPC_MAX_CONNECTION_AGE_GRACE_MS: ms(0).default(30_000),
  /**
   * The gRPC server pings each connection this long after its last ping was answered and closes
   * it when the answer is GRPC_KEEPALIVE_TIMEOUT_MS late: frees connections whose peer is gone
   * but whose socket Node never closes (docs/grpc.md, "Dead connections"); 0 = no pings.
   */
  GRPC_KEEPALIVE_TIME_MS: ms(0).default(30_000),
  /** How long a keepalive ping's answer may take before its connection is closed. */
  GRPC_KEEPALIVE_TIMEOUT_MS: ms(1).default(10_000),
  /**
   * Calls open at once on one gRPC connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); unset =
   * grpc/grpc-server.ts's DEFAULT_MAX_CONCURRENT_STREAMS (100), which says why.
   */
  GRPC_MAX_CONCURRENT_STREAMS: z.preprocess(emptyToUndefined, int(1, 2 ** 32 - 1).optional()),
  /**
   * Dynamic batching: concurrent requests for one model version wait at most this long (µs) to
   * run as one engine call; 0 = off. A model's config.json may override it.
   */
  BATCH_MAX_DELAY_US: int(0, BATCH_LIMITS.maxDelayUs).default(0),
  /** Most rows of one batched engine call (a single larger request still runs, alone). */
  BATCH_MAX_ROWS: int(1, BATCH_LIMITS.maxRows).default(256),
  /**
   * Most requests of a process waiting for the engine (queued for a dynamic batch, or on the
   * engine's helper thread); one more is answered 503 OVERLOADED. 0 = no bound, as Triton's
   * max_queue_size: the bound worth having depends on the model's compute time and the latency
   * clients accept.
   */
  MAX_QUEUED_REQUESTS: int(0, 1_000_000, ' (0 = no bound)').default(0),
  /** Bytes of prediction bodies a process holds at once (http/body-budget.ts); 0 = no bound. */
  MAX_BODY_BYTES_IN_FLIGHT: int(0, Number.MAX_SAFE_INTEGER, ' (0 = no bound)').default(67_108_864),
  /**
   * Share of engine calls whose BatchNorm inputs feed the live drift statistics (1 = every call,
   * 0 = no drift statistics). The statistics ride along the served forward pass.
   */
  DRIFT_SAMPLE_FRACTION: inRange({ integer: false, min: 0, max: 1 }).default(1),
  /** Live statistics are kept per time window of this length… */
  DRIFT_WINDOW_MS: ms(1000).default(60_000),
  /** …over this many windows (the drift horizon is their product). */
  DRIFT_WINDOWS: int(1, 1440).default(10),
  /** A model drift score above this recommends recalibration (docs/drift.md). */
  DRIFT_THRESHOLD: inRange({ integer: false, min: 0, minInclusive: false, max: 100 }).default(
    DEFAULT_DRIFT_THRESHOLD,
  ),
  /** Rows the drift statistics need before a recommendation. */
  DRIFT_MIN_ROWS: int(2).default(100),
  /** What drift does: off, recommend (log + count), candidate (publish, shadow), promote (publish + serve). */
  AUTO_RECALIBRATE: z.enum(AUTO_RECALIBRATE_MODES).default('off'),
  /** Rows the traffic sample must hold before an automatic recalibration. */
  AUTO_RECALIBRATE_MIN_ROWS: int(2).default(512),
  /**
   * The least time between two automatic recalibrations of one model (0: no bound). Each version
   * is recalibrated at most once, but each promoted version is a new parent: traffic that swings
   * between two domains would otherwise publish, load and serve a version per swing, without end.
   */
  AUTO_RECALIBRATE_INTERVAL_MS: ms(0).default(3_600_000),
  /**
   * Rows of a traffic sample further than this many robust standard deviations from its median at
   * a BatchNorm input are left out of an automatic recalibration (docs/drift.md, Outlying rows).
   */
  AUTO_RECALIBRATE_OUTLIER_BOUND: inRange({
    integer: false,
    min: 0,
    minInclusive: false,
    max: Number.MAX_VALUE,
  }).default(OUTLIER_BOUND),
  /** Bounds of the per-model traffic sample (reservoir) kept for AUTO_RECALIBRATE: rows… */
  TRAFFIC_SAMPLE_ROWS: int(2, 1_000_000).default(2048),
  /** …and bytes (float32 rows; the smaller bound wins). */
  TRAFFIC_SAMPLE_BYTES: int(1024, 1024 * 1024 * 1024).default(16 * 1024 * 1024),
});

export type ServerConfig = z.output<typeof serverConfigSchema>;

/** Parses the environment; an invalid value stops the start with one line naming the variable. */
export function parseServerConfig(env: Record<string, string | undefined>): ServerConfig {
  const config = parseEnvironment(serverConfigSchema, env);
  // The checks between variables are made here, not as refinements, which zod's pick refuses.
  /** Refuses the configuration for `name`'s value (its default named as such) and `why`. */
  const refuse = (name: 'GRPC_PORT' | 'TRAFFIC_SAMPLE_ROWS', why: string): never => {
    const location = {
      path: name,
      message: `${config[name]}${env[name] === undefined ? ` (${name}'s default)` : ''} ${why}`,
    };
    throw new NormserveError(
      'SERVER_CONFIG_INVALID',
      `invalid configuration: ${describeLocations([location])}`,
      { errors: [location] },
    );
  };
  // Two listeners cannot share a port: said with the configuration, not as gRPC's bind failure
  // after the models have loaded.
  if (config.GRPC_PORT !== 0 && config.GRPC_PORT === config.PORT)
    refuse('GRPC_PORT', 'is PORT too; give gRPC a port of its own (0 = no gRPC server)');
  // A traffic sample smaller than the minimum it must hold would never be recalibrated from: the
  // drift recommended, and nothing done or said (ops review of 2026-12-04, finding 4).
  if (
    (config.AUTO_RECALIBRATE === 'candidate' || config.AUTO_RECALIBRATE === 'promote') &&
    config.TRAFFIC_SAMPLE_ROWS < config.AUTO_RECALIBRATE_MIN_ROWS
  )
    refuse(
      'TRAFFIC_SAMPLE_ROWS',
      `is less than AUTO_RECALIBRATE_MIN_ROWS (${config.AUTO_RECALIBRATE_MIN_ROWS}): with AUTO_RECALIBRATE=${config.AUTO_RECALIBRATE} the traffic sample could never hold the rows to recalibrate from; raise it or lower AUTO_RECALIBRATE_MIN_ROWS`,
    );
  return config;
}

/**
 * The variables of `env` spelled like one of the configuration's but not it (`WORKER=2`: ignored,
 * so the default is served), each with the one it likely means (misspelled-variables.ts).
 */
export function misspelledConfigVariables(
  env: Record<string, string | undefined>,
): { name: string; meant: string }[] {
  return misspelledVariables(env, Object.keys(serverConfigSchema.shape));
}

/**
 * Some variables of the server's configuration, by the same rules, and no others: a program that
 * reads only these (the report CLI: DRIFT_THRESHOLD, DRIFT_MIN_ROWS) is not refused for a
 * server-only variable it never reads (PORT=abc, an API_TOKEN too short).
 */
export function parseServerConfigVariables<K extends keyof ServerConfig & string>(
  env: Record<string, string | undefined>,
  names: readonly K[],
): Pick<ServerConfig, K> {
  // zod types a pick by a literal mask only; the names are keys of the schema by K's type.
  const mask = Object.fromEntries(names.map((name) => [name, true])) as never;
  return parseEnvironment(serverConfigSchema.pick(mask), env) as unknown as Pick<ServerConfig, K>;
}

function parseEnvironment<S extends z.ZodType>(
  schema: S,
  env: Record<string, string | undefined>,
): z.output<S> {
  const parsed = safeParseWorded(schema, env);
  if (!parsed.success) {
    const errors = issuesToLocations(parsed.error.issues);
    throw new NormserveError(
      'SERVER_CONFIG_INVALID',
      `invalid configuration: ${describeLocations(errors)}`,
      { errors },
    );
  }
  return parsed.data;
}

/**
 * Helpers of the admin and fault tests: an app whose pino logger writes into memory (so tests can
 * read every log line) and whose registry reports each swap, upload bodies in the three formats,
 * the sha256 the service records, safetensors tensors of a version on disk, predictions.
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { readSafetensors } from '../../src/checkpoint/index.js';
import { buildApp } from '../../src/http/app.js';
import type { AppInstance } from '../../src/http/app-types.js';
import type { RateLimitCounter } from '../../src/http/fixed-window-counter.js';
import { ServiceMetrics } from '../../src/http/metrics.js';
import {
  createServices,
  ModelRegistry,
  type ModelSnapshot,
  parseServerConfig,
  type ServerConfig,
} from '../../src/service/index.js';
import { ADMIN_TOKEN, type MODEL_SOURCES, makeRepository } from './app.js';
import { TEST_ENGINE } from './engine.js';

export { ADMIN_TOKEN };

/** The Authorization header of the admin routes. */
export const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` } as const;

/** One change of a model's active version, as the registry reported it. */
export interface ActiveChange {
  /** performance.now() when the snapshot naming it was installed. */
  at: number;
  model: string;
  active: number | undefined;
}

export interface LoggedApp {
  app: AppInstance;
  registry: ModelRegistry;
  repository: string;
  config: ServerConfig;
  /** Every log line written so far (pino's JSON lines, as text), app and registry alike. */
  logs: string[];
  /** Every snapshot swap of the registry, in order. */
  changes: ActiveChange[];
  close(): Promise<void>;
}

/**
 * The real app, built like cli/server.ts builds it (pino with the same redaction), but with its
 * logger writing into `logs` at `level` (default trace: every line there is) and the registry
 * logging there too and reporting its swaps into `changes`.
 */
export async function makeLoggedApp(
  options: {
    models?: (keyof typeof MODEL_SOURCES)[];
    repository?: string;
    env?: Record<string, string>;
    level?: pino.Level;
    /** The admin rate limit's counter (default: the app's own). */
    rateLimitCounter?: RateLimitCounter;
    /** How long a write of an active-version record waits for its lock (default 60 s). */
    activeRecordLockWaitMs?: number;
    /**
     * A batching delay past BATCH_MAX_DELAY_US's bound (1 s), for tests whose batches must wait
     * until the test flushes them, however slow the machine.
     */
    batchMaxDelayUs?: number;
  } = {},
): Promise<LoggedApp> {
  const repository = options.repository ?? makeRepository(options.models);
  const logs: string[] = [];
  const changes: ActiveChange[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line !== '') logs.push(line);
      callback();
    },
  });
  const level = options.level ?? 'trace';
  const config = parseServerConfig({
    MODEL_REPOSITORY: repository,
    ADMIN_TOKEN,
    MODEL_POLL_INTERVAL_MS: '0',
    ENGINE: TEST_ENGINE,
    LOG_LEVEL: level,
    ...options.env,
  });
  const logger = pino({ level, redact: ['req.headers.authorization'] }, stream);
  const registry = new ModelRegistry(repository, {
    maxBatchSize: config.MAX_BATCH_SIZE,
    engine: config.ENGINE,
    engineThreads: config.ENGINE_THREADS,
    log: logger,
    activeRecordLockWaitMs: options.activeRecordLockWaitMs,
    onChange: (snapshot: ModelSnapshot) =>
      changes.push({ at: performance.now(), model: snapshot.name, active: snapshot.active }),
  });
  await registry.refresh();
  const metrics = new ServiceMetrics({ defaultMetrics: false });
  // The batching delay past the schema's bound reaches the services only, never the parsed config.
  const services = createServices({
    config:
      options.batchMaxDelayUs === undefined
        ? config
        : { ...config, BATCH_MAX_DELAY_US: options.batchMaxDelayUs },
    registry,
    metrics,
    log: logger,
  });
  const app = await buildApp({
    ...services,
    config,
    registry,
    metrics,
    adminToken: config.ADMIN_TOKEN ?? ADMIN_TOKEN,
    version: '0.0.0-test',
    logger,
    ...(options.rateLimitCounter ? { rateLimitCounter: options.rateLimitCounter } : {}),
  });
  await app.ready();
  return {
    app,
    registry,
    repository,
    config,
    logs,
    changes,
    close: async () => {
      await app.close();
      registry.close();
      if (!options.repository) rmSync(repository, { recursive: true, force: true });
    },
  };
}

/** Rows as little-endian float32, back to back (the `application/octet-stream` upload). */
export function float32Body(rows: readonly (readonly number[])[]): Buffer {
  const width = rows[0]?.length ?? 0;
  const bytes = Buffer.alloc(rows.length * width * 4);
  rows.forEach((row, r) => {
    row.forEach((v, c) => {
      bytes.writeFloatLE(v, (r * width + c) * 4);
    });
  });
  return bytes;
}

/** Rows as `application/x-ndjson`: one JSON array per line. */
export function ndjsonBody(rows: readonly (readonly number[])[]): string {
  return `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;
}

/** sha256 of the rows as little-endian float32 (what provenance.data_sha256 records). */
export function rowsSha256(rows: readonly (readonly number[])[]): string {
  return createHash('sha256').update(float32Body(rows)).digest('hex');
}

/** The tensors of `<repository>/<model>/<version>/model.safetensors`: name → raw LE bytes. */
export function versionTensors(
  repository: string,
  model: string,
  version: number,
): Map<string, { shape: number[]; bytes: Uint8Array; values: Float32Array | undefined }> {
  const file = readSafetensors(
    new Uint8Array(readFileSync(join(repository, model, String(version), 'model.safetensors'))),
    'model.safetensors',
  );
  const out = new Map<
    string,
    { shape: number[]; bytes: Uint8Array; values: Float32Array | undefined }
  >();
  for (const [name, t] of file.tensors) {
    const values =
      t.dtype === 'F32'
        ? new Float32Array(t.bytes.slice().buffer, 0, t.bytes.length / 4)
        : undefined;
    out.set(name, { shape: [...t.shape], bytes: t.bytes, values });
  }
  return out;
}

/** `<repository>/<model>/<version>/config.json`, parsed. */
export function versionConfig(
  repository: string,
  model: string,
  version: number,
): Record<string, unknown> & { provenance?: Record<string, unknown> } {
  return JSON.parse(
    readFileSync(join(repository, model, String(version), 'config.json'), 'utf8'),
  ) as Record<string, unknown>;
}

export interface Prediction {
  res: LightMyRequestResponse;
  model_version: number;
  predictions: number[][];
  labels: string[];
}

/** TF Serving predict of `rows` on the active version, or on `version`. */
export async function predictRows(
  app: AppInstance,
  model: string,
  rows: readonly (readonly number[])[],
  version?: number,
  headers: Record<string, string> = {},
): Promise<Prediction> {
  const url =
    version === undefined
      ? `/v1/models/${model}:predict`
      : `/v1/models/${model}/versions/${version}:predict`;
  const res = await app.inject({
    method: 'POST',
    url,
    headers,
    payload: { instances: rows as number[][] },
  });
  if (res.statusCode !== 200) throw new Error(`predict ${url}: ${res.statusCode} ${res.body}`);
  const body = res.json<{ model_version: number; predictions: number[][]; labels: string[] }>();
  return { res, ...body };
}

/** Fraction of labels equal to the true classes. */
export function labelAccuracy(labels: readonly string[], truth: readonly number[]): number {
  let hits = 0;
  labels.forEach((l, i) => {
    if (Number(l) === truth[i]) hits++;
  });
  return hits / truth.length;
}

/** Softmax of each row of a flat [rows, cols] array, in float64. */
export function softmax64(logits: readonly number[], cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < logits.length / cols; r++) {
    const row = logits.slice(r * cols, (r + 1) * cols);
    const max = Math.max(...row);
    const exps = row.map((v) => Math.exp(v - max));
    const sum = exps.reduce((a, b) => a + b, 0);
    for (const e of exps) out.push(e / sum);
  }
  return out;
}

/** Polls `check` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 20_000,
  intervalMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** The problem+json assertion of the HTTP tests, shared. */
export { expectProblem, type ProblemBody } from '../http/http-helpers.js';

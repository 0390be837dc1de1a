import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Task } from '../checkpoint/index.js';
import { type ErrorLocation, NormserveError } from '../errors/index.js';
import type { CompiledModel, StatisticsProbe } from '../inference/index.js';
import { type Sliced, softmaxRows } from '../nn/index.js';
import { type CallerSignal, callerGone } from './caller-signal.js';
import { InputShape } from './input-shape.js';
import type { AvailableVersion, ModelRegistry } from './model-registry.js';
import { float32Rows, type RowSource } from './row-source.js';
import type { TrafficObserver } from './traffic-observer.js';

export interface PredictInput {
  model: string;
  /** Explicit version, or undefined for the active one. */
  version?: number | undefined;
  /**
   * One sample per element, flat or nested by the model's input shape (checked here against the
   * version that serves the request: src/service/input-shape.ts).
   */
  rows: readonly unknown[];
  /** false runs the unfused reference path (debugging). */
  fused?: boolean;
  /** Name of the rows in error paths, e.g. `instances`. */
  field?: string;
}

export interface PredictOutput {
  model: string;
  version: number;
  task: Task;
  rows: number;
  outputWidth: number;
  /** Raw model outputs [rows, outputWidth] (logits for classification). */
  outputs: Float32Array;
  /** Softmax of the logits (classification only). */
  probabilities: Float32Array | undefined;
  /** Predicted label per row (classification only). */
  labels: string[] | undefined;
  /** Compute time of the engine call that computed these rows (the whole batch's). */
  computeMs: number;
  /** Rows of that engine call: this request's alone, or a dynamic batch's. */
  batchRows: number;
  /** Time spent queued for a dynamic batch (0 when not batched). */
  queueMs: number;
  /**
   * This request's rows whose outputs are not finite (a row of values near 1e38 overflows inside
   * the network), the first MAX_LISTED_ROWS of them: such a request is refused
   * (checkFiniteOutputs), so none of its rows was shown to the traffic observer.
   */
  overflowRows: readonly number[];
}

/** Rows named in one error document at most. */
const MAX_LISTED_ROWS = 10;
const NO_ROWS: readonly number[] = Object.freeze([]);

/** The row limit of one prediction request, as its 413 states it. */
export const batchLimit = (maxRows: number): string =>
  `at most ${maxRows} rows per request (MAX_BATCH_SIZE)`;

/** The 413 BATCH_TOO_LARGE naming one place: `message` starts with batchLimit's words. */
export function batchTooLarge(path: string, message: string): NormserveError {
  return new NormserveError('BATCH_TOO_LARGE', `${path}: ${message}`, {
    errors: [{ path, message }],
  });
}

/**
 * More rows than MAX_BATCH_SIZE is a 413 BATCH_TOO_LARGE (not a 400): the data is fine, the
 * client should split the batch.
 */
export function checkBatchSize(path: string, rows: number, maxRows: number): void {
  if (rows > maxRows) throw batchTooLarge(path, `${batchLimit(maxRows)}, got ${rows}`);
}

/**
 * Inputs within the float32 range can still overflow inside the network (a row of values near
 * 1e38); such rows are refused by name instead of answering NaN (JSON null) predictions. The rows
 * were found when the engine call was answered (`overflowRows`), before the traffic observer saw
 * the call, so a refused request never reaches the drift statistics or the traffic sample.
 */
export function checkFiniteOutputs(
  out: Pick<PredictOutput, 'overflowRows'>,
  rowPath: (row: number) => string,
): void {
  if (out.overflowRows.length === 0) return;
  const errors: ErrorLocation[] = out.overflowRows.map((r) => ({
    path: rowPath(r),
    message: "the model's outputs overflow float32 for this row (values too large)",
  }));
  throw new NormserveError('INVALID_INPUT', `${errors[0]!.path}: ${errors[0]!.message}`, {
    errors,
  });
}

/**
 * The rows (at most MAX_LISTED_ROWS) of outputs[from, from + rows) with a non-finite output,
 * counted from `from` (0 is row `from`): PredictOutput.overflowRows, and the library's run.
 */
export function overflowRows(outputs: Float32Array, from: number, rows: number, width: number) {
  let found: number[] | undefined;
  for (let r = 0; r < rows; r++) {
    const base = (from + r) * width;
    for (let k = 0; k < width; k++) {
      if (!Number.isFinite(outputs[base + k]!)) {
        found ??= [];
        found.push(r);
        break;
      }
    }
    if (found && found.length >= MAX_LISTED_ROWS) break;
  }
  return found ?? NO_ROWS;
}

/**
 * Runs the rows of one or more requests on one version as a single engine call: each source is
 * written straight into the engine's input buffer at its offset, the plan runs once, and every
 * request gets a view of exactly its own rows. Rows are independent in eval mode, so a request's
 * results do not depend on what it was batched with. Synchronous (the library, the CLI); the
 * server's path is inferSources.
 */
export function runSources(
  served: AvailableVersion,
  sources: readonly RowSource[],
  fused = true,
  observer?: TrafficObserver,
): PredictOutput[] {
  const call = engineCall(served, sources, fused, observer, false);
  const outputs = served.compiled.forward(call.input, call.total, fused, call.probe);
  return answer(served, sources, call, outputs, performance.now() - call.started);
}

/**
 * The unfused debugging path (`?fused=false`) for the server: every layer's eval forward in plain
 * JavaScript, 20–40 times the fused engine's time (a 4,096-row digits-cnn request: 3 s), run in
 * slices that give the event loop back between them (CompiledModel.referencing), so the other
 * requests, probes and scrapes are answered meanwhile. Its rows are copied into a buffer of
 * their own (other requests run between the slices). A caller that goes between two slices
 * stops the rest (CLIENT_ABORTED); `computeMs` counts the slices, not the turns between them.
 */
export async function inferUnfused(
  served: AvailableVersion,
  source: RowSource,
  caller?: CallerSignal,
): Promise<PredictOutput> {
  const call = engineCall(served, [source], false, undefined, true);
  const spent = { ms: 0 };
  const outputs = await finishSlices(
    timedSlices(served.compiled.referencing(call.input, call.total), spent),
    caller,
  );
  return answer(served, [source], call, outputs, spent.ms)[0]!;
}

/** Runs `work` to its end, a turn of the event loop between slices; stops when `caller` goes. */
async function finishSlices<T>(work: Sliced<T>, caller: CallerSignal | undefined): Promise<T> {
  for (;;) {
    const step = work.next();
    if (step.done) return step.value;
    await nextTurn();
    if (caller?.signal.aborted) throw callerGone();
  }
}

/** `work`, adding the time spent inside its slices to `spent.ms`. */
function* timedSlices<T>(work: Sliced<T>, spent: { ms: number }): Sliced<T> {
  for (;;) {
    const started = performance.now();
    const step = work.next();
    spent.ms += performance.now() - started;
    if (step.done) return step.value;
    yield;
  }
}

/**
 * Whether inferSources computes these sources on the engine's helper thread, where calls wait
 * their turn (first in, first out), rather than at once on the calling thread.
 */
export function offloadsSources(
  served: AvailableVersion,
  sources: readonly RowSource[],
  offload: boolean,
): boolean {
  if (!offload) return false;
  let total = 0;
  let parsed = false;
  for (const source of sources) {
    total += source.rows;
    if (!source.matrix) parsed = true;
  }
  // Only calls with rows parsed from JSON: where requests are JSON, the event loop has their
  // parsing to do meanwhile; float32 bodies leave it idle, and then the split across both threads
  // was faster (bench/README.md: 256-row float32 0.85x offloaded, JSON 1.07x, batched wide 1.20x).
  return parsed && served.compiled.executor.offloads(total);
}

/**
 * runSources for the server: a call with enough work for the engine's helper thread
 * (Executor.offloads) runs there while the event loop keeps reading and answering other requests
 * (the model instance on its own thread, as in Triton and onnxruntime); the promise settles with
 * the same results, bit for bit. Smaller calls (a 1-row request), calls of float32 rows only
 * (binary bodies, gRPC raw contents), and every call without `offload` (ENGINE_ASYNC=off, the
 * default) run synchronously.
 */
export function inferSources(
  served: AvailableVersion,
  sources: readonly RowSource[],
  observer: TrafficObserver | undefined,
  offload: boolean,
): PredictOutput[] | Promise<PredictOutput[]> {
  if (!offloadsSources(served, sources, offload))
    return runSources(served, sources, true, observer);
  const executor = served.compiled.executor;
  const call = engineCall(served, sources, true, observer, true);
  return executor.runAsync(call.input, call.total, call.probe).then((outputs) => {
    // Calls queue first in, first out behind the one in flight; the engine time of this one began
    // when it was made or when the previous one ended, whichever is later.
    const now = performance.now();
    const began = Math.max(call.started, engineFreeAt.get(executor) ?? 0);
    engineFreeAt.set(executor, now);
    return answer(served, sources, call, outputs, now - began);
  });
}

/** When each executor's last asynchronous call was answered (performance.now(), ms). */
const engineFreeAt = new WeakMap<object, number>();

interface EngineCall {
  input: Float32Array;
  total: number;
  started: number;
  watch: TrafficObserver | undefined;
  probe: StatisticsProbe | undefined;
  /** false: the unfused reference path (?fused=false), whose softmax is the float64 reference. */
  fused: boolean;
}

/**
 * The engine call's input and probe: one request of float32 rows runs on them as they are;
 * otherwise the rows of every request are written once into an input matrix, the model's reused
 * one for a synchronous call, a new one for an asynchronous call (which reads it later).
 */
function engineCall(
  served: AvailableVersion,
  sources: readonly RowSource[],
  fused: boolean,
  observer: TrafficObserver | undefined,
  offloaded: boolean,
): EngineCall {
  const compiled = served.compiled;
  let total = 0;
  for (const source of sources) total += source.rows;
  const started = performance.now();
  const input =
    sources.length === 1 && sources[0]!.matrix
      ? sources[0]!.matrix
      : packSources(compiled, sources, total, compiled.inputWidth, offloaded);
  // Live statistics ride along the fused run (the executor's taps), never a second pass.
  const watch = fused ? observer : undefined;
  const probe = watch?.probe(served, total);
  return { input, total, started, watch, probe, fused };
}

/**
 * Softmax, each request's view of its own rows, and the observer, which sees only the requests
 * that will be answered: a request with a row whose outputs are not finite is refused.
 */
function answer(
  served: AvailableVersion,
  sources: readonly RowSource[],
  call: EngineCall,
  outputs: Float32Array,
  engineMs: number,
): PredictOutput[] {
  const config = served.checkpoint.config;
  const width = served.compiled.outputWidth;
  const { total, watch } = call;
  const names = config.task === 'classification' ? config.labels! : undefined;
  const softmaxStarted = performance.now();
  const probabilities = !names
    ? undefined
    : call.fused
      ? served.compiled.executor.softmax(outputs, total, width)
      : softmaxRows(outputs, total, width);
  const computeMs = engineMs + (performance.now() - softmaxStarted);
  const results = new Array<PredictOutput>(sources.length);
  let refused = false;
  let row = 0;
  for (let i = 0; i < sources.length; i++) {
    const rows = sources[i]!.rows;
    const single = sources.length === 1;
    const from = row * width;
    const to = (row + rows) * width;
    const own = single ? outputs : outputs.subarray(from, to);
    const overflow = overflowRows(outputs, row, rows, width);
    if (overflow.length > 0) refused = true;
    // Labels are strings made on first use: binary and gRPC replies of probabilities never ask.
    let labels: string[] | undefined;
    results[i] = {
      model: served.name,
      version: served.version,
      task: config.task,
      rows,
      outputWidth: width,
      outputs: own,
      probabilities: single ? probabilities : probabilities?.subarray(from, to),
      get labels() {
        if (names && !labels) labels = argmaxLabels(own, rows, width, names);
        return labels;
      },
      computeMs,
      batchRows: total,
      queueMs: 0,
      overflowRows: overflow,
    };
    row += rows;
  }
  if (watch) {
    if (!refused) watch.observed(served, call.input, total, outputs, probabilities, call.probe);
    else observeAnswered(served, call, results, outputs, probabilities);
  }
  return results;
}

/**
 * A call with a refused request: the taps summed every row of the call, so its statistics are
 * dropped (`refused`); the rows of the answered requests, copied together, still enter the
 * traffic sample and the recent rows. Rare, so the copies cost nothing that matters.
 */
function observeAnswered(
  served: AvailableVersion,
  call: EngineCall,
  results: readonly PredictOutput[],
  outputs: Float32Array,
  probabilities: Float32Array | undefined,
): void {
  const watch = call.watch!;
  if (call.probe) watch.refused(served, call.probe);
  const inputWidth = served.compiled.inputWidth;
  const width = served.compiled.outputWidth;
  let answered = 0;
  for (const out of results) if (out.overflowRows.length === 0) answered += out.rows;
  if (answered === 0) return;
  const input = new Float32Array(answered * inputWidth);
  const kept = new Float32Array(answered * width);
  const keptProbabilities = probabilities && new Float32Array(answered * width);
  let row = 0;
  let to = 0;
  for (const out of results) {
    if (out.overflowRows.length === 0) {
      input.set(
        call.input.subarray(row * inputWidth, (row + out.rows) * inputWidth),
        to * inputWidth,
      );
      kept.set(outputs.subarray(row * width, (row + out.rows) * width), to * width);
      keptProbabilities?.set(
        probabilities!.subarray(row * width, (row + out.rows) * width),
        to * width,
      );
      to += out.rows;
    }
    row += out.rows;
  }
  watch.observed(served, input, answered, kept, keptProbabilities, undefined);
}

/** The label of each row's largest output (the first of equal ones). */
function argmaxLabels(
  outputs: Float32Array,
  rows: number,
  width: number,
  names: readonly string[],
): string[] {
  const labels = new Array<string>(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * width;
    let best = 0;
    for (let k = 1; k < width; k++) if (outputs[base + k]! > outputs[base + best]!) best = k;
    labels[r] = names[best]!;
  }
  return labels;
}

/** Input matrices by model, grown to the largest batch seen (at most MAX_BATCH_SIZE rows, or one larger dynamic batch). */
const inputMatrices = new WeakMap<CompiledModel, Float32Array>();

function packSources(
  compiled: CompiledModel,
  sources: readonly RowSource[],
  total: number,
  width: number,
  fresh: boolean,
): Float32Array {
  let matrix = fresh ? new Float32Array(total * width) : inputMatrices.get(compiled);
  if (!matrix || matrix.length < total * width) {
    matrix = new Float32Array(total * width);
    inputMatrices.set(compiled, matrix);
  }
  let offset = 0;
  for (const source of sources) {
    source.copyTo(matrix, offset);
    offset += source.rows * width;
  }
  return matrix;
}

/** Runs a batch on one version (the whole batch on the version resolved at the start). */
export function runBatch(
  served: AvailableVersion,
  data: Float32Array,
  rows: number,
  fused = true,
): PredictOutput {
  return runSources(served, [float32Rows(data, rows, served.compiled.inputWidth)], fused)[0]!;
}

const inputShapes = new WeakMap<CompiledModel, InputShape>();

/** How a served version takes its input (shape, flat or nested samples, validation). */
export function inputShapeOf(served: AvailableVersion): InputShape {
  let shape = inputShapes.get(served.compiled);
  if (!shape) {
    shape = new InputShape(served.compiled.inputShape);
    inputShapes.set(served.compiled, shape);
  }
  return shape;
}

/** The predict use case: resolve the version, read the samples against its input shape, run. */
export function predict(registry: ModelRegistry, input: PredictInput): PredictOutput {
  const served = registry.resolve(input.model, input.version);
  const source = inputShapeOf(served).instances(input.rows, input.field ?? 'instances');
  return runSources(served, [source], input.fused ?? true)[0]!;
}

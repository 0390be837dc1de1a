import { type ErrorLocation, NormserveError } from '../errors/index.js';
import type { CompiledModel } from '../inference/index.js';
import { softmaxRows } from '../nn/index.js';
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
  task: 'classification' | 'regression';
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
}

/**
 * More rows than MAX_BATCH_SIZE is a 413 BATCH_TOO_LARGE (not a 400): the data is fine, the
 * client should split the batch.
 */
export function checkBatchSize(path: string, rows: number, maxRows: number): void {
  if (rows > maxRows) {
    const message = `at most ${maxRows} rows per request (MAX_BATCH_SIZE), got ${rows}`;
    throw new NormserveError('BATCH_TOO_LARGE', `${path}: ${message}`, {
      errors: [{ path, message }],
    });
  }
}

/**
 * Inputs within the float32 range can still overflow inside the network (a row of values near
 * 1e38); such rows are refused by name instead of answering NaN (JSON null) predictions.
 */
export function checkFiniteOutputs(
  outputs: Float32Array,
  rows: number,
  width: number,
  rowPath: (row: number) => string,
): void {
  const errors: ErrorLocation[] = [];
  for (let r = 0; r < rows && errors.length < 10; r++) {
    for (let k = 0; k < width; k++) {
      if (!Number.isFinite(outputs[r * width + k]!)) {
        errors.push({
          path: rowPath(r),
          message: "the model's outputs overflow float32 for this row (values too large)",
        });
        break;
      }
    }
  }
  if (errors.length > 0) {
    throw new NormserveError('INVALID_INPUT', `${errors[0]!.path}: ${errors[0]!.message}`, {
      errors,
    });
  }
}

/**
 * Runs the rows of one or more requests on one version as a single engine call: each source is
 * written straight into the engine's input buffer at its offset, the plan runs once, and every
 * request gets a view of exactly its own rows. Rows are independent in eval mode, so a request's
 * results do not depend on what it was batched with.
 */
export function runSources(
  served: AvailableVersion,
  sources: readonly RowSource[],
  fused = true,
  observer?: TrafficObserver,
): PredictOutput[] {
  const config = served.checkpoint.config;
  const compiled = served.compiled;
  const width = compiled.outputWidth;
  const inputWidth = compiled.inputWidth;
  let total = 0;
  for (const source of sources) total += source.rows;
  const started = performance.now();
  // One request of float32 rows runs on them as they are; otherwise the rows of every request are
  // written once into the model's input matrix (reused: the engine call is synchronous).
  const input =
    sources.length === 1 && sources[0]!.matrix
      ? sources[0]!.matrix
      : packSources(compiled, sources, total, inputWidth);
  // Live statistics ride along the fused run (the executor's taps), never a second pass.
  const watch = fused ? observer : undefined;
  const probe = watch?.probe(served, total);
  const outputs = compiled.forward(input, total, fused, probe);
  const names = config.task === 'classification' ? config.labels! : undefined;
  const probabilities = names ? softmaxRows(outputs, total, width) : undefined;
  const computeMs = performance.now() - started;
  watch?.observed(served, input, total, outputs, probabilities, probe);
  const results = new Array<PredictOutput>(sources.length);
  let row = 0;
  for (let i = 0; i < sources.length; i++) {
    const rows = sources[i]!.rows;
    const single = sources.length === 1;
    const from = row * width;
    const to = (row + rows) * width;
    const own = single ? outputs : outputs.subarray(from, to);
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
    };
    row += rows;
  }
  return results;
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
): Float32Array {
  let matrix = inputMatrices.get(compiled);
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

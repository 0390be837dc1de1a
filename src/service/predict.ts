import { type ErrorLocation, NormserveError } from '../errors/index.js';
import { softmaxRows } from '../nn/index.js';
import type { AvailableVersion, ModelRegistry } from './model-registry.js';

export interface PredictInput {
  model: string;
  /** Explicit version, or undefined for the active one. */
  version?: number | undefined;
  /** Rows of numbers, already checked to be finite by the caller's schema. */
  rows: readonly (readonly number[])[];
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
  computeMs: number;
}

/** Every row must have exactly `width` values; reports up to 10 offending rows by path. */
export function checkRowWidths(
  rows: readonly (readonly number[])[],
  width: number,
  field: string,
): void {
  const errors: ErrorLocation[] = [];
  for (let r = 0; r < rows.length && errors.length < 10; r++) {
    if (rows[r]!.length !== width) {
      errors.push({
        path: `${field}[${r}]`,
        message: `expected ${width} values, got ${rows[r]!.length}`,
      });
    }
  }
  if (errors.length > 0) {
    throw new NormserveError('INVALID_INPUT', `${errors[0]!.path}: ${errors[0]!.message}`, {
      errors,
    });
  }
}

/** Packs validated rows into a float32 [rows, width] matrix. */
export function packRows(rows: readonly (readonly number[])[], width: number): Float32Array {
  const data = new Float32Array(rows.length * width);
  for (let r = 0; r < rows.length; r++) data.set(rows[r]!, r * width);
  return data;
}

/** Runs a batch on one version (the whole batch on the version resolved at the start). */
export function runBatch(
  served: AvailableVersion,
  data: Float32Array,
  rows: number,
  fused = true,
): PredictOutput {
  const config = served.checkpoint.config;
  const compiled = served.compiled;
  const started = performance.now();
  const outputs = compiled.forward(data, rows, fused);
  const width = compiled.outputWidth;
  let probabilities: Float32Array | undefined;
  let labels: string[] | undefined;
  if (config.task === 'classification') {
    probabilities = softmaxRows(outputs, rows, width);
    labels = new Array<string>(rows);
    for (let r = 0; r < rows; r++) {
      let best = 0;
      for (let k = 1; k < width; k++)
        if (outputs[r * width + k]! > outputs[r * width + best]!) best = k;
      labels[r] = config.labels![best]!;
    }
  }
  return {
    model: served.name,
    version: served.version,
    task: config.task,
    rows,
    outputWidth: width,
    outputs,
    probabilities,
    labels,
    computeMs: performance.now() - started,
  };
}

/** The predict use case: resolve the version, check widths, run. */
export function predict(registry: ModelRegistry, input: PredictInput): PredictOutput {
  const served = registry.resolve(input.model, input.version);
  const width = served.compiled.inputWidth;
  checkRowWidths(input.rows, width, input.field ?? 'instances');
  return runBatch(served, packRows(input.rows, width), input.rows.length, input.fused ?? true);
}

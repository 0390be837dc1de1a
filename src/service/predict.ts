import { softmaxRows } from '../nn/index.js';
import { InputShape } from './input-shape.js';
import type { AvailableVersion, ModelRegistry } from './model-registry.js';

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
  computeMs: number;
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

/** How a served version takes its input (shape, flat or nested samples, validation). */
export function inputShapeOf(served: AvailableVersion): InputShape {
  return new InputShape(served.compiled.inputShape);
}

/** The predict use case: resolve the version, read the samples against its input shape, run. */
export function predict(registry: ModelRegistry, input: PredictInput): PredictOutput {
  const served = registry.resolve(input.model, input.version);
  const data = inputShapeOf(served).readInstances(input.rows, input.field ?? 'instances');
  return runBatch(served, data, input.rows.length, input.fused ?? true);
}

/**
 * Loading the digits data and checkpoints for the recalibration suites: files are read here with
 * node:fs (src/recalibration itself never touches the file system).
 */
import { readFileSync } from 'node:fs';
import {
  networkFromCheckpoint,
  parseModelConfig,
  readSafetensors,
  safetensorsToStateDict,
} from '../../../src/checkpoint/index.js';
import {
  BatchNorm,
  type FeatureTransform,
  namedModules,
  numelOf,
  type Sequential,
} from '../../../src/nn/index.js';
import { expectStatisticsClose } from './statistics-close.js';

const ROOT = new URL('../../../', import.meta.url);

/** The digits test rows (the project's documented split: rows 1437..1796). */
export const TEST_ROWS = { start: 1437, end: 1797 } as const;
export const WIDTH = 64;

export interface TensorJson {
  shape: number[];
  data: number[];
}

/** A JSON file under test/fixtures/. */
export function readFixture<T>(relative: string): T {
  return JSON.parse(readFileSync(new URL(`test/fixtures/${relative}`, ROOT), 'utf8')) as T;
}

/** Raw pixels (0..16) and labels of rows [start, end) of data/digits/digits.csv. */
export function readDigitRows(
  start: number = TEST_ROWS.start,
  end: number = TEST_ROWS.end,
): { pixels: Float32Array; labels: number[] } {
  const lines = readFileSync(new URL('data/digits/digits.csv', ROOT), 'utf8')
    .trim()
    .split('\n')
    .slice(1 + start, 1 + end);
  const pixels = new Float32Array(lines.length * WIDTH);
  const labels: number[] = [];
  lines.forEach((line, r) => {
    const cells = line.split(',').map(Number);
    pixels.set(cells.slice(0, WIDTH), r * WIDTH);
    labels.push(cells[WIDTH]!);
  });
  return { pixels, labels };
}

/** The project's "night" shift x' = 16·(0.35·(x/16) + 0.1), in float64, stored as float32. */
export function nightShift(pixels: Float32Array): Float32Array {
  return pixels.map((x) => 16 * (0.35 * (x / 16) + 0.1));
}

export interface LoadedModel {
  network: Sequential;
  inputTransform: FeatureTransform | undefined;
  /** Values per row (the product of inputShape). */
  inputWidth: number;
  inputShape: number[];
}

/** A fresh network (eval mode) from a checkpoint directory relative to the repository root. */
export function loadModel(dir: string): LoadedModel {
  const base = new URL(`${dir.replace(/\/$/, '')}/`, ROOT);
  const config = parseModelConfig(JSON.parse(readFileSync(new URL('config.json', base), 'utf8')));
  const file = readSafetensors(
    new Uint8Array(readFileSync(new URL('model.safetensors', base))),
    'model.safetensors',
  );
  const network = networkFromCheckpoint(config, safetensorsToStateDict(file, 'model.safetensors'));
  return {
    network,
    inputTransform: config.input_transform,
    inputWidth: numelOf(config.input_shape),
    inputShape: config.input_shape,
  };
}

/** Index of the largest value of each row of a [rows, cols] array. */
export function argmaxRows(values: Float32Array, cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < values.length / cols; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (values[r * cols + c]! > values[r * cols + best]!) best = c;
    out.push(best);
  }
  return out;
}

export function accuracy(predictions: readonly number[], labels: readonly number[]): number {
  let hits = 0;
  predictions.forEach((p, i) => {
    if (p === labels[i]) hits++;
  });
  return hits / labels.length;
}

/** The BatchNorm at `path` of the network (a state_dict prefix such as `6` or `3.layers.1`). */
export function batchNorm(network: Sequential, path: string): BatchNorm {
  const m = new Map(namedModules(network)).get(path);
  if (!(m instanceof BatchNorm)) throw new Error(`${path} is not a BatchNorm`);
  return m;
}

/** A BatchNorm's running statistics close to PyTorch's float64 ones (a fixture's): statistics-close.ts. */
export function expectFloat64StatisticsClose(
  network: Sequential,
  expected: { path: string; running_mean_float64: TensorJson; running_var_float64: TensorJson },
): void {
  const bn = batchNorm(network, expected.path);
  expectStatisticsClose(
    { mean: bn.runningMean.data, variance: bn.runningVar.data },
    { mean: expected.running_mean_float64.data, variance: expected.running_var_float64.data },
    bn.eps,
    `${expected.path} (float64 reference)`,
  );
}

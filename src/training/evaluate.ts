import type { Task } from '../checkpoint/index.js';
import { crossEntropy, mseLoss, type Sequential, Tensor } from '../nn/index.js';
import type { Dataset } from './dataset.js';

export interface Evaluation {
  loss: number;
  /** Fraction of rows whose argmax is the target (classification only). */
  accuracy: number | undefined;
  rows: number;
}

/** Index of the largest value in row r of a [rows, width] matrix (first one on ties). */
export function argmaxRow(values: Float32Array, r: number, width: number): number {
  let best = 0;
  for (let k = 1; k < width; k++) if (values[r * width + k]! > values[r * width + best]!) best = k;
  return best;
}

/** Rows per forward pass of an evaluation: its arrays' size (training's memory estimate). */
export const EVAL_CHUNK_ROWS = 1024;

/** Mean loss and accuracy of the network in eval mode, in chunks (eval rows are independent). */
export function evaluate(
  network: Sequential,
  data: Dataset,
  task: Task,
  inputShape: readonly number[] = [data.width],
  chunkRows = EVAL_CHUNK_ROWS,
): Evaluation {
  const wasTraining = network.training;
  network.eval();
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < data.rows; start += chunkRows) {
    const end = Math.min(data.rows, start + chunkRows);
    const n = end - start;
    const x = new Tensor(data.features.subarray(start * data.width, end * data.width), [
      n,
      ...inputShape,
    ]);
    const out = network.forward(x);
    const targets = data.targets.subarray(start, end);
    if (task === 'classification') {
      lossSum += crossEntropy(out, targets).loss * n;
      const width = out.shape[1]!;
      for (let r = 0; r < n; r++) if (argmaxRow(out.data, r, width) === targets[r]) correct++;
    } else {
      lossSum += mseLoss(out, new Tensor(targets, [n, 1])).loss * n;
    }
  }
  network.train(wasTraining);
  return {
    loss: data.rows > 0 ? lossSum / data.rows : Number.NaN,
    accuracy: task === 'classification' && data.rows > 0 ? correct / data.rows : undefined,
    rows: data.rows,
  };
}

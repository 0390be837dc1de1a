import { NormserveError } from '../errors/index.js';
import { Tensor } from './tensor.js';

export interface LossResult {
  /** Mean loss over the batch. */
  loss: number;
  /** Gradient of the mean loss with respect to the loss's input. */
  grad: Tensor;
}

/**
 * Softmax cross-entropy over logits [N, C] and class indices, mean over the batch, as
 * torch.nn.functional.cross_entropy. With label smoothing ε the target distribution is
 * q = (1 − ε)·onehot + ε/C, so loss = −Σ_c q_c·log p_c and ∂loss/∂z = p − q (÷N for the mean).
 * log p is computed as z − logsumexp(z), with the maximum subtracted first, so large logits
 * neither overflow nor lose the small probabilities.
 */
export function crossEntropy(
  logits: Tensor,
  targets: ArrayLike<number>,
  labelSmoothing = 0,
): LossResult {
  const [n, c] = logits.shape as [number, number];
  if (logits.shape.length !== 2 || targets.length !== n) {
    throw new NormserveError(
      'SHAPE_MISMATCH',
      `cross-entropy needs logits [N, C] and N targets, got [${logits.shape}] and ${targets.length}`,
    );
  }
  if (!(labelSmoothing >= 0 && labelSmoothing <= 1))
    throw new RangeError(`label_smoothing must be in [0, 1], got ${labelSmoothing}`);
  const z = logits.data;
  const grad = new Float32Array(z.length);
  let total = 0;
  for (let r = 0; r < n; r++) {
    const base = r * c;
    const target = targets[r]!;
    if (!Number.isInteger(target) || target < 0 || target >= c) {
      throw new NormserveError(
        'SHAPE_MISMATCH',
        `target ${target} is out of bounds for ${c} classes`,
      );
    }
    let max = -Infinity;
    for (let k = 0; k < c; k++) max = Math.max(max, z[base + k]!);
    let sumExp = 0;
    for (let k = 0; k < c; k++) sumExp += Math.exp(z[base + k]! - max);
    const logSumExp = max + Math.log(sumExp);
    let smooth = 0;
    for (let k = 0; k < c; k++) {
      const logP = z[base + k]! - logSumExp;
      smooth -= logP;
      const q = (k === target ? 1 - labelSmoothing : 0) + labelSmoothing / c;
      grad[base + k] = (Math.exp(logP) - q) / n;
    }
    const nll = logSumExp - z[base + target]!;
    total += (1 - labelSmoothing) * nll + (labelSmoothing / c) * smooth;
  }
  return { loss: total / n, grad: new Tensor(grad, logits.shape) };
}

/** One row's exponentials, reused across calls (grown to the widest row seen). */
let rowExps = new Float64Array(16);

/**
 * Softmax of each row of [N, C] logits, in float64 with the maximum subtracted. Each exponential
 * is computed once and kept in float64 for the division, so the result is the same as computing
 * it again (Math.exp is a function of its argument) at half the calls: the exponentials were a
 * twentieth of a 256-row binary predict's server time (bench/README.md).
 */
export function softmaxRows(
  logits: Float32Array,
  n: number,
  c: number,
  out = new Float32Array(n * c),
): Float32Array {
  if (rowExps.length < c) rowExps = new Float64Array(c);
  const exps = rowExps;
  for (let r = 0; r < n; r++) {
    const base = r * c;
    let max = -Infinity;
    for (let k = 0; k < c; k++) max = Math.max(max, logits[base + k]!);
    let sum = 0;
    for (let k = 0; k < c; k++) {
      const e = Math.exp(logits[base + k]! - max);
      exps[k] = e;
      sum += e;
    }
    for (let k = 0; k < c; k++) out[base + k] = exps[k]! / sum;
  }
  return out;
}

import { NormserveError } from '../errors/index.js';
import type { LossResult } from './cross-entropy.js';
import { Tensor } from './tensor.js';

/** torch.nn.functional.mse_loss with reduction='mean': mean((y − t)²); ∂/∂y = 2(y − t)/numel. */
export function mseLoss(prediction: Tensor, target: Tensor): LossResult {
  if (prediction.numel !== target.numel) {
    throw new NormserveError(
      'SHAPE_MISMATCH',
      `mse_loss needs equal sizes, got [${prediction.shape}] and [${target.shape}]`,
    );
  }
  const y = prediction.data;
  const t = target.data;
  const n = y.length;
  const grad = new Float32Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const d = y[i]! - t[i]!;
    sum += d * d;
    grad[i] = (2 * d) / n;
  }
  return { loss: sum / n, grad: new Tensor(grad, prediction.shape) };
}

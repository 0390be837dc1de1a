import { Adam, AdamW, type Kernels, type Optimizer, type Parameter, SGD } from '../nn/index.js';
import type { OptimizerConfig } from './training-config.js';

/**
 * The optimizer a config names, with PyTorch's argument names mapped to the engine's, stepping on
 * `kernels` (the parameters' own).
 */
export function buildOptimizer(
  params: readonly Parameter[],
  config: OptimizerConfig,
  kernels?: Kernels,
): Optimizer {
  switch (config.type) {
    case 'adamw':
      return new AdamW(params, {
        lr: config.lr,
        betas: config.betas,
        eps: config.eps,
        weightDecay: config.weight_decay,
        kernels,
      });
    case 'adam':
      return new Adam(params, {
        lr: config.lr,
        betas: config.betas,
        eps: config.eps,
        weightDecay: config.weight_decay,
        kernels,
      });
    case 'sgd':
      return new SGD(params, {
        lr: config.lr,
        momentum: config.momentum,
        dampening: config.dampening,
        nesterov: config.nesterov,
        weightDecay: config.weight_decay,
        kernels,
      });
  }
}

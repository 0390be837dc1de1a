import type { Kernels } from './kernels.js';
import type { Parameter } from './parameter.js';
import { referenceKernels } from './reference-kernels.js';

/** Common ground of the optimizers: the parameters, the learning rate a schedule sets, zeroGrad. */
export abstract class Optimizer {
  readonly params: readonly Parameter[];
  lr: number;
  /** Steps taken so far (PyTorch's per-parameter `step`, equal for all parameters here). */
  stepCount = 0;

  /** Where the steps run (nn/kernels.ts): the parameters' kernels, so their state lives there too. */
  readonly kernels: Kernels;

  constructor(params: readonly Parameter[], lr: number, kernels: Kernels = referenceKernels) {
    if (!(lr >= 0)) throw new RangeError(`Invalid learning rate: ${lr}`);
    this.params = params;
    this.lr = lr;
    this.kernels = kernels;
  }

  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  abstract step(): void;
}

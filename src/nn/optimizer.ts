import type { Parameter } from './parameter.js';

/** Common ground of the optimizers: the parameters, the learning rate a schedule sets, zeroGrad. */
export abstract class Optimizer {
  readonly params: readonly Parameter[];
  lr: number;
  /** Steps taken so far (PyTorch's per-parameter `step`, equal for all parameters here). */
  stepCount = 0;

  constructor(params: readonly Parameter[], lr: number) {
    if (!(lr >= 0)) throw new RangeError(`Invalid learning rate: ${lr}`);
    this.params = params;
    this.lr = lr;
  }

  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  abstract step(): void;
}

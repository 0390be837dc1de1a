import type { Kernels } from './kernels.js';

/**
 * One of a layer's per-step arrays (an output, an input gradient, a dropout mask), kept between
 * training steps when its module reuses arrays (Module.reuseArrays; the training job's loop) so
 * that a step allocates nothing and the WebAssembly kernels find their operands in their own
 * memory instead of copying them in and out. Without reuse, every call gets a new zero-filled
 * array, so a caller may keep what forward and backward return.
 *
 * A reused array holds the previous step's values: whoever takes it overwrites every element.
 */
export class StepArray {
  private block: Float32Array | undefined;
  private owner: Kernels | undefined;
  private view: Float32Array | undefined;

  /** `length` values: new and zero-filled, or with `reuse` this array's (stale) values. */
  take(length: number, kernels: Kernels, reuse: boolean): Float32Array {
    if (!reuse) return new Float32Array(length);
    if (this.owner !== kernels || this.block === undefined || this.block.length < length) {
      // Grown, never shrunk: a smaller last batch of an epoch views the same block.
      this.block = kernels.allocate(length);
      this.owner = kernels;
      this.view = undefined;
    }
    if (this.view?.length !== length) this.view = this.block.subarray(0, length);
    return this.view;
  }

  /** Lets go of the kept array (and with it, of the kernels' memory it lives in). */
  release(): void {
    this.block = undefined;
    this.owner = undefined;
    this.view = undefined;
  }
}

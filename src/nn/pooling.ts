import { NormserveError } from '../errors/index.js';
import type { Pair } from './conv-geometry.js';
import { checkImageInput, geometryFor } from './conv2d.js';
import { Module, requireCache } from './module.js';
import {
  adaptivePoolWindows,
  maxPoolKernel,
  meanPoolBackward,
  meanPoolKernel,
  type PoolWindows,
  poolWindows,
} from './pool-windows.js';
import { Tensor } from './tensor.js';

export interface Pool2dOptions {
  kernelSize: Pair;
  /** Defaults to the kernel size, as in PyTorch. */
  stride?: Pair | undefined;
  padding?: Pair;
}

/** PyTorch refuses padding larger than half the kernel ("pad should be at most half of kernel size"). */
export function checkPoolPadding(kind: string, kernel: Pair, padding: Pair): void {
  if (padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2) {
    throw new NormserveError(
      'SHAPE_MISMATCH',
      `${kind}: padding [${padding}] must be at most half of the kernel size [${kernel}]`,
    );
  }
}

/** Shared by the three 2-d pooling layers: windows per input size, planes of [N·C, H, W]. */
abstract class Pool2d extends Module {
  private cache: { input: Tensor; windows: PoolWindows; argmax?: Int32Array } | undefined;

  protected abstract windowsFor(shape: readonly number[]): PoolWindows;
  protected abstract readonly usesMax: boolean;

  forward(input: Tensor): Tensor {
    const [n, c] = checkImageInput(this.kind, input.shape);
    const windows = this.windowsFor(input.shape);
    const planes = n * c;
    const out = new Float32Array(planes * windows.outH * windows.outW);
    let argmax: Int32Array | undefined;
    if (this.usesMax) {
      argmax = new Int32Array(out.length);
      maxPoolKernel(input.data, planes, windows, out, argmax);
    } else {
      meanPoolKernel(input.data, planes, windows, out);
    }
    this.cache = { input, windows, ...(argmax ? { argmax } : {}) };
    return new Tensor(out, [n, c, windows.outH, windows.outW]);
  }

  backward(gradOutput: Tensor): Tensor {
    const { input, windows, argmax } = requireCache(this.cache, this.kind);
    const dx = new Float64Array(input.numel);
    const dy = gradOutput.data;
    if (argmax) {
      // The gradient goes to the element that won the max (ATen's max_pool2d backward).
      for (let i = 0; i < dy.length; i++) {
        const at = argmax[i]!;
        if (at >= 0) dx[at] = dx[at]! + dy[i]!;
      }
    } else {
      meanPoolBackward(dy, input.shape[0]! * input.shape[1]!, windows, dx);
    }
    return new Tensor(Float32Array.from(dx), input.shape);
  }
}

/** torch.nn.MaxPool2d (dilation 1, ceil_mode=False): padding counts as −∞. */
export class MaxPool2d extends Pool2d {
  readonly kind = 'MaxPool2d';
  protected readonly usesMax = true;
  readonly kernelSize: Pair;
  readonly stride: Pair;
  readonly padding: Pair;

  constructor(options: Pool2dOptions) {
    super();
    this.kernelSize = options.kernelSize;
    this.stride = options.stride ?? options.kernelSize;
    this.padding = options.padding ?? [0, 0];
    checkPoolPadding(this.kind, this.kernelSize, this.padding);
  }

  protected windowsFor(shape: readonly number[]): PoolWindows {
    return poolWindows(
      geometryFor(this.kind, shape, this.kernelSize, this.stride, this.padding),
      false,
    );
  }
}

/** torch.nn.AvgPool2d (ceil_mode=False, no divisor_override). */
export class AvgPool2d extends Pool2d {
  readonly kind = 'AvgPool2d';
  protected readonly usesMax = false;
  readonly kernelSize: Pair;
  readonly stride: Pair;
  readonly padding: Pair;
  readonly countIncludePad: boolean;

  constructor(options: Pool2dOptions & { countIncludePad?: boolean }) {
    super();
    this.kernelSize = options.kernelSize;
    this.stride = options.stride ?? options.kernelSize;
    this.padding = options.padding ?? [0, 0];
    this.countIncludePad = options.countIncludePad ?? true;
    checkPoolPadding(this.kind, this.kernelSize, this.padding);
  }

  protected windowsFor(shape: readonly number[]): PoolWindows {
    return poolWindows(
      geometryFor(this.kind, shape, this.kernelSize, this.stride, this.padding),
      this.countIncludePad,
    );
  }
}

/** torch.nn.AdaptiveAvgPool2d: output [H_out, W_out] whatever the input size. */
export class AdaptiveAvgPool2d extends Pool2d {
  readonly kind = 'AdaptiveAvgPool2d';
  protected readonly usesMax = false;
  readonly outputSize: Pair;

  constructor(options: { outputSize: Pair }) {
    super();
    this.outputSize = options.outputSize;
  }

  protected windowsFor(shape: readonly number[]): PoolWindows {
    return adaptivePoolWindows(shape[2]!, shape[3]!, this.outputSize[0], this.outputSize[1]);
  }
}

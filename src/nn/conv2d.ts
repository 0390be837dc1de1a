import { NormserveError } from '../errors/index.js';
import { type Pair, type WindowGeometry, windowGeometry } from './conv-geometry.js';
import { gemmABt } from './gemm.js';
import { col2imAdd, im2col, im2colTransposed, im2colWidth } from './im2col.js';
import { requireCache } from './module.js';
import type { Rng } from './rng.js';
import { Tensor } from './tensor.js';
import { WeightedLayer } from './weighted-layer.js';

export interface Conv2dOptions {
  inChannels: number;
  outChannels: number;
  kernelSize: Pair;
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  bias?: boolean;
}

/** Input [N, C, H, W] → [N, C, H, W] checks shared by the window layers (Conv2d, pooling). */
export function checkImageInput(
  kind: string,
  shape: readonly number[],
  channels?: number,
): [number, number, number, number] {
  if (shape.length !== 4 || (channels !== undefined && shape[1] !== channels)) {
    throw new NormserveError(
      'SHAPE_MISMATCH',
      `${kind} expects input [N, ${channels ?? 'C'}, H, W], got [${shape}]`,
    );
  }
  return [shape[0]!, shape[1]!, shape[2]!, shape[3]!];
}

/** The geometry of a window layer on an input, refusing windows larger than the padded input. */
export function geometryFor(
  kind: string,
  shape: readonly number[],
  kernel: Pair,
  stride: Pair,
  padding: Pair,
  dilation: Pair = [1, 1],
): WindowGeometry {
  const g = windowGeometry(shape[1]!, shape[2]!, shape[3]!, kernel, stride, padding, dilation);
  if (g.outH < 1 || g.outW < 1) {
    throw new NormserveError(
      'SHAPE_MISMATCH',
      `${kind}: the output of input [${shape}] would be ${g.outH}×${g.outW}: the kernel is larger than the padded input`,
    );
  }
  return g;
}

interface Cache {
  input: Tensor;
  geometry: WindowGeometry;
  weight: Float64Array;
}

/** A float64 work array of at least `size` elements, grown (never shrunk) on demand. */
function grown(buffer: Float64Array, size: number): Float64Array {
  return buffer.length >= size ? buffer : new Float64Array(size);
}

/**
 * torch.nn.Conv2d (groups = 1, zero padding) as im2col + one matrix product: the batch's windows
 * become the rows of cols [N·H_out·W_out, C·kh·kw], the weight is W [out, C·kh·kw] (its
 * [out, C, kh, kw] storage read row-major), and y = cols · Wᵀ + b is transposed back to
 * [N, out, H_out, W_out]. Backward: dW = dYᵀ·cols, db = Σ dY, dx = col2im(dY·W). Every
 * product runs as C = A·Bᵀ (dot products over contiguous memory, the fastest form in plain
 * JavaScript), on transposed copies where needed; products accumulate in float64. Work arrays
 * are kept between batches.
 */
export class Conv2d extends WeightedLayer {
  readonly kind = 'Conv2d';
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: Pair;
  readonly stride: Pair;
  readonly padding: Pair;
  readonly dilation: Pair;
  private cache: Cache | undefined;
  private scratch: Record<'cols' | 'product' | 'transposed' | 'gradient', Float64Array> = {
    cols: new Float64Array(0),
    product: new Float64Array(0),
    transposed: new Float64Array(0),
    gradient: new Float64Array(0),
  };

  /** PyTorch's default initialisation with an Rng, fan_in = in_channels·kh·kw (WeightedLayer). */
  constructor(options: Conv2dOptions, rng?: Rng) {
    const [kh, kw] = options.kernelSize;
    super([options.outChannels, options.inChannels, kh, kw], options.bias !== false, rng);
    this.inChannels = options.inChannels;
    this.outChannels = options.outChannels;
    this.kernelSize = options.kernelSize;
    this.stride = options.stride ?? [1, 1];
    this.padding = options.padding ?? [0, 0];
    this.dilation = options.dilation ?? [1, 1];
  }

  forward(input: Tensor): Tensor {
    const [n] = checkImageInput(this.kind, input.shape, this.inChannels);
    const g = geometryFor(
      this.kind,
      input.shape,
      this.kernelSize,
      this.stride,
      this.padding,
      this.dilation,
    );
    const p = g.outH * g.outW;
    const k = im2colWidth(g);
    const o = this.outChannels;
    const sample = input.rowSize;
    const work = this.scratch;
    work.cols = grown(work.cols, n * p * k);
    const cols = work.cols;
    for (let s = 0; s < n; s++) im2col(input.data, s * sample, g, cols, s * p);
    const weight = Float64Array.from(this.weight.value.data);
    work.product = grown(work.product, n * p * o);
    const y = work.product;
    gemmABt(cols, weight, n * p, k, o, y);
    const b = this.bias?.value.data;
    const out = new Float32Array(n * o * p);
    for (let s = 0; s < n; s++) {
      for (let c = 0; c < o; c++) {
        const bias = b ? b[c]! : 0;
        const dst = (s * o + c) * p;
        for (let q = 0; q < p; q++) out[dst + q] = y[(s * p + q) * o + c]! + bias;
      }
    }
    this.cache = { input, geometry: g, weight };
    return new Tensor(out, [n, o, g.outH, g.outW]);
  }

  backward(gradOutput: Tensor): Tensor {
    const { input, geometry: g, weight } = requireCache(this.cache, this.kind);
    const n = input.shape[0]!;
    const p = g.outH * g.outW;
    const k = im2colWidth(g);
    const o = this.outChannels;
    const dy = gradOutput.data;
    const rows = n * p;
    const work = this.scratch;
    // dY as [N·P, out] (rows of the forward product) and as [out, N·P] (its transpose).
    work.product = grown(work.product, 2 * rows * o);
    const dyRows = work.product.subarray(0, rows * o);
    const dyT = work.product.subarray(rows * o, 2 * rows * o);
    const db = new Float64Array(o);
    for (let s = 0; s < n; s++) {
      for (let c = 0; c < o; c++) {
        const src = (s * o + c) * p;
        const row = c * rows + s * p;
        let sum = 0;
        for (let q = 0; q < p; q++) {
          const v = dy[src + q]!;
          dyRows[(s * p + q) * o + c] = v;
          dyT[row + q] = v;
          sum += v;
        }
        db[c] = db[c]! + sum;
      }
    }
    // dW [out, K] = dYᵀ·cols: dot products of dYᵀ's rows with colsᵀ's rows.
    work.transposed = grown(work.transposed, k * rows);
    const colsT = work.transposed;
    const sample = input.rowSize;
    for (let s = 0; s < n; s++) im2colTransposed(input.data, s * sample, g, colsT, s * p, rows);
    const dw = new Float64Array(o * k);
    gemmABt(dyT, colsT, o, rows, k, dw);
    const gw = this.weight.grad;
    for (let i = 0; i < gw.length; i++) gw[i] = gw[i]! + dw[i]!;
    if (this.bias) {
      const gb = this.bias.grad;
      for (let c = 0; c < o; c++) gb[c] = gb[c]! + db[c]!;
    }
    // dcols [N·P, K] = dY·W = dY·(Wᵀ)ᵀ.
    const weightT = new Float64Array(k * o);
    for (let c = 0; c < o; c++) for (let j = 0; j < k; j++) weightT[j * o + c] = weight[c * k + j]!;
    work.gradient = grown(work.gradient, rows * k);
    const dcols = work.gradient;
    gemmABt(dyRows, weightT, rows, o, k, dcols);
    const dx = new Float64Array(input.numel);
    for (let s = 0; s < n; s++) col2imAdd(dcols, s * p, g, dx, s * sample);
    return new Tensor(Float32Array.from(dx), input.shape);
  }
}

import { NormserveError } from '../errors/index.js';
import { type Pair, type WindowGeometry, windowGeometry } from './conv-geometry.js';
import { col2imAdd, im2col, im2colWidth } from './im2col.js';
import type { Kernels } from './kernels.js';
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
  /** The forward pass's im2col rows (a work array, valid until the next forward). */
  cols: Float32Array;
}

type WorkName = 'cols' | 'dyRows';

/** A float64 work array of at least `size` elements, grown (never shrunk) on demand. */
function grown(buffer: Float64Array<ArrayBuffer>, size: number): Float64Array<ArrayBuffer> {
  return buffer.length >= size ? buffer : new Float64Array(size);
}

/**
 * torch.nn.Conv2d (groups = 1, zero padding) as im2col + one matrix product: the batch's windows
 * become the rows of cols [N·H_out·W_out, C·kh·kw], the weight is W [out, C·kh·kw] (its
 * [out, C, kh, kw] storage read row-major), and y = cols · Wᵀ + b is transposed back to
 * [N, out, H_out, W_out]. Backward: dW = dYᵀ·cols, db = Σ dY, dx = col2im(dY·W). The products
 * are the kernels' matmul (nn/kernels.ts: float64 sums); y + b, db and col2im's sums are float64
 * too, rounded once. The float32 work arrays (cols, dY's rows) come from the kernels, so the
 * WebAssembly kernels read them without copies; all work arrays are kept between batches.
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
  private readonly work = new Map<WorkName, { kernels: Kernels; data: Float32Array }>();
  /** The float64 products (forward y, backward dcols), kept between batches. */
  private scratch = { product: new Float64Array(0), gradient: new Float64Array(0) };

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

  /** A work array of at least `size` values from the current kernels, grown (never shrunk) on demand. */
  private workArray(name: WorkName, size: number): Float32Array {
    const held = this.work.get(name);
    if (held && held.kernels === this.kernels && held.data.length >= size) return held.data;
    const data = this.kernels.allocate(size);
    this.work.set(name, { kernels: this.kernels, data });
    return data;
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
    const rows = n * p;
    const sample = input.rowSize;
    const cols = this.workArray('cols', rows * k);
    for (let s = 0; s < n; s++) im2col(input.data, s * sample, g, cols, s * p);
    this.scratch.product = grown(this.scratch.product, rows * o);
    const y = this.scratch.product;
    // y [N·P, out] = cols·Wᵀ (float64 sums); the bias is added after the sum, rounding once.
    this.kernels.matmul({
      m: rows,
      n: o,
      k,
      a: cols,
      b: this.weight.value.data,
      transB: true,
      c: y,
    });
    const b = this.bias?.value.data;
    const out = new Float32Array(n * o * p);
    for (let s = 0; s < n; s++) {
      for (let c = 0; c < o; c++) {
        const bias = b ? b[c]! : 0;
        const dst = (s * o + c) * p;
        for (let q = 0; q < p; q++) out[dst + q] = y[(s * p + q) * o + c]! + bias;
      }
    }
    this.cache = { input, geometry: g, cols };
    return new Tensor(out, [n, o, g.outH, g.outW]);
  }

  backward(gradOutput: Tensor): Tensor {
    const { input, geometry: g, rows, dyRows } = this.parameterGradients(gradOutput);
    const n = input.shape[0]!;
    const p = g.outH * g.outW;
    const k = im2colWidth(g);
    const o = this.outChannels;
    // dcols [N·P, K] = dY·W, float64 sums that col2im adds up before rounding.
    this.scratch.gradient = grown(this.scratch.gradient, rows * k);
    const dcols = this.scratch.gradient;
    this.kernels.matmul({ m: rows, n: k, k: o, a: dyRows, b: this.weight.value.data, c: dcols });
    const sample = input.rowSize;
    const dx = new Float64Array(input.numel);
    for (let s = 0; s < n; s++) col2imAdd(dcols, s * p, g, dx, s * sample);
    return new Tensor(Float32Array.from(dx), input.shape);
  }

  override backwardParameters(gradOutput: Tensor): void {
    this.parameterGradients(gradOutput);
  }

  /** dW += dYᵀ·cols, db += Σ dY; returns dY as [N·P, out] (the rows of the forward product). */
  private parameterGradients(gradOutput: Tensor) {
    const { input, geometry: g, cols } = requireCache(this.cache, this.kind);
    const n = input.shape[0]!;
    const p = g.outH * g.outW;
    const k = im2colWidth(g);
    const o = this.outChannels;
    const dy = gradOutput.data;
    const rows = n * p;
    const dyRows = this.workArray('dyRows', rows * o);
    const db = new Float64Array(o);
    for (let s = 0; s < n; s++) {
      for (let c = 0; c < o; c++) {
        const src = (s * o + c) * p;
        let sum = 0;
        for (let q = 0; q < p; q++) {
          const v = dy[src + q]!;
          dyRows[(s * p + q) * o + c] = v;
          sum += v;
        }
        db[c] = db[c]! + sum;
      }
    }
    // dW [out, K] = dYᵀ·cols: A = dYᵀ, stored as dY [N·P, out].
    this.kernels.matmul({
      m: o,
      n: k,
      k: rows,
      a: dyRows,
      transA: true,
      b: cols,
      c: this.weight.grad,
      accumulate: true,
    });
    if (this.bias) {
      const gb = this.bias.grad;
      for (let c = 0; c < o; c++) gb[c] = gb[c]! + db[c]!;
    }
    return { input, geometry: g, rows, dyRows };
  }
}

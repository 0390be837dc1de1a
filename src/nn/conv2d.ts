import { NormserveError } from '../errors/index.js';
import { type Pair, type WindowGeometry, windowGeometry } from './conv-geometry.js';
import { col2imAdd, forEachSampleRun, im2col, im2colBlockRows, im2colWidth } from './im2col.js';
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
  /**
   * The training forward's im2col rows for the whole batch (a work array, valid until the next
   * forward), which the weight gradient reads; an eval forward lays out blocks only (undefined).
   */
  cols: Float32Array | undefined;
}

type WorkName = 'cols' | 'dyRows';

/** A float64 work array of at least `size` elements, grown (never shrunk) on demand. */
function grown(buffer: Float64Array<ArrayBuffer>, size: number): Float64Array<ArrayBuffer> {
  return buffer.length >= size ? buffer : new Float64Array(size);
}

/**
 * torch.nn.Conv2d (groups = 1, zero padding) as im2col + matrix products: the batch's windows
 * become the rows of cols [N·H_out·W_out, C·kh·kw], the weight is W [out, C·kh·kw] (its
 * [out, C, kh, kw] storage read row-major), and y = cols · Wᵀ + b is transposed back to
 * [N, out, H_out, W_out]. Backward: dW = dYᵀ·cols, db = Σ dY, dx = col2im(dY·W). The products
 * are the kernels' matmul (nn/kernels.ts: float64 sums); y + b, db and col2im's sums are float64
 * too, rounded once. The float32 work arrays (cols, dY's rows) come from the kernels, so the
 * WebAssembly kernels read them without copies; all work arrays are kept between batches.
 *
 * Rows are independent in y = cols·Wᵀ and in dY·W, so those products (and an eval forward's
 * windows) run a block of rows at a time (im2colBlockRows: a few MiB whatever the image or the
 * batch), every output summing the same terms in the same order: the same bits. The weight
 * gradient sums over all N·H_out·W_out rows, one float64 sum per weight rounded once, so a
 * training forward keeps the whole batch's windows for it.
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

  /** The im2col rows of the whole batch [N·P, K], in the 'cols' work array. */
  private batchColumns(input: Tensor, g: WindowGeometry): Float32Array {
    const n = input.shape[0]!;
    const p = g.outH * g.outW;
    const cols = this.workArray('cols', n * p * im2colWidth(g));
    for (let s = 0; s < n; s++) im2col(input.data, s * input.rowSize, g, cols, s * p);
    return cols;
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
    const block = im2colBlockRows(k, o);
    // Training keeps the batch's windows for the weight gradient; eval lays out one block's.
    const whole = this.training ? this.batchColumns(input, g) : undefined;
    const cols = whole ?? this.workArray('cols', Math.min(block, rows) * k);
    this.scratch.product = grown(this.scratch.product, Math.min(block, rows) * o);
    const y = this.scratch.product;
    const b = this.bias?.value.data;
    const out = new Float32Array(n * o * p);
    for (let start = 0; start < rows; start += block) {
      const end = Math.min(start + block, rows);
      if (!whole) {
        forEachSampleRun(start, end, p, (s, position, count, row) => {
          im2col(input.data, s * sample, g, cols, row, position, count);
        });
      }
      // y [rows, out] = cols·Wᵀ (float64 sums); the bias is added after the sum, rounding once.
      this.kernels.matmul({
        m: end - start,
        n: o,
        k,
        a: whole ? whole.subarray(start * k, end * k) : cols,
        b: this.weight.value.data,
        transB: true,
        c: y,
      });
      forEachSampleRun(start, end, p, (s, position, count, row) => {
        for (let c = 0; c < o; c++) {
          const bias = b ? b[c]! : 0;
          const dst = (s * o + c) * p + position;
          for (let q = 0; q < count; q++) out[dst + q] = y[(row + q) * o + c]! + bias;
        }
      });
    }
    this.cache = { input, geometry: g, cols: whole };
    return new Tensor(out, [n, o, g.outH, g.outW]);
  }

  backward(gradOutput: Tensor): Tensor {
    const { input, geometry: g, rows, dyRows } = this.parameterGradients(gradOutput);
    const p = g.outH * g.outW;
    const k = im2colWidth(g);
    const o = this.outChannels;
    // dcols [rows, K] = dY·W a block of rows at a time, float64 sums that col2im adds up (row
    // after row, as one whole-batch product would) before rounding.
    const block = im2colBlockRows(k, o);
    this.scratch.gradient = grown(this.scratch.gradient, Math.min(block, rows) * k);
    const dcols = this.scratch.gradient;
    const sample = input.rowSize;
    const dx = new Float64Array(input.numel);
    for (let start = 0; start < rows; start += block) {
      const end = Math.min(start + block, rows);
      this.kernels.matmul({
        m: end - start,
        n: k,
        k: o,
        a: dyRows.subarray(start * o, end * o),
        b: this.weight.value.data,
        c: dcols,
      });
      forEachSampleRun(start, end, p, (s, position, count, row) => {
        col2imAdd(dcols, row, g, dx, s * sample, position, count);
      });
    }
    return new Tensor(Float32Array.from(dx), input.shape);
  }

  override backwardParameters(gradOutput: Tensor): void {
    this.parameterGradients(gradOutput);
  }

  /** dW += dYᵀ·cols, db += Σ dY; returns dY as [N·P, out] (the rows of the forward product). */
  private parameterGradients(gradOutput: Tensor) {
    const { input, geometry: g } = requireCache(this.cache, this.kind);
    // After an eval forward (blocks only), the batch's windows are laid out now.
    const cols = this.cache!.cols ?? this.batchColumns(input, g);
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

/** A matrix product as training's memory estimate counts it (nn/wasm: WasmTrainingLayout). */
export interface ProductFootprint {
  /** B [k, n] (packed as float64 panels), whether a bias is passed. */
  k: number;
  n: number;
  bias: boolean;
  /** Elements of A and of C that live in ordinary arrays (copied in and out); 0 for work arrays. */
  a: number;
  c: number;
  /** C is float64. */
  c64: boolean;
}

/**
 * What a Conv2d allocates in its kernels' memory, by the rules forward and backward above follow:
 * its work arrays — the training batch's windows [rows, K] and dY's rows [rows, out], with
 * rows = batch·H_out·W_out; an eval forward's block of windows when that is longer — and its
 * matrix products in call order: the forward's y blocks (float64, ordinary), the weight gradient
 * (B = the batch's windows [rows, K], packed), the input gradient's dcols blocks (float64,
 * ordinary), an eval chunk's y blocks. K = C·kh·kw. The weight is a parameter (its own entry).
 */
export function conv2dFootprint(shape: {
  width: number;
  outChannels: number;
  positions: number;
  batchSize: number;
  /** Rows per eval forward of each evaluation in order (its chunk: validation, test). */
  evalRows: readonly number[];
}): {
  workArrays: number[];
  forward: ProductFootprint[];
  backward: ProductFootprint[];
  eval: ProductFootprint[][];
} {
  const { width: k, outChannels: o, positions } = shape;
  const block = im2colBlockRows(k, o);
  const rows = shape.batchSize * positions;
  const product = (b: { k: number; n: number }, c: number): ProductFootprint => ({
    ...b,
    bias: false,
    a: 0,
    c,
    c64: c > 0,
  });
  // The windows' work array grows (a new block) when an eval block is longer than it.
  const workArrays = [rows * k, rows * o];
  let windows = rows;
  const evalBlocks = shape.evalRows.map((evalRows) => Math.min(block, evalRows * positions));
  for (const evalBlock of evalBlocks) {
    if (evalBlock <= windows) continue;
    workArrays.push(evalBlock * k);
    windows = evalBlock;
  }
  return {
    workArrays,
    forward: [product({ k, n: o }, Math.min(block, rows) * o)],
    backward: [product({ k: rows, n: k }, 0), product({ k: o, n: k }, Math.min(block, rows) * k)],
    eval: evalBlocks.map((evalBlock) => [product({ k, n: o }, evalBlock * o)]),
  };
}

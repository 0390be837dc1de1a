import { NormserveError } from '../../errors/index.js';
import type { AdamStep, ChannelLayout, Kernels, MatmulSpec, SgdStep } from '../kernels.js';
import type { Parameter } from '../parameter.js';
import { NR_F64, packedF64Bytes } from './gemm-f64-wat.js';
import { TRAINING_MAX_PAGES, type TrainingExports, trainingModule } from './training-module.js';
import { align, WASM_PAGE_BYTES } from './wasm-pages.js';

/**
 * Every block ends in this much slack: the training kernels' vector loads at a row's end read up
 * to 28 bytes past it. (The inference engine's regions end in their own kernels' overread,
 * ROW_SLACK in inference/wasm/memory-layout.ts, 16 bytes: each memory's slack is its kernels'.)
 */
const BLOCK_SLACK = 64;
/** Where the first block starts. */
const FIRST_BLOCK = 64;

/** The most linear memory the training kernels can have: wasm32's 4 GiB. */
export const WASM_TRAINING_MEMORY_BYTES = TRAINING_MAX_PAGES * WASM_PAGE_BYTES;

/**
 * The memory one block of `bytes` takes (`reserve`): the bytes and their slack, up to the next
 * 64-byte boundary, where the next block starts.
 */
export const wasmBlockBytes = (bytes: number): number => align(bytes + BLOCK_SLACK);

type Operand = {
  data: Float32Array | Float64Array;
  /** in: copied in when staged; out: copied out; inout: both. */
  mode: 'in' | 'out' | 'inout';
};

/** The operands of one matrix product that `matmul` places in its scratch frame, in bytes. */
interface MatmulFrame {
  /** A, B or C when they live outside this memory (copied in or out); 0 when they live here. */
  a: number;
  b: number;
  c: number;
  /** B as float64 panels. */
  packed: number;
  /** The bias as float64 panels, 0 without one. */
  bias: number;
}

/** The scratch frame a product needs: its pieces one after the other, each a block. */
function matmulFrameBytes(frame: MatmulFrame): number {
  return [frame.a, frame.b, frame.packed, frame.bias, frame.c].reduce(
    (sum, bytes) => sum + wasmBlockBytes(bytes),
    0,
  );
}

/**
 * The size of the new scratch region when a call needs `bytes` and the current one (never
 * freed) has `current`: at least half as large again, so that a run regrows it a few times only.
 */
const nextScratchBytes = (current: number, bytes: number): number =>
  align(Math.max(bytes, current * 1.5));

/**
 * What a training run puts in the kernels' memory, by the rules the kernels follow: each
 * parameter's value and gradient (`adopt`), the optimizer's per-parameter arrays and the layers'
 * per-step arrays (`allocate`), and the scratch regions of the matrix products (`frame`), which
 * pack B [k, n] (and the bias) as float64 panels and hold copies of operands living elsewhere.
 */
export interface WasmTrainingLayout {
  /** Elements of each parameter tensor. */
  parameters: readonly number[];
  /** Arrays the optimizer keeps per parameter: 2 for Adam(W), 1 for SGD with momentum, else 0. */
  optimizerStates: number;
  /** Elements of each per-step array (batch rows, layer outputs, gradients, masks). */
  stepArrays: readonly number[];
  /**
   * The scratch frames in the order a run asks for them — products, and the other kernels'
   * calls with operands in ordinary arrays (WasmRunFrame). A product's: B [k, n], whether it has a bias, and the
   * elements of A [m, k] and C [m, n] when they are copied in and out (0 when they live in the
   * memory: a training step's operands; an evaluation's are ordinary arrays); C's are float64
   * with c64 (a Conv2d's products), float32 otherwise.
   */
  products: readonly (
    | { k: number; n: number; bias: boolean; a: number; c: number; c64?: boolean }
    | WasmRunFrame
  )[];
}

/**
 * An element-wise or per-channel kernel's call (`run`: BatchNorm's passes, channel sums) as the
 * scratch sees it: the bytes of each operand that lives in an ordinary array, copied in or out.
 */
export interface WasmRunFrame {
  operands: readonly number[];
}

/** The scratch frame a `run` call needs: its copied operands one after the other, each a block. */
const runFrameBytes = (operands: readonly number[]): number =>
  operands.reduce((sum, bytes) => sum + wasmBlockBytes(bytes), 0);

export interface WasmTrainingBytes {
  /** Parameters and their gradients. */
  parameters: number;
  optimizer: number;
  activations: number;
  /** The scratch regions the products leave, the regrown ones' predecessors included. */
  workspace: number;
  total: number;
}

/** The bytes of WebAssembly memory a layout takes: where `reserve` takes the memory's top. */
export function wasmTrainingBytes(layout: WasmTrainingLayout): WasmTrainingBytes {
  const blocks = (lengths: readonly number[], copies = 1) =>
    copies * lengths.reduce((sum, n) => sum + wasmBlockBytes(n * 4), 0);
  const parameters = blocks(layout.parameters, 2);
  const optimizer = blocks(layout.parameters, layout.optimizerStates);
  const activations = blocks(layout.stepArrays);
  let workspace = 0;
  let scratch = 0;
  for (const frame of layout.products) {
    const bytes =
      'operands' in frame
        ? runFrameBytes(frame.operands)
        : matmulFrameBytes({
            a: frame.a * 4,
            b: 0,
            c: frame.c * (frame.c64 ? 8 : 4),
            packed: packedF64Bytes(frame.k, frame.n),
            bias: frame.bias ? Math.ceil(frame.n / NR_F64) * NR_F64 * 8 : 0,
          });
    if (bytes <= scratch) continue;
    scratch = nextScratchBytes(scratch, bytes);
    workspace += wasmBlockBytes(scratch);
  }
  return {
    parameters,
    optimizer,
    activations,
    workspace,
    total: FIRST_BLOCK + parameters + optimizer + activations + workspace,
  };
}

/**
 * The training kernels on WebAssembly SIMD (nn/kernels.ts), one instance per training run: its
 * own shared linear memory, where the parameters, their gradients, the optimizer's state and the
 * layers' work arrays live (adopt, allocate), so that the products and the optimizer steps read
 * them in place; activations that live in ordinary arrays are copied in and out around each call
 * through a scratch region.
 *
 * The arithmetic is that of the JavaScript reference, bit for bit: the GEMM sums in float64 on
 * f64x2 lanes in the reference's order (gemm-f64-wat.ts), not the engine's float32 GEMM — float32
 * sums would change every trained weight, and nothing relaxed or fused, whose rounding a runtime
 * or CPU may or may not provide, is used —; the float64 kernels replay the reference's expressions
 * (f64-lanes-wat.ts). The price of float64 sums is half the lanes of float32's (bench/README.md,
 * Training).
 *
 * The memory is shared (SharedArrayBuffer) so that it grows in place: views handed out stay valid.
 */
export class WasmKernels implements Kernels {
  readonly name = 'wasm' as const;
  private readonly memory: WebAssembly.Memory;
  private readonly x: TrainingExports;
  private f32!: Float32Array;
  private f64!: Float64Array;
  /** Every buffer object the memory has had (one per growth): an array in one of them is ours. */
  private readonly buffers = new Set<ArrayBufferLike>();
  private top = FIRST_BLOCK;
  private scratch = { at: 0, bytes: 0 };

  constructor(initialBytes = 1 << 20) {
    const pages = Math.max(1, Math.ceil(initialBytes / WASM_PAGE_BYTES));
    this.memory = new WebAssembly.Memory({
      initial: pages,
      maximum: TRAINING_MAX_PAGES,
      shared: true,
    });
    this.x = new WebAssembly.Instance(trainingModule(), { env: { memory: this.memory } })
      .exports as unknown as TrainingExports;
    this.refresh();
  }

  private refresh(): void {
    const buffer = this.memory.buffer;
    if (this.f32?.buffer === buffer) return;
    this.buffers.add(buffer);
    this.f32 = new Float32Array(buffer);
    this.f64 = new Float64Array(buffer);
  }

  /** A new block of `bytes` (64-byte aligned, followed by slack), never freed. */
  private reserve(bytes: number): number {
    const at = this.top;
    const top = at + wasmBlockBytes(bytes);
    const have = this.memory.buffer.byteLength;
    if (top > have) {
      // Training checks its network against this limit before it allocates anything
      // (training/wasm-memory.ts); what that estimate leaves out can still end here.
      if (top > WASM_TRAINING_MEMORY_BYTES) {
        throw new NormserveError(
          'TRAINING_CONFIG_INVALID',
          `training needs more than the ${WASM_TRAINING_MEMORY_BYTES / 2 ** 30} GiB of WebAssembly memory (wasm32's limit): train a smaller network or with a smaller batch size`,
        );
      }
      this.memory.grow(Math.ceil((top - have) / WASM_PAGE_BYTES));
    }
    this.top = top;
    this.refresh();
    return at;
  }

  /** The scratch region of at least `bytes`, reused by every call (grown by a new block). */
  private frame(bytes: number): number {
    if (bytes > this.scratch.bytes) {
      const size = nextScratchBytes(this.scratch.bytes, bytes);
      this.scratch = { at: this.reserve(size), bytes: size };
    }
    return this.scratch.at;
  }

  /** The array's address in this memory, or −1 when it lives elsewhere. */
  private addressOf(data: Float32Array | Float64Array): number {
    return this.buffers.has(data.buffer) ? data.byteOffset : -1;
  }

  private copyIn(data: Float32Array | Float64Array, at: number): void {
    if (data instanceof Float32Array) this.f32.set(data, at >>> 2);
    else this.f64.set(data, at >>> 3);
  }

  private copyOut(data: Float32Array | Float64Array, at: number): void {
    if (data instanceof Float32Array)
      data.set(this.f32.subarray(at >>> 2, (at >>> 2) + data.length));
    else data.set(this.f64.subarray(at >>> 3, (at >>> 3) + data.length));
  }

  /**
   * Calls `call` with the address of every operand: its own when it lives in this memory, else a
   * place in the scratch region it is copied to (in, inout) and from (out, inout) around the call.
   */
  private run(operands: Operand[], call: (at: number[]) => void): void {
    let bytes = 0;
    // runFrameBytes' rule: each copied operand a block.
    const offsets = operands.map((o) => {
      if (this.addressOf(o.data) >= 0) return -1;
      const offset = bytes;
      bytes += wasmBlockBytes(o.data.byteLength);
      return offset;
    });
    const base = bytes > 0 ? this.frame(bytes) : 0;
    const at = operands.map((o, i) => (offsets[i]! < 0 ? o.data.byteOffset : base + offsets[i]!));
    operands.forEach((o, i) => {
      if (offsets[i]! >= 0 && o.mode !== 'out') this.copyIn(o.data, at[i]!);
    });
    call(at);
    operands.forEach((o, i) => {
      if (offsets[i]! >= 0 && o.mode !== 'in') this.copyOut(o.data, at[i]!);
    });
  }

  adopt(parameter: Parameter): void {
    if (this.addressOf(parameter.value.data) >= 0) return;
    parameter.moveTo(this.allocate(parameter.value.numel), this.allocate(parameter.value.numel));
  }

  allocate(length: number): Float32Array {
    const at = this.reserve(length * 4);
    return new Float32Array(this.memory.buffer, at, length);
  }

  matmul(spec: MatmulSpec): void {
    const { m, n, k, a, b, bias } = spec;
    if (m === 0 || n === 0) return;
    // Work arrays may be longer than the product: only its m·n values are C.
    const c = spec.c.subarray(0, m * n);
    const accumulate = spec.accumulate === true;
    const out64 = c instanceof Float64Array;
    const aHome = this.addressOf(a);
    const bHome = this.addressOf(b);
    const cHome = this.addressOf(c);
    const panels = Math.ceil(n / NR_F64) * NR_F64;
    const sizes: MatmulFrame = {
      a: aHome < 0 ? m * k * 4 : 0,
      b: bHome < 0 ? k * n * 4 : 0,
      packed: packedF64Bytes(k, n),
      bias: bias ? panels * 8 : 0,
      c: cHome < 0 ? c.byteLength : 0,
    };
    // In matmulFrameBytes' order, each piece a block.
    const base = this.frame(matmulFrameBytes(sizes));
    const at = { ...sizes };
    let offset = base;
    for (const key of ['a', 'b', 'packed', 'bias', 'c'] as const) {
      at[key] = offset;
      offset += wasmBlockBytes(sizes[key]);
    }
    const x = this.x;

    let aAt = aHome;
    if (aHome < 0) {
      this.copyIn(a.subarray(0, m * k), at.a);
      aAt = at.a;
    }
    let bAt = bHome;
    if (bHome < 0) {
      this.copyIn(b.subarray(0, k * n), at.b);
      bAt = at.b;
    }
    if (bias) {
      // The GEMM reads whole panels of the bias: float64, padded with zeros; −0 as +0 (matmul).
      const from = at.bias >>> 3;
      this.f64.fill(0, from, from + panels);
      for (let j = 0; j < n; j++) this.f64[from + j] = bias[j]! + 0;
    }
    let cAt = cHome;
    if (cHome < 0) {
      cAt = at.c;
      if (accumulate) this.copyIn(c, cAt);
    }
    // A [m, k] read through strides (its transpose [k, m] too); B [k, n] packed from either layout.
    const [ars, acs] = spec.transA ? [4, m * 4] : [k * 4, 4];
    const [brs, bcs] = spec.transB ? [4, k * 4] : [n * 4, 4];
    x.pack_f64(bAt, brs, bcs, k, n, at.packed);
    const elementBytes = out64 ? 8 : 4;
    x.gemm_f64(
      m,
      n,
      k,
      aAt,
      ars,
      acs,
      at.packed,
      at.bias,
      bias ? 1 : 0,
      cAt,
      n * elementBytes,
      out64 ? 1 : 0,
      accumulate ? 1 : 0,
    );
    if (cHome < 0) this.copyOut(c, cAt);
  }

  channelSums(x: Float32Array, { n, c, s }: ChannelLayout, sum: Float64Array): void {
    if (n * c * s === 0) return;
    this.run(
      [
        { data: x, mode: 'in' },
        { data: sum, mode: 'inout' },
      ],
      ([px, ps]) => this.x.bn_sum(px!, ps!, n, c, s),
    );
  }

  channelSumSquares(
    x: Float32Array,
    { n, c, s }: ChannelLayout,
    mean: Float64Array,
    sum: Float64Array,
  ): void {
    if (n * c * s === 0) return;
    this.run(
      [
        { data: x, mode: 'in' },
        { data: mean, mode: 'in' },
        { data: sum, mode: 'inout' },
      ],
      ([px, pm, ps]) => this.x.bn_sum_sq(px!, pm!, ps!, n, c, s),
    );
  }

  batchNormNormalize(
    x: Float32Array,
    out: Float32Array,
    { n, c, s }: ChannelLayout,
    channel: { mean: Float64Array; invstd: Float64Array; gamma: Float64Array; beta: Float64Array },
  ): void {
    if (n * c * s === 0) return;
    this.run(
      [
        { data: x, mode: 'in' },
        { data: out, mode: 'out' },
        { data: channel.mean, mode: 'in' },
        { data: channel.invstd, mode: 'in' },
        { data: channel.gamma, mode: 'in' },
        { data: channel.beta, mode: 'in' },
      ],
      ([px, po, pm, pi, pg, pb]) => this.x.bn_normalize(px!, po!, pm!, pi!, pg!, pb!, n, c, s),
    );
  }

  batchNormBackwardSums(
    dy: Float32Array,
    x: Float32Array,
    { n, c, s }: ChannelLayout,
    channel: {
      mean: Float64Array;
      invstd: Float64Array;
      sumDy: Float64Array;
      sumDyXhat: Float64Array;
    },
  ): void {
    if (n * c * s === 0) return;
    this.run(
      [
        { data: dy, mode: 'in' },
        { data: x, mode: 'in' },
        { data: channel.mean, mode: 'in' },
        { data: channel.invstd, mode: 'in' },
        { data: channel.sumDy, mode: 'inout' },
        { data: channel.sumDyXhat, mode: 'inout' },
      ],
      ([pdy, px, pm, pi, psd, psx]) =>
        this.x.bn_backward_sums(pdy!, px!, pm!, pi!, psd!, psx!, n, c, s),
    );
  }

  batchNormInputGrad(
    dy: Float32Array,
    x: Float32Array,
    dx: Float32Array,
    { n, c, s }: ChannelLayout,
    channel: {
      mean: Float64Array;
      invstd: Float64Array;
      scaleOverCount: Float64Array;
      sumDy: Float64Array;
      sumDyXhat: Float64Array;
    },
    count: number,
  ): void {
    if (n * c * s === 0) return;
    this.run(
      [
        { data: dy, mode: 'in' },
        { data: x, mode: 'in' },
        { data: dx, mode: 'out' },
        { data: channel.mean, mode: 'in' },
        { data: channel.invstd, mode: 'in' },
        { data: channel.scaleOverCount, mode: 'in' },
        { data: channel.sumDy, mode: 'in' },
        { data: channel.sumDyXhat, mode: 'in' },
      ],
      ([pdy, px, pdx, pm, pi, psc, psd, psx]) =>
        this.x.bn_input_grad(pdy!, px!, pdx!, pm!, pi!, psc!, psd!, psx!, n, c, s, count),
    );
  }

  channelScale(
    dy: Float32Array,
    dx: Float32Array,
    { n, c, s }: ChannelLayout,
    scale: Float64Array,
  ): void {
    if (n * c * s === 0) return;
    this.run(
      [
        { data: dy, mode: 'in' },
        { data: dx, mode: 'out' },
        { data: scale, mode: 'in' },
      ],
      ([pdy, pdx, psc]) => this.x.bn_scale_grad(pdy!, pdx!, psc!, n, c, s),
    );
  }

  adamStep(
    theta: Float32Array,
    grad: Float32Array,
    expAvg: Float32Array,
    expAvgSq: Float32Array,
    h: AdamStep,
  ): void {
    if (theta.length === 0) return;
    this.run(
      [
        { data: theta, mode: 'inout' },
        { data: grad, mode: 'in' },
        { data: expAvg, mode: 'inout' },
        { data: expAvgSq, mode: 'inout' },
      ],
      ([pt, pg, pm, pv]) =>
        this.x.adam_step(
          pt!,
          pg!,
          pm!,
          pv!,
          theta.length,
          h.decay,
          h.weightDecay,
          h.beta1,
          h.oneMinusBeta1,
          h.beta2,
          h.oneMinusBeta2,
          h.stepSize,
          h.biasCorrection2Sqrt,
          h.eps,
          h.mode,
        ),
    );
  }

  sgdStep(
    theta: Float32Array,
    grad: Float32Array,
    buffer: Float32Array | undefined,
    h: SgdStep,
  ): void {
    if (theta.length === 0) return;
    if (!buffer) {
      this.run(
        [
          { data: theta, mode: 'inout' },
          { data: grad, mode: 'in' },
        ],
        ([pt, pg]) => this.x.sgd_step(pt!, pg!, theta.length, h.weightDecay, h.lr),
      );
      return;
    }
    this.run(
      [
        { data: theta, mode: 'inout' },
        { data: grad, mode: 'in' },
        { data: buffer, mode: 'inout' },
      ],
      ([pt, pg, pb]) =>
        this.x.sgd_momentum_step(
          pt!,
          pg!,
          pb!,
          theta.length,
          h.weightDecay,
          h.momentum,
          h.oneMinusDampening,
          h.lr,
          h.first ? 1 : 0,
          h.nesterov ? 1 : 0,
        ),
    );
  }
}

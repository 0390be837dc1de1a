import { type FeatureTransform, type Module, numelOf, type Sliced } from '../../nn/index.js';
import type { Conv2dStep, DenseStep, LayerFate, PlanStep, TensorView } from '../plan.js';

/** A dense step under construction, in float64 so folding rounds once. */
export interface DenseDraft extends Omit<DenseStep, 'weight' | 'bias'> {
  weight: Float64Array;
  bias: Float64Array;
}

/** A conv step under construction (weight [out, C·kh·kw]), in float64. */
export interface ConvDraft extends Omit<Conv2dStep, 'weight' | 'bias'> {
  weight: Float64Array;
  bias: Float64Array;
}

export type Draft = DenseDraft | ConvDraft | Exclude<PlanStep, { op: 'dense' | 'conv2d' }>;

/**
 * How far from zero, in units of its output, a pending affine's input may be centred before the
 * affine is folded into the next kernel without a centring step (CompileContext.centrePending):
 * the cancellation it avoids costs about |μ·s|·2⁻²⁴ of the output per term, so at 16 less than
 * 1e-6, within the engine's float32 error elsewhere.
 */
export const CENTRE_SHIFT = 16;

/**
 * A per-element affine y = x·scale + shift over the current sample (one value per element of
 * the current shape) waiting for a Linear or Conv2d to fold into: BatchNorms and the input
 * transform. Element-wise for every source, so chains compose and reshapes leave it valid.
 */
export interface Pending {
  scale: Float64Array;
  shift: Float64Array;
  /**
   * Per element, the value the pending affine's input is centred on, where known: the input
   * transform's shift (its mean), a BatchNorm's mean; for affines composed, mapped back to the
   * first one's input (addPending).
   */
  centre?: Float64Array | undefined;
  layers: string[];
  /** Whether the model's input transform is part of it. */
  input: boolean;
}

/**
 * Where a BatchNorm's input is read, while compiling: `forward` (y = x·s + t per channel) for one
 * folded into the step before it, composed with any folded after it; `map` (x = y·scale + shift)
 * for one read off the current tensor through what was pending.
 */
export interface BatchNormInputDraft {
  path: string;
  channels: number;
  step: number;
  point: 'output' | 'pre_activation';
  forward?: { s: Float64Array; t: Float64Array };
  map?: { scale: Float64Array; shift: Float64Array };
  reason?: string;
}

/** Statistics to fold instead of a BatchNorm's running ones (running mode's batch statistics). */
export interface FoldStatistics {
  mean: ArrayLike<number>;
  variance: ArrayLike<number>;
}

/**
 * A compile rule: what one module kind becomes in the plan (./index.ts maps kinds to rules). A
 * rule whose work grows with the layer's weights (copies, folds) is a generator yielding between
 * slices of at most SLICE_VALUES values (nn/slices.ts), so that a large model compiles without
 * holding an event loop; the others return nothing.
 */
export type CompileRule = (
  module: Module,
  path: string,
  ctx: CompileContext,
) => Sliced<void> | void;

/**
 * The state of a compilation while it walks the network: the current sample shape, the steps so
 * far, what is pending, and which step a following BatchNorm may fold into. Rules read and update
 * it; the generic parts (flushing, fusing, fates) live here so that every rule does them alike.
 */
export class CompileContext {
  shape: number[];
  readonly drafts: Draft[] = [];
  readonly fates: LayerFate[] = [];
  pending: Pending | undefined;
  /** The dense/conv step that produced the current tensor, nothing non-linear since. */
  foldTarget: DenseDraft | ConvDraft | undefined;
  /** The fold target before the current rule ran (rules that change nothing pass it on). */
  previousFoldTarget: DenseDraft | ConvDraft | undefined;
  inputTransformFolded = false;
  maxWidth: number;
  depth = 0;
  maxDepth = 0;
  readonly batchNormInputs: BatchNormInputDraft[] = [];
  /** The shapes Flatten layers gave the current tensor and earlier ones (CompiledPlan.views). */
  readonly views: TensorView[] = [];
  /** The layer compilation stops at (a prefix plan), once reached. */
  stopped: { path: string; module: Module } | undefined;

  constructor(
    inputShape: readonly number[],
    inputTransform: FeatureTransform | undefined,
    readonly compileModule: (path: string, module: Module, ctx: CompileContext) => Sliced<void>,
    /** Per BatchNorm path, statistics to fold instead of its running ones. */
    readonly statistics: ReadonlyMap<string, FoldStatistics> = new Map(),
    /** Compile the layers before this path only (their output is that layer's input). */
    readonly stopAt?: string,
    /** false: every BatchNorm runs as its own affine step (CompileOptions.foldBatchNorms). */
    readonly foldBatchNorms = true,
  ) {
    this.shape = [...inputShape];
    this.maxWidth = this.width;
    if (inputTransform) {
      const scale = Float64Array.from(inputTransform.scale);
      const shift = Float64Array.from(inputTransform.shift, (s, i) => -s * scale[i]!);
      const centre = Float64Array.from(inputTransform.shift);
      this.pending = { scale, shift, centre, layers: [], input: true };
      if (!foldBatchNorms) this.flush();
    }
  }

  /** Values per sample of the current tensor. */
  get width(): number {
    return numelOf(this.shape);
  }

  fate(path: string, module: Module, fate: LayerFate['fate']): void {
    this.fates.push({ index: Number(path.split('.')[0]), path, kind: module.kind, fate });
  }

  private refate(paths: readonly string[], fate: LayerFate['fate']): void {
    for (const f of this.fates) if (paths.includes(f.path)) f.fate = fate;
  }

  emit(draft: Draft): void {
    this.drafts.push(draft);
  }

  /** The current tensor takes a new shape (its values per row sizes the buffers). */
  reshape(shape: readonly number[]): void {
    this.shape = [...shape];
    this.maxWidth = Math.max(this.maxWidth, this.width);
  }

  /**
   * The current tensor is read in a new shape with no step (a Flatten): the plan records the view,
   * so that statistics taps may read the tensor as the layers after it do (CompiledPlan.views).
   */
  view(shape: readonly number[]): void {
    this.reshape(shape);
    this.views.push({ tensor: this.drafts.length, shape: [...shape] });
  }

  /** Adds a per-element affine (a BatchNorm with nothing to fold into yet) to what is pending. */
  addPending(scale: Float64Array, shift: Float64Array, path: string, centre?: Float64Array): void {
    const p = this.pending;
    if (p) {
      // Composed: its input is the first affine's. Its centre is the first's, or this one's
      // mapped back to that input, x = (μ − t₁)/s₁, whichever is further out in units of the
      // composed scale: an input transform that leaves a feature as it is (shift 0, scale 1)
      // knows no centre for it, the BatchNorm after it does (review of the session's fixes).
      const mapped = centre?.map((mu, k) => (mu - p.shift[k]!) / p.scale[k]!);
      // Two affines in a row compose: (x·s1 + t1)·s2 + t2.
      for (let k = 0; k < scale.length; k++) {
        p.scale[k] = p.scale[k]! * scale[k]!;
        p.shift[k] = p.shift[k]! * scale[k]! + shift[k]!;
      }
      if (mapped) {
        const first = p.centre;
        p.centre = mapped.map((b, k) => {
          const a = first?.[k] ?? 0;
          const far = Number.isFinite(b) && Math.abs(b * p.scale[k]!) > Math.abs(a * p.scale[k]!);
          return far ? b : a;
        });
      }
      p.layers.push(path);
    } else {
      this.pending = { scale, shift, centre, layers: [path], input: false };
    }
  }

  /** The pending affine has been folded into a following kernel. */
  consumePending(fate: 'folded_into_next_linear' | 'folded_into_next_conv'): string[] {
    const p = this.pending!;
    this.refate(p.layers, fate);
    if (p.input) this.inputTransformFolded = true;
    this.pending = undefined;
    return p.layers;
  }

  /**
   * Emits what is pending as its own step: per channel when the current tensor is [C, H, W] and
   * each channel's values share one scale and shift (a BatchNorm2d), else per element.
   */
  flush(): void {
    // Not centred (centrePending): an affine step computes x·s + t in float64. Its input's centre
    // goes with it, for the ONNX export, which computes it in float32 (onnx-export.ts).
    const p = this.pending;
    if (!p) return;
    this.emitAffine(p.scale, p.shift, p.layers, p.centre);
    this.refate(p.layers, 'standalone_affine');
    this.pending = undefined;
  }

  private emitAffine(
    scale: Float64Array,
    shift: Float64Array,
    layers: string[],
    centre?: Float64Array,
  ): void {
    const perChannel =
      this.shape.length === 3 ? uniformPerChannel({ scale, shift }, this.shape) : undefined;
    // Per channel, the centre only where each channel's is one value (else unknown: none).
    const centres =
      centre && perChannel
        ? uniformPerChannel({ scale: centre, shift: centre }, this.shape)?.scale
        : centre;
    this.drafts.push({
      op: 'affine',
      channels: perChannel ? this.shape[0]! : this.width,
      spatial: perChannel ? this.width / this.shape[0]! : 1,
      scale: Float64Array.from(perChannel?.scale ?? scale),
      shift: Float64Array.from(perChannel?.shift ?? shift),
      ...(centres ? { centre: Float64Array.from(centres) } : {}),
      activation: { kind: 'none' },
      layers,
    });
  }

  /**
   * Before the pending affine x·s + t is folded into the next kernel: where its input is centred
   * far from zero next to its scale (|μ·s| > CENTRE_SHIFT, μ its `centre`: the input transform's
   * mean, a BatchNorm's running mean), the input is first centred by a step of its own, x − μ
   * with μ rounded to float32, and what stays pending is x'·s + (s·μ + t). Folded as it was, the
   * kernel's float32 sums held terms |μ·s| times its output's size that cancelled: a BatchNorm of
   * inputs with mean 1e4 and std 1e-2 before a Linear, or a standard scaler of such inputs, served
   * outputs 0.07 off the unfused path (fidelity review of 2026-12-04). x − μ is exact for x near
   * μ (Sterbenz), so the rest folds with float32's usual error. A feature whose |μ·s| is within
   * the bound, or whose μ is unknown or not a float32, is left unchanged by the step (x + (−0) is
   * x, sign included); a learned shift (a BatchNorm's β) is no reason to centre.
   */
  private centrePending(): void {
    const p = this.pending;
    const centreOf = (k: number): number => foldCentre(p?.centre?.[k], p!.scale[k]!);
    if (!p?.centre || !p.scale.some((_, k) => centreOf(k) !== 0)) return;
    const n = p.shift.length;
    const centre = new Float64Array(n);
    const shift = Float64Array.from(p.shift);
    for (let k = 0; k < n; k++) {
      const c = centreOf(k);
      centre[k] = -c;
      if (c !== 0) shift[k] = p.scale[k]! * c + p.shift[k]!;
    }
    this.emitAffine(new Float64Array(n).fill(1), centre, [...p.layers]);
    p.shift = shift;
    p.centre = undefined;
  }

  /**
   * The pending affine, centred first if its input is centred far out (centrePending): what a Linear or
   * Conv2d folds into its columns.
   */
  pendingToFold(): Pending | undefined {
    this.centrePending();
    return this.pending;
  }

  /** The last step, if it produced the current tensor and has no activation yet. */
  fusableProducer(): Draft | undefined {
    const last = this.drafts.at(-1);
    return last && last.op !== 'save_skip' && last.activation.kind === 'none' ? last : undefined;
  }
}

/**
 * The float32 value an input centred on μ is shifted by before an affine of scale `s` is applied
 * in float32, or 0 for none: μ known and finite as a float32, and |μ·s| > CENTRE_SHIFT (the
 * input is far from zero next to the affine's output). One rule for the fold (centrePending) and
 * the ONNX export of an affine step.
 */
export function foldCentre(mu: number | undefined, s: number): number {
  if (mu === undefined) return 0;
  const c = Math.fround(mu);
  return Number.isFinite(c) && Math.abs(c * s) > CENTRE_SHIFT ? c : 0;
}

/** Per-channel scale and shift of a per-element affine over [C, H, W], if uniform per channel. */
export function uniformPerChannel(
  affine: { scale: Float64Array; shift: Float64Array },
  shape: readonly number[],
): { scale: Float64Array; shift: Float64Array } | undefined {
  const c = shape[0]!;
  const spatial = affine.scale.length / c;
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    const base = ch * spatial;
    scale[ch] = affine.scale[base]!;
    shift[ch] = affine.shift[base]!;
    for (let s = 1; s < spatial; s++) {
      if (affine.scale[base + s] !== scale[ch] || affine.shift[base + s] !== shift[ch])
        return undefined;
    }
  }
  return { scale, shift };
}

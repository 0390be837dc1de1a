import {
  AlphaDropout,
  BatchNorm,
  Dropout,
  type FeatureTransform,
  GELU,
  Identity,
  LayerNorm,
  LeakyReLU,
  Linear,
  type Module,
  ReLU,
  SELU,
  type Sequential,
  Sigmoid,
  Tanh,
} from '../nn/index.js';
import type { Activation, CompiledPlan, LayerFate, PlanStep } from './plan.js';

/** A dense step under construction, in float64 so folding rounds once. */
interface DenseDraft {
  op: 'dense';
  inFeatures: number;
  outFeatures: number;
  weight: Float64Array;
  bias: Float64Array;
  activation: Activation;
  layers: number[];
}

/** A per-feature affine y = x·scale + shift waiting for a Linear to fold into. */
interface Pending {
  scale: Float64Array;
  shift: Float64Array;
  layers: number[];
  /** Whether the model's input transform is part of it. */
  input: boolean;
}

type Draft = DenseDraft | Exclude<PlanStep, { op: 'dense' }>;

function activationOf(m: Module): Activation | undefined {
  if (m instanceof ReLU) return { kind: 'relu' };
  if (m instanceof LeakyReLU) return { kind: 'leaky_relu', negativeSlope: m.negativeSlope };
  if (m instanceof GELU) return m.approximate === 'tanh' ? { kind: 'gelu_tanh' } : { kind: 'gelu' };
  if (m instanceof Tanh) return { kind: 'tanh' };
  if (m instanceof Sigmoid) return { kind: 'sigmoid' };
  if (m instanceof SELU) return { kind: 'selu' };
  return undefined;
}

/**
 * Eval-mode BatchNorm as a per-channel affine map: y = x·s + t with s = γ/√(σ² + ε) and
 * t = β − μ·s, from the running statistics only (never batch statistics).
 */
export function batchNormAffine(bn: BatchNorm): { scale: Float64Array; shift: Float64Array } {
  const c = bn.numFeatures;
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  const mean = bn.runningMean.data;
  const variance = bn.runningVar.data;
  for (let k = 0; k < c; k++) {
    const gamma = bn.weight ? bn.weight.value.data[k]! : 1;
    const beta = bn.bias ? bn.bias.value.data[k]! : 0;
    scale[k] = gamma / Math.sqrt(variance[k]! + bn.eps);
    shift[k] = beta - mean[k]! * scale[k]!;
  }
  return { scale, shift };
}

/**
 * Compiles a network for eval: folds every BatchNorm into the adjacent Linear — into the
 * preceding Linear's rows (W' = diag(s)·W, b' = s·b + t) when nothing non-linear lies between, else
 * into the following Linear's columns (W' = W·diag(s), b' = b + W·t) — folds the input transform
 * into the first Linear's columns the same way, drops Dropout/AlphaDropout/Identity (identities in
 * eval), and attaches each activation to the kernel before it. LayerNorm stays a kernel: its
 * statistics are per sample. Folding is done in float64 and rounded once to float32.
 */
export function compileNetwork(
  network: Sequential,
  inputTransform?: FeatureTransform,
  inputWidth?: number,
): CompiledPlan {
  const drafts: Draft[] = [];
  const fates: LayerFate[] = [];
  // Only element-wise layers (activations, dropout, identity) can come before the first layer
  // with a known width, so that layer's width is the input width.
  const first = network.modules.find(
    (m) => m instanceof Linear || m instanceof BatchNorm || m instanceof LayerNorm,
  );
  let width = inputWidth ?? inputWidthOf(first, inputTransform);
  const planInputWidth = width;
  let pending: Pending | undefined;
  let inputTransformFolded = false;
  if (inputTransform) {
    const scale = Float64Array.from(inputTransform.scale);
    const shift = Float64Array.from(inputTransform.shift, (s, i) => -s * scale[i]!);
    pending = { scale, shift, layers: [], input: true };
  }
  const fate = (index: number, m: Module, f: LayerFate['fate']) =>
    fates.push({ index, kind: m.kind, fate: f });

  const flush = (): void => {
    if (!pending) return;
    drafts.push({
      op: 'affine',
      features: width,
      scale: Float32Array.from(pending.scale),
      shift: Float32Array.from(pending.shift),
      activation: { kind: 'none' },
      layers: pending.layers,
    });
    for (const index of pending.layers) {
      const f = fates.find((x) => x.index === index);
      if (f) f.fate = 'standalone_affine';
    }
    pending = undefined;
  };

  network.modules.forEach((m, index) => {
    if (m instanceof Dropout || m instanceof AlphaDropout || m instanceof Identity) {
      fate(index, m, 'removed_in_eval');
      return;
    }
    if (m instanceof Linear) {
      const inF = m.inFeatures;
      const outF = m.outFeatures;
      const weight = Float64Array.from(m.weight.value.data);
      const bias = m.bias ? Float64Array.from(m.bias.value.data) : new Float64Array(outF);
      const layers = [index];
      if (pending) {
        // Affine before the Linear: W(x·s + t) + b = (W·diag(s))x + (b + W·t).
        for (let o = 0; o < outF; o++) {
          let extra = 0;
          for (let i = 0; i < inF; i++) {
            extra += weight[o * inF + i]! * pending.shift[i]!;
            weight[o * inF + i] = weight[o * inF + i]! * pending.scale[i]!;
          }
          bias[o] = bias[o]! + extra;
        }
        layers.unshift(...pending.layers);
        if (pending.input) inputTransformFolded = true;
        pending = undefined;
      }
      drafts.push({
        op: 'dense',
        inFeatures: inF,
        outFeatures: outF,
        weight,
        bias,
        activation: { kind: 'none' },
        layers,
      });
      fate(index, m, 'kernel');
      width = outF;
      return;
    }
    if (m instanceof BatchNorm) {
      const { scale, shift } = batchNormAffine(m);
      const last = drafts.at(-1);
      if (!pending && last?.op === 'dense' && last.activation.kind === 'none') {
        // Linear then BatchNorm: s·(Wx + b) + t = (diag(s)·W)x + (s·b + t).
        for (let o = 0; o < last.outFeatures; o++) {
          const s = scale[o]!;
          for (let i = 0; i < last.inFeatures; i++)
            last.weight[o * last.inFeatures + i] = last.weight[o * last.inFeatures + i]! * s;
          last.bias[o] = last.bias[o]! * s + shift[o]!;
        }
        last.layers.push(index);
        fate(index, m, 'folded_into_previous_linear');
        return;
      }
      if (pending) {
        // Two affines in a row compose: (x·s1 + t1)·s2 + t2.
        for (let k = 0; k < width; k++) {
          pending.scale[k] = pending.scale[k]! * scale[k]!;
          pending.shift[k] = pending.shift[k]! * scale[k]! + shift[k]!;
        }
        pending.layers.push(index);
      } else {
        pending = { scale, shift, layers: [index], input: false };
      }
      fate(index, m, 'folded_into_next_linear');
      return;
    }
    const activation = activationOf(m);
    if (activation) {
      flush();
      const last = drafts.at(-1);
      if (last && last.activation.kind === 'none') {
        last.activation = activation;
        last.layers.push(index);
        fate(index, m, 'fused_activation');
      } else {
        drafts.push({ op: 'activation', features: width, activation, layers: [index] });
        fate(index, m, 'kernel');
      }
      return;
    }
    if (m instanceof LayerNorm) {
      flush();
      drafts.push({
        op: 'layernorm',
        features: width,
        eps: m.eps,
        weight: m.weight ? m.weight.value.data.slice() : undefined,
        bias: m.bias ? m.bias.value.data.slice() : undefined,
        activation: { kind: 'none' },
        layers: [index],
      });
      fate(index, m, 'kernel');
      return;
    }
    throw new Error(`cannot compile layer ${index} (${m.kind}) for inference`);
  });
  flush();

  const steps: PlanStep[] = drafts.map((d) =>
    d.op === 'dense'
      ? { ...d, weight: Float32Array.from(d.weight), bias: Float32Array.from(d.bias) }
      : d,
  );
  const widths = [
    planInputWidth,
    ...steps.map((s) => (s.op === 'dense' ? s.outFeatures : s.features)),
  ];
  return {
    inputWidth: planInputWidth,
    outputWidth: widths.at(-1)!,
    maxWidth: Math.max(...widths),
    steps,
    layers: fates.sort((a, b) => a.index - b.index),
    inputTransformFolded,
  };
}

function inputWidthOf(first: Module | undefined, transform: FeatureTransform | undefined): number {
  if (transform) return transform.scale.length;
  if (first instanceof Linear) return first.inFeatures;
  if (first instanceof BatchNorm) return first.numFeatures;
  if (first instanceof LayerNorm) return first.normalizedShape[0]!;
  throw new Error(
    'cannot infer the input width of a network without Linear, BatchNorm or LayerNorm; pass it',
  );
}

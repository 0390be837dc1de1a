/** An activation applied inside a kernel's output loop. */
export type Activation =
  | { kind: 'none' }
  | { kind: 'relu' }
  | { kind: 'leaky_relu'; negativeSlope: number }
  | { kind: 'gelu' }
  | { kind: 'gelu_tanh' }
  | { kind: 'tanh' }
  | { kind: 'sigmoid' }
  | { kind: 'selu' };

/** y = act(x Wᵀ + b): a Linear with everything folded into it. */
export interface DenseStep {
  op: 'dense';
  inFeatures: number;
  outFeatures: number;
  /** [outFeatures, inFeatures], row-major. */
  weight: Float32Array;
  bias: Float32Array;
  activation: Activation;
  /** Indices of the network layers this step computes (the Linear and what was folded into it). */
  layers: number[];
}

/** y = act(x·scale + shift) per feature: a BatchNorm or input transform with no Linear to fold into. */
export interface AffineStep {
  op: 'affine';
  features: number;
  scale: Float32Array;
  shift: Float32Array;
  activation: Activation;
  layers: number[];
}

/** LayerNorm over each row (per-sample statistics, so it cannot be folded). */
export interface LayerNormStep {
  op: 'layernorm';
  features: number;
  eps: number;
  weight: Float32Array | undefined;
  bias: Float32Array | undefined;
  activation: Activation;
  layers: number[];
}

/** An activation with no kernel before it to run inside. */
export interface ActivationStep {
  op: 'activation';
  features: number;
  activation: Activation;
  layers: number[];
}

export type PlanStep = DenseStep | AffineStep | LayerNormStep | ActivationStep;

/** What compilation did to each network layer, for the model metadata endpoint. */
export interface LayerFate {
  index: number;
  kind: string;
  fate:
    | 'kernel'
    | 'folded_into_previous_linear'
    | 'folded_into_next_linear'
    | 'standalone_affine'
    | 'fused_activation'
    | 'removed_in_eval';
}

/** An eval-mode execution plan: a short list of fused kernels. */
export interface CompiledPlan {
  inputWidth: number;
  outputWidth: number;
  /** Widest activation between steps (sizes the preallocated buffers). */
  maxWidth: number;
  steps: PlanStep[];
  layers: LayerFate[];
  /** Whether the input transform was folded into the first Linear. */
  inputTransformFolded: boolean;
}

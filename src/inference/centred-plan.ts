import type { AffineStep, BatchNormInput, CompiledPlan, DenseStep, PlanStep } from './plan.js';

/**
 * The plan's input transform: its first step when that is a per-feature affine over the input's
 * width, else undefined (the plan's first step reads the raw input). Recalibration measures the
 * centre on this step's output (layer-input-statistics.ts, transformedInputTap) and centredPlan
 * subtracts it from this step's shift: both must pick the same step, so both ask here.
 */
export function inputTransformStep(plan: CompiledPlan): AffineStep | undefined {
  const first = plan.steps[0];
  return first?.op === 'affine' && first.spatial === 1 && first.channels === plan.inputWidth
    ? first
    : undefined;
}

/**
 * A statistics plan whose first Linear works on centred inputs, so that its float32 GEMM adds
 * small numbers: the plan's input (after the input transform) minus a centre c per feature goes
 * through the Linear without its bias, and the constant W·c + b (float64) is added back in
 * float64 — in the shift of the affine step after it (a BatchNorm, foldBatchNorms: false), or in
 * the map of a BatchNorm read off its output. Exactly the same function of the input; only the
 * rounding differs.
 *
 * Why (issue 16): a float32 dot product rounds each partial sum to float32, an error of a few
 * ulps of the partial sums. For inputs far from 0 in units of their spread — a night-shifted
 * image standardized with daylight statistics lands at z ≈ 10 — the partial sums and the output
 * are dominated by the mean (a BatchNorm input of mean −11.3 and σ 0.44 on digits-torch), and
 * those ulps are 1e-6 of σ per value: the BatchNorm's variance came out 1.3e-6 off (relative)
 * where the float64-accumulating GEMM gives 1.2e-7, and the recalibrated logits missed
 * PyTorch's float64 ones by 1.08e-5 (OUTPUT_ATOL is 1e-5; the unfused float32 forward alone is
 * 8.1e-6 off with PyTorch's own statistics). Centred, the float32 GEMM's partial sums are of the
 * size of the deviations, and the statistics land where the float64 GEMM's do
 * (test/inference/centred-plan.test.ts, bench/README.md).
 *
 * Returns undefined when the plan does not start with [per-feature affine (input transform)],
 * Linear (no activation), then either its end or a per-feature affine step; the caller then
 * runs the plan as it is.
 */
export function centredPlan(plan: CompiledPlan, centre: Float64Array): CompiledPlan | undefined {
  let steps = [...plan.steps];
  let inserted = 0;
  const width = plan.inputWidth;
  if (centre.length !== width || plan.inputShape.length !== 1) return undefined;
  const transform = inputTransformStep(plan);
  let input: AffineStep;
  if (transform !== undefined) {
    input = transform;
  } else if (steps[0]?.op === 'dense') {
    input = {
      op: 'affine',
      channels: width,
      spatial: 1,
      scale: new Float64Array(width).fill(1),
      shift: new Float64Array(width),
      activation: { kind: 'none' },
      layers: [],
    };
    steps = [input, ...steps];
    inserted = 1;
  } else {
    return undefined;
  }
  const dense = steps[1];
  if (dense?.op !== 'dense' || dense.activation.kind !== 'none') return undefined;
  const after = steps[2];
  if (
    after !== undefined &&
    !(after.op === 'affine' && after.spatial === 1 && after.channels === dense.outFeatures)
  )
    return undefined;

  // The constant the centring takes out of the Linear's output, in float64: W·c + b.
  const offset = new Float64Array(dense.outFeatures);
  for (let o = 0; o < dense.outFeatures; o++) {
    let s = dense.bias[o]!;
    const row = o * dense.inFeatures;
    for (let i = 0; i < dense.inFeatures; i++) s += dense.weight[row + i]! * centre[i]!;
    offset[o] = s;
  }
  steps[0] = { ...input, shift: input.shift.map((t, i) => t - centre[i]!) };
  steps[1] = { ...dense, bias: new Float32Array(dense.outFeatures) } satisfies DenseStep;
  if (after) {
    // (y + offset)·s + t = y·s + (offset·s + t).
    steps[2] = {
      ...after,
      shift: after.shift.map((t, o) => offset[o]! * after.scale[o]! + t),
    } satisfies PlanStep;
  }
  const denseIndex = 1;
  const batchNormInputs = plan.batchNormInputs.map((b): BatchNormInput => {
    if (!b.tap || b.tap.step < 0) return b;
    const tap = { ...b.tap, step: b.tap.step + inserted };
    if (tap.step === 0 && b.channels === width) {
      // Read off the centred input affine z − c: x = (y + c)·scale + shift.
      const scale = b.scale ?? new Float64Array(width).fill(1);
      const shift = b.shift ?? new Float64Array(width);
      return { ...b, tap, scale, shift: shift.map((t, i) => centre[i]! * scale[i]! + t) };
    }
    if (tap.step !== denseIndex || b.channels !== dense.outFeatures) return { ...b, tap };
    // Read off the centred Linear's output y: x = (y + offset)·scale + shift.
    const scale = b.scale ?? new Float64Array(b.channels).fill(1);
    const shift = b.shift ?? new Float64Array(b.channels);
    return {
      ...b,
      tap,
      scale,
      shift: shift.map((t, o) => offset[o]! * scale[o]! + t),
    };
  });
  return {
    ...plan,
    steps,
    layers: plan.layers,
    batchNormInputs,
    // The inserted step's output is a copy of the input's layout; later tensors move one on.
    views: plan.views.map((v) => (v.tensor > 0 ? { ...v, tensor: v.tensor + inserted } : v)),
  };
}

/**
 * Central finite-difference gradient checks for the float32 engine. The objective is evaluated in
 * float64 from the float32 outputs; the step actually taken is measured after rounding the
 * perturbed value to float32, so only the rounding of the outputs adds noise.
 */
import { expect } from 'vitest';
import type { Module } from '../../src/nn/index.js';
import { Rng, Tensor } from '../../src/nn/index.js';
import { onTestKernels } from './kernels.js';
import { GRADCHECK_ABS_FLOOR, GRADCHECK_STEP } from './statistical-tolerances.js';
import { GRADCHECK_RTOL } from './tolerances.js';

/** A scalar objective of a module's output and its gradient with respect to that output. */
export type Head = (output: Tensor) => { value: number; grad: Tensor };

/** L = Σ w ⊙ y for fixed w (float32, so backward sees exactly the w the objective uses). */
export function weightedSumHead(w: Float32Array): Head {
  return (y) => {
    expect(y.numel, 'output size vs weights').toBe(w.length);
    let value = 0;
    for (let i = 0; i < w.length; i++) value += w[i]! * y.data[i]!;
    return { value, grad: new Tensor(w.slice(), y.shape) };
  };
}

/** (f(x + h) − f(x − h)) / (actual step), perturbing data[i] in place and restoring it. */
export function centralDifference(
  data: Float32Array,
  i: number,
  f: () => number,
  h = GRADCHECK_STEP,
): number {
  const x0 = data[i]!;
  const plus = Math.fround(x0 + h);
  const minus = Math.fround(x0 - h);
  data[i] = plus;
  const fPlus = f();
  data[i] = minus;
  const fMinus = f();
  data[i] = x0;
  return (fPlus - fMinus) / (plus - minus);
}

export interface GradPair {
  analytic: Float32Array;
  numeric: Float64Array;
}

export interface GradcheckReport {
  input: GradPair;
  /** Per parameter name (as namedParameters() names it). */
  params: Map<string, GradPair>;
}

/** Uniform values in [-scale, scale]. */
export function randomTensor(rng: Rng, shape: readonly number[], scale = 1): Tensor {
  const t = Tensor.zeros(shape);
  for (let i = 0; i < t.numel; i++) t.data[i] = rng.uniform(-scale, scale);
  return t;
}

/** Random values with margin ≤ |x| ≤ max and a random sign: away from kinks at 0. */
export function awayFromZero(rng: Rng, shape: readonly number[], margin: number, max = 2): Tensor {
  const t = Tensor.zeros(shape);
  for (let i = 0; i < t.numel; i++) {
    const sign = rng.next() < 0.5 ? -1 : 1;
    t.data[i] = sign * rng.uniform(margin, max);
  }
  return t;
}

/**
 * Analytic (forward, backward) and numeric gradients of head(make().forward(x)) with respect to
 * x and every parameter. `make` must build the same module every time (same parameters, same
 * mode, same dropout seed): every numeric evaluation uses a fresh module, so train-mode side
 * effects (running statistics, dropout RNG state) never leak between evaluations. Every module
 * runs on the test kernels (helpers/kernels.ts), so the check covers the wasm and js kernels.
 */
export function gradcheckModule(
  make: () => Module,
  input: Tensor,
  head: Head | 'weighted-sum',
  seed = 1234,
): GradcheckReport {
  const module = onTestKernels(make());
  const x = input.clone();
  const y = module.forward(x);
  let objective: Head;
  if (head === 'weighted-sum') {
    const rng = new Rng(seed);
    const w = new Float32Array(y.numel);
    for (let i = 0; i < w.length; i++) w[i] = rng.uniform(-1, 1);
    objective = weightedSumHead(w);
  } else {
    objective = head;
  }
  module.zeroGrad();
  const dx = module.backward(objective(y).grad);
  expect(dx.shape, 'input gradient shape').toEqual(input.shape);

  const base = new Map<string, Float32Array>();
  const analyticParams = new Map<string, Float32Array>();
  for (const [name, p] of module.namedParameters()) {
    base.set(name, p.value.data.slice());
    analyticParams.set(name, p.grad.slice());
  }

  const xData = input.data.slice();
  const evaluate = (): number => {
    const fresh = onTestKernels(make());
    for (const [name, p] of fresh.namedParameters()) p.value.data.set(base.get(name)!);
    return objective(fresh.forward(new Tensor(xData.slice(), input.shape))).value;
  };

  const numericInput = new Float64Array(xData.length);
  for (let i = 0; i < xData.length; i++) numericInput[i] = centralDifference(xData, i, evaluate);

  const params = new Map<string, GradPair>();
  for (const [name, values] of base) {
    const numeric = new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) numeric[i] = centralDifference(values, i, evaluate);
    params.set(name, { analytic: analyticParams.get(name)!, numeric });
  }
  return { input: { analytic: dx.data.slice(), numeric: numericInput }, params };
}

/** Asserts |analytic − numeric| ≤ GRADCHECK_RTOL · max(|analytic|, |numeric|, floor) everywhere. */
export function expectGradientsMatch(pair: GradPair, what: string): void {
  const { analytic, numeric } = pair;
  expect(analytic.length, `${what}: length`).toBe(numeric.length);
  expect(analytic.length, `${what}: nothing to check`).toBeGreaterThan(0);
  for (let i = 0; i < analytic.length; i++) {
    const a = analytic[i]!;
    const n = numeric[i]!;
    const scale = Math.max(Math.abs(a), Math.abs(n), GRADCHECK_ABS_FLOOR);
    expect(
      Math.abs(a - n) / scale,
      `${what}[${i}]: analytic ${a} numeric ${n}`,
    ).toBeLessThanOrEqual(GRADCHECK_RTOL);
  }
}

/** Checks the input gradient and every parameter gradient; `params` lists the expected names. */
export function expectGradcheck(report: GradcheckReport, params: readonly string[]): void {
  expectGradientsMatch(report.input, 'd/dx');
  expect([...report.params.keys()]).toEqual(params);
  for (const [name, pair] of report.params) expectGradientsMatch(pair, `d/d${name}`);
}

/** Largest relative error of a report (diagnostics). */
export function worstRelativeError(report: GradcheckReport): number {
  let worst = 0;
  const scan = ({ analytic, numeric }: GradPair) => {
    for (let i = 0; i < analytic.length; i++) {
      const scale = Math.max(Math.abs(analytic[i]!), Math.abs(numeric[i]!), GRADCHECK_ABS_FLOOR);
      worst = Math.max(worst, Math.abs(analytic[i]! - numeric[i]!) / scale);
    }
  };
  scan(report.input);
  for (const pair of report.params.values()) scan(pair);
  return worst;
}

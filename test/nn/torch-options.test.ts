/**
 * Every layer option config.json accepts, against PyTorch 1.13
 * (test/fixtures/torch/layer-options.json, `tools/make-golden-fixtures.py options`): each layer is
 * built from a config entry that names only the arguments given to PyTorch's constructor, so the
 * schema's defaults are checked against PyTorch's too; train-mode steps (forward, backward,
 * running statistics), then an eval step. The dropouts in train mode are compared where both
 * masks agree (the random streams differ, the arithmetic must not).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildLayer, layerSchema } from '../../src/checkpoint/index.js';
import { BatchNorm, namedModules, Rng, type StateDict, Tensor } from '../../src/nn/index.js';
import { expectClose, expectRelClose } from '../helpers/compare.js';
import { onTestKernels } from '../helpers/kernels.js';
import { OUTPUT_ATOL, STATS_RTOL } from '../helpers/tolerances.js';

interface TensorJson {
  shape: number[];
  data: number[];
}

interface Step {
  train: boolean;
  input: TensorJson;
  output: TensorJson;
  grad_output: TensorJson;
  grad_input: TensorJson;
  grads: Record<string, TensorJson>;
  buffers: Record<string, TensorJson | number>;
}

interface TraceCase {
  name: string;
  options: unknown;
  parameters: Record<string, TensorJson>;
  buffers_before: Record<string, TensorJson | number>;
  state_dict_keys: string[];
  steps: Step[];
}

interface DropoutCase {
  name: 'dropout' | 'alpha_dropout';
  p: number;
  output: TensorJson;
  grad_input: TensorJson;
}

const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/torch/layer-options.json', import.meta.url), 'utf8'),
) as {
  torch_version: string;
  cases: TraceCase[];
  dropouts: { input: TensorJson; grad_output: TensorJson; cases: DropoutCase[] };
  init: { options: unknown; fan_in: number; weight_bound: number; bias_bound: number }[];
};

const tensor = (t: TensorJson) => Tensor.from(t.data, t.shape);

function stateOf(c: TraceCase): StateDict {
  const state: StateDict = new Map();
  for (const [k, v] of Object.entries(c.parameters)) state.set(k, tensor(v));
  for (const [k, v] of Object.entries(c.buffers_before))
    state.set(k, typeof v === 'number' ? BigInt(v) : tensor(v));
  return state;
}

/** Gradients are sums over the batch: relative, with OUTPUT_ATOL as the floor near zero. */
function expectGradient(actual: ArrayLike<number>, expected: TensorJson, what: string): void {
  expectRelClose(actual, expected.data, STATS_RTOL, what, OUTPUT_ATOL / STATS_RTOL);
}

describe(`layer options against PyTorch ${fixture.torch_version}`, () => {
  for (const c of fixture.cases) {
    it(`${c.name} ${JSON.stringify(c.options)}`, () => {
      const module = onTestKernels(buildLayer(layerSchema.parse(c.options)));
      // PyTorch's state_dict names, in its order: what load_state_dict(strict=True) checks.
      expect([...module.stateDict().keys()]).toEqual(c.state_dict_keys);
      module.loadStateDict(stateOf(c));
      c.steps.forEach((s, k) => {
        const what = `step ${k} (${s.train ? 'train' : 'eval'})`;
        module.train(s.train);
        module.zeroGrad();
        const y = module.forward(tensor(s.input));
        expect(y.shape, `${what} output shape`).toEqual(s.output.shape);
        expectClose(y.data, s.output.data, OUTPUT_ATOL, `${what} output`);
        const dx = module.backward(tensor(s.grad_output));
        expect(dx.shape).toEqual(s.input.shape);
        expectGradient(dx.data, s.grad_input, `${what} grad_input`);
        const params = new Map(module.namedParameters());
        expect([...params.keys()]).toEqual(Object.keys(s.grads));
        for (const [name, g] of Object.entries(s.grads))
          expectGradient(params.get(name)!.grad, g, `${what} grad ${name}`);
        for (const [path, m] of namedModules(module)) {
          if (!(m instanceof BatchNorm)) continue;
          const buffer = (key: string) => s.buffers[path === '' ? key : `${path}.${key}`];
          const mean = buffer('running_mean') as TensorJson;
          const variance = buffer('running_var') as TensorJson;
          expectRelClose(m.runningMean.data, mean.data, STATS_RTOL, `${what} running_mean`);
          expectRelClose(m.runningVar.data, variance.data, STATS_RTOL, `${what} running_var`);
          expect(m.numBatchesTracked, `${what} num_batches_tracked`).toBe(
            buffer('num_batches_tracked'),
          );
        }
      });
    });
  }
});

describe('Dropout and AlphaDropout in train mode against PyTorch', () => {
  /** A number as a message shows it, −0 included (a template string writes −0 as 0). */
  const show = (v: number) => (Object.is(v, -0) ? '-0' : String(v));
  const { input, grad_output: gradOutput, cases } = fixture.dropouts;
  for (const c of cases) {
    it(`${c.name}(p=${c.p}): kept and dropped elements, bit for bit, and the gradient`, () => {
      const module = onTestKernels(buildLayer(layerSchema.parse({ type: c.name, p: c.p })));
      module.train();
      const y = module.forward(tensor(input)).data.slice();
      const dx = module.backward(tensor(gradOutput)).data;
      let bothKept = 0;
      let bothDropped = 0;
      for (let i = 0; i < y.length; i++) {
        const keptHere = dx[i] !== 0;
        const keptThere = c.grad_input.data[i] !== 0;
        if (keptHere !== keptThere) continue;
        if (keptHere) bothKept++;
        else bothDropped++;
        // Object.is, so the sign of a zero counts too: ATen multiplies a dropped element by zero,
        // which leaves −0 for x < 0 (and for a negative grad_output).
        const want = c.output.data[i]!;
        expect(Object.is(y[i], want), `output[${i}]: ${show(y[i]!)} vs ${show(want)}`).toBe(true);
        const g = c.grad_input.data[i]!;
        expect(Object.is(dx[i], g), `grad_input[${i}]: ${show(dx[i]!)} vs ${show(g)}`).toBe(true);
      }
      if (c.p === 1) expect(bothDropped).toBe(y.length);
      else {
        // 80 elements, p ≤ 0.5: each category holds about 80·p(1−p)-ish of them at the least.
        expect(bothKept).toBeGreaterThanOrEqual(10);
        expect(bothDropped).toBeGreaterThanOrEqual(2);
      }
    });
  }
});

describe("Linear and Conv2d start from PyTorch's default initialisation", () => {
  for (const c of fixture.init) {
    it(`${JSON.stringify(c.options)}: U(−b, b) with PyTorch's bounds (fan_in ${c.fan_in})`, () => {
      const module = buildLayer(layerSchema.parse(c.options), { init: new Rng(7) });
      const params = new Map(module.namedParameters());
      for (const [name, bound] of [
        ['weight', c.weight_bound],
        ['bias', c.bias_bound],
      ] as const) {
        const values = params.get(name)!.value.data;
        let max = -Infinity;
        let min = Infinity;
        let sumSq = 0;
        for (const v of values) {
          max = Math.max(max, v);
          min = Math.min(min, v);
          sumSq += v * v;
        }
        expect(max, `${name} max`).toBeLessThanOrEqual(Math.fround(bound));
        expect(min, `${name} min`).toBeGreaterThanOrEqual(-Math.fround(bound));
        // Uniform on (−b, b): the extremes of n ≥ 40 draws lie within b·(1 − 0.15) with
        // probability 1 − 2·0.925⁴⁰ ≈ 0.9996 (seeded, so fixed), and E[v²] = b²/3.
        expect(max, `${name} max`).toBeGreaterThan(0.85 * bound);
        expect(min, `${name} min`).toBeLessThan(-0.85 * bound);
        if (name === 'weight') {
          // 3000 and 1440 draws: the mean square within 5% of b²/3 (toBeCloseTo(1, 1) is
          // |x − 1| < 0.05; its sd is 0.89/√n of it, 1.6% and 2.4%).
          expect(sumSq / values.length / ((bound * bound) / 3)).toBeCloseTo(1, 1);
        }
      }
    });
  }
});

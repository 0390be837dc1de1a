/**
 * The engine against PyTorch: fixtures written by tools/make-golden-fixtures.py (PyTorch 1.13,
 * float32) and committed under test/fixtures/, so this suite needs no torch.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  Adam,
  AdamW,
  AlphaDropout,
  type BatchNorm,
  BatchNorm1d,
  BatchNorm2d,
  clipGradNorm,
  crossEntropy,
  Dropout,
  GELU,
  LayerNorm,
  LeakyReLU,
  Linear,
  learningRateAt,
  type Module,
  mseLoss,
  type Optimizer,
  Parameter,
  ReLU,
  SELU,
  Sequential,
  SGD,
  Sigmoid,
  type StateDict,
  Tanh,
  Tensor,
} from '../../src/nn/index.js';
import { expectClose, expectRelClose } from '../helpers/compare.js';
import { adoptParameters, onTestKernels, TEST_KERNELS } from '../helpers/kernels.js';
import {
  LOSS_RTOL,
  LR_RTOL,
  OPTIMIZER_STEP_ATOL,
  OUTPUT_ATOL,
  STATS_RTOL,
} from '../helpers/tolerances.js';

interface TensorJson {
  shape: number[];
  data: number[];
}

function readJson<T>(relative: string): T {
  return JSON.parse(readFileSync(new URL(`../fixtures/${relative}`, import.meta.url), 'utf8')) as T;
}

const fixture = <T>(name: string): T => readJson<T>(`torch/${name}`);
const tensor = (t: TensorJson): Tensor => Tensor.from(t.data, t.shape);

function expectTensor(actual: Tensor, expected: TensorJson, atol: number, what: string): void {
  expect(actual.shape, `${what}: shape`).toEqual(expected.shape);
  expectClose(actual.data, expected.data, atol, what);
}

// ---------------------------------------------------------------------------------------------
// a, b. BatchNorm traces

interface BatchNormStep {
  input: TensorJson;
  output: TensorJson;
  running_mean: TensorJson;
  running_var: TensorJson;
  num_batches_tracked: number;
}

interface BatchNormCase {
  name: string;
  num_features: number;
  eps: number;
  momentum: number | null;
  weight: TensorJson;
  bias: TensorJson;
  steps: BatchNormStep[];
  backward: {
    step: number;
    grad_output: TensorJson;
    grad_input: TensorJson;
    weight_grad: TensorJson;
    bias_grad: TensorJson;
  };
  eval: {
    input: TensorJson;
    output: TensorJson;
    grad_output: TensorJson;
    grad_input: TensorJson;
    weight_grad: TensorJson;
    bias_grad: TensorJson;
  };
  eval_single: { input: TensorJson; output: TensorJson };
}

interface BatchNormFixture {
  torch_version: string;
  cases: BatchNormCase[];
}

function makeBatchNorm(kind: '1d' | '2d', c: BatchNormCase): BatchNorm {
  const options = { numFeatures: c.num_features, eps: c.eps, momentum: c.momentum };
  const bn = kind === '1d' ? new BatchNorm1d(options) : new BatchNorm2d(options);
  bn.weight!.value.data.set(c.weight.data);
  bn.bias!.value.data.set(c.bias.data);
  return onTestKernels(bn);
}

function batchNormSuite(kind: '1d' | '2d', file: string): void {
  const { torch_version, cases } = fixture<BatchNormFixture>(file);

  describe(`BatchNorm${kind} against PyTorch ${torch_version} (${file})`, () => {
    for (const c of cases) {
      describe(c.name, () => {
        it('reproduces the train-mode trace: outputs, running stats, num_batches_tracked', () => {
          const bn = makeBatchNorm(kind, c);
          c.steps.forEach((s, k) => {
            const y = bn.forward(tensor(s.input));
            expectTensor(y, s.output, OUTPUT_ATOL, `step ${k} output`);
            expectRelClose(bn.runningMean.data, s.running_mean.data, STATS_RTOL, `step ${k} mean`);
            expectRelClose(bn.runningVar.data, s.running_var.data, STATS_RTOL, `step ${k} var`);
            expect(bn.numBatchesTracked).toBe(s.num_batches_tracked);
          });
        });

        it('reproduces autograd at the first train step', () => {
          const bn = makeBatchNorm(kind, c);
          const b = c.backward;
          bn.forward(tensor(c.steps[b.step]!.input));
          const dx = bn.backward(tensor(b.grad_output));
          expectTensor(dx, b.grad_input, OUTPUT_ATOL, 'grad_input');
          expectClose(bn.weight!.grad, b.weight_grad.data, OUTPUT_ATOL, 'weight.grad');
          expectClose(bn.bias!.grad, b.bias_grad.data, OUTPUT_ATOL, 'bias.grad');
        });

        it('normalizes with the running statistics in eval mode and leaves them alone', () => {
          const bn = makeBatchNorm(kind, c);
          for (const s of c.steps) bn.forward(tensor(s.input));
          bn.eval();
          const last = c.steps[c.steps.length - 1]!;
          const y = bn.forward(tensor(c.eval.input));
          expectTensor(y, c.eval.output, OUTPUT_ATOL, 'eval output');
          const dx = bn.backward(tensor(c.eval.grad_output));
          expectTensor(dx, c.eval.grad_input, OUTPUT_ATOL, 'eval grad_input');
          expectClose(bn.weight!.grad, c.eval.weight_grad.data, OUTPUT_ATOL, 'eval weight.grad');
          expectClose(bn.bias!.grad, c.eval.bias_grad.data, OUTPUT_ATOL, 'eval bias.grad');
          const y1 = bn.forward(tensor(c.eval_single.input));
          expectTensor(y1, c.eval_single.output, OUTPUT_ATOL, 'eval output, batch of 1');
          expectRelClose(
            bn.runningMean.data,
            last.running_mean.data,
            STATS_RTOL,
            'mean after eval',
          );
          expectRelClose(bn.runningVar.data, last.running_var.data, STATS_RTOL, 'var after eval');
          expect(bn.numBatchesTracked).toBe(last.num_batches_tracked);
        });
      });
    }
  });
}

batchNormSuite('1d', 'batchnorm1d.json');
batchNormSuite('2d', 'batchnorm2d.json');

// ---------------------------------------------------------------------------------------------
// c. BatchNorm error text

describe('BatchNorm training on one value per channel', () => {
  const { cases } = fixture<{
    cases: { module: string; num_features: number; input_shape: number[]; error: string | null }[];
  }>('batchnorm-errors.json');

  for (const c of cases) {
    it(`${c.module} on [${c.input_shape}] ${c.error === null ? 'is accepted' : 'throws'}`, () => {
      const options = { numFeatures: c.num_features };
      const bn = onTestKernels(
        c.module === 'BatchNorm2d' ? new BatchNorm2d(options) : new BatchNorm1d(options),
      );
      const run = () => bn.forward(Tensor.zeros(c.input_shape));
      if (c.error === null) {
        expect(run).not.toThrow();
        return;
      }
      // PyTorch prints the size as torch.Size([1, 4]); JavaScript has no torch.Size, so the
      // engine prints [1, 4]. The rest of the message is PyTorch's, word for word.
      const expected = c.error.replace(/torch\.Size\((\[[^\]]*\])\)/, '$1');
      expect(run).toThrow(expect.objectContaining({ code: 'BATCHNORM_SINGLE_VALUE' }));
      expect(run).toThrow(expected);
      try {
        run();
      } catch (e) {
        expect((e as Error).message).toBe(expected);
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// d. LayerNorm

describe('LayerNorm against PyTorch', () => {
  const { cases } = fixture<{
    cases: {
      name: string;
      normalized_shape: number[];
      eps: number;
      elementwise_affine: boolean;
      input: TensorJson;
      output: TensorJson;
      grad_output: TensorJson;
      grad_input: TensorJson;
      weight?: TensorJson;
      bias?: TensorJson;
      weight_grad?: TensorJson;
      bias_grad?: TensorJson;
    }[];
  }>('layernorm.json');

  for (const c of cases) {
    it(`${c.name}: output and gradients`, () => {
      const ln = new LayerNorm({
        normalizedShape: c.normalized_shape,
        eps: c.eps,
        elementwiseAffine: c.elementwise_affine,
      });
      if (c.weight && c.bias) {
        ln.weight!.value.data.set(c.weight.data);
        ln.bias!.value.data.set(c.bias.data);
      }
      onTestKernels(ln);
      expectTensor(ln.forward(tensor(c.input)), c.output, OUTPUT_ATOL, 'output');
      expectTensor(ln.backward(tensor(c.grad_output)), c.grad_input, OUTPUT_ATOL, 'grad_input');
      if (c.weight_grad && c.bias_grad) {
        expectClose(ln.weight!.grad, c.weight_grad.data, OUTPUT_ATOL, 'weight.grad');
        expectClose(ln.bias!.grad, c.bias_grad.data, OUTPUT_ATOL, 'bias.grad');
      } else {
        expect(ln.weight).toBeUndefined();
        expect(ln.parameters()).toEqual([]);
      }
      ln.eval();
      expectTensor(ln.forward(tensor(c.input)), c.output, OUTPUT_ATOL, 'eval output');
    });
  }
});

// ---------------------------------------------------------------------------------------------
// e. Activations

describe('activations against PyTorch', () => {
  const fx = fixture<{
    input: TensorJson;
    grad_output: TensorJson;
    cases: { name: string; output: TensorJson; grad_input: TensorJson }[];
  }>('activations.json');
  const modules: Record<string, () => Module> = {
    relu: () => new ReLU(),
    leaky_relu: () => new LeakyReLU({ negativeSlope: 0.2 }),
    gelu: () => new GELU({ approximate: 'none' }),
    gelu_tanh: () => new GELU({ approximate: 'tanh' }),
    tanh: () => new Tanh(),
    sigmoid: () => new Sigmoid(),
    selu: () => new SELU(),
  };

  for (const c of fx.cases) {
    it(`${c.name}: output and input gradient (including ±10, ±1e-3, 0)`, () => {
      const make = modules[c.name];
      expect(make, `no module for ${c.name}`).toBeDefined();
      const m = onTestKernels(make!());
      expectTensor(m.forward(tensor(fx.input)), c.output, OUTPUT_ATOL, `${c.name} output`);
      const dx = m.backward(tensor(fx.grad_output));
      expectTensor(dx, c.grad_input, OUTPUT_ATOL, `${c.name} grad_input`);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// f. Dropout in eval mode

describe('Dropout and AlphaDropout in eval mode', () => {
  const fx = fixture<{
    input: TensorJson;
    cases: {
      name: string;
      p: number;
      output: TensorJson;
      grad_output: TensorJson;
      grad_input: TensorJson;
    }[];
  }>('dropout.json');

  for (const c of fx.cases) {
    it(`${c.name}(p=${c.p}) is the identity`, () => {
      const m = onTestKernels(
        c.name === 'alpha_dropout' ? new AlphaDropout({ p: c.p }) : new Dropout({ p: c.p }),
      );
      m.eval();
      expectTensor(m.forward(tensor(fx.input)), c.output, OUTPUT_ATOL, 'output');
      expectTensor(m.backward(tensor(c.grad_output)), c.grad_input, OUTPUT_ATOL, 'grad_input');
    });
  }
});

// ---------------------------------------------------------------------------------------------
// g. Linear + BatchNorm1d in eval mode

function toStateDict(entries: Record<string, TensorJson | number>, keys: string[]): StateDict {
  const state: StateDict = new Map();
  for (const key of keys) {
    const v = entries[key]!;
    state.set(key, typeof v === 'number' ? BigInt(v) : tensor(v));
  }
  return state;
}

describe('Sequential(Linear, BatchNorm1d) in eval mode', () => {
  const fx = fixture<{
    state_dict_keys: string[];
    state_dict: Record<string, TensorJson | number>;
    input: TensorJson;
    output: TensorJson;
    grad_output: TensorJson;
    grad_input: TensorJson;
    grads: Record<string, TensorJson>;
  }>('sequential-eval.json');

  const build = () => {
    const model = new Sequential([
      new Linear({ inFeatures: 6, outFeatures: 4 }),
      new BatchNorm1d({ numFeatures: 4 }),
    ]);
    model.loadStateDict(toStateDict(fx.state_dict, fx.state_dict_keys));
    return onTestKernels(model).eval();
  };

  it('names its state like state_dict() and round-trips the values', () => {
    const model = build();
    const state = model.stateDict();
    expect([...state.keys()]).toEqual(fx.state_dict_keys);
    for (const key of fx.state_dict_keys) {
      const expected = fx.state_dict[key]!;
      const actual = state.get(key)!;
      if (typeof expected === 'number') expect(actual).toBe(BigInt(expected));
      else expectTensor(actual as Tensor, expected, 0, key);
    }
  });

  it('computes the eval output and gradients', () => {
    const model = build();
    expectTensor(model.forward(tensor(fx.input)), fx.output, OUTPUT_ATOL, 'output');
    const dx = model.backward(tensor(fx.grad_output));
    expectTensor(dx, fx.grad_input, OUTPUT_ATOL, 'grad_input');
    const params = new Map(model.namedParameters());
    expect([...params.keys()]).toEqual(Object.keys(fx.grads));
    for (const [name, g] of Object.entries(fx.grads)) {
      expectClose(params.get(name)!.grad, g.data, OUTPUT_ATOL, `${name}.grad`);
    }
    // Eval must not move the running statistics.
    const bnState = model.stateDict();
    expect(bnState.get('1.num_batches_tracked')).toBe(
      BigInt(fx.state_dict['1.num_batches_tracked'] as number),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// h. Optimizers

interface OptimizerCase {
  name: string;
  optimizer: 'Adam' | 'AdamW' | 'SGD';
  options: {
    lr: number;
    betas?: [number, number];
    eps?: number;
    weight_decay?: number;
    momentum?: number;
    dampening?: number;
    nesterov?: boolean;
  };
  /** The param group's lr before step k, as a scheduler sets it (absent: options.lr throughout). */
  lr_per_step?: number[];
  resolved_options: {
    lr: number;
    betas?: [number, number];
    eps?: number;
    weight_decay: number;
    momentum?: number;
    dampening?: number;
    nesterov?: boolean;
  };
  after_step: { weight: TensorJson; bias: TensorJson }[];
}

function makeOptimizer(c: OptimizerCase, params: Parameter[]): Optimizer {
  const o = c.options;
  if (c.optimizer === 'SGD') {
    return new SGD(params, {
      lr: o.lr,
      ...(o.momentum === undefined ? {} : { momentum: o.momentum }),
      ...(o.weight_decay === undefined ? {} : { weightDecay: o.weight_decay }),
      ...(o.dampening === undefined ? {} : { dampening: o.dampening }),
      ...(o.nesterov === undefined ? {} : { nesterov: o.nesterov }),
      kernels: TEST_KERNELS,
    });
  }
  const options = {
    lr: o.lr,
    kernels: TEST_KERNELS,
    ...(o.betas === undefined ? {} : { betas: o.betas }),
    ...(o.eps === undefined ? {} : { eps: o.eps }),
    ...(o.weight_decay === undefined ? {} : { weightDecay: o.weight_decay }),
  };
  return c.optimizer === 'Adam' ? new Adam(params, options) : new AdamW(params, options);
}

describe('optimizers against PyTorch', () => {
  const fx = fixture<{
    initial: { weight: TensorJson; bias: TensorJson };
    grads: { weight: TensorJson; bias: TensorJson }[];
    cases: OptimizerCase[];
  }>('optimizers.json');

  for (const c of fx.cases) {
    it(`${c.name}: parameters after each of ${c.after_step.length} steps`, () => {
      const weight = new Parameter(tensor(fx.initial.weight));
      const bias = new Parameter(tensor(fx.initial.bias));
      const opt = makeOptimizer(c, adoptParameters([weight, bias]));
      // PyTorch's defaults (as resolved into its param group) are the engine's defaults.
      const r = c.resolved_options;
      expect(opt.lr).toBe(r.lr);
      if (opt instanceof Adam) {
        expect([opt.beta1, opt.beta2]).toEqual(r.betas);
        expect(opt.eps).toBe(r.eps);
        expect(opt.weightDecay).toBe(r.weight_decay);
      } else if (opt instanceof SGD) {
        expect(opt.momentum).toBe(r.momentum);
        expect(opt.dampening).toBe(r.dampening);
        expect(opt.weightDecay).toBe(r.weight_decay);
        expect(opt.nesterov).toBe(r.nesterov);
      }
      c.after_step.forEach((expected, k) => {
        const g = fx.grads[k]!;
        if (c.lr_per_step) opt.lr = c.lr_per_step[k]!;
        weight.grad.set(g.weight.data);
        bias.grad.set(g.bias.data);
        opt.step();
        expectTensor(weight.value, expected.weight, OPTIMIZER_STEP_ATOL, `step ${k + 1} weight`);
        expectTensor(bias.value, expected.bias, OPTIMIZER_STEP_ATOL, `step ${k + 1} bias`);
      });
    });
  }
});

// ---------------------------------------------------------------------------------------------
// i. Losses

describe('losses against PyTorch', () => {
  const fx = fixture<{
    cross_entropy: {
      name: string;
      label_smoothing: number;
      logits: TensorJson;
      targets: number[];
      loss: number;
      grad: TensorJson;
    }[];
    mse: { input: TensorJson; target: TensorJson; loss: number; grad: TensorJson };
  }>('losses.json');

  for (const c of fx.cross_entropy) {
    it(`cross_entropy ${c.name}: loss and gradient`, () => {
      const { loss, grad } = crossEntropy(tensor(c.logits), c.targets, c.label_smoothing);
      expect(Number.isFinite(loss)).toBe(true);
      // Relative: losses in the hundreds ('large') are only good to their float32 ulp (3e-5 at
      // 500) in PyTorch itself. Measured 1.1e-7.
      expectRelClose([loss], [c.loss], LOSS_RTOL, 'loss');
      expectTensor(grad, c.grad, OUTPUT_ATOL, 'grad');
    });
  }

  it('mse_loss: loss and gradient', () => {
    const { loss, grad } = mseLoss(tensor(fx.mse.input), tensor(fx.mse.target));
    expectRelClose([loss], [fx.mse.loss], LOSS_RTOL, 'loss');
    expectTensor(grad, fx.mse.grad, OUTPUT_ATOL, 'grad');
  });
});

// ---------------------------------------------------------------------------------------------
// j. LR schedules

describe('LR schedules against PyTorch', () => {
  const fx = fixture<{
    steps: number;
    cases: {
      name: string;
      scheduler: 'CosineAnnealingLR' | 'OneCycleLR';
      options: {
        T_max?: number;
        eta_min?: number;
        max_lr?: number;
        total_steps?: number;
        pct_start?: number;
        div_factor?: number;
        final_div_factor?: number;
      };
      base_lr: number;
      lrs: number[];
    }[];
  }>('lr-schedules.json');

  for (const c of fx.cases) {
    it(`${c.name}: the lr of each of ${c.lrs.length} optimizer steps`, () => {
      const o = c.options;
      const lrs = c.lrs.map((_, k) =>
        c.scheduler === 'CosineAnnealingLR'
          ? learningRateAt({ type: 'cosine', etaMin: o.eta_min! }, c.base_lr, k, o.T_max!)
          : learningRateAt(
              {
                type: 'one_cycle',
                pctStart: o.pct_start!,
                divFactor: o.div_factor!,
                finalDivFactor: o.final_div_factor!,
              },
              c.base_lr,
              k,
              o.total_steps!,
            ),
      );
      expectRelClose(lrs, c.lrs, LR_RTOL, c.name);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// k. Gradient clipping

describe('clip_grad_norm_ against PyTorch', () => {
  const { cases, nonfinite } = fixture<{
    cases: {
      name: string;
      max_norm: number;
      grads: TensorJson[];
      total_norm: number;
      clipped_grads: TensorJson[];
    }[];
    nonfinite: {
      name: string;
      max_norm: number;
      grads: (number | string)[][];
      total_norm: number | string;
      clipped_grads: (number | string)[][];
    }[];
  }>('clip-grad-norm.json');

  for (const c of cases) {
    it(`${c.name}: total norm and gradients`, () => {
      const params = c.grads.map((g) => {
        const p = new Parameter(Tensor.zeros(g.shape));
        p.grad.set(g.data);
        return p;
      });
      const total = clipGradNorm(params, c.max_norm);
      expectClose([total], [c.total_norm], OUTPUT_ATOL, 'total norm');
      params.forEach((p, i) => {
        expectClose(p.grad, c.clipped_grads[i]!.data, OUTPUT_ATOL, `grad ${i}`);
      });
    });
  }

  // The fixture writes NaN and ±Infinity, which JSON cannot hold, as "nan", "inf", "-inf".
  const value = (v: number | string): number =>
    typeof v === 'number' ? v : v === 'nan' ? Number.NaN : v === 'inf' ? Infinity : -Infinity;
  for (const c of nonfinite) {
    it(`${c.name}: scales by the clamped coefficient even then (NaN everywhere, or zeros)`, () => {
      const params = c.grads.map((g) => {
        const p = new Parameter(Tensor.zeros([g.length]));
        p.grad.set(g.map(value));
        return p;
      });
      expect(clipGradNorm(params, c.max_norm)).toBe(value(c.total_norm));
      // toEqual tells NaN (equal to NaN) and ±0 apart, as PyTorch's results do.
      expect(params.map((p) => Array.from(p.grad))).toEqual(
        c.clipped_grads.map((g) => g.map(value)),
      );
    });
  }
});

// ---------------------------------------------------------------------------------------------
// l. The trained digits model (used in depth by other suites; sanity here)

describe('digits-torch model fixture', () => {
  it('has a JSON config, 360 expected rows and two recalibrated BatchNorms', () => {
    const config = readJson<{
      format: string;
      input_shape: number[];
      labels: string[];
      input_transform: { shift: number[]; scale: number[] };
      layers: { type: string }[];
      provenance: { source: string; torch_version: string };
    }>('torch-model/digits-torch/1/config.json');
    expect(config.format).toBe('normserve.model/v1');
    expect(config.input_shape).toEqual([64]);
    expect(config.labels).toHaveLength(10);
    expect(config.input_transform.shift).toHaveLength(64);
    expect(config.input_transform.scale).toHaveLength(64);
    expect(config.layers.map((l) => l.type)).toEqual([
      'linear',
      'batchnorm1d',
      'relu',
      'dropout',
      'linear',
      'batchnorm1d',
      'relu',
      'linear',
    ]);
    expect(config.provenance.source).toBe('pytorch');

    const expected = readJson<{ num_rows: number; logits: TensorJson; probabilities: TensorJson }>(
      'torch-model/expected.json',
    );
    expect(expected.num_rows).toBe(360);
    expect(expected.logits.shape).toEqual([360, 10]);
    expect(expected.probabilities.shape).toEqual([360, 10]);
    expect(expected.logits.data).toHaveLength(3600);

    const recalibration = readJson<{
      num_rows: number;
      batchnorms: { running_mean_key: string; running_var: TensorJson }[];
      recalibrated: { logits: TensorJson };
    }>('torch-model/recalibration.json');
    expect(recalibration.num_rows).toBe(360);
    expect(recalibration.batchnorms.map((b) => b.running_mean_key)).toEqual([
      '1.running_mean',
      '5.running_mean',
    ]);
    expect(recalibration.recalibrated.logits.shape).toEqual([360, 10]);
  });

  it('reproduces the PyTorch logits with the engine (clean, night, recalibrated)', () => {
    const dir = 'torch-model/digits-torch/1';
    const config = readJson<{
      input_transform: { shift: number[]; scale: number[] };
      layers: (
        | { type: 'linear'; in_features: number; out_features: number; bias: boolean }
        | { type: 'batchnorm1d'; num_features: number; eps: number; momentum: number | null }
        | { type: 'relu' }
        | { type: 'dropout'; p: number }
      )[];
    }>(`${dir}/config.json`);
    const model = new Sequential(
      config.layers.map((l): Module => {
        switch (l.type) {
          case 'linear':
            return new Linear({
              inFeatures: l.in_features,
              outFeatures: l.out_features,
              bias: l.bias,
            });
          case 'batchnorm1d':
            return new BatchNorm1d({
              numFeatures: l.num_features,
              eps: l.eps,
              momentum: l.momentum,
            });
          case 'relu':
            return new ReLU();
          default:
            return new Dropout({ p: l.p });
        }
      }),
    );
    model.loadStateDict(
      readSafetensors(new URL(`../fixtures/${dir}/model.safetensors`, import.meta.url)),
    );
    onTestKernels(model).eval();

    const expected = readJson<{
      rows: { start: number; end: number };
      labels: number[];
      predictions: number[];
    }>('torch-model/expected.json');
    const recal = readJson<{
      night: { predictions: number[] };
      batchnorms: {
        running_mean_key: string;
        running_var_key: string;
        running_mean: TensorJson;
        running_var: TensorJson;
      }[];
      recalibrated: { predictions: number[] };
    }>('torch-model/recalibration.json');
    // PyTorch's float32 logits carry PyTorch's own rounding (up to 2.1e-5 on the recalibrated
    // night rows, whose standardized inputs reach |z| ~ 60), so the logits are compared with the
    // same float32 checkpoint evaluated in float64; the predicted classes with PyTorch's.
    const reference = readJson<Record<'clean' | 'night' | 'recalibrated', { logits: TensorJson }>>(
      'torch-model/reference-float64.json',
    );
    const { pixels, labels } = readDigitRows(expected.rows.start, expected.rows.end);
    expect(labels).toEqual(expected.labels);
    const { shift, scale } = config.input_transform;
    // (x − shift)·scale in float32 arithmetic, as the fixture script computes it.
    const standardize = (raw: Float32Array): Tensor => {
      const z = new Float32Array(raw.length);
      for (let i = 0; i < raw.length; i++)
        z[i] = Math.fround(raw[i]! - shift[i % 64]!) * scale[i % 64]!;
      return new Tensor(z, [raw.length / 64, 64]);
    };
    const argmaxRows = (t: Tensor): number[] =>
      t.toRows().map((row) => row.indexOf(Math.max(...row)));

    const clean = model.forward(standardize(pixels));
    expectTensor(clean, reference.clean.logits, OUTPUT_ATOL, 'clean logits');
    expect(argmaxRows(clean)).toEqual(expected.predictions);

    // The project's "night" shift, computed in float64 and rounded to float32 as the script does.
    const zNight = standardize(pixels.map((x) => 16 * (0.35 * (x / 16) + 0.1)));
    const night = model.forward(zNight);
    expectTensor(night, reference.night.logits, OUTPUT_ATOL, 'night logits');
    expect(argmaxRows(night)).toEqual(recal.night.predictions);

    const state = model.stateDict();
    for (const bn of recal.batchnorms) {
      (state.get(bn.running_mean_key) as Tensor).data.set(bn.running_mean.data);
      (state.get(bn.running_var_key) as Tensor).data.set(bn.running_var.data);
    }
    const recalibrated = model.forward(zNight);
    expectTensor(recalibrated, reference.recalibrated.logits, OUTPUT_ATOL, 'recalibrated logits');
    expect(argmaxRows(recalibrated)).toEqual(recal.recalibrated.predictions);
  });
});

/** A safetensors file (u64 LE header length, JSON header, LE tensor bytes) as a state dict. */
function readSafetensors(url: URL): StateDict {
  const bytes = readFileSync(url);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + headerLength;
  const state: StateDict = new Map();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [begin, end] = entry.data_offsets;
    if (entry.dtype === 'I64') {
      expect(entry.shape).toEqual([]);
      state.set(name, bytes.readBigInt64LE(base + begin));
      continue;
    }
    expect(entry.dtype).toBe('F32');
    const values = new Float32Array((end - begin) / 4);
    for (let i = 0; i < values.length; i++) values[i] = bytes.readFloatLE(base + begin + 4 * i);
    state.set(name, new Tensor(values, entry.shape));
  }
  return state;
}

/** Raw pixels (0..16) and labels of rows [start, end) of data/digits/digits.csv. */
function readDigitRows(start: number, end: number): { pixels: Float32Array; labels: number[] } {
  const lines = readFileSync(new URL('../../data/digits/digits.csv', import.meta.url), 'utf8')
    .trim()
    .split('\n')
    .slice(1 + start, 1 + end);
  const pixels = new Float32Array(lines.length * 64);
  const labels: number[] = [];
  lines.forEach((line, r) => {
    const cells = line.split(',').map(Number);
    pixels.set(cells.slice(0, 64), r * 64);
    labels.push(cells[64]!);
  });
  return { pixels, labels };
}

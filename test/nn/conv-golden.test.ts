/**
 * The convolutional layers against PyTorch 1.13: Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d,
 * Flatten, LayerNorm over [C, H, W] and the residual block (train and eval), each built from its
 * config entry through the layer registry, forward and backward
 * (test/fixtures/torch/conv-layers.json, from `tools/make-golden-fixtures.py conv`).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildLayer, layerSchema } from '../../src/checkpoint/index.js';
import { BatchNorm, namedModules, type StateDict, Tensor } from '../../src/nn/index.js';
import { expectClose, expectRelClose } from '../helpers/compare.js';
import { onTestKernels } from '../helpers/kernels.js';
import { OUTPUT_ATOL, STATS_RTOL } from '../helpers/tolerances.js';

interface TensorJson {
  shape: number[];
  data: number[];
}

interface ModuleCase {
  name: string;
  options: unknown;
  train: boolean;
  input: TensorJson;
  output: TensorJson;
  grad_output: TensorJson;
  grad_input: TensorJson;
  parameters: Record<string, TensorJson>;
  grads: Record<string, TensorJson>;
  buffers: Record<string, TensorJson | number>;
  buffers_before?: Record<string, TensorJson | number>;
  state_dict_keys?: string[];
}

const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/torch/conv-layers.json', import.meta.url), 'utf8'),
) as { torch_version: string; cases: ModuleCase[] };

const tensor = (t: TensorJson) => Tensor.from(t.data, t.shape);

/**
 * Gradients are sums over the batch and every window: compared relatively (float32 sums of up to
 * a few hundred terms in PyTorch), with OUTPUT_ATOL as the floor near zero.
 */
function expectGradient(actual: ArrayLike<number>, expected: TensorJson, what: string): void {
  expectRelClose(actual, expected.data, STATS_RTOL, what, OUTPUT_ATOL / STATS_RTOL);
}

function stateOf(c: ModuleCase): StateDict {
  const state: StateDict = new Map();
  for (const [k, v] of Object.entries(c.parameters)) state.set(k, tensor(v));
  for (const [k, v] of Object.entries(c.buffers_before ?? {}))
    state.set(k, typeof v === 'number' ? BigInt(v) : tensor(v));
  return state;
}

describe(`convolutional layers against PyTorch ${fixture.torch_version}`, () => {
  for (const c of fixture.cases) {
    it(`${c.name}: forward, backward, parameters' gradients, buffers`, () => {
      const module = buildLayer(layerSchema.parse(c.options));
      module.loadStateDict(stateOf(c));
      onTestKernels(module);
      if (c.state_dict_keys) expect([...module.stateDict().keys()]).toEqual(c.state_dict_keys);
      module.train(c.train);
      const y = module.forward(tensor(c.input));
      expect(y.shape, 'output shape').toEqual(c.output.shape);
      expectClose(y.data, c.output.data, OUTPUT_ATOL, 'output');
      module.zeroGrad();
      const dx = module.backward(tensor(c.grad_output));
      expect(dx.shape).toEqual(c.input.shape);
      expectGradient(dx.data, c.grad_input, 'grad_input');
      const params = new Map(module.namedParameters());
      expect([...params.keys()]).toEqual(Object.keys(c.grads));
      for (const [name, g] of Object.entries(c.grads))
        expectGradient(params.get(name)!.grad, g, `grad ${name}`);
      for (const [path, m] of namedModules(module)) {
        if (!(m instanceof BatchNorm)) continue;
        const buffer = (key: string) => c.buffers[`${path}.${key}`];
        expectRelClose(
          m.runningMean.data,
          (buffer('running_mean') as TensorJson).data,
          STATS_RTOL,
          `${path}.running_mean`,
        );
        expectRelClose(
          m.runningVar.data,
          (buffer('running_var') as TensorJson).data,
          STATS_RTOL,
          `${path}.running_var`,
        );
        expect(m.numBatchesTracked).toBe(buffer('num_batches_tracked'));
      }
    });
  }
});

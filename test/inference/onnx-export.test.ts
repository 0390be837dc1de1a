/**
 * The ONNX export of the fused plan, read back by an independent runtime (onnxruntime-web, WASM):
 * its outputs equal normserve's fused outputs within OUTPUT_ATOL for the bundled model and every
 * layer combination the compiler distinguishes (with and without an input transform), each
 * activation computes PyTorch's definition over a wide input range, the batch axis is symbolic,
 * and the optional probabilities output is the service's softmax.
 */
import { describe, expect, it } from 'vitest';
import type { LayerSpec } from '../../src/checkpoint/index.js';
import {
  CompiledModel,
  exportOnnx,
  ONNX_BATCH_DIM,
  type OnnxExportOptions,
} from '../../src/inference/index.js';
import { softmaxRows } from '../../src/nn/index.js';
import { loadModelDirectory } from '../../src/repository/index.js';
import { expectClose } from '../helpers/compare.js';
import { digitsTestRows } from '../helpers/digits.js';
import {
  combinations,
  linear,
  randomInput,
  randomNetwork,
  transform,
} from '../helpers/layer-combinations.js';
import { onnxSession, runOnnx } from '../helpers/onnx-runtime.js';
import { OUTPUT_ATOL } from '../helpers/tolerances.js';

const names: OnnxExportOptions = { graphName: 'test', inputName: 'input', outputName: 'logits' };

async function onnxOutputs(model: CompiledModel, x: Float32Array, rows: number) {
  const session = await onnxSession(exportOnnx(model.plan, names));
  return (await runOnnx(session, x, rows, model.inputWidth)).logits!;
}

describe('ONNX export vs normserve fused outputs', () => {
  for (const [name, layers] of Object.entries(combinations)) {
    for (const withTransform of [false, true]) {
      it(`${name}${withTransform ? ', with an input transform' : ''}: max |Δ| ≤ ${OUTPUT_ATOL}`, async () => {
        const network = randomNetwork(layers, 11);
        const model = new CompiledModel(network, withTransform ? transform(6, 3) : undefined, 64);
        const x = randomInput(64, 6, 5);
        expectClose(await onnxOutputs(model, x, 64), model.forward(x, 64), OUTPUT_ATOL, name);
      });
    }
  }

  it('the bundled digits model: logits and probabilities on the 360 test rows, one session for batch 1 and 360', async () => {
    const { checkpoint } = await loadModelDirectory('models/digits/1');
    const model = new CompiledModel(checkpoint.network, checkpoint.config.input_transform, 4096);
    const session = await onnxSession(
      exportOnnx(model.plan, { ...names, probabilitiesName: 'probabilities' }),
    );
    expect(session.inputNames).toEqual(['input']);
    expect(session.outputNames).toEqual(['logits', 'probabilities']);
    for (const meta of [...session.inputMetadata, ...session.outputMetadata]) {
      expect(meta.isTensor && meta.shape[0], meta.name).toBe(ONNX_BATCH_DIM);
    }
    const { x } = digitsTestRows();
    const input = Float32Array.from(x.flat());
    const ours = model.forward(input, x.length);
    const theirs = await runOnnx(session, input, x.length, 64);
    expectClose(theirs.logits!, ours, OUTPUT_ATOL, 'logits');
    expectClose(
      theirs.probabilities!,
      softmaxRows(ours, x.length, 10),
      OUTPUT_ATOL,
      'probabilities',
    );
    const one = await runOnnx(session, input.subarray(0, 64), 1, 64);
    expectClose(one.logits!, ours.subarray(0, 10), OUTPUT_ATOL, 'row 0 alone');
  });
});

describe('each activation maps to ONNX operators computing PyTorch’s definition', () => {
  const activations: Record<string, LayerSpec> = {
    ReLU: { type: 'relu' },
    'LeakyReLU(0.2)': { type: 'leaky_relu', negative_slope: 0.2 },
    'GELU (exact, erf)': { type: 'gelu', approximate: 'none' },
    "GELU(approximate='tanh')": { type: 'gelu', approximate: 'tanh' },
    Tanh: { type: 'tanh' },
    Sigmoid: { type: 'sigmoid' },
    SELU: { type: 'selu' },
  };
  // 4001 points on [-20, 20]: both tails (saturation, exp overflow regions) and the kink at 0.
  const grid = Float32Array.from({ length: 4001 }, (_, i) => -20 + i * 0.01);
  for (const [name, layer] of Object.entries(activations)) {
    it(`${name} alone (a stand-alone activation step) on [-20, 20]`, async () => {
      const model = new CompiledModel(randomNetwork([layer], 1), undefined, grid.length, 1);
      expect(model.plan.steps.map((s) => s.op)).toEqual(['activation']);
      expectClose(
        await onnxOutputs(model, grid, grid.length),
        model.forward(grid, grid.length),
        OUTPUT_ATOL,
        name,
      );
    });
    it(`${name} fused into a dense step`, async () => {
      const model = new CompiledModel(randomNetwork([linear(6, 8), layer], 2), undefined, 64);
      expect(
        model.plan.steps.map((s) => `${s.op}:${s.activation.kind === 'none' ? '' : 'act'}`),
      ).toEqual(['dense:act']);
      const x = randomInput(64, 6, 7);
      expectClose(await onnxOutputs(model, x, 64), model.forward(x, 64), OUTPUT_ATOL, name);
    });
  }
});

describe('graph edge cases', () => {
  it('a plan with no steps (only eval identities) exports an Identity', async () => {
    const model = new CompiledModel(
      randomNetwork([{ type: 'dropout', p: 0.5 }, { type: 'identity' }], 1),
      undefined,
      8,
      3,
    );
    expect(model.plan.steps).toEqual([]);
    const x = randomInput(8, 3, 1);
    expect(Array.from(await onnxOutputs(model, x, 8))).toEqual(Array.from(x));
  });

  it('is deterministic: the same plan gives the same bytes', () => {
    const model = new CompiledModel(
      randomNetwork(combinations['every activation']!, 3),
      transform(6, 1),
      8,
    );
    expect(Buffer.from(exportOnnx(model.plan, names))).toEqual(
      Buffer.from(exportOnnx(model.plan, names)),
    );
  });
});

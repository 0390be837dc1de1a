/**
 * The ONNX export of the fused plan, read back by an independent runtime (onnxruntime-web, WASM):
 * its outputs equal normserve's fused outputs within OUTPUT_ATOL for the bundled model and every
 * layer combination the compiler distinguishes (with and without an input transform), each
 * activation computes PyTorch's definition over a wide input range, the batch axis is symbolic,
 * and the optional probabilities output is the service's softmax. Convolutional networks export
 * with an image input [batch, C, H, W]; where Debian's python3-onnx is installed, the official
 * checker (tools/onnx-check.py: full check, strict shape inference) accepts every export.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LayerSpec } from '../../src/checkpoint/index.js';
import {
  CompiledModel,
  exportOnnx,
  ONNX_BATCH_DIM,
  type OnnxExportOptions,
  PlanExecutor,
} from '../../src/inference/index.js';
import { softmaxRows } from '../../src/nn/index.js';
import { loadModelDirectory } from '../../src/repository/index.js';
import { BUNDLED_MODEL_NAMES, bundledVersionDir } from '../helpers/bundled-models.js';
import {
  cnnCases,
  randomNetwork as randomCnn,
  randomInput as randomImages,
} from '../helpers/cnn-combinations.js';
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
  return (await runOnnx(session, x, rows, model.inputShape)).logits!;
}

describe('ONNX export vs normserve fused outputs', () => {
  for (const [name, layers] of Object.entries(combinations)) {
    for (const withTransform of [false, true]) {
      it(`${name}${withTransform ? ', with an input transform' : ''}: max |Δ| ≤ ${OUTPUT_ATOL}`, async () => {
        const network = randomNetwork(layers, 11);
        const model = new CompiledModel(
          network,
          withTransform ? transform(6, 3) : undefined,
          64,
          6,
        );
        const x = randomInput(64, 6, 5);
        expectClose(await onnxOutputs(model, x, 64), model.forward(x, 64), OUTPUT_ATOL, name);
      });
    }
  }

  it('the bundled digits model: logits and probabilities on the 360 test rows, one session for batch 1 and 360', async () => {
    const { checkpoint } = await loadModelDirectory(bundledVersionDir('digits'));
    const model = new CompiledModel(
      checkpoint.network,
      checkpoint.config.input_transform,
      4096,
      checkpoint.config.input_shape,
    );
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

describe('ONNX export of convolutional networks vs normserve fused outputs', () => {
  for (const [name, c] of Object.entries(cnnCases)) {
    const atol = c.float32Atol ?? OUTPUT_ATOL;
    it(`${name}: input [batch, ${c.inputShape.join(', ')}], max |Δ| ≤ ${atol}`, async () => {
      const model = new CompiledModel(randomCnn(c.layers, 7), c.transform, 32, c.inputShape);
      const x = randomImages(32, model.inputWidth, 5);
      const session = await onnxSession(exportOnnx(model.plan, names));
      expect(session.inputMetadata[0]).toMatchObject({ shape: [ONNX_BATCH_DIM, ...c.inputShape] });
      const onnx = (await runOnnx(session, x, 32, model.inputShape)).logits!;
      expectClose(onnx, new PlanExecutor(model.plan, 32).run(x, 32), atol, name);
    });
  }

  it('the bundled digits-cnn model: logits and probabilities on the 360 test rows, [N, 1, 8, 8]', async () => {
    const { checkpoint } = await loadModelDirectory(bundledVersionDir('digits-cnn'));
    const { config } = checkpoint;
    const model = new CompiledModel(
      checkpoint.network,
      config.input_transform,
      4096,
      config.input_shape,
    );
    const bytes = exportOnnx(model.plan, { ...names, probabilitiesName: 'probabilities' });
    const session = await onnxSession(bytes);
    const { x } = digitsTestRows();
    const input = Float32Array.from(x.flat());
    const ours = model.forward(input, x.length);
    const theirs = await runOnnx(session, input, x.length, [1, 8, 8]);
    expectClose(theirs.logits!, ours, OUTPUT_ATOL, 'logits');
    expectClose(
      theirs.probabilities!,
      softmaxRows(ours, x.length, 10),
      OUTPUT_ATOL,
      'probabilities',
    );
  });
});

/** The official ONNX checker, when /usr/bin/python3 has the onnx package (Debian's python3-onnx). */
const PYTHON = '/usr/bin/python3';
const hasOnnxChecker = spawnSync(PYTHON, ['-c', 'import onnx']).status === 0;

describe.skipIf(!hasOnnxChecker)('the official ONNX checker (tools/onnx-check.py)', () => {
  it('accepts the export of every convolutional arrangement and of the bundled models', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'onnx-check-'));
    try {
      const files = Object.entries(cnnCases).map(([, c], i) => {
        const model = new CompiledModel(randomCnn(c.layers, 7), c.transform, 8, c.inputShape);
        const file = join(dir, `case-${i}.onnx`);
        writeFileSync(file, exportOnnx(model.plan, { ...names, probabilitiesName: 'p' }));
        return file;
      });
      for (const name of BUNDLED_MODEL_NAMES) {
        const { checkpoint } = await loadModelDirectory(bundledVersionDir(name));
        const { config } = checkpoint;
        const model = new CompiledModel(
          checkpoint.network,
          config.input_transform,
          8,
          config.input_shape,
        );
        const file = join(dir, `${name}.onnx`);
        writeFileSync(file, exportOnnx(model.plan, names));
        files.push(file);
      }
      const check = spawnSync(PYTHON, ['tools/onnx-check.py', ...files], { encoding: 'utf8' });
      expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
      expect(check.stdout.split('\n').filter((l) => l.includes(': ok ('))).toHaveLength(
        files.length,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
      const model = new CompiledModel(randomNetwork([linear(6, 8), layer], 2), undefined, 64, 6);
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
      6,
    );
    expect(Buffer.from(exportOnnx(model.plan, names))).toEqual(
      Buffer.from(exportOnnx(model.plan, names)),
    );
  });
});

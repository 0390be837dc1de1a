/**
 * Checkpoints both ways between PyTorch 1.13 and normserve, with every layer type config.json
 * accepts (test/fixtures/torch-model/every-layer-torch/1, `tools/make-golden-fixtures.py
 * roundtrip`): PyTorch's state_dict, written as safetensors, loads through the checkpoint loader
 * and gives PyTorch's eval outputs, fused and unfused; what normserve writes back holds exactly
 * PyTorch's names, order, dtypes, shapes and bytes, which is what load_state_dict(strict=True)
 * needs (the script also loads the directory with tools/torch-eval-model.py, strict).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  type LayerSpec,
  layerTypes,
  parseCheckpoint,
  readSafetensors,
  serializeCheckpoint,
  WEIGHTS_FILE,
} from '../../src/checkpoint/index.js';
import { CompiledModel } from '../../src/inference/index.js';
import { Tensor } from '../../src/nn/index.js';
import { expectClose } from '../helpers/compare.js';
import { onTestKernels } from '../helpers/kernels.js';
import { UNIT_OUTPUT_ATOL } from '../helpers/tolerances.js';

interface TensorJson {
  shape: number[];
  data: number[];
}

const DIR = 'test/fixtures/torch-model/every-layer-torch/1';
const expected = JSON.parse(
  readFileSync('test/fixtures/torch-model/every-layer-expected.json', 'utf8'),
) as {
  torch_version: string;
  input: TensorJson;
  outputs: TensorJson;
  outputs_float64: TensorJson;
  state_dict: { name: string; dtype: string; shape: number[] }[];
};
const files = {
  config: readFileSync(`${DIR}/config.json`),
  weights: readFileSync(`${DIR}/${WEIGHTS_FILE}`),
};
const DTYPES: Record<string, string> = { float32: 'F32', int64: 'I64' };

describe(`every layer type between PyTorch ${expected.torch_version} and normserve`, () => {
  it("loads PyTorch's state_dict and gives its eval outputs, unfused and fused, within 1e-6", () => {
    const { config, network } = parseCheckpoint(files, DIR);
    // Every registered type, nested ones included: a new type fails here until
    // make_every_layer_checkpoint() in tools/make-golden-fixtures.py holds it.
    const types = new Set<string>();
    const collect = (layers: readonly LayerSpec[]): void => {
      for (const l of layers) {
        types.add(l.type);
        if (l.type === 'residual') collect(l.layers);
      }
    };
    collect(config.layers);
    expect([...types].sort()).toEqual([...layerTypes].sort());
    onTestKernels(network);
    const rows = expected.input.shape[0]!;
    const unfused = network.forward(Tensor.from(expected.input.data, expected.input.shape));
    expect(unfused.shape).toEqual(expected.outputs.shape);
    expectClose(unfused.data, expected.outputs.data, UNIT_OUTPUT_ATOL, 'outputs');
    expectClose(
      unfused.data,
      expected.outputs_float64.data,
      UNIT_OUTPUT_ATOL,
      'outputs vs float64',
    );
    const input = Float32Array.from(expected.input.data);
    for (const engine of ['wasm', 'js'] as const) {
      const model = new CompiledModel(network, config.input_transform, rows, config.input_shape, {
        engine,
      });
      const fused = model.forward(input, rows);
      expectClose(fused, expected.outputs.data, UNIT_OUTPUT_ATOL, `${engine} fused outputs`);
      const reference = model.reference(input, rows);
      expectClose(reference, expected.outputs.data, UNIT_OUTPUT_ATOL, `${engine} plan reference`);
    }
  });

  it("writes back PyTorch's state_dict: names in order, dtypes, shapes and bytes", () => {
    const { config, state } = parseCheckpoint(files, DIR);
    const written = serializeCheckpoint({ config, state });
    const ours = readSafetensors(written.get(WEIGHTS_FILE)!, 'ours');
    const torch = readSafetensors(files.weights, 'torch');
    expect(
      [...ours.tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })),
    ).toEqual(
      expected.state_dict.map((e) => ({ name: e.name, dtype: DTYPES[e.dtype], shape: e.shape })),
    );
    for (const [name, t] of torch.tensors) {
      expect(Buffer.from(ours.tensors.get(name)!.bytes).equals(Buffer.from(t.bytes)), name).toBe(
        true,
      );
    }
    // The config normserve writes reads back as the same config.
    const again = parseCheckpoint(
      { config: written.get('config.json')!, weights: written.get(WEIGHTS_FILE)! },
      'again',
    );
    expect(again.config).toEqual(config);
  });
});

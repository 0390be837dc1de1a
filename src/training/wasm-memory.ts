import {
  type LayerSpec,
  layerDefinition,
  layerFootprint,
  type Shape,
} from '../checkpoint/index.js';
import { NormserveError } from '../errors/index.js';
import {
  numelOf,
  WASM_TRAINING_MEMORY_BYTES,
  type WasmTrainingBytes,
  wasmTrainingBytes,
} from '../nn/index.js';
import { EVAL_CHUNK_ROWS } from './evaluate.js';
import type { OptimizerConfig } from './training-config.js';

/** Arrays the optimizer keeps per parameter (nn/adam.ts, nn/sgd.ts). */
function optimizerStates(optimizer: OptimizerConfig): number {
  if (optimizer.type === 'sgd') return optimizer.momentum > 0 ? 1 : 0;
  return 2;
}

/**
 * The WebAssembly memory a training run of these layers needs (nn/wasm/wasm-kernels.ts, by the
 * rules its allocations follow), known from the config alone: every parameter with its gradient,
 * the optimizer's state, each layer's output and input gradient for a batch, and the scratch
 * regions of the matrix products, which hold a weight as float64 panels (Linear and Conv2d pack
 * W [out, fan-in] as B in their forward and input-gradient products) and, when validation runs in
 * eval mode, copies of the layers' inputs and outputs for a chunk of rows. An estimate: it leaves
 * out Conv2d's im2col columns and counts a weight-gradient product's rows as the batch's.
 */
export function wasmTrainingMemory(
  layers: readonly LayerSpec[],
  inputShape: Shape,
  options: { batchSize: number; optimizer: OptimizerConfig; validationRows: number },
): WasmTrainingBytes & { parameterCount: number } {
  const { batchSize } = options;
  const { parameterShapes, layerShapes } = layerFootprint(layers, inputShape);
  const parameters = parameterShapes.map(numelOf);
  const weights = parameterShapes
    .filter((shape) => shape.length >= 2)
    .map((shape) => ({ out: shape[0]!, fanIn: numelOf(shape) / shape[0]! }));
  const chunk = Math.min(EVAL_CHUNK_ROWS, options.validationRows);
  // One training step (forward, then backward: weight gradient, input gradient), then validation.
  const products = [
    ...weights.map(({ out, fanIn }) => ({ k: fanIn, n: out, bias: true, a: 0, c: 0 })),
    ...weights.toReversed().flatMap(({ out, fanIn }) => [
      { k: batchSize, n: fanIn, bias: false, a: 0, c: 0 },
      { k: out, n: fanIn, bias: false, a: 0, c: 0 },
    ]),
    ...(chunk > 0
      ? weights.map(({ out, fanIn }) => ({
          k: fanIn,
          n: out,
          bias: true,
          a: chunk * fanIn,
          c: chunk * out,
        }))
      : []),
  ];
  const stepArrays = [
    batchSize * numelOf(inputShape),
    ...layerShapes.flatMap(({ type, input, output }) => {
      // Kept in the kernels' memory, as its output's or its input's size (the layer's record);
      // the other layers' arrays are ordinary ones.
      const arrays = layerDefinition({ type }).stepArrays ?? { outputs: 0, inputs: 0 };
      return [
        ...Array<number>(arrays.outputs).fill(batchSize * numelOf(output)),
        ...Array<number>(arrays.inputs).fill(batchSize * numelOf(input)),
      ];
    }),
  ];
  return {
    ...wasmTrainingBytes({
      parameters,
      optimizerStates: optimizerStates(options.optimizer),
      stepArrays,
      products,
    }),
    parameterCount: parameters.reduce((a, b) => a + b, 0),
  };
}

const GiB = 2 ** 30;
const size = (bytes: number): string =>
  bytes >= GiB / 10 ? `${(bytes / GiB).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/**
 * Refuses, before anything is allocated, a network whose training cannot fit in WebAssembly's
 * 4 GiB: one line saying what needs how much, and what to change.
 */
export function checkWasmTrainingMemory(
  layers: readonly LayerSpec[],
  inputShape: Shape,
  options: { batchSize: number; optimizer: OptimizerConfig; validationRows: number },
): void {
  const { batchSize, optimizer } = options;
  const need = wasmTrainingMemory(layers, inputShape, options);
  if (need.total <= WASM_TRAINING_MEMORY_BYTES) return;
  const state =
    need.optimizer > 0
      ? `, ${optimizer.type === 'sgd' ? 'SGD momentum' : `${optimizer.type === 'adam' ? 'Adam' : 'AdamW'} state`} ${size(need.optimizer)}`
      : '';
  throw new NormserveError(
    'TRAINING_CONFIG_INVALID',
    `this network needs about ${size(need.total)} of WebAssembly memory to train, over wasm32's ${WASM_TRAINING_MEMORY_BYTES / GiB} GiB limit: ${need.parameterCount.toLocaleString('en-US')} parameters (weights and gradients ${size(need.parameters)}${state}, matrix-product workspace ${size(need.workspace)}) and activations for batch size ${batchSize} (${size(need.activations)}); train narrower layers (--hidden, or the config's architecture.hidden or layers) or a smaller batch size (--batch-size)`,
  );
}

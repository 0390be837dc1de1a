import {
  type LayerSpec,
  layerDefinition,
  layerFootprint,
  type Shape,
  type TrainingFootprint,
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

export interface WasmTrainingOptions {
  batchSize: number;
  optimizer: OptimizerConfig;
  /**
   * The rows of each set the run evaluates in eval mode on the kernels, in order: the validation
   * set's (each epoch), then the test set's (at the end); empty sets may be left out.
   */
  evaluationRows: readonly number[];
}

/** Arrays the optimizer keeps per parameter (nn/adam.ts, nn/sgd.ts). */
function optimizerStates(optimizer: OptimizerConfig): number {
  if (optimizer.type === 'sgd') return optimizer.momentum > 0 ? 1 : 0;
  return 2;
}

/**
 * The WebAssembly memory a training run of these layers needs (nn/wasm/wasm-kernels.ts, by the
 * rules its allocations follow), known from the config alone: every parameter with its gradient,
 * the optimizer's state, each layer's per-step arrays for a batch (its record's stepArrays), and
 * the scratch regions of the matrix products and BatchNorm's passes, which hold B as float64
 * panels and copies of the operands living in ordinary arrays, with a Conv2d's work arrays (each
 * record's trainingFootprint: a Linear's, a Conv2d's, a BatchNorm's). Shapes come from the layer
 * records (layerFootprint: each layer's output from its input). A Linear's weight-gradient
 * product is counted with the batch's rows and every layer's input gradient is counted, the first
 * one's too (never computed): the figure is the memory a run reaches or a little more.
 */
export function wasmTrainingMemory(
  layers: readonly LayerSpec[],
  inputShape: Shape,
  options: WasmTrainingOptions,
): WasmTrainingBytes & { parameterCount: number } {
  const { batchSize } = options;
  const { parameterShapes, layerShapes } = layerFootprint(layers, inputShape);
  const parameters = parameterShapes.map(numelOf);
  // Rows per forward pass of each evaluation (evaluate.ts), in order.
  const chunks = options.evaluationRows
    .map((rows) => Math.min(EVAL_CHUNK_ROWS, rows))
    .filter((rows) => rows > 0);
  // Whether a layer's output (its per-step array) and input gradient live in the kernels' memory
  // in a training step: the layers' whose record states step arrays (stepArrays), and the batch's
  // rows; a layer whose output views its input (Flatten) passes them on.
  const keepsStepArrays = (type: LayerSpec['type']) =>
    layerDefinition({ type }).stepArrays !== undefined;
  let inputInMemory = true;
  const layerFrames: TrainingFootprint[] = layerShapes.map(({ spec, input, output }, i) => {
    const definition = layerDefinition(spec);
    const nextType = layerShapes[i + 1]?.type;
    const ctx = {
      input,
      output,
      batchSize,
      evalRows: chunks,
      inputInMemory,
      gradientInMemory: nextType !== undefined && keepsStepArrays(nextType),
    };
    inputInMemory =
      definition.stepArrays !== undefined ||
      (definition.outputViewsInput === true && inputInMemory);
    return (
      definition.trainingFootprint?.(spec, ctx) ?? {
        workArrays: [],
        forward: [],
        backward: [],
        eval: chunks.map(() => []),
      }
    );
  });
  // One training step (forward, then backward: weight gradient, input gradient), then evaluation.
  const products = [
    ...layerFrames.flatMap((l) => l.forward),
    ...layerFrames.toReversed().flatMap((l) => l.backward),
    ...chunks.flatMap((_, j) => layerFrames.flatMap((l) => l.eval[j]!)),
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
    ...layerFrames.flatMap((l) => l.workArrays),
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
  options: WasmTrainingOptions,
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

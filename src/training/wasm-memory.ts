import {
  type LayerSpec,
  layerDefinition,
  layerFootprint,
  type Shape,
} from '../checkpoint/index.js';
import { NormserveError } from '../errors/index.js';
import {
  conv2dFootprint,
  numelOf,
  type ProductFootprint,
  WASM_TRAINING_MEMORY_BYTES,
  type WasmRunFrame,
  type WasmTrainingBytes,
  wasmTrainingBytes,
} from '../nn/index.js';
import { EVAL_CHUNK_ROWS } from './evaluate.js';
import type { OptimizerConfig } from './training-config.js';

type Frame = ProductFootprint | WasmRunFrame;

/**
 * A layer's work arrays and scratch frames: a training step's forward and backward, and a chunk's
 * eval forward for each evaluation.
 */
interface LayerFrames {
  workArrays: number[];
  forward: Frame[];
  backward: Frame[];
  eval: Frame[][];
}

/** A `run` call's frame: its operands in ordinary arrays (0: in the memory, not copied). */
const run = (...bytes: number[]): WasmRunFrame => ({ operands: bytes.filter((b) => b > 0) });

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
 * the optimizer's state, each layer's per-step arrays for a batch, and the scratch regions of the
 * matrix products, which hold B as float64 panels and copies of the operands living in ordinary
 * arrays — a Linear packs W [out, fan-in] in its forward and input-gradient products and, when
 * an evaluation (validation, test) runs in eval mode, copies a chunk of rows in and out; a Conv2d (nn/conv2d.ts,
 * conv2dFootprint) keeps its batch's im2col windows and dY's rows, packs the windows for its
 * weight gradient and copies blocks of its float64 products out. Shapes come from the layer
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
  const f32 = (rows: number, shape: Shape) => rows * numelOf(shape) * 4;
  // Whether a layer's output (its per-step array) and input gradient live in the kernels' memory
  // in a training step: the layers' whose record states step arrays (stepArrays), and the batch's
  // rows; a Flatten passes them on.
  const keepsStepArrays = (type: LayerSpec['type']) =>
    layerDefinition({ type }).stepArrays !== undefined;
  let inputHome = true;
  const layerFrames: LayerFrames[] = layerShapes.map(
    ({ type, input, output, parameters: shapes }, i) => {
      const home = inputHome;
      const nextType = layerShapes[i + 1]?.type;
      const gradientHome = nextType !== undefined && keepsStepArrays(nextType);
      inputHome = keepsStepArrays(type) || (type === 'flatten' && home);
      const weight = shapes[0];
      if (type === 'linear' && weight) {
        const [out, fanIn] = [weight[0]!, weight[1]!];
        const product = (k: number, n: number, bias: boolean, a = 0, c = 0): ProductFootprint => ({
          k,
          n,
          bias,
          a,
          c,
          c64: false,
        });
        return {
          workArrays: [],
          forward: [product(fanIn, out, true, home ? 0 : batchSize * fanIn)],
          backward: [
            // db: the channel sums of dY, into a float64 array.
            ...(shapes.length > 1 ? [run(gradientHome ? 0 : f32(batchSize, output), out * 8)] : []),
            product(batchSize, fanIn, false),
            product(out, fanIn, false),
          ],
          eval: chunks.map((chunk) => [product(fanIn, out, true, chunk * fanIn, chunk * out)]),
        };
      }
      if (type === 'conv2d' && weight) {
        const out = weight[0]!;
        return conv2dFootprint({
          width: numelOf(weight) / out,
          outChannels: out,
          positions: numelOf(output) / out,
          batchSize,
          evalRows: chunks,
        });
      }
      if (type === 'batchnorm1d' || type === 'batchnorm2d') {
        // nn/batch-norm.ts: x, dy and (in eval) the output in ordinary arrays are copied; the
        // per-channel statistics, float64, always are.
        const channels = Array<number>(7).fill(input[0]! * 8);
        const x = home ? 0 : f32(batchSize, input);
        const dy = gradientHome ? 0 : f32(batchSize, output);
        return {
          workArrays: [],
          forward: [
            run(x, ...channels.slice(0, 1)),
            run(x, ...channels.slice(0, 2)),
            run(x, ...channels.slice(0, 4)),
          ],
          backward: [run(dy, x, ...channels.slice(0, 4)), run(dy, x, ...channels.slice(0, 5))],
          eval: chunks.map((chunk) => [
            run(f32(chunk, input), f32(chunk, output), ...channels.slice(0, 4)),
          ]),
        };
      }
      return { workArrays: [], forward: [], backward: [], eval: chunks.map(() => []) };
    },
  );
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

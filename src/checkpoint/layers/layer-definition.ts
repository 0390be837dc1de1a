import { z } from 'zod';
import type { Module, Rng } from '../../nn/index.js';
import type { LayerSpec } from './registry.js';
import type { TrainingFootprint, TrainingFootprintContext } from './training-footprint.js';

/** The shape of one sample flowing between layers, without the batch: [F] or [C, H, W]. */
export type Shape = readonly number[];

/** Random streams for a new network: weight initialisation and dropout masks. */
export interface BuildRngs {
  init?: Rng | undefined;
  dropout?: Rng | undefined;
}

/** What a definition's `build` may use: the random streams and, for blocks, nested layers. */
export interface BuildContext {
  readonly rngs: BuildRngs;
  buildLayers(layers: readonly LayerSpec[]): Module[];
}

/** What a definition's `outputShape` may use: failing with its place, and nested chains. */
export interface ShapeContext {
  /** Throws MODEL_CONFIG_INVALID naming this layer (`layers[i] (type): message`). */
  fail(message: string): never;
  /** The output shape of nested layers (`layers[i].layers[j]` in messages). */
  chain(layers: readonly LayerSpec[], input: Shape): Shape;
}

/**
 * Everything normserve knows about one layer type of `normserve.model/v1`, in one record:
 *  - `schema`: its config.json entry (zod, PyTorch's constructor argument names, strict);
 *  - `outputShape`: the sample shape it produces from the one it receives, refusing what does
 *    not fit, named in config terms;
 *  - `build`: the nn module; the module's stateDict() gives the tensor names and shapes, which
 *    are exactly PyTorch's (`i.weight`, `i.body.j.running_mean`, …);
 *  - `batchNormStatistics`: it holds running statistics (recalibration, training's batch rule);
 *  - `targetScale`: it can take a regression target's scale as the last layer;
 *  - `state`: its state_dict entries (names, shapes, kinds), without building it: what a
 *    weights file must hold (checked against its header before anything is allocated) and what
 *    training will hold (its memory);
 *  - `stepArrays`, `trainingFootprint`, `outputViewsInput`: what its module keeps in the training
 *    kernels' WebAssembly memory (training/wasm-memory.ts sizes a run with them);
 *  - `children`, `childName`: the nested layers of a block and their state-dict names.
 * How a layer compiles for inference is keyed by the same module (src/inference/compile-rules/),
 * because inference may not import checkpoint/ (docs/model-format.md, "Adding a layer type").
 */
export interface LayerDefinition<S extends { type: string } = { type: string }> {
  readonly type: S['type'];
  /** The PyTorch module it mirrors, e.g. `nn.Conv2d` (docs, tools/torch-eval-model.py). */
  readonly torch: string;
  /** A strict object schema with a `type` literal (one option of the layer union). */
  readonly schema: LayerObjectSchema;
  outputShape(spec: S, input: Shape, ctx: ShapeContext): Shape;
  build(spec: S, ctx: BuildContext): Module;
  readonly batchNormStatistics?: boolean;
  /**
   * Whether, as the last layer, it can absorb a regression target's scale y = std·z + mean into
   * its `weight` and `bias` (W′ = std·W, b′ = std·b + mean: its output is W·x + b), and if not
   * only for want of a bias, `'no-bias'` (training/target-scaling.ts). Absent: it cannot.
   */
  targetScale?(spec: S): 'absorbs' | 'no-bias';
  /**
   * The entries of the module's own stateDict(), in its order (none when absent; a block's are
   * its children's, named through childName): parameters first, then buffers, as PyTorch orders
   * them. Known before `build` allocates; a test holds it to the built module's stateDict().
   */
  state?(spec: S): readonly LayerStateEntry[];
  /**
   * The per-step arrays its module keeps in the kernels' memory when training reuses them
   * (Module.stepArray, nn/step-array.ts), by the sample shape each holds: its output's or its
   * input's (none when absent; a block's are its children's). Training sizes its WebAssembly
   * memory with them (training/wasm-memory.ts); a test holds them to the built module's.
   */
  readonly stepArrays?: StepArrays;
  /**
   * Its module's own work arrays and scratch frames in the training kernels' memory, by the rules
   * its forward and backward allocate with (none when absent): a Linear's and a Conv2d's matrix
   * products, BatchNorm's per-channel passes. Training sums them with the parameters and step
   * arrays (training/wasm-memory.ts), and a test holds the sum to the memory a run reaches.
   */
  trainingFootprint?(spec: S, ctx: TrainingFootprintContext): TrainingFootprint;
  /**
   * Its output is its input reshaped, the same values (Flatten): it lives where its input does,
   * in the kernels' memory when that did.
   */
  readonly outputViewsInput?: boolean;
  children?(spec: S): readonly LayerSpec[];
  /** The state-dict name of nested layer j (`body.3`): its path is `<block path>.<name>`. */
  childName?(j: number): string;
}

/** A layer's per-step arrays: how many have its output's size, how many its input's. */
export interface StepArrays {
  readonly outputs: number;
  readonly inputs: number;
}

/** The output and the input's gradient: the per-step arrays of most layers that keep any. */
export const OUTPUT_AND_INPUT_GRAD: StepArrays = { outputs: 1, inputs: 1 };

/**
 * One state_dict entry of a layer: a trainable parameter, a float buffer (running statistics) or
 * an integer count (num_batches_tracked, a scalar).
 */
export type LayerStateEntry =
  | { name: string; kind: 'parameter' | 'buffer'; shape: Shape }
  | { name: string; kind: 'count'; shape: readonly [] };

/** The schema of one layer type: a zod object whose `type` is a string literal. */
export type LayerObjectSchema = z.ZodObject<{ type: z.ZodLiteral<string> } & z.ZodRawShape>;

/** A record whose spec type is its schema's output. */
export function defineLayer<Schema extends LayerObjectSchema>(
  definition: LayerDefinition<z.output<Schema> & { type: string }> & { readonly schema: Schema },
): LayerDefinition<z.output<Schema> & { type: string }> & { readonly schema: Schema } {
  return definition;
}

export const positiveInt = z.number().int().positive();
export const nonNegativeInt = z.number().int().min(0);
export const probability = z.number().min(0).max(1);
export const eps = z.number().positive().default(1e-5);
/** PyTorch's in-place flag changes nothing numerically; accept it so configs can mirror code. */
export const inplace = { inplace: z.boolean().optional() };
/** A size per spatial dimension: an int for both, or [h, w] (PyTorch's `_pair`). */
export const sizePair = (element: z.ZodNumber) => z.union([element, z.tuple([element, element])]);

/** Shape as text for messages: [16, 8, 8]. */
export const showShape = (shape: Shape): string => `[${shape.join(', ')}]`;

/** The channels of a [C, H, W] input, or a failure naming what the layer needs. */
export function imageInput(
  type: string,
  input: Shape,
  ctx: ShapeContext,
): [number, number, number] {
  if (input.length !== 3) {
    ctx.fail(
      `${type} needs a [C, H, W] input, got ${showShape(input)}${input.length === 1 ? ' (set input_shape to [C, H, W])' : ''}`,
    );
  }
  return [input[0]!, input[1]!, input[2]!];
}

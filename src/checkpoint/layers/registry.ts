import { z } from 'zod';
import { describeInput, NormserveError } from '../../errors/index.js';
import {
  type Module,
  minimumTrainingRows,
  numelOf,
  oneValuePerChannelReason,
  type StateSignature,
} from '../../nn/index.js';
import { batchNorm1dLayer, batchNorm2dLayer } from './batch-norm.js';
import { conv2dLayer } from './conv2d.js';
import {
  alphaDropoutLayer,
  dropoutLayer,
  geluLayer,
  identityLayer,
  leakyReluLayer,
  reluLayer,
  seluLayer,
  sigmoidLayer,
  tanhLayer,
} from './element-wise.js';
import { flattenLayer } from './flatten.js';
import type {
  BuildRngs,
  LayerDefinition,
  LayerObjectSchema,
  Shape,
  ShapeContext,
} from './layer-definition.js';
import { layerNormLayer } from './layer-norm.js';
import { linearLayer } from './linear.js';
import { adaptiveAvgPool2dLayer, avgPool2dLayer, maxPool2dLayer } from './pooling.js';
import { type ResidualLayerSpec, residualLayer } from './residual.js';

/**
 * The registry of layer types: one record per type (./<type>.ts), and every question about a
 * layer — its schema, its shape, its module, whether it holds BatchNorm statistics — answered by
 * asking its record. Adding a type: write its record, list it here (docs/model-format.md).
 */
const flatLayers = [
  linearLayer,
  batchNorm1dLayer,
  batchNorm2dLayer,
  layerNormLayer,
  conv2dLayer,
  maxPool2dLayer,
  avgPool2dLayer,
  adaptiveAvgPool2dLayer,
  flattenLayer,
  reluLayer,
  leakyReluLayer,
  geluLayer,
  tanhLayer,
  sigmoidLayer,
  seluLayer,
  dropoutLayer,
  alphaDropoutLayer,
  identityLayer,
] as const;

/**
 * A layer's config entry. The block type nests the union, so its spec is written out
 * (ResidualLayerSpec) and the rest is inferred from the records' schemas.
 */
export type LayerSpec = z.output<(typeof flatLayers)[number]['schema']> | ResidualLayerSpec;
export type LayerType = LayerSpec['type'];

const residual = residualLayer(() => layerSchema);

/**
 * Every layer type, in the order error messages and the docs list them. Each record's methods
 * take its own spec; the registry only ever hands a record the specs of its type (dispatch by
 * `type` in layerDefinition), which is what the cast to the common element type states.
 */
export const layerDefinitions = [
  ...flatLayers,
  residual,
] as unknown as readonly LayerDefinition<LayerSpec>[];

export const layerTypes: readonly LayerType[] = layerDefinitions.map((d) => d.type);

const options = layerDefinitions.map((d) => d.schema) as unknown as [
  LayerObjectSchema,
  ...LayerObjectSchema[],
];

/**
 * One layer of config.json: the union of the records' schemas, told apart by `type`. (The
 * annotation states the union's output type, which zod cannot infer through the nested block.)
 */
/** What is wrong with a layer's `type`: missing, or not one of ours (echoed short). */
const layerTypeProblem = (type: unknown): string =>
  type === undefined ? 'a layer without a "type"' : `unknown layer type ${describeInput(type)}`;

export const layerSchema: z.ZodType<LayerSpec> = z.discriminatedUnion('type', options, {
  error: (issue) =>
    issue.code === 'invalid_union' && 'options' in issue
      ? `${layerTypeProblem((issue.input as { type?: unknown } | undefined)?.type)}; expected one of ${layerTypes.join(', ')}`
      : undefined,
}) as unknown as z.ZodType<LayerSpec>;

/**
 * How many blocks deep a layer may sit (a layer of `layers` is at depth 0, one in a residual
 * block's `layers` at 1). Real networks nest blocks one level (a ResNet's blocks hold plain
 * layers), so 64 refuses no architecture anyone trains. Every pass over a config — the zod
 * parse, the shape chain, building, state_dict names, compiling — recurses once per level: a
 * server refused 1,500 levels with "Maximum call stack size exceeded" (no file or layer named),
 * and the parse, chain, build and state_dict alone gave out past ~700 levels (Node 20's default
 * stack, nested residual blocks), so 64 keeps every pass 10× away. docs/model-format.md states it.
 */
export const MAX_BLOCK_DEPTH = 64;

/**
 * The most values one sample's tensor may hold, at the input and after every layer: 2^24
 * (16,777,216, 64 MiB of float32; [3, 2048, 2048] is 12.6 M, [64, 512, 512] exactly 2^24). The
 * engines size their buffers per row from these shapes, and the JS engine's convolution scratch
 * grows with them times the kernel's size: a config naming a [1, 16384, 16384] input and one
 * 3×3 convolution (nine weights, a file of a few hundred bytes) had it allocate some 19 GB at load
 * and take the process down. docs/model-format.md states it.
 */
export const MAX_SAMPLE_VALUES = 2 ** 24;

/**
 * How many layers a config may list, nested ones counted (a residual block and each layer inside
 * it). ResNet-152 written out layer by layer (every Conv2d, BatchNorm, ReLU and block) is about
 * 500, so 10,000 refuses no real network. Without a bound a 16 MB config.json names 200,000
 * layers (4.8 MB of `{"type":"relu"}`), and every load, compiled plan, state_dict and metadata
 * reply pays once per layer; such a config overflowed the stack where a list was spread into a
 * call. docs/model-format.md states it.
 */
export const MAX_LAYERS = 10_000;

/**
 * The first problem of a raw list of layers, measured without recursion before zod parses any of
 * it: the place (zod's path, from the list) and message of the first layer deeper than
 * MAX_BLOCK_DEPTH, or more than MAX_LAYERS layers in all.
 */
function layerListProblem(
  layers: readonly unknown[],
): { path: PropertyKey[]; message: string } | undefined {
  // Blocks nest through a `layers` array (the residual block; every other type is a strict
  // object, which refuses that key anyway), so the raw input can be measured before zod
  // recurses into it. Depth-first, document order: children pushed last-first.
  const pending: { layers: readonly unknown[]; path: PropertyKey[] }[] = [{ layers, path: [] }];
  let count = 0;
  while (pending.length > 0) {
    const { layers: list, path } = pending.pop()!;
    count += list.length;
    for (let i = list.length - 1; i >= 0; i--) {
      const nested = (list[i] as { layers?: unknown } | null)?.layers;
      if (typeof list[i] !== 'object' || !Array.isArray(nested) || nested.length === 0) continue;
      const nestedPath = [...path, i, 'layers'];
      // A list at depth d + 1 sits at path.length / 2 + 1 blocks (each level adds [i, 'layers']).
      if (nestedPath.length / 2 > MAX_BLOCK_DEPTH) {
        return {
          path: [...nestedPath, 0],
          message: `blocks nested more than ${MAX_BLOCK_DEPTH} deep (the limit; real networks nest one or two)`,
        };
      }
      pending.push({ layers: nested, path: nestedPath });
    }
  }
  if (count > MAX_LAYERS) {
    return {
      path: [],
      message: `${count} layers, nested ones counted; at most ${MAX_LAYERS} are allowed (ResNet-152 has about 500)`,
    };
  }
  return undefined;
}

/**
 * A list of layers (config.json's `layers`, a training config's): its nesting and size measured
 * first, without recursion, then each layer parsed. A list whose blocks nest deeper than
 * MAX_BLOCK_DEPTH (refused naming the first layer too deep) or that holds more than MAX_LAYERS
 * layers is refused, and none of it is parsed.
 */
export const layerListSchema = z
  .unknown()
  .superRefine((value, ctx) => {
    if (!Array.isArray(value)) return;
    const problem = layerListProblem(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', ...problem });
  })
  .pipe(z.array(layerSchema).min(1));

const byType = new Map<string, LayerDefinition<LayerSpec>>(
  layerDefinitions.map((d) => [d.type, d]),
);

/** The record of a layer's type. */
export function layerDefinition(spec: Pick<LayerSpec, 'type'>): LayerDefinition<LayerSpec> {
  const definition = byType.get(spec.type);
  if (!definition) throw new Error(`unknown layer type ${JSON.stringify(spec.type)}`);
  return definition;
}

/** The nn modules of a list of layers (nested blocks built through their records). */
export function buildLayers(
  layers: readonly LayerSpec[],
  rngs: BuildRngs = {},
  path = 'layers',
): Module[] {
  return layers.map((spec, i) => {
    const place = `${path}[${i}]`;
    const ctx = {
      rngs,
      buildLayers: (nested: readonly LayerSpec[]) => buildLayers(nested, rngs, `${place}.layers`),
    };
    try {
      return layerDefinition(spec).build(spec, ctx);
    } catch (e) {
      // A layer so wide that its tensors cannot be allocated (V8 refuses a typed array beyond
      // its length limit, or the memory for it): the config's fault, named by its place.
      if (e instanceof RangeError && /typed array length|allocation failed/i.test(e.message)) {
        throw new NormserveError(
          'MODEL_CONFIG_INVALID',
          `${place} (${spec.type}): its tensors are too large to allocate (${e.message})`,
        );
      }
      throw e;
    }
  });
}

/**
 * The width of a network's output: checkLayerChain's shape, which must be flat ([outputs]); a
 * config that ends otherwise is `code` (a checkpoint's MODEL_CONFIG_INVALID, a training config's
 * TRAINING_CONFIG_INVALID).
 */
export function networkOutputWidth(
  layers: readonly LayerSpec[],
  input: Shape,
  code: 'MODEL_CONFIG_INVALID' | 'TRAINING_CONFIG_INVALID' = 'MODEL_CONFIG_INVALID',
): number {
  const shape = checkLayerChain(layers, input);
  if (shape.length !== 1)
    throw new NormserveError(
      code,
      `the network's output has shape [${shape.join(', ')}]; a flat [outputs] is needed (end with flatten or linear)`,
    );
  return shape[0]!;
}

/**
 * The sample shape after a list of layers, given the input's; throws MODEL_CONFIG_INVALID naming
 * the first layer that does not fit (`layers[4] (linear): …`, `layers[1].layers[3] (conv2d): …`).
 */
export function checkLayerChain(
  layers: readonly LayerSpec[],
  input: Shape,
  path = 'layers',
): Shape {
  let shape = input;
  if (numelOf(input) > MAX_SAMPLE_VALUES) {
    throw new NormserveError(
      'MODEL_CONFIG_INVALID',
      `${path === 'layers' ? 'input_shape' : `${path} input`} [${input.join(', ')}]: ${numelOf(input)} values per sample, more than the limit of ${MAX_SAMPLE_VALUES}`,
    );
  }
  layers.forEach((spec, i) => {
    const place = `${path}[${i}]`;
    const ctx: ShapeContext = {
      fail: (message) => {
        throw new NormserveError('MODEL_CONFIG_INVALID', `${place} (${spec.type}): ${message}`);
      },
      chain: (nested, nestedInput) => checkLayerChain(nested, nestedInput, `${place}.layers`),
    };
    shape = layerDefinition(spec).outputShape(spec, shape, ctx);
    if (numelOf(shape) > MAX_SAMPLE_VALUES)
      ctx.fail(
        `its output [${shape.join(', ')}] holds ${numelOf(shape)} values per sample, more than the limit of ${MAX_SAMPLE_VALUES}`,
      );
  });
  return shape;
}

/** What a network holds per sample and in all, known from its config without building it. */
export interface LayerFootprint {
  /** Every parameter's shape, nested layers' included, in parameters() order. */
  parameterShapes: Shape[];
  /**
   * Each layer's spec and type, input and output sample shapes and its own parameters' shapes
   * (nested layers' too: a block's layers come before the block), first layer first.
   */
  layerShapes: {
    spec: LayerSpec;
    type: LayerType;
    input: Shape;
    output: Shape;
    parameters: Shape[];
  }[];
}

/** The footprint of a list of layers that checkLayerChain accepts for this input shape. */
export function layerFootprint(layers: readonly LayerSpec[], input: Shape): LayerFootprint {
  const footprint: LayerFootprint = { parameterShapes: [], layerShapes: [] };
  const walk = (chain: readonly LayerSpec[], shape: Shape): Shape => {
    for (const spec of chain) {
      const definition = layerDefinition(spec);
      const children = definition.children?.(spec);
      if (children) walk(children, shape);
      const parameters = (definition.state?.(spec) ?? [])
        .filter((entry) => entry.kind === 'parameter')
        .map((entry) => entry.shape);
      footprint.parameterShapes.push(...parameters);
      const output = checkLayerChain([spec], shape);
      footprint.layerShapes.push({ spec, type: spec.type, input: shape, output, parameters });
      shape = output;
    }
    return shape;
  };
  walk(layers, input);
  return footprint;
}

/**
 * The state_dict a network built from these layers holds (names as PyTorch's: `3.weight`,
 * `1.body.0.running_mean`; each entry's kind and shape), in its order, from the layer records
 * alone: nothing is allocated, so a config naming a 250,000,000-feature layer costs its names.
 * What a weights file's header is checked against before the network is built.
 */
export function stateSignatures(layers: readonly LayerSpec[]): Map<string, StateSignature> {
  const state = new Map<string, StateSignature>();
  const add = (spec: LayerSpec, path: string): void => {
    const definition = layerDefinition(spec);
    for (const entry of definition.state?.(spec) ?? []) {
      state.set(
        `${path}.${entry.name}`,
        entry.kind === 'count'
          ? { integer: true, shape: entry.shape }
          : { integer: false, shape: entry.shape },
      );
    }
    definition.children?.(spec).forEach((child, j) => {
      add(child, `${path}.${definition.childName!(j)}`);
    });
  };
  layers.forEach((spec, i) => {
    add(spec, String(i));
  });
  return state;
}

/** Whether any layer, nested ones included, holds BatchNorm running statistics. */
export function holdsBatchNormStatistics(layers: readonly LayerSpec[]): boolean {
  return layers.some((spec) => {
    const definition = layerDefinition(spec);
    return (
      definition.batchNormStatistics === true ||
      holdsBatchNormStatistics(definition.children?.(spec) ?? [])
    );
  });
}

/** A BatchNorm of a config, nested ones included: its place in messages and its sample input. */
export interface BatchNormInput {
  /** `layers[4] (batchnorm1d)`, `layers[3].layers[1] (batchnorm2d)`: as checkLayerChain names it. */
  place: string;
  /** Its input without the batch dimension: [C] or [C, H, W]. */
  inputShape: Shape;
}

/**
 * The BatchNorms of a list of layers that checkLayerChain accepts for this input shape, in the
 * order a forward pass runs them, with the sample shape each receives (a block's layers get the
 * block's input).
 */
export function batchNormInputs(
  layers: readonly LayerSpec[],
  input: Shape,
  path = 'layers',
): BatchNormInput[] {
  const found: BatchNormInput[] = [];
  let shape = input;
  layers.forEach((spec, i) => {
    const place = `${path}[${i}]`;
    const definition = layerDefinition(spec);
    const children = definition.children?.(spec);
    if (children) found.push(...batchNormInputs(children, shape, `${place}.layers`));
    if (definition.batchNormStatistics === true)
      found.push({ place: `${place} (${spec.type})`, inputShape: shape });
    shape = checkLayerChain([spec], shape);
  });
  return found;
}

/**
 * The fewest rows a train-mode batch of this network must hold (nn's minimumTrainingRows over its
 * BatchNorms): 2 when a BatchNorm gets one value per channel from one row (BatchNorm1d, or a
 * BatchNorm2d on 1×1 maps), else 1.
 */
export function minimumTrainingBatchRows(layers: readonly LayerSpec[], input: Shape): number {
  let rows = 1;
  for (const { inputShape } of batchNormInputs(layers, input))
    rows = Math.max(rows, minimumTrainingRows(inputShape));
  return rows;
}

/** Why a train-mode batch of `rows` rows cannot go through these layers, or undefined. */
export function trainingBatchProblem(
  layers: readonly LayerSpec[],
  input: Shape,
  rows: number,
): string | undefined {
  for (const { place, inputShape } of batchNormInputs(layers, input)) {
    const reason = oneValuePerChannelReason(place, inputShape, rows);
    if (reason !== undefined) return reason;
  }
  return undefined;
}

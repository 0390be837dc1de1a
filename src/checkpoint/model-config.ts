import { z } from 'zod';
import { describeLocations, issuesToLocations, NormserveError } from '../errors/index.js';

/**
 * The `config.json` of a normserve.model/v1 checkpoint (docs/model-format.md). Layer types and
 * fields use the names of PyTorch's constructor arguments; layer i owns the tensors `i.*`.
 */
const positiveInt = z.number().int().positive();
const probability = z.number().min(0).max(1);
const eps = z.number().positive().default(1e-5);
/** PyTorch's in-place flag changes nothing numerically; accept it so configs can mirror code. */
const inplace = { inplace: z.boolean().optional() };

export const linearLayerSchema = z.strictObject({
  type: z.literal('linear'),
  in_features: positiveInt,
  out_features: positiveInt,
  bias: z.boolean().default(true),
});

export const batchNorm1dLayerSchema = z.strictObject({
  type: z.literal('batchnorm1d'),
  num_features: positiveInt,
  eps,
  momentum: probability.nullable().default(0.1),
  affine: z.boolean().default(true),
  track_running_stats: z
    .literal(true, {
      error:
        'only track_running_stats=true is supported: without running statistics, eval would use batch statistics',
    })
    .default(true),
});

export const layerNormLayerSchema = z.strictObject({
  type: z.literal('layernorm'),
  normalized_shape: z.union([positiveInt.transform((n) => [n]), z.array(positiveInt).min(1)]),
  eps,
  elementwise_affine: z.boolean().default(true),
});

export const layerSchema = z.discriminatedUnion(
  'type',
  [
    linearLayerSchema,
    batchNorm1dLayerSchema,
    layerNormLayerSchema,
    z.strictObject({ type: z.literal('relu'), ...inplace }),
    z.strictObject({
      type: z.literal('leaky_relu'),
      negative_slope: z.number().default(0.01),
      ...inplace,
    }),
    z.strictObject({
      type: z.literal('gelu'),
      approximate: z.enum(['none', 'tanh']).default('none'),
    }),
    z.strictObject({ type: z.literal('tanh') }),
    z.strictObject({ type: z.literal('sigmoid') }),
    z.strictObject({ type: z.literal('selu'), ...inplace }),
    z.strictObject({ type: z.literal('dropout'), p: probability.default(0.5), ...inplace }),
    z.strictObject({ type: z.literal('alpha_dropout'), p: probability.default(0.5), ...inplace }),
    z.strictObject({ type: z.literal('identity') }),
  ],
  {
    error: (issue) =>
      issue.code === 'invalid_union' && 'options' in issue
        ? `unknown layer type ${JSON.stringify((issue.input as { type?: unknown } | undefined)?.type)}; expected one of ${(issue.options as string[]).join(', ')}`
        : undefined,
  },
);

export type LayerSpec = z.output<typeof layerSchema>;
export type LayerType = LayerSpec['type'];
export const layerTypes = layerSchema.options.map(
  (o) => o.shape.type.value,
) as readonly LayerType[];

const finite = z.number().refine(Number.isFinite, 'expected a finite number');

export const inputTransformSchema = z.strictObject({
  shift: z.array(finite),
  scale: z.array(finite),
});
export type InputTransform = z.output<typeof inputTransformSchema>;

export const MODEL_FORMAT = 'normserve.model/v1';

/** A model's name: also its directory in a repository, so no path separators and no leading dot. */
export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const modelNameSchema = z
  .string()
  .regex(
    MODEL_NAME_PATTERN,
    'letters, digits, ".", "_" and "-" (at most 128), starting with a letter or digit',
  );

/** Unknown top-level keys are kept (looseObject), so a recalibrated version carries them on. */
export const modelConfigSchema = z.looseObject({
  format: z.literal(MODEL_FORMAT),
  name: modelNameSchema,
  task: z.enum(['classification', 'regression']),
  input_shape: z.tuple([positiveInt]),
  labels: z.array(z.string().min(1)).min(2).optional(),
  description: z.string().optional(),
  input_transform: inputTransformSchema.optional(),
  layers: z.array(layerSchema).min(1),
  training: z.record(z.string(), z.unknown()).optional(),
  provenance: z.record(z.string(), z.unknown()).optional(),
  /**
   * Serving options of this model, overriding the server's BATCH_MAX_DELAY_US / BATCH_MAX_ROWS
   * (Triton's `dynamic_batching { max_queue_delay_microseconds }`).
   */
  dynamic_batching: z
    .strictObject({
      max_queue_delay_microseconds: z.number().int().min(0).max(1_000_000).optional(),
      max_batch_rows: z.number().int().min(1).max(1_000_000).optional(),
    })
    .optional(),
});
export type ModelConfig = z.output<typeof modelConfigSchema>;

/** Width flowing out of each layer given the width flowing in; throws naming the layer. */
export function layerOutputWidth(layer: LayerSpec, index: number, width: number): number {
  const fail = (message: string): never => {
    throw new NormserveError(
      'MODEL_CONFIG_INVALID',
      `layers[${index}] (${layer.type}): ${message}`,
    );
  };
  switch (layer.type) {
    case 'linear':
      if (layer.in_features !== width)
        fail(`in_features ${layer.in_features} does not match the previous width ${width}`);
      return layer.out_features;
    case 'batchnorm1d':
      if (layer.num_features !== width)
        fail(`num_features ${layer.num_features} does not match the previous width ${width}`);
      return width;
    case 'layernorm':
      if (layer.normalized_shape.length !== 1 || layer.normalized_shape[0] !== width) {
        fail(
          `normalized_shape [${layer.normalized_shape}] does not match the previous width ${width}`,
        );
      }
      return width;
    default:
      return width;
  }
}

/** The network's output width; throws when the layer shapes do not chain. */
export function checkLayerChain(layers: readonly LayerSpec[], inputWidth: number): number {
  return layers.reduce((width, layer, i) => layerOutputWidth(layer, i, width), inputWidth);
}

/**
 * Parses and checks a config.json value: the schema, then the facts the schema cannot state
 * (shapes chain, labels match the output width, the input transform matches the input width).
 */
export function parseModelConfig(value: unknown, source = 'config.json'): ModelConfig {
  const parsed = modelConfigSchema.safeParse(value);
  if (!parsed.success) {
    const errors = issuesToLocations(parsed.error.issues);
    throw new NormserveError('MODEL_CONFIG_INVALID', `${source}: ${describeLocations(errors)}`, {
      errors,
    });
  }
  const config = parsed.data;
  const inputWidth = config.input_shape[0];
  let outputWidth: number;
  try {
    outputWidth = checkLayerChain(config.layers, inputWidth);
  } catch (e) {
    if (e instanceof NormserveError) throw new NormserveError(e.code, `${source}: ${e.message}`);
    throw e;
  }
  const fail = (message: string): never => {
    throw new NormserveError('MODEL_CONFIG_INVALID', `${source}: ${message}`);
  };
  if (config.task === 'classification') {
    if (!config.labels) fail('labels are required for a classification model');
    if (config.labels!.length !== outputWidth) {
      fail(`${config.labels!.length} labels for an output width of ${outputWidth}`);
    }
  } else if (config.labels) {
    fail('labels are only allowed for classification models');
  }
  const t = config.input_transform;
  if (t && (t.shift.length !== inputWidth || t.scale.length !== inputWidth)) {
    fail(
      `input_transform needs ${inputWidth} shift and scale values, got ${t.shift.length} and ${t.scale.length}`,
    );
  }
  return config;
}

/** Output width of a valid config. */
export function outputWidthOf(config: ModelConfig): number {
  return checkLayerChain(config.layers, config.input_shape[0]);
}

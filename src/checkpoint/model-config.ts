import { z } from 'zod';
import {
  describeLocations,
  expecting,
  issuesToLocations,
  NormserveError,
  safeParseWorded,
} from '../errors/index.js';
import { numelOf } from '../nn/index.js';
import { BATCH_LIMITS } from './batch-limits.js';
import { layerListSchema, networkOutputWidth } from './layers/registry.js';

// The layer union and its helpers live with the layer records; re-exported where the config
// schema is, as before.
export {
  checkLayerChain,
  type LayerSpec,
  type LayerType,
  layerListSchema,
  layerSchema,
  layerTypes,
  MAX_BLOCK_DEPTH,
  MAX_LAYERS,
  MAX_SAMPLE_VALUES,
} from './layers/registry.js';

/**
 * The `config.json` of a normserve.model/v1 checkpoint (docs/model-format.md). Layer types and
 * fields use the names of PyTorch's constructor arguments (their records: ./layers/); layer i owns
 * the tensors `i.*`.
 */
const positiveInt = z.number().int().positive();

/** zod 4's number refuses NaN and ±Infinity itself (and JSON cannot hold them). */
const finite = z.number();

export const inputTransformSchema = z.strictObject({
  shift: z.array(finite),
  scale: z.array(finite),
});
export type InputTransform = z.output<typeof inputTransformSchema>;

export const MODEL_FORMAT = 'normserve.model/v1';

/**
 * A model's name: also its directory in a repository, so no path separators and no leading dot.
 * Its parts, for the rules built from them (the pattern, the routes' `:name`, a name made from a
 * file's): the characters it may start with, those it may hold, and its longest length.
 */
export const MODEL_NAME_FIRST_CHARS = 'A-Za-z0-9';
export const MODEL_NAME_CHARS = 'A-Za-z0-9._-';
export const MODEL_NAME_MAX_CHARS = 128;
export const MODEL_NAME_PATTERN = new RegExp(
  `^[${MODEL_NAME_FIRST_CHARS}][${MODEL_NAME_CHARS}]{0,${MODEL_NAME_MAX_CHARS - 1}}$`,
);
/**
 * A model's name in a config and as a request gives it (an HTTP path, gRPC's model_name), refused
 * before any lookup so that an error never echoes a name of any length.
 */
export const modelNameSchema = z.string().regex(MODEL_NAME_PATTERN, {
  error: expecting(
    `a model name: letters, digits, ".", "_" and "-" (at most ${MODEL_NAME_MAX_CHARS}), starting with a letter or digit`,
  ),
});

/** What a model predicts: class logits or regression targets. */
export const taskSchema = z.enum(['classification', 'regression']);
export type Task = z.output<typeof taskSchema>;

/** One sample's shape: [features] or [channels, height, width]. */
export const inputShapeSchema = z
  .array(positiveInt)
  .refine((shape) => shape.length === 1 || shape.length === 3, {
    message: 'expected [features] or [channels, height, width]',
  });

/** Unknown top-level keys are kept (looseObject), so a recalibrated version carries them on. */
export const modelConfigSchema = z.looseObject({
  format: z.literal(MODEL_FORMAT),
  name: modelNameSchema,
  task: taskSchema,
  input_shape: inputShapeSchema,
  labels: z.array(z.string().min(1)).min(2).optional(),
  description: z.string().optional(),
  input_transform: inputTransformSchema.optional(),
  layers: layerListSchema,
  training: z.record(z.string(), z.unknown()).optional(),
  provenance: z.record(z.string(), z.unknown()).optional(),
  /**
   * Serving options of this model, overriding the server's BATCH_MAX_DELAY_US / BATCH_MAX_ROWS
   * (Triton's `dynamic_batching { max_queue_delay_microseconds }`).
   */
  dynamic_batching: z
    .strictObject({
      max_queue_delay_microseconds: z.number().int().min(0).max(BATCH_LIMITS.maxDelayUs).optional(),
      max_batch_rows: z.number().int().min(1).max(BATCH_LIMITS.maxRows).optional(),
    })
    .optional(),
});
export type ModelConfig = z.output<typeof modelConfigSchema>;

/**
 * Parses and checks a config.json value: the schema, then the facts the schema cannot state
 * (shapes chain, labels match the output width, the input transform matches the input width).
 */
export function parseModelConfig(value: unknown, source = 'config.json'): ModelConfig {
  // Parsed once per load: zod's compiled fast path (generated on an object schema's first parse)
  // pays off only over many parses, and generating it cost a model's cold load ~3–4 ms of CPU.
  const parsed = safeParseWorded(modelConfigSchema, value, { jitless: true });
  if (!parsed.success) {
    const errors = issuesToLocations(parsed.error.issues);
    throw new NormserveError('MODEL_CONFIG_INVALID', `${source}: ${describeLocations(errors)}`, {
      errors,
    });
  }
  const config = parsed.data;
  const inputWidth = numelOf(config.input_shape);
  let outputWidth: number;
  try {
    outputWidth = networkOutputWidth(config.layers, config.input_shape);
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

import { z } from 'zod';
import { layerSchema } from '../checkpoint/index.js';
import { describeLocations, issuesToLocations, NormserveError } from '../errors/index.js';

const positiveInt = z.number().int().positive();
const fraction = z.number().min(0).lt(1);

const optimizerSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('adamw'),
    lr: z.number().min(0).default(1e-3),
    betas: z.tuple([fraction, fraction]).default([0.9, 0.999]),
    eps: z.number().positive().default(1e-8),
    weight_decay: z.number().min(0).default(0.01),
  }),
  z.strictObject({
    type: z.literal('adam'),
    lr: z.number().min(0).default(1e-3),
    betas: z.tuple([fraction, fraction]).default([0.9, 0.999]),
    eps: z.number().positive().default(1e-8),
    weight_decay: z.number().min(0).default(0),
  }),
  z.strictObject({
    type: z.literal('sgd'),
    lr: z.number().min(0).default(1e-2),
    momentum: z.number().min(0).default(0),
    dampening: z.number().min(0).default(0),
    nesterov: z.boolean().default(false),
    weight_decay: z.number().min(0).default(0),
  }),
]);

const scheduleSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('constant') }),
  z.strictObject({ type: z.literal('cosine'), eta_min: z.number().min(0).default(0) }),
  z.strictObject({
    type: z.literal('one_cycle'),
    pct_start: z.number().gt(0).lt(1).default(0.3),
    div_factor: z.number().positive().default(25),
    final_div_factor: z.number().positive().default(1e4),
  }),
]);

/**
 * A training recipe (configs/*.json): data, architecture, optimisation. The architecture uses
 * the layer specs of the checkpoint config (src/checkpoint/model-config.ts), so what is trained
 * is what is saved.
 */
export const trainingConfigSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/),
  task: z.enum(['classification', 'regression']).default('classification'),
  description: z.string().optional(),
  seed: z.number().int().min(0).max(0xffffffff).default(0),
  data: z.strictObject({
    path: z.string().min(1),
    label_column: z.string().min(1).default('label'),
    /** The test rows: a fixed row range from `from_row` to the end, or a seeded random fraction. */
    test_split: z
      .union([z.strictObject({ from_row: positiveInt }), z.strictObject({ fraction: fraction })])
      .default({ fraction: 0.2 }),
    /** Taken from the training rows by a seeded permutation; 0 disables validation. */
    validation_fraction: fraction.default(0.1),
    /**
     * `standard`: (x − mean)/std from the training rows; `{shift, scale}`: the same (x − shift)·scale
     * for every feature (e.g. `{"scale": 0.0625}` for pixels 0..16); saved as the model's
     * input_transform, so the model takes raw features.
     */
    input_scaling: z
      .union([
        z.enum(['standard', 'none']),
        z.strictObject({
          shift: z.number().refine(Number.isFinite, 'expected a finite number').default(0),
          scale: z.number().positive().refine(Number.isFinite, 'expected a finite number'),
        }),
      ])
      .default('standard'),
  }),
  /**
   * The shape of one sample, as the model's config.json states it: the CSV's feature columns in
   * row-major order, e.g. [1, 8, 8] for the 64 pixels of a digit. Default: [feature count].
   */
  input_shape: z
    .array(positiveInt)
    .refine((shape) => shape.length === 1 || shape.length === 3, {
      message: 'expected [features] or [channels, height, width]',
    })
    .optional(),
  layers: z.array(layerSchema).min(1),
  training: z
    .strictObject({
      epochs: z.number().int().min(0).default(30),
      batch_size: positiveInt.default(64),
      shuffle: z.boolean().default(true),
      optimizer: optimizerSchema.default({
        type: 'adamw',
        lr: 1e-3,
        betas: [0.9, 0.999],
        eps: 1e-8,
        weight_decay: 0.01,
      }),
      lr_schedule: scheduleSchema.default({ type: 'constant' }),
      label_smoothing: z.number().min(0).max(1).default(0),
      grad_clip_norm: z.number().positive().nullable().default(null),
      /** Stop after this many epochs without a better validation loss; null trains every epoch. */
      patience: positiveInt.nullable().default(null),
    })
    .prefault({}),
});

export type TrainingConfig = z.output<typeof trainingConfigSchema>;
export type OptimizerConfig = TrainingConfig['training']['optimizer'];

export function parseTrainingConfig(value: unknown, source: string): TrainingConfig {
  const parsed = trainingConfigSchema.safeParse(value);
  if (!parsed.success) {
    const errors = issuesToLocations(parsed.error.issues);
    throw new NormserveError('TRAINING_CONFIG_INVALID', `${source}: ${describeLocations(errors)}`, {
      errors,
    });
  }
  return parsed.data;
}

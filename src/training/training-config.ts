import { z } from 'zod';
import {
  inputShapeSchema,
  layerListSchema,
  modelNameSchema,
  taskSchema,
} from '../checkpoint/model-config.js';
import {
  describeLocations,
  type ErrorLocation,
  formatPath,
  NormserveError,
  safeParseWorded,
} from '../errors/index.js';
import { ADAM_DEFAULTS, SCHEDULE_DEFAULTS, SGD_DEFAULTS, sgdOptionsProblem } from '../nn/index.js';
import { architectureSchema } from './architecture.js';

const positiveInt = z.number().int().positive();
const fraction = z.number().min(0).lt(1);

/**
 * The most epochs a run may ask for. Run time is epochs times the time of one epoch, and nothing
 * else in a config bounds it (the batch size and the widths are bounded by the data and by
 * memory): `--epochs 1e12` would run for ever. 100,000 epochs of the iris recipe (1 ms each,
 * README) take under 2 minutes, of digits-mlp (0.19 s each) over 5 hours; metrics.json keeps a
 * record per epoch.
 */
export const MAX_EPOCHS = 100_000;

/** The label column of a CSV unless one is named: training's, and every reader's of a model's CSV. */
export const DEFAULT_LABEL_COLUMN = 'label';

const optimizerSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('adamw'),
    lr: z.number().min(0).default(ADAM_DEFAULTS.lr),
    betas: z.tuple([fraction, fraction]).default([...ADAM_DEFAULTS.betas]),
    eps: z.number().positive().default(ADAM_DEFAULTS.eps),
    weight_decay: z.number().min(0).default(ADAM_DEFAULTS.adamwWeightDecay),
  }),
  z.strictObject({
    type: z.literal('adam'),
    lr: z.number().min(0).default(ADAM_DEFAULTS.lr),
    betas: z.tuple([fraction, fraction]).default([...ADAM_DEFAULTS.betas]),
    eps: z.number().positive().default(ADAM_DEFAULTS.eps),
    weight_decay: z.number().min(0).default(ADAM_DEFAULTS.weightDecay),
  }),
  z
    .strictObject({
      type: z.literal('sgd'),
      // torch.optim.SGD requires an lr; this is the config's own default.
      lr: z.number().min(0).default(1e-2),
      momentum: z.number().min(0).default(SGD_DEFAULTS.momentum),
      dampening: z.number().min(0).default(SGD_DEFAULTS.dampening),
      nesterov: z.boolean().default(SGD_DEFAULTS.nesterov),
      weight_decay: z.number().min(0).default(SGD_DEFAULTS.weightDecay),
    })
    // What torch.optim.SGD refuses (ValueError), refused here with its words, not mid-training.
    .superRefine((o, ctx) => {
      const message = sgdOptionsProblem(o);
      if (message !== undefined) ctx.addIssue({ code: 'custom', path: ['nesterov'], message });
    }),
]);

const scheduleSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('constant') }),
  z.strictObject({
    type: z.literal('cosine'),
    eta_min: z.number().min(0).default(SCHEDULE_DEFAULTS.etaMin),
  }),
  z.strictObject({
    type: z.literal('one_cycle'),
    pct_start: z.number().gt(0).lt(1).default(SCHEDULE_DEFAULTS.pctStart),
    div_factor: z.number().positive().default(SCHEDULE_DEFAULTS.divFactor),
    final_div_factor: z.number().positive().default(SCHEDULE_DEFAULTS.finalDivFactor),
  }),
]);

/** The optimizer types a config may name, in the schema's order (train --help lists their defaults). */
export const OPTIMIZER_TYPES = optimizerSchema.options.map((o) => o.shape.type.value);

/** Why patience is refused with validation_fraction 0. */
const PATIENCE_WITHOUT_VALIDATION =
  'early stopping compares validation losses, and data.validation_fraction is 0 (no validation rows): set a validation_fraction above 0, or train without patience';

/**
 * A training recipe (configs/*.json, or flags alone): data, architecture, optimisation. The
 * architecture uses the layer specs of the checkpoint config (src/checkpoint/model-config.ts), so
 * what is trained is what is saved. What depends on the data is optional and filled in by
 * resolveTrainingConfig once the data is read: the name (from the data file's name), the task,
 * the description and the layers (from `architecture` and the data's widths).
 */
export const trainingConfigSchema = z
  .strictObject({
    name: modelNameSchema.optional(),
    /** Absent: classification, refused when the label column looks like a numeric target. */
    task: taskSchema.optional(),
    description: z.string().optional(),
    seed: z.number().int().min(0).max(0xffffffff).default(0),
    data: z.strictObject({
      path: z.string().min(1),
      label_column: z.string().min(1).default(DEFAULT_LABEL_COLUMN),
      /** The test rows: a fixed row range from `from_row` to the end, or a seeded random fraction. */
      test_split: z
        .union([z.strictObject({ from_row: positiveInt }), z.strictObject({ fraction: fraction })])
        .default({ fraction: 0.2 }),
      /** Taken from the training rows by a seeded permutation; 0 disables validation. */
      validation_fraction: fraction.default(0.1),
      /**
       * `standard`: (x − mean)/std from the training rows; `{shift, scale}`: the same
       * (x − shift)·scale for every feature (e.g. `{"scale": 0.0625}` for pixels 0..16); saved as
       * the model's input_transform, so the model takes raw features.
       */
      input_scaling: z
        .union([
          z.enum(['standard', 'none']),
          z.strictObject({
            // zod 4's number refuses NaN and ±Infinity itself.
            shift: z.number().default(0),
            scale: z.number().positive(),
          }),
        ])
        .default('standard'),
      /**
       * Regression only: `standard` (the default there) trains on (y − mean)/std of the training
       * targets and folds the inverse into the last Linear, so the model outputs y's own units.
       */
      target_scaling: z.enum(['standard', 'none']).optional(),
    }),
    /**
     * The shape of one sample, as the model's config.json states it: the CSV's feature columns
     * in row-major order, e.g. [1, 8, 8] for the 64 pixels of a digit. Default: [feature count].
     */
    input_shape: inputShapeSchema.optional(),
    /** The network, layer by layer; without it, `architecture` (or its defaults) builds one. */
    layers: layerListSchema.optional(),
    architecture: architectureSchema.optional(),
    training: z
      .strictObject({
        epochs: z
          .number()
          .int()
          .min(1, 'at least 1 (0 epochs would publish the random initial weights as a model)')
          .max(MAX_EPOCHS)
          .default(30),
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
  })
  .refine((c) => c.layers === undefined || c.architecture === undefined, {
    path: ['architecture'],
    message: 'give either layers or architecture, not both (layers pin the whole network)',
  })
  // Early stopping compares validation losses: without validation rows it would never stop, and
  // the run would read as early-stopped.
  .refine((c) => c.training.patience === null || c.data.validation_fraction > 0, {
    path: ['training', 'patience'],
    message: PATIENCE_WITHOUT_VALIDATION,
  });

export type TrainingConfig = z.output<typeof trainingConfigSchema>;
export type OptimizerConfig = TrainingConfig['training']['optimizer'];

/**
 * Parses a training config. `sourceOf` names where a value came from, by its path: a flag
 * (`--epochs`) or undefined for the config file `source`; messages name that place, so a bad
 * `--epochs -5` reads `--epochs: at least 1 (0 epochs would publish the random initial weights as
 * a model)` (the schema's own message, which wins over issueMessage) and not as a problem of the
 * file; `--lr -1` reads `--lr: expected a number ≥ 0, got -1` (issueMessage).
 */
export function parseTrainingConfig(
  value: unknown,
  source: string,
  sourceOf: (path: readonly PropertyKey[]) => string | undefined = () => undefined,
): TrainingConfig {
  const parsed = safeParseWorded(trainingConfigSchema, value);
  if (!parsed.success) {
    const fromFlags: ErrorLocation[] = [];
    const fromFile: ErrorLocation[] = [];
    for (const issue of parsed.error.issues) {
      const flag = sourceOf(issue.path);
      if (flag !== undefined) fromFlags.push({ path: flag, message: issue.message });
      else fromFile.push({ path: formatPath(issue.path), message: issue.message });
    }
    const parts = [
      ...(fromFlags.length > 0 ? [describeLocations(fromFlags)] : []),
      ...(fromFile.length > 0 ? [`${source}: ${describeLocations(fromFile)}`] : []),
    ];
    throw new NormserveError('TRAINING_CONFIG_INVALID', parts.join('; '), {
      errors: [...fromFlags, ...fromFile],
    });
  }
  return parsed.data;
}

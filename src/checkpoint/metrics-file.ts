import { z } from 'zod';

/**
 * metrics.json, the one schema its writers (training, recalibration) and its readers (a version's
 * metadata) share (docs/model-format.md#metricsjson). The file is informational: a reader that
 * finds it missing, not JSON or not one of these formats shows none (parseMetricsFile).
 */

/** One epoch of a training (trainer.ts's onEpoch and metrics.json's `epochs`). */
export const epochMetricsSchema = z.object({
  epoch: z.number().int(),
  lr: z.number(),
  train_loss: z.number(),
  train_accuracy: z.number().nullable(),
  val_loss: z.number().nullable(),
  val_accuracy: z.number().nullable(),
  duration_ms: z.number(),
});

/** The test split's figures; regression adds `rmse` and, when the targets vary, `r2`. */
const testMetricsSchema = z.object({
  loss: z.number(),
  accuracy: z.number().nullable(),
  rows: z.number().int(),
  rmse: z.number().optional(),
  r2: z.number().optional(),
});

/** What `npm run train` writes. */
export const trainingMetricsSchema = z.object({
  format: z.literal('normserve.metrics/v1'),
  seed: z.number().int(),
  data_sha256: z.string(),
  data_path: z.string(),
  rows: z.object({
    train: z.number().int(),
    validation: z.number().int(),
    test: z.number().int(),
  }),
  epochs: z.array(epochMetricsSchema),
  /** The epoch of the lowest validation loss (null without validation rows). */
  best_epoch: z.number().int().nullable(),
  /**
   * The epoch whose weights the model holds: best_epoch with patience, else the last one run.
   * Optional: files written before it was recorded have none.
   */
  weights_epoch: z.number().int().optional(),
  stopped_early: z.boolean(),
  /** Regression: `loss` is the MSE in the target's units, with its root and R². */
  test: testMetricsSchema.nullable(),
  wall_time_ms: z.number(),
  samples_per_second: z.number(),
});

/**
 * How far a recalibration moved one BatchNorm's statistics (recalibration/layer-shift.ts): the
 * layer report of a recalibration's metrics.json and of its response.
 */
export const layerShiftSchema = z.object({
  index: z.number().int().meta({
    description: 'Network index of the BatchNorm layer (of the residual block holding it)',
  }),
  /** Optional: files written before BatchNorm2d support have none; every response has it. */
  path: z.string().optional().meta({
    description: 'State-dict prefix of the BatchNorm: "5", or "3.body.1" inside a residual block',
  }),
  features: z.number().int().meta({ description: 'Channels (features) of the BatchNorm' }),
  mean_shift: z.number().meta({ description: 'mean over features of |μ_new − μ_old| / σ_old' }),
  std_ratio: z
    .number()
    .meta({ description: 'mean over features of σ_new / σ_old (σ = √(var + eps))' }),
});

/**
 * What a recalibration writes: its version's provenance (config.json's `provenance`, kept open
 * here as it is there) and the layer report.
 */
export const recalibrationMetricsSchema = z.looseObject({
  format: z.literal('normserve.recalibration/v1'),
  mode: z.string(),
  prior_strength: z.number().optional(),
  batch_size: z.number().int().optional(),
  batches: z.number().int().nullable().optional(),
  skipped: z.number().int().optional(),
  samples: z.number().int(),
  data_sha256: z.string(),
  layers: z.array(layerShiftSchema),
});

export const metricsFileSchema = z.discriminatedUnion('format', [
  trainingMetricsSchema,
  recalibrationMetricsSchema,
]);

export type EpochMetrics = z.infer<typeof epochMetricsSchema>;
export type TrainingMetrics = z.infer<typeof trainingMetricsSchema>;
export type MetricsFile = z.infer<typeof metricsFileSchema>;

/**
 * metrics.json's contents, or undefined for a file that is not UTF-8 JSON of one of the formats
 * above: metrics are informational, and a broken file does not fail its version.
 */
export function parseMetricsFile(bytes: Uint8Array): MetricsFile | undefined {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return undefined;
  }
  return metricsFileSchema.safeParse(value).data;
}

import { z } from 'zod';
import {
  type AvailableVersion,
  compiledLayers,
  foldedBatchNorms,
  trainedVersion,
} from '../../service/index.js';

/** The fields of a training's metrics.json that metadata reports (any JSON; others left out). */
const trainingMetricsSchema = z.looseObject({
  test: z.unknown(),
  best_epoch: z.unknown(),
  // Optional: a metrics.json from before it has none (a key of z.unknown() is required in zod 4).
  weights_epoch: z.unknown().optional(),
  seed: z.unknown(),
  data_sha256: z.unknown(),
  wall_time_ms: z.unknown(),
});

/** A recalibration's metrics.json (`normserve.recalibration/v1`: its provenance and layer report). */
const recalibrationMetricsSchema = z.looseObject({
  format: z.literal('normserve.recalibration/v1'),
  mode: z.string(),
  samples: z.number(),
  data_sha256: z.string(),
  layers: z.array(z.unknown()),
  prior_strength: z.number().optional(),
  batch_size: z.number().optional(),
  batches: z.number().nullable().optional(),
  skipped: z.number().optional(),
});

/** What metadata reports of metrics.json: the training's test metrics, or the recalibration's. */
function metricsView(metrics: unknown) {
  if (metrics === undefined) return null;
  const recalibration = recalibrationMetricsSchema.safeParse(metrics).data;
  if (recalibration) {
    const { format, mode, samples, data_sha256, layers } = recalibration;
    const { prior_strength, batch_size, batches, skipped } = recalibration;
    return {
      format,
      mode,
      ...(prior_strength !== undefined ? { prior_strength } : {}),
      ...(batch_size !== undefined ? { batch_size } : {}),
      ...(batches !== undefined ? { batches } : {}),
      ...(skipped !== undefined ? { skipped } : {}),
      samples,
      data_sha256,
      layers,
    };
  }
  const m = trainingMetricsSchema.safeParse(metrics).data;
  return m
    ? {
        test: m.test ?? null,
        best_epoch: m.best_epoch ?? null,
        // Written by trainings since weights_epoch was added (docs/model-format.md); an older
        // metrics.json has none, and its rule (best_epoch with a patience, else the last) holds.
        ...(m.weights_epoch !== undefined ? { weights_epoch: m.weights_epoch } : {}),
        seed: m.seed ?? null,
        data_sha256: m.data_sha256 ?? null,
        wall_time_ms: m.wall_time_ms ?? null,
      }
    : null;
}

/** Metadata of one served version: what a client needs to call it and what compilation did. */
export function versionMetadata(served: AvailableVersion) {
  const { config, metrics } = served.checkpoint;
  const plan = served.compiled.plan;
  const trained = trainedVersion(served.version, config.provenance);
  // A recalibrated version keeps its parent's training record, whose test_accuracy was measured
  // with the trained version's statistics, not this version's: left out here (the trained
  // version's metadata has it; this version's metrics are its recalibration's).
  let training: Record<string, unknown> | null = config.training ?? null;
  if (training && trained !== served.version) {
    const { test_accuracy: _measuredOnTrained, ...rest } = training;
    training = rest;
  }
  return {
    name: config.name,
    version: served.version,
    task: config.task,
    input_shape: config.input_shape,
    output_shape: plan.outputShape,
    labels: config.labels ?? null,
    description: config.description ?? null,
    layers: compiledLayers(served),
    folded_batchnorms: foldedBatchNorms(served),
    input_transform_folded: plan.inputTransformFolded,
    kernels: plan.steps.map(
      (s) => `${s.op}${s.activation.kind === 'none' ? '' : `+${s.activation.kind}`}`,
    ),
    training,
    trained_version: trained,
    metrics: metricsView(metrics),
    provenance: config.provenance ?? null,
    loaded_at: served.loadedAt,
  };
}

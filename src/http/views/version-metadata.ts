import { z } from 'zod';
import { type AvailableVersion, compiledLayers, foldedBatchNorms } from '../../service/index.js';

/** The fields of metrics.json that metadata reports (any JSON; other fields are left out). */
const trainingMetricsSchema = z.looseObject({
  test: z.unknown(),
  best_epoch: z.unknown(),
  seed: z.unknown(),
  data_sha256: z.unknown(),
  wall_time_ms: z.unknown(),
});

/** Metadata of one served version: what a client needs to call it and what compilation did. */
export function versionMetadata(served: AvailableVersion) {
  const { config, metrics } = served.checkpoint;
  const plan = served.compiled.plan;
  const m = metrics === undefined ? undefined : trainingMetricsSchema.safeParse(metrics).data;
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
    training: config.training ?? null,
    metrics: m
      ? {
          test: m.test ?? null,
          best_epoch: m.best_epoch ?? null,
          seed: m.seed ?? null,
          data_sha256: m.data_sha256 ?? null,
          wall_time_ms: m.wall_time_ms ?? null,
        }
      : null,
    provenance: config.provenance ?? null,
    loaded_at: served.loadedAt,
  };
}

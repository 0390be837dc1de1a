import type { z } from 'zod';
import {
  type AvailableVersion,
  compiledLayers,
  foldedBatchNorms,
  trainedVersion,
} from '../../service/index.js';
import type { versionMetadataSchema } from '../schemas/tf-serving.js';

type MetricsView = z.infer<typeof versionMetadataSchema>['metrics'];

/** What metadata shows of metrics.json: the training's test metrics, or the recalibration's report. */
function metricsView(metrics: AvailableVersion['checkpoint']['metrics']): MetricsView {
  if (metrics === undefined) return null;
  if (metrics.format === 'normserve.recalibration/v1') {
    const { format, mode, samples, data_sha256, layers } = metrics;
    const { prior_strength, batch_size, batches, skipped } = metrics;
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
  const { test, best_epoch, weights_epoch, seed, data_sha256, wall_time_ms } = metrics;
  return {
    test,
    best_epoch,
    // Written by trainings since weights_epoch was added (docs/model-format.md); an older
    // metrics.json has none, and its rule (best_epoch with a patience, else the last) holds.
    ...(weights_epoch !== undefined ? { weights_epoch } : {}),
    seed,
    data_sha256,
    wall_time_ms,
  };
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

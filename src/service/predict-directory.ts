import { loadModelDirectory } from '../repository/index.js';
import { featureNamesOf } from './feature-names.js';
import { ModelRegistry } from './model-registry.js';
import { type PredictOutput, predict } from './predict.js';

export interface OpenedModel {
  name: string;
  version: number;
  /** Feature names recorded by training, in input order, if any. */
  featureNames: string[] | undefined;
  predict(
    rows: readonly (readonly number[])[],
    options?: { fused?: boolean; field?: string },
  ): PredictOutput;
}

/**
 * Opens a model directory (`<repo>/<name>` or `<repo>/<name>/<version>`) for offline prediction
 * through the same registry, compilation and predict code as the server.
 */
export async function openModelDirectory(
  dir: string,
  maxBatchSize = 1 << 20,
): Promise<OpenedModel> {
  const { root, name, version, checkpoint } = await loadModelDirectory(dir);
  const registry = new ModelRegistry(root, { maxBatchSize });
  await registry.refreshModel(name);
  return {
    name,
    version,
    featureNames: featureNamesOf(checkpoint.config),
    predict: (rows, options = {}) =>
      predict(registry, {
        model: name,
        version,
        rows,
        fused: options.fused ?? true,
        field: options.field ?? 'rows',
      }),
  };
}

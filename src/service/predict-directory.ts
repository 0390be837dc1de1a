import { isAbsolute, join, relative, sep } from 'node:path';
import { loadModelDirectory, ModelRepository } from '../repository/index.js';
import { trainingInfoOf } from './feature-names.js';
import { ModelRegistry } from './model-registry.js';
import { exportModelOnnx, type OnnxExport, type OnnxExportRequest } from './onnx-export.js';
import { type PredictOutput, predict, runBatch } from './predict.js';

export interface OpenedModel {
  name: string;
  version: number;
  /** The repository holding the model (`<repo>` of `<repo>/<name>`). */
  repository: string;
  task: 'classification' | 'regression';
  /** A classification model's class names, in output order. */
  labels: readonly string[] | undefined;
  /** Values in one (flattened) sample. */
  inputWidth: number;
  /** Feature names recorded by training, in input order, if any. */
  featureNames: string[] | undefined;
  /** The column training predicted, if recorded. */
  labelColumn: string | undefined;
  /**
   * Set when the version opened is not the one the directory seems to name (the record names a
   * deleted version, or higher versions fail to load), as the server chooses (loadModelDirectory):
   * a CLI says it on stderr.
   */
  versionNote: string | undefined;
  /** One sample per element, flat or nested by the model's input shape. */
  predict(rows: readonly unknown[], options?: { fused?: boolean; field?: string }): PredictOutput;
  /**
   * `rows` rows already read as float32 ([rows, inputWidth], each value finite: a CSV's cells as
   * csvNumber takes them), run as they are, with no copy (runBatch).
   */
  predictRows(data: Float32Array, rows: number, options?: { fused?: boolean }): PredictOutput;
  /** The version's fused plan as an ONNX model (see exportModelOnnx). */
  exportOnnx(options?: Omit<OnnxExportRequest, 'model' | 'version'>): OnnxExport;
}

/**
 * The rows per call an opened model's buffers are sized for: not a server's request limit
 * (DEFAULT_MAX_BATCH_SIZE) but the size of a CLI's one call, which predicts a whole input file at
 * once (the wasm engine loops over its I/O regions past IO_ROWS_CAP; larger calls still work).
 */
const OFFLINE_BATCH_ROWS = 1 << 20;

/**
 * Opens a model directory (`<repo>/<name>` or `<repo>/<name>/<version>`) for offline prediction
 * and export through the same registry, compilation, predict and export code as the server.
 */
export async function openModelDirectory(
  dir: string,
  maxBatchSize = OFFLINE_BATCH_ROWS,
): Promise<OpenedModel> {
  const { root, name, version, checkpoint, versionNote } = await loadModelDirectory(dir);
  const registry = new ModelRegistry(root, { maxBatchSize });
  // This version alone: the model's other versions are not read or compiled.
  const { compiled } = await registry.openVersion(name, version, checkpoint);
  const training = trainingInfoOf(checkpoint.config);
  return {
    name,
    version,
    repository: root,
    task: checkpoint.config.task,
    labels: checkpoint.config.labels,
    inputWidth: compiled.inputWidth,
    featureNames: training.featureNames,
    labelColumn: training.labelColumn,
    versionNote,
    predict: (rows, options = {}) =>
      predict(registry, {
        model: name,
        version,
        rows,
        fused: options.fused ?? true,
        field: options.field ?? 'rows',
      }),
    predictRows: (data, rows, options = {}) =>
      runBatch(registry.resolve(name, version), data, rows, options.fused ?? true),
    exportOnnx: (options = {}) => exportModelOnnx(registry, { ...options, model: name, version }),
  };
}

/**
 * The directory of `repository` that `path` is in or is (`<repo>/<dir>`), if any: a server reads
 * every directory of its repository as a model's, so a file written there could replace a
 * version's model.safetensors or config.json or an active-version record, or make a new
 * directory a model that never loads (readiness then waits for it). A path directly in the
 * repository is none of them, unless it is a model's directory itself. Both paths as the caller
 * resolved them (links followed).
 */
export async function repositoryDirectoryHolding(
  repository: string,
  path: string,
): Promise<string | undefined> {
  const rel = relative(repository, path);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return undefined;
  const parts = rel.split(sep);
  const holder = join(repository, parts[0]!);
  if (parts.length > 1) return holder;
  const isModel = await new ModelRepository(repository)
    .isModelDirectory(parts[0]!)
    .catch(() => false);
  return isModel ? holder : undefined;
}

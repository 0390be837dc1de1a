import { NormserveError } from '../errors/index.js';
import { type FeatureTransform, type Sequential, Tensor } from '../nn/index.js';
import { batchNormLayers, forwardPrefix } from './batch-norm-layers.js';
import { LayerwiseRecalibrator } from './layerwise-recalibrator.js';
import { NetworkState } from './network-state.js';
import {
  type RecalibrationOptions,
  type RecalibrationProgress,
  resolveOptions,
} from './recalibration-options.js';
import type { RecalibrationResult, Recalibrator } from './recalibrator.js';
import { checkCapacity } from './row-validation.js';
import { RunningRecalibrator } from './running-recalibrator.js';

/**
 * A streaming recalibration of `network`'s BatchNorm statistics on unlabeled rows of raw
 * features (`inputWidth` per row, before `inputTransform`). The network must be a private copy:
 * finish() overwrites running_mean/running_var (and, in `running` mode, num_batches_tracked) in
 * place; γ, β and every weight are never written.
 *
 * Throws NOT_RECALIBRATABLE without a BatchNorm, INVALID_INPUT for bad options and SHAPE_MISMATCH
 * when `inputWidth` does not fit the network (checked with two zero rows in eval mode, so a
 * mismatch fails before any upload).
 */
export function createRecalibrator(
  network: Sequential,
  inputTransform: FeatureTransform | undefined,
  inputWidth: number,
  options: RecalibrationOptions = { mode: 'exact' },
): Recalibrator {
  if (!Number.isSafeInteger(inputWidth) || inputWidth < 1)
    throw new RangeError(`inputWidth must be a positive integer, got ${inputWidth}`);
  if (
    inputTransform &&
    (inputTransform.shift.length !== inputWidth || inputTransform.scale.length !== inputWidth)
  ) {
    throw new RangeError(
      `the input transform has ${inputTransform.shift.length} shift and ${inputTransform.scale.length} scale values for an input width of ${inputWidth}`,
    );
  }
  const resolved = resolveOptions(options);
  const layers = batchNormLayers(network);
  checkInputWidth(network, inputWidth, layers[layers.length - 1]!.index + 1, layers);
  return resolved.mode === 'running'
    ? new RunningRecalibrator(network, inputTransform, inputWidth, resolved, layers)
    : new LayerwiseRecalibrator(network, inputTransform, inputWidth, resolved, layers);
}

function checkInputWidth(
  network: Sequential,
  width: number,
  end: number,
  layers: ReturnType<typeof batchNormLayers>,
): void {
  const state = new NetworkState(network, layers);
  state.enterEval();
  try {
    forwardPrefix(network, new Tensor(new Float32Array(2 * width), [2, width]), end);
  } catch (e) {
    if (e instanceof NormserveError)
      throw new NormserveError(
        e.code,
        `input width ${width} does not fit the network: ${e.message}`,
      );
    throw e;
  } finally {
    state.leave();
  }
}

/**
 * Recalibrates on rows held in memory ([n, inputWidth] row-major raw features): pushes them
 * `chunkRows` rows at a time and finishes. Progress of the 'receiving' phase reports the data's
 * row count as totalRows (a streaming caller of createRecalibrator cannot know it in advance and
 * gets the rows received so far).
 */
export async function recalibrate(
  network: Sequential,
  inputTransform: FeatureTransform | undefined,
  inputWidth: number,
  data: Float32Array,
  options: RecalibrationOptions = { mode: 'exact' },
): Promise<RecalibrationResult> {
  const total = data.length / inputWidth;
  const onProgress = options.onProgress;
  const recalibrator = createRecalibrator(network, inputTransform, inputWidth, {
    ...options,
    ...(onProgress && {
      onProgress: (p: RecalibrationProgress) =>
        onProgress(p.phase === 'receiving' ? { ...p, totalRows: total } : p),
    }),
  });
  if (!Number.isInteger(total)) {
    throw new NormserveError(
      'INVALID_INPUT',
      `${data.length} values are not a whole number of rows of ${inputWidth} features`,
    );
  }
  const { maxSamples, chunkRows } = resolveOptions(options);
  checkCapacity(0, total, maxSamples);
  const step = chunkRows * inputWidth;
  for (let offset = 0; offset < data.length; offset += step)
    await recalibrator.push(data.subarray(offset, offset + step));
  return recalibrator.finish();
}

import { NormserveError } from '../errors/index.js';
import { type FeatureTransform, numelOf, type Sequential, Tensor } from '../nn/index.js';
import { batchNormLayers, minimumRows, trainingBatchProblem } from './batch-norm-layers.js';
import { LayerwiseRecalibrator } from './layerwise-recalibrator.js';
import { NetworkState } from './network-state.js';
import {
  type RecalibrationOptions,
  type RecalibrationProgress,
  resolveOptions,
} from './recalibration-options.js';
import type { RecalibrationResult, Recalibrator } from './recalibrator.js';
import { ViewRowStore } from './row-store.js';
import { checkCapacity } from './row-validation.js';
import { RunningRecalibrator } from './running-recalibrator.js';

/** The sample shape of an `input` argument: a shape, or a feature count for flat rows. */
function shapeOf(input: number | readonly number[]): readonly number[] {
  const shape = typeof input === 'number' ? [input] : input;
  if (shape.length === 0 || !shape.every((d) => Number.isSafeInteger(d) && d >= 1))
    throw new RangeError(`the input shape must be positive integers, got [${shape}]`);
  return shape;
}

/**
 * A streaming recalibration of `network`'s BatchNorm statistics on unlabeled rows of raw
 * features. `input` is the sample shape ([F] or [C, H, W]), or the feature count F; rows arrive
 * flat (numel values per row, row-major, before `inputTransform`). The network must be a private
 * copy: finish() overwrites running_mean/running_var (and, in `running` mode,
 * num_batches_tracked) of every BatchNorm, nested ones included, in place; γ, β and every weight
 * are never written.
 *
 * Throws NOT_RECALIBRATABLE without a BatchNorm, INVALID_INPUT for bad options (a `running`
 * batchSize of 1 where one row gives a BatchNorm one value per channel) and SHAPE_MISMATCH
 * when the input shape does not fit the network (checked by an eval-mode forward of a batch of no
 * rows, so a mismatch fails before any upload).
 */
export function createRecalibrator(
  network: Sequential,
  inputTransform: FeatureTransform | undefined,
  input: number | readonly number[],
  options: RecalibrationOptions = { mode: 'exact' },
): Recalibrator {
  const inputShape = shapeOf(input);
  const inputWidth = numelOf(inputShape);
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
  checkInputShape(network, inputShape, layers);
  if (resolved.mode === 'running') {
    const problem = trainingBatchProblem(layers, resolved.batchSize);
    if (problem !== undefined) {
      const message = `batch size ${resolved.batchSize}: ${problem}; use a batch size of at least ${minimumRows(layers)}`;
      throw new NormserveError('INVALID_INPUT', message, {
        errors: [{ path: 'batchSize', message }],
      });
    }
  }
  return resolved.mode === 'running'
    ? new RunningRecalibrator(network, inputTransform, inputShape, resolved, layers)
    : new LayerwiseRecalibrator(network, inputTransform, inputShape, resolved, layers);
}

/**
 * Every layer checks the shape it is given and computes the shape it returns whatever the batch
 * size, so a batch of no rows finds every mismatch that rows would, with no arithmetic: two rows
 * through the reference layers held a server's event loop 30–40 ms on its first recalibration of
 * digits-cnn (cold code), an empty batch 1.4 ms (src/recalibration/README.md).
 */
function checkInputShape(
  network: Sequential,
  shape: readonly number[],
  layers: ReturnType<typeof batchNormLayers>,
): void {
  const state = new NetworkState(network, layers);
  state.enterEval();
  // Each BatchNorm's sample input shape, seen as a forward pre-hook would (the batch's rules
  // need its H·W: batchNormLayers' minimumRows).
  const hooks = layers.map(({ bn }) => bn.preHook);
  for (const layer of layers) {
    layer.bn.preHook = (input) => {
      layer.inputShape = input.shape.slice(1);
    };
  }
  try {
    network.forward(new Tensor(new Float32Array(0), [0, ...shape]));
  } catch (e) {
    if (e instanceof NormserveError)
      throw new NormserveError(
        e.code,
        `input ${shape.length === 1 ? `width ${shape[0]}` : `shape [${shape.join(', ')}]`} does not fit the network: ${e.message}`,
      );
    throw e;
  } finally {
    layers.forEach(({ bn }, k) => {
      bn.preHook = hooks[k];
    });
    state.leave();
  }
}

/**
 * Recalibrates on rows held in memory ([n, numel(input)] row-major raw features): pushes them
 * `chunkRows` rows at a time and finishes. `data` must not change until the promise settles:
 * `exact` and `prior` read the rows from it again for the later BatchNorms (no copy), unless
 * options.rowStore says otherwise. Progress of the 'receiving' phase reports the data's
 * row count as totalRows (a streaming caller of createRecalibrator cannot know it in advance and
 * gets the rows received so far).
 */
export async function recalibrate(
  network: Sequential,
  inputTransform: FeatureTransform | undefined,
  input: number | readonly number[],
  data: Float32Array,
  options: RecalibrationOptions = { mode: 'exact' },
): Promise<RecalibrationResult> {
  const inputWidth = numelOf(shapeOf(input));
  const total = data.length / inputWidth;
  const onProgress = options.onProgress;
  const recalibrator = createRecalibrator(network, inputTransform, input, {
    // `data` is the caller's for the whole call: the rows are read from it, not copied.
    rowStore: (width) => new ViewRowStore(width),
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

import { NormserveError } from '../errors/index.js';
import {
  BatchNorm,
  minimumTrainingRows,
  namedModules,
  oneValuePerChannelReason,
  type Sequential,
} from '../nn/index.js';

/** A BatchNorm of the network: its path (state-dict prefix) and its top-level layer index. */
export interface BatchNormLayer {
  /** Index of the top-level layer: the BatchNorm's own, or that of the block holding it. */
  index: number;
  /** `"5"`, or `"3.body.1"` for one inside a residual block. */
  path: string;
  bn: BatchNorm;
  /**
   * The shape of one sample at its input ([C] or [C, H, W]), recorded by createRecalibrator's
   * shape check; until then the empty shape.
   */
  inputShape: readonly number[];
}

/**
 * The network's BatchNorms in the order a forward pass runs them (named_modules order: depth
 * first, as Sequential and residual blocks execute), nested ones included; NOT_RECALIBRATABLE
 * when there is none.
 */
export function batchNormLayers(network: Sequential): BatchNormLayer[] {
  const layers: BatchNormLayer[] = [];
  for (const [path, m] of namedModules(network)) {
    if (m instanceof BatchNorm)
      layers.push({ index: Number(path.split('.')[0]), path, bn: m, inputShape: [] });
  }
  if (layers.length === 0) {
    throw new NormserveError(
      'NOT_RECALIBRATABLE',
      'the network has no BatchNorm layer: there are no statistics to recalibrate',
    );
  }
  return layers;
}

/**
 * The fewest rows for which every BatchNorm gets more than one value per channel (nn's
 * minimumTrainingRows, PyTorch's rule for a train-mode batch): 1 when all of them see maps with
 * H·W > 1, 2 when one sees a flat [C] (BatchNorm1d) or 1×1 maps. A `running` batch needs it (a
 * BatchNorm in train mode raises below it), and so do all the rows of `exact` and `prior`: one
 * value per channel has no unbiased variance (n·H·W − 1 = 0).
 */
export function minimumRows(layers: readonly BatchNormLayer[]): number {
  let rows = 1;
  for (const { inputShape } of layers) rows = Math.max(rows, minimumTrainingRows(inputShape));
  return rows;
}

/** The first BatchNorm that `rows` rows give one value per channel, or undefined (minimumRows). */
export function singleValueLayer(
  layers: readonly BatchNormLayer[],
  rows: number,
): BatchNormLayer | undefined {
  return layers.find(({ inputShape }) => rows < minimumTrainingRows(inputShape));
}

/** Why a train-mode batch of `rows` rows cannot run, or undefined (PyTorch's words included). */
export function trainingBatchProblem(
  layers: readonly BatchNormLayer[],
  rows: number,
): string | undefined {
  const layer = singleValueLayer(layers, rows);
  return layer
    ? oneValuePerChannelReason(`BatchNorm ${layer.path} (${layer.bn.kind})`, layer.inputShape, rows)
    : undefined;
}

import type { DriftRule, LayerDrift } from '../drift/index.js';
import { modelDriftScore, recalibrationRecommended, tooFewRows } from '../drift/index.js';
import { compileNetwork } from '../inference/index.js';
import { numelOf } from '../nn/index.js';
import { loadModelDirectory } from '../repository/index.js';
import { trainingInfoOf } from './feature-names.js';
import {
  driftOfRows,
  type LayerPicture,
  layerPictures,
  MAX_PICTURE_ROWS,
  type PictureSource,
} from './layer-pictures.js';

/** The offline report of a model version on a set of rows (`npm run report`). */
export interface ModelReport {
  model: string;
  version: number;
  rows: number;
  threshold: number;
  minRows: number;
  /** The model's drift on these rows: its worst layer's score. */
  score: number;
  recommended: boolean;
  /** Fewer rows than DRIFT_MIN_ROWS: the rule decides nothing, whatever the score. */
  tooFewRows: boolean;
  /** Per observable BatchNorm, through the executor's statistics taps over every row. */
  drift: LayerDrift[];
  /** Per BatchNorm, the before/after pictures (of the first MAX_PICTURE_ROWS rows). */
  pictures: LayerPicture[];
  pictureRows: number;
}

export interface ReportModel {
  name: string;
  version: number;
  inputWidth: number;
  featureNames: string[] | undefined;
  labelColumn: string | undefined;
  /** The repository holding the model (`<repo>` of `<repo>/<name>`). */
  repository: string;
  /**
   * Set when the version opened is not the one the directory seems to name (the record names a
   * deleted version, or higher versions fail to load), as the server chooses (loadModelDirectory):
   * a CLI says it on stderr.
   */
  versionNote: string | undefined;
  /** The report for `rows` rows of raw features ([rows, inputWidth]). */
  report(input: Float32Array, rows: number, rule: DriftRule): ModelReport;
}

/** Opens a model directory (`<repo>/<name>[/<version>]`) for an offline report. */
export async function openReportModel(dir: string): Promise<ReportModel> {
  const { name, version, checkpoint, root, versionNote } = await loadModelDirectory(dir);
  const config = checkpoint.config;
  const network = checkpoint.network.eval();
  const source: PictureSource = {
    network,
    inputTransform: config.input_transform,
    inputShape: config.input_shape,
    plan: compileNetwork(network, config.input_transform, config.input_shape),
  };
  const info = trainingInfoOf(config);
  return {
    name,
    version,
    inputWidth: numelOf(config.input_shape),
    featureNames: info.featureNames,
    labelColumn: info.labelColumn,
    repository: root,
    versionNote,
    report(input, rows, rule) {
      const drift = driftOfRows(source, input, rows);
      const score = modelDriftScore(drift);
      const pictureRows = Math.min(rows, MAX_PICTURE_ROWS);
      return {
        model: name,
        version,
        rows,
        threshold: rule.threshold,
        minRows: rule.minRows,
        score,
        recommended: recalibrationRecommended(rule, score, rows),
        tooFewRows: tooFewRows(rule, rows),
        drift,
        pictures: layerPictures(source, input, pictureRows),
        pictureRows,
      };
    },
  };
}

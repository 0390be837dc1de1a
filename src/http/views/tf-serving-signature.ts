import {
  type AvailableVersion,
  INPUT_TENSOR,
  PROBABILITIES_TENSOR,
  rawOutputTensor,
} from '../../service/index.js';
import { SERVING_SIGNATURE } from '../schemas/tf-serving.js';
import { versionMetadata } from './version-metadata.js';

/** TF Serving's method name of a Predict signature (tensorflow/cc/saved_model/signature_constants.h). */
export const PREDICT_METHOD_NAME = 'tensorflow/serving/predict';

/**
 * A TensorInfo as proto3 JSON prints it (TF Serving's GetModelMetadata): DT_FLOAT, each dimension
 * an int64 written as a string, -1 for the batch.
 */
function tensorInfo(name: string, sampleShape: readonly number[]) {
  return {
    dtype: 'DT_FLOAT' as const,
    tensor_shape: {
      dim: [-1, ...sampleShape].map((size) => ({ size: String(size), name: '' })),
      unknown_rank: false,
    },
    name,
  };
}

/**
 * The output tensor a predict answers under `predictions` (row format) or `outputs` (columnar):
 * the probabilities of a classifier, the outputs of a regression. It is the only one, so TF
 * Serving's clients read it as the plain list they get; `labels` is normserve's own key beside it.
 */
export const predictOutputTensor = (served: AvailableVersion): string =>
  served.checkpoint.config.task === 'classification'
    ? PROBABILITIES_TENSOR
    : rawOutputTensor('regression');

/**
 * TF Serving's GetModelMetadataResponse (api_rest.md, "Model Metadata API"; get_model_metadata.proto)
 * of one version, as its REST API prints it: `model_spec`, and `metadata.signature_def` holding
 * the SignatureDefMap of the one signature every model has, whose input is the name that
 * TF Serving's named predict forms and the Open Inference Protocol use. Added to normserve's own
 * metadata fields, which stay as they were.
 */
export function tfServingModelMetadata(served: AvailableVersion) {
  const { compiled } = served;
  const output = predictOutputTensor(served);
  return {
    model_spec: {
      name: served.checkpoint.config.name,
      signature_name: '',
      version: String(served.version),
    },
    metadata: {
      signature_def: {
        signature_def: {
          [SERVING_SIGNATURE]: {
            inputs: { [INPUT_TENSOR]: tensorInfo(INPUT_TENSOR, compiled.inputShape) },
            outputs: { [output]: tensorInfo(output, [compiled.outputWidth]) },
            method_name: PREDICT_METHOD_NAME,
          },
        },
      },
    },
  };
}

/**
 * GET /v1/models/{name}[/versions/{v}]/metadata: normserve's metadata of the version (the
 * dashboard and scripts read it), with TF Serving's GetModelMetadataResponse fields beside it.
 */
export const metadataResponse = (served: AvailableVersion) => ({
  ...versionMetadata(served),
  ...tfServingModelMetadata(served),
});

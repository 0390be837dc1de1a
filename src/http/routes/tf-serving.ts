import type { AppInstance } from '../app-types.js';
import { attributeModel } from '../attribute-model.js';
import { OCTET_STREAM } from '../binary-infer.js';
import { CONTENT_ENCODING_DOC } from '../content-encoding.js';
import { untypedBodyAsJson } from '../json-body.js';
import { predictionBudget } from '../json-budget.js';
import { beforeVerb } from '../not-found.js';
import { predictBody, predictHandler, predictQuery } from '../predict-request.js';
import { trafficIsGuarded } from '../route-access.js';
import {
  activeVersionErrorResponses,
  errorResponses,
  inferenceErrorResponses,
  jsonOrBinary,
  MODEL_NAME_ROUTE_PARAM,
  MODEL_VERSION_HEADER,
  nameParams,
  versionParams,
} from '../schemas/common.js';
import {
  modelStatusSchema,
  modelsListSchema,
  modelVersionsSchema,
  predictResponseSchema,
  versionMetadataSchema,
} from '../schemas/tf-serving.js';
import { listModel } from '../views/model-listing.js';
import { modelStatus, oneVersionStatus } from '../views/model-status.js';
import { metadataResponse } from '../views/tf-serving-signature.js';

/**
 * TF Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest): model status, metadata
 * and predict in row (`instances`) or columnar (`inputs`) format, plus the model list.
 */
export async function tfServingRoutes(app: AppInstance): Promise<void> {
  const { registry, drift } = app.deps;
  // TF Serving's own routes (status, metadata, predict) answer errors as TF Serving's clients
  // read them (problem-media-type.ts); the lists of models and versions are normserve's.
  const protocol = 'tf-serving';
  const onRequest = attributeModel(registry);

  app.get(
    '/v1/models',
    {
      config: { access: 'public' },
      schema: {
        tags: ['models'],
        summary: 'All models with their versions and states',
        response: { 200: modelsListSchema },
      },
    },
    async () => ({ models: registry.list().map(listModel) }),
  );

  // With AUTO_RECALIBRATE on, the status carries the automatic recalibration's state (the drift
  // report's `auto_recalibration`): the traffic sample's size, a candidate's shadow runs and drift,
  // drawn from the prediction traffic. GetModelStatus stays public, as probes and TF Serving
  // clients poll it without a token, so with API_TOKEN set that state is left to the drift report.
  const statusHoldsAutoRecalibration =
    drift.options.autoRecalibrate !== 'off' && !trafficIsGuarded(app.deps.config.API_TOKEN);
  app.get(
    `/v1/models/${beforeVerb('name')}`,
    {
      config: { access: 'public', protocol },
      onRequest,
      schema: {
        tags: ['models'],
        summary: 'Model status (TF Serving GetModelStatus): every version',
        description:
          'With AUTO_RECALIBRATE other than off and no API_TOKEN, the status also holds `auto_recalibration`, as `GET /v1/models/{name}/drift` does. It is drawn from the prediction traffic, so with API_TOKEN set it is left out here and read from the drift report, with the token.',
        params: nameParams,
        response: { 200: modelStatusSchema, ...errorResponses },
      },
    },
    async (request) =>
      modelStatus(registry.get(request.params.name), drift, statusHoldsAutoRecalibration),
  );

  app.get(
    '/v1/models/:name/versions',
    {
      config: { access: 'public' },
      onRequest,
      schema: {
        tags: ['models'],
        summary: 'Versions of a model with states, the active one marked',
        params: nameParams,
        response: { 200: modelVersionsSchema, ...errorResponses },
      },
    },
    async (request) => listModel(registry.get(request.params.name)),
  );

  app.get(
    `/v1/models/:name/versions/${beforeVerb('version')}`,
    {
      config: { access: 'public', protocol },
      onRequest,
      schema: {
        tags: ['models'],
        summary: 'Status of one version (TF Serving GetModelStatus)',
        params: versionParams,
        response: { 200: modelStatusSchema, ...errorResponses },
      },
    },
    async (request) => oneVersionStatus(registry.get(request.params.name), request.params.version),
  );

  app.get(
    '/v1/models/:name/metadata',
    {
      config: { access: 'public', protocol },
      onRequest,
      schema: {
        tags: ['models'],
        summary:
          'Metadata of the active version: inputs, labels, layers, folded BatchNorms, training metrics, provenance',
        params: nameParams,
        response: { 200: versionMetadataSchema, ...activeVersionErrorResponses },
      },
    },
    async (request) => metadataResponse(registry.resolve(request.params.name)),
  );

  app.get(
    '/v1/models/:name/versions/:version/metadata',
    {
      config: { access: 'public', protocol },
      onRequest,
      schema: {
        tags: ['models'],
        summary: 'Metadata of one version',
        params: versionParams,
        response: { 200: versionMetadataSchema, ...errorResponses },
      },
    },
    async (request) =>
      metadataResponse(registry.resolve(request.params.name, request.params.version)),
  );

  const predict = predictHandler(app.deps);
  // TF Serving's and KServe's clients may post JSON without a Content-Type (json-body.ts).
  const onPredictRequest = [onRequest, untypedBodyAsJson];
  // Millions of empty rows are a 413 before they are parsed (json-budget.ts).
  // TF Serving's named instances ({"input": sample}) hold an object and a key per sample.
  const jsonBudget = predictionBudget(registry, app.deps.config, true);
  const predictSchema = {
    tags: ['predict'],
    querystring: predictQuery,
    body: predictBody,
    consumes: ['application/json', OCTET_STREAM],
    description: [
      "JSON (this schema; a body without a Content-Type is read as JSON), or `Content-Type: application/octet-stream`: little-endian float32 rows of the model's input width, back to back (the row count follows from the length); a sample of a multi-dimensional input_shape is its values in row-major order (64 for [1, 8, 8]).",
      "The answer is JSON (this schema), or, with `Accept: application/octet-stream`, the probabilities (regression: the outputs) as little-endian float32 rows of the model's output width.",
      CONTENT_ENCODING_DOC,
    ].join('\n\n'),
    response: {
      200: jsonOrBinary(
        predictResponseSchema,
        {
          mediaType: OCTET_STREAM,
          description:
            "Little-endian float32 rows of the model's output width, back to back: the probabilities (regression: the outputs)",
        },
        'The predictions: JSON, or float32 bytes when Accept prefers application/octet-stream',
        {
          ...MODEL_VERSION_HEADER,
          'X-Output-Shape': {
            type: 'string',
            description:
              'Binary answers only: `<rows>,<output width>`, the shape of the float32 rows',
          },
        },
      ),
      ...inferenceErrorResponses,
    },
  };
  app.post(
    `/v1/models/${MODEL_NAME_ROUTE_PARAM}::predict`,
    {
      config: { access: 'prediction', protocol, jsonBudget },
      onRequest: onPredictRequest,
      schema: {
        ...predictSchema,
        summary: 'Predict with the active version (TF Serving REST predict)',
        params: nameParams,
      },
    },
    predict,
  );
  app.post(
    `/v1/models/:name/versions/${beforeVerb('version')}::predict`,
    {
      config: { access: 'prediction', protocol, jsonBudget },
      onRequest: onPredictRequest,
      schema: { ...predictSchema, summary: 'Predict with one version', params: versionParams },
    },
    predict,
  );
}

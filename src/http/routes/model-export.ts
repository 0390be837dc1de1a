import { z } from 'zod';
import { exportModelOnnx, ONNX_OPSET } from '../../service/index.js';
import type { AppInstance } from '../app-types.js';
import { attributeModel } from '../attribute-model.js';
import { modelVersionHeaderDoc, setModelVersion } from '../model-version-header.js';
import { errorResponses, problemSchema, queryFlag, versionParams } from '../schemas/common.js';

/**
 * ONNX has no registered media type; application/octet-stream is what HTTP clients, browsers and
 * object stores treat as a file to keep, and Content-Disposition names it `<model>-<version>.onnx`.
 */
export const ONNX_CONTENT_TYPE = 'application/octet-stream';

const exportQuerySchema = z.strictObject({
  probabilities: queryFlag('false').meta({
    description:
      'true adds a second output, "probabilities" (Softmax of the logits); classification models only',
  }),
});

const onnxResponse = z.unknown().meta({
  description: `The ONNX model (opset ${ONNX_OPSET}) of the compiled version: input "input" [batch, ...input_shape] FP32 ([batch, features], or [batch, channels, height, width] for an image model), output "logits" (classification) or "predictions" (regression) [batch, outputs] FP32`,
  content: {
    [ONNX_CONTENT_TYPE]: {
      schema: { type: 'string', contentMediaType: ONNX_CONTENT_TYPE },
    },
  },
  headers: {
    'Content-Disposition': {
      type: 'string',
      description: 'attachment; filename="<model>-<version>.onnx"',
    },
    ...modelVersionHeaderDoc('The exported version'),
  },
});

/** Model export: one version's compiled (fused) plan as an ONNX file. */
export async function modelExportRoutes(app: AppInstance): Promise<void> {
  const { registry, version: producerVersion } = app.deps;
  app.get(
    '/v1/models/:name/versions/:version/model.onnx',
    {
      config: { access: 'download' },
      onRequest: attributeModel(registry),
      schema: {
        tags: ['models'],
        summary:
          'The version as an ONNX model: BatchNorm and the input transform folded, outputs = the raw outputs (logits)',
        params: versionParams,
        querystring: exportQuerySchema,
        response: {
          200: onnxResponse,
          400: problemSchema.describe(
            'A bad query parameter, or probabilities=true for a regression model',
          ),
          404: errorResponses[404],
          422: problemSchema.describe(
            'NOT_EXPORTABLE: the compiled plan has a step the export cannot write',
          ),
        },
      },
    },
    async (request, reply) => {
      const onnx = exportModelOnnx(registry, {
        model: request.params.name,
        version: request.params.version,
        probabilities: request.query.probabilities,
        producerVersion,
      });
      request.servedVersion = onnx.version;
      return setModelVersion(reply, onnx.version)
        .type(ONNX_CONTENT_TYPE)
        .header('Content-Disposition', `attachment; filename="${onnx.fileName}"`)
        .send(Buffer.from(onnx.bytes.buffer, onnx.bytes.byteOffset, onnx.bytes.byteLength));
    },
  );
}

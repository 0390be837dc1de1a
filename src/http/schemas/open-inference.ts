import { z } from 'zod';
import { errorResponses, NOT_READY_DESCRIPTION, notReadyReason } from './common.js';
import { LIMITS, parametersSchema } from './limits.js';

const example = Array.from({ length: 64 }, (_, i) => (i % 9 === 0 ? 8 : 0));

const tensorMetadata = z.object({
  name: z.string(),
  datatype: z.string(),
  shape: z.array(z.number().int()),
});

export const serverMetadataSchema = z
  .object({ name: z.string(), version: z.string(), extensions: z.array(z.string()) })
  .meta({
    examples: [
      { name: 'normserve', version: '0.1.0', extensions: ['binary_tensor_data', 'classification'] },
    ],
  });

export const serverLiveSchema = z
  .object({ live: z.boolean() })
  .meta({ examples: [{ live: true }] });

const readySchema = z.object({ ready: z.boolean(), reason: notReadyReason });

export const serverReadyResponses = {
  200: readySchema.meta({ examples: [{ ready: true }] }),
  503: readySchema.meta({
    description: NOT_READY_DESCRIPTION,
    examples: [{ ready: false }],
  }),
};

const modelReady = z.object({ name: z.string(), ready: z.boolean() });

export const modelReadyResponses = {
  200: modelReady.meta({ examples: [{ name: 'digits', ready: true }] }),
  ...errorResponses,
  503: modelReady.meta({
    description: 'Known model with no available version',
    examples: [{ name: 'digits', ready: false }],
  }),
};

export const modelMetadataSchema = z
  .object({
    name: z.string(),
    versions: z.array(z.string()),
    platform: z.string(),
    inputs: z.array(tensorMetadata),
    outputs: z.array(tensorMetadata),
  })
  .meta({
    description: 'Open Inference Protocol model metadata; the batch dimension is -1',
    examples: [
      {
        name: 'digits',
        versions: ['1'],
        platform: 'normserve',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 64] }],
        outputs: [
          { name: 'probabilities', datatype: 'FP32', shape: [-1, 10] },
          { name: 'logits', datatype: 'FP32', shape: [-1, 10] },
          { name: 'label', datatype: 'BYTES', shape: [-1] },
        ],
      },
    ],
  });

const tensorName = z.string().max(LIMITS.nameChars);

/** The request tensor; `data` is checked by the handler (infer-request.ts) against the shape. */
export const inferInputSchema = z.strictObject({
  name: tensorName.meta({ description: 'Must be the model input name, "input"' }),
  shape: z.array(z.number().int().min(0)).max(LIMITS.shapeDims).meta({
    description: '[N, ...input_shape] (e.g. [N, 1, 8, 8]) or [N, features] (e.g. [N, 64])',
  }),
  datatype: tensorName.meta({ description: 'Must be "FP32"' }),
  parameters: parametersSchema.optional(),
  data: z.array(z.unknown()).meta({
    description:
      'Row-major values: flat [N·features] numbers, or nested by rows ([N][features], [N][1][8][8])',
  }),
});

/**
 * An output's parameters: any (the protocol allows extensions); these two are read. Documented
 * here, checked by the handler (infer-request.ts), which names the parameter in its 400s.
 */
const outputParameters = parametersSchema.optional().meta({
  description:
    'binary_data (boolean): answer this output as bytes (the binary tensor data extension). ' +
    'classification (integer ≥ 1): answer the output as its classes (the classification extension): ' +
    'BYTES [N, min(count, classes)] of "<value>:<index>:<label>", each row highest value first ' +
    '(equal values by index), <value> written as printf "%f" (six decimals); on probabilities or ' +
    'logits of a classification model only. Other parameters are accepted and ignored',
  examples: [{ classification: 3 }, { classification: 3, binary_data: true }],
});

/**
 * Strict, as the TF-style route: an unknown key is a 400 naming it (and the key it likely meant),
 * so a misspelt `ouputs` or `parameter` is not silently answered as if absent. Triton and KServe
 * ignore unknown keys; every key their clients send is known here (KServe's Python client's
 * `InferRequest.to_rest()` always sends `model_name`, as Triton's binary example does),
 * extensions go in `parameters`.
 */
function inferRequest<I extends z.ZodType>(input: I) {
  return z.strictObject({
    model_name: z.string().max(LIMITS.nameChars).optional().meta({
      description:
        "The model the URL names (KServe's and Triton's clients send it); another name is a 400",
    }),
    id: z.string().max(LIMITS.idChars).optional().meta({ description: 'Echoed in the response' }),
    parameters: parametersSchema.optional(),
    inputs: z.array(input).min(1, 'at least one input tensor is required').max(LIMITS.tensors),
    outputs: z
      .array(z.strictObject({ name: tensorName, parameters: outputParameters }))
      .max(LIMITS.tensors)
      .optional()
      .meta({
        description:
          'Outputs to return, each at most once: probabilities, logits, label; regression: predictions. Absent or empty: all of them, as the protocol says',
      }),
  });
}

export function inferRequestSchema() {
  return inferRequest(inferInputSchema).meta({
    examples: [
      {
        id: 'request-1',
        inputs: [{ name: 'input', shape: [1, 64], datatype: 'FP32', data: example }],
        outputs: [{ name: 'probabilities' }, { name: 'logits' }],
      },
      {
        id: 'request-2',
        inputs: [{ name: 'input', shape: [1, 64], datatype: 'FP32', data: example }],
        outputs: [{ name: 'probabilities', parameters: { classification: 3 } }],
      },
    ],
  });
}

/**
 * The JSON header of a binary infer request (the binary tensor data extension): an input's
 * `data` is left out when its bytes follow the header (`parameters.binary_data_size`).
 */
export function binaryInferHeaderSchema() {
  return inferRequest(inferInputSchema.extend({ data: inferInputSchema.shape.data.optional() }));
}

export const inferResponseSchema = z
  .object({
    model_name: z.string(),
    model_version: z.string(),
    id: z.string().optional(),
    outputs: z.array(
      z.object({
        name: z.string(),
        datatype: z.string(),
        shape: z.array(z.number().int()),
        data: z.array(z.union([z.number(), z.string()])).meta({
          description:
            'Row-major values: numbers (FP32), or strings (BYTES: the label output, or an output asked for with parameters.classification)',
        }),
      }),
    ),
  })
  .meta({
    examples: [
      {
        model_name: 'digits',
        model_version: '1',
        id: 'request-1',
        outputs: [
          {
            name: 'probabilities',
            datatype: 'FP32',
            shape: [1, 10],
            data: [0.9, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.01, 0.01],
          },
        ],
      },
      {
        model_name: 'digits',
        model_version: '1',
        id: 'request-2',
        outputs: [
          {
            name: 'probabilities',
            datatype: 'BYTES',
            shape: [1, 3],
            // digits/1's answer to the request example 'request-2'.
            data: ['0.436049:3:3', '0.156320:0:0', '0.082789:4:4'],
          },
        ],
      },
    ],
  });

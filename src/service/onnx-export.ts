import { NormserveError } from '../errors/index.js';
import { exportOnnx, ONNX_BATCH_DIM, ONNX_OPSET } from '../inference/index.js';
import type { ModelRegistry } from './model-registry.js';
import { INPUT_TENSOR, PROBABILITIES_TENSOR, rawOutputTensor } from './tensor-names.js';

export interface OnnxExportRequest {
  model: string;
  /** Explicit version, or undefined for the active one. */
  version?: number | undefined;
  /** Add a `probabilities` output (softmax of the logits); classification models only. */
  probabilities?: boolean;
  /** normserve's version, recorded as the producer version. */
  producerVersion?: string;
}

export interface OnnxExport {
  model: string;
  version: number;
  /** `<model>-<version>.onnx`: model names are file-name safe by their pattern. */
  fileName: string;
  bytes: Uint8Array;
  /** One line for people: opset, input and outputs with their shapes. */
  summary: string;
}

/** Why a regression model's export has no probabilities (the route's query, the CLI's flag). */
export const noProbabilities = (model: string): string =>
  `only classification models have probabilities; "${model}" is a regression model`;

/**
 * A served version's compiled (fused) plan as an ONNX model: input `input` [batch, ...input shape]
 * ([batch, features], or [batch, C, H, W] for an image model),
 * output `logits` (classification) or `predictions` (regression) — the raw outputs, the same
 * numbers as the Open Inference Protocol's tensor of that name — and, on request, `probabilities`.
 * The input transform is part of the graph (folded into the first Gemm or Conv, or a Mul+Add), so the
 * model takes raw features like the service does. Labels, task and provenance go into the
 * model's metadata_props.
 */
export function exportModelOnnx(registry: ModelRegistry, request: OnnxExportRequest): OnnxExport {
  const served = registry.resolve(request.model, request.version);
  const { config } = served.checkpoint;
  if (request.probabilities && config.task !== 'classification') {
    const message = noProbabilities(config.name);
    throw new NormserveError('INVALID_INPUT', `probabilities: ${message}`, {
      errors: [{ path: 'probabilities', message }],
    });
  }
  const { plan } = served.compiled;
  const outputs = [rawOutputTensor(config.task)];
  if (request.probabilities) outputs.push(PROBABILITIES_TENSOR);
  const bytes = exportOnnx(plan, {
    graphName: config.name,
    inputName: INPUT_TENSOR,
    outputName: outputs[0]!,
    probabilitiesName: outputs[1],
    modelVersion: served.version,
    producerVersion: request.producerVersion,
    docString: `normserve model "${config.name}" version ${served.version}, compiled for eval (BatchNorm and the input transform folded), ONNX opset ${ONNX_OPSET}${config.description ? `: ${config.description}` : ''}`,
    metadata: {
      'normserve.model': config.name,
      'normserve.version': String(served.version),
      'normserve.task': config.task,
      ...(config.labels ? { 'normserve.labels': JSON.stringify(config.labels) } : {}),
      ...(config.provenance ? { 'normserve.provenance': JSON.stringify(config.provenance) } : {}),
    },
  });
  return {
    model: config.name,
    version: served.version,
    fileName: `${config.name}-${served.version}.onnx`,
    bytes,
    summary: `ONNX opset ${ONNX_OPSET}, input "${INPUT_TENSOR}" [${[ONNX_BATCH_DIM, ...plan.inputShape].join(', ')}], output${outputs.length > 1 ? 's' : ''} ${outputs.map((o) => `"${o}" [${ONNX_BATCH_DIM}, ${plan.outputWidth}]`).join(', ')}`,
  };
}

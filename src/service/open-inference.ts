import { quote, versionNotFound } from '../errors/index.js';
import { failInput, type InputShape } from './input-shape.js';
import type { AvailableVersion, ModelRegistry } from './model-registry.js';
import { checkBatchSize, type PredictOutput } from './predict.js';
import { bytesTensor, float32Bytes } from './tensor-codec.js';
import {
  INPUT_TENSOR,
  LABEL_TENSOR,
  PROBABILITIES_TENSOR,
  rawOutputTensor,
  unknownInputMessage,
} from './tensor-names.js';

/*
 * The Open Inference Protocol's view of a model, shared by its REST (JSON and binary) and gRPC
 * forms: one FP32 input tensor "input" of shape [N, ...input_shape] or [N, features] (the shapes
 * of input-shape.ts); outputs "probabilities", "logits" and "label" (classification) or
 * "predictions" (regression) (tensor-names.ts).
 */

/**
 * The protocol extensions this server implements (REST GET /v2 and gRPC ServerMetadata), named
 * as Triton names them: binary tensor data (REST) and classification (classification.ts).
 */
export const OIP_EXTENSIONS: readonly string[] = ['binary_tensor_data', 'classification'];

export type OutputName = string;

const CLASSIFICATION_OUTPUTS: readonly OutputName[] = [
  PROBABILITIES_TENSOR,
  rawOutputTensor('classification'),
  LABEL_TENSOR,
];
const REGRESSION_OUTPUTS: readonly OutputName[] = [rawOutputTensor('regression')];

export function outputNames(served: AvailableVersion): readonly OutputName[] {
  return served.checkpoint.config.task === 'classification'
    ? CLASSIFICATION_OUTPUTS
    : REGRESSION_OUTPUTS;
}

function modelMetadata(served: AvailableVersion, versions: string[]) {
  const width = served.compiled.outputWidth;
  const outputs = outputNames(served).map((name) =>
    name === LABEL_TENSOR
      ? { name, datatype: 'BYTES', shape: [-1] }
      : { name, datatype: 'FP32', shape: [-1, width] },
  );
  return {
    name: served.checkpoint.config.name,
    versions,
    platform: 'normserve',
    inputs: [{ name: INPUT_TENSOR, datatype: 'FP32', shape: [-1, ...served.compiled.inputShape] }],
    outputs,
  };
}

/**
 * Model metadata: of the active version, listing every available version, or of the version asked
 * for, listing that one.
 */
export function oipModelMetadata(registry: ModelRegistry, name: string, version?: number) {
  if (version !== undefined)
    return modelMetadata(registry.resolve(name, version), [String(version)]);
  const served = registry.resolve(name);
  const versions = [...registry.get(name).versions.values()]
    .filter((v) => v.state === 'AVAILABLE')
    .map((v) => String(v.version));
  return modelMetadata(served, versions);
}

/**
 * Whether the version asked for (else the active one) is available: false, not an error, for a
 * model or version the server does not have. gRPC ModelReady answers this, as Triton core's
 * InferenceServer::ModelIsReady (src/server.cc) does: OK with ready false when it cannot find the
 * model, so tritonclient.grpc's is_model_ready returns False instead of raising.
 */
export function isModelReady(registry: ModelRegistry, name: string, version?: number): boolean {
  if (!registry.has(name)) return false;
  const model = registry.get(name);
  const v = version ?? model.active;
  return v !== undefined && model.versions.get(v)?.state === 'AVAILABLE';
}

/**
 * Model readiness over HTTP: isModelReady, with MODEL_NOT_FOUND and VERSION_NOT_FOUND (404) for a
 * model or version the server does not have. The protocol's REST text sets no status for it, and
 * tritonclient.http reads any status but 200 as not ready (Triton itself answers 400), so the 404
 * only adds why.
 */
export function modelReadiness(registry: ModelRegistry, name: string, version?: number) {
  const model = registry.get(name);
  if (version !== undefined && !model.versions.has(version)) throw versionNotFound(name, version);
  return { name, ready: isModelReady(registry, name, version) };
}

/** The tensor description of an OIP input, before its data is read. */
export interface InputTensorHeader {
  name: string;
  datatype: string;
  shape: readonly number[];
}

/**
 * Checks an infer request's input tensors against the model (exactly one, named "input", FP32,
 * shape [N, ...input_shape] or [N, features] with 1 ≤ N ≤ maxRows) and returns N. `prefix`
 * names the tensors in error paths (`inputs` for REST, the proto field for gRPC).
 */
export function checkInputTensor(
  inputs: readonly InputTensorHeader[],
  inputShape: InputShape,
  maxRows: number,
  prefix = 'inputs',
): number {
  if (inputs.length !== 1)
    failInput(
      prefix,
      `this model takes exactly one input tensor ("${INPUT_TENSOR}"), got ${inputs.length}`,
    );
  const input = inputs[0]!;
  if (input.name !== INPUT_TENSOR) failInput(`${prefix}[0].name`, unknownInputMessage(input.name));
  if (input.datatype !== 'FP32')
    failInput(`${prefix}[0].datatype`, `expected "FP32", got ${quote(input.datatype)}`);
  const rows = inputShape.batchOf(input.shape, `${prefix}[0].shape`);
  if (rows < 1) failInput(`${prefix}[0].shape`, 'at least one row is required');
  checkBatchSize(`${prefix}[0].shape`, rows, maxRows);
  return rows;
}

/**
 * The outputs a request asked for, checked against the model: an unknown name, or a name asked
 * for twice, is a 400 naming the place; none asked for (no list, or an empty one: protobuf cannot
 * tell them apart) means every output of the model, as the protocol says ("if not specified all
 * outputs produced by the model will be returned") and Triton and KServe do. Each output at
 * most once bounds the answer by rows × the model's output values (one infer request repeating
 * "logits" 20,000 times took a server down).
 */
export function requestedOutputs(
  served: AvailableVersion,
  names: readonly string[] | undefined,
  prefix = 'outputs',
): OutputName[] {
  const known = outputNames(served);
  if (names === undefined || names.length === 0) return [...known];
  const seen = new Set<string>();
  return names.map((name, i) => {
    if (!(known as readonly string[]).includes(name)) {
      failInput(
        `${prefix}[${i}].name`,
        `unknown output ${quote(name)}; this model has ${known.join(', ')}`,
      );
    }
    if (seen.has(name)) failInput(`${prefix}[${i}].name`, `output "${name}" is asked for twice`);
    seen.add(name);
    return name as OutputName;
  });
}

/**
 * An output tensor of a result: FP32 values, or strings (BYTES): the labels [rows], or an
 * output's classes [rows, count] (classification.ts).
 */
export type OutputTensor =
  | { name: OutputName; datatype: 'FP32'; shape: [number, number]; values: Float32Array }
  | { name: OutputName; datatype: 'BYTES'; shape: [number] | [number, number]; values: string[] };

/**
 * The raw bytes of an output tensor, as the binary tensor extension and gRPC's
 * raw_output_contents lay them out: FP32 little-endian, BYTES elements each after its 4-byte
 * length.
 */
export function tensorBytes(tensor: OutputTensor): Buffer {
  return tensor.datatype === 'FP32' ? float32Bytes(tensor.values) : bytesTensor(tensor.values);
}

export function outputTensor(name: OutputName, out: PredictOutput): OutputTensor {
  switch (name) {
    case LABEL_TENSOR:
      return { name, datatype: 'BYTES', shape: [out.rows], values: out.labels! };
    case PROBABILITIES_TENSOR:
      return {
        name,
        datatype: 'FP32',
        shape: [out.rows, out.outputWidth],
        values: out.probabilities!,
      };
    default:
      return { name, datatype: 'FP32', shape: [out.rows, out.outputWidth], values: out.outputs };
  }
}

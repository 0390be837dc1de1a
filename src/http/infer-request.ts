import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { quote } from '../errors/index.js';
import {
  type AvailableVersion,
  CLASSIFICATION_PARAMETER,
  checkBatchSize,
  checkClassifications,
  checkInputTensor,
  classificationCount,
  classifiedTensor,
  compileAccepts,
  FP32_BYTES,
  failInput,
  float32Rows,
  INPUT_TENSOR,
  type InputShape,
  inputShapeOf,
  type OutputName,
  outputTensor,
  type PredictOutput,
  type RowSource,
  readFloat32,
  requestedOutputs,
  tensorBytes,
} from '../service/index.js';
import type { AppDeps } from './app-types.js';
import {
  binaryBody,
  binaryDataSize,
  booleanParameter,
  checkBinaryConsumed,
  HEADER_LENGTH,
  HEADER_LENGTH_NAME,
  isRawBinary,
  OCTET_STREAM,
  parseInferHeader,
  splitInferBody,
} from './binary-infer.js';
import { answered } from './inference-reply.js';
import { inferResponseJson, JSON_TYPE, outputTensorJson } from './json-responses.js';
import { binaryInferHeaderSchema, inferRequestSchema } from './schemas/open-inference.js';
import { parseWith, validatedByHandler } from './validation.js';

type InferBody = z.output<ReturnType<typeof binaryInferHeaderSchema>>;
type InferInput = InferBody['inputs'][number];

// Bodies are validated by the handler: a check compiled from the zod schema accepts valid
// requests fast; anything it refuses is parsed by the schema itself for the error document.
export const inferBody = validatedByHandler(inferRequestSchema());
const acceptsBody = compileAccepts(inferBody);
const headerSchema = binaryInferHeaderSchema();
const acceptsHeader = compileAccepts(headerSchema);

const JSON_DATA = 'inputs[0].data';
/** The input's bytes after a binary body's JSON header. */
const BINARY_DATA = 'inputs[0].binary_data';

// Where a row whose outputs overflow is named, by where the input came from.
const jsonDataRow = (r: number) => `${JSON_DATA} (row ${r})`;
/** The input's bytes of a raw binary request: the whole body. */
const RAW_DATA = 'body';

/**
 * The input rows of an infer request: from JSON `data`, or from the bytes after a binary body's
 * header (`binary`, undefined for JSON bodies) when the input has `binary_data_size`; `rowPath`
 * names a row by where it came from in error documents.
 */
function readInput(
  body: InferBody,
  binary: Buffer | undefined,
  served: AvailableVersion,
  maxRows: number,
  /** Where the binary data is named: after the header, or the whole body (a raw request). */
  binaryPath = BINARY_DATA,
): { source: RowSource; rowPath: (row: number) => string } {
  const shape = inputShapeOf(served);
  const rows = checkInputTensor(body.inputs, shape, maxRows);
  const input: InferInput = body.inputs[0]!;
  const size = binaryDataSize(input.parameters, 'inputs[0].parameters');
  if (size === undefined) {
    if (binary !== undefined && binary.length > 0) checkBinaryConsumed(0, binary.length);
    if (input.data === undefined)
      failInput('inputs[0].data', 'required (or parameters.binary_data_size for binary data)');
    return { source: shape.tensorData(input.data, input.shape, JSON_DATA), rowPath: jsonDataRow };
  }
  if (binary === undefined)
    failInput(
      'inputs[0].parameters.binary_data_size',
      `binary data needs a binary body (Content-Type: ${OCTET_STREAM} with ${HEADER_LENGTH_NAME})`,
    );
  if (input.data !== undefined)
    failInput('inputs[0].data', 'give either data or parameters.binary_data_size, not both');
  checkBinaryConsumed(size, binary!.length);
  const expected = rows * shape.width * FP32_BYTES;
  if (size !== expected)
    failInput(
      'inputs[0].parameters.binary_data_size',
      `shape [${input.shape.join(', ')}] of FP32 is ${expected} bytes, got ${size}`,
    );
  const values = readFloat32(binary!, binaryPath);
  return {
    source: float32Rows(values, rows, shape.width),
    rowPath: (r: number) => `${binaryPath} (row ${r})`,
  };
}

/**
 * The header Triton's raw binary request leaves out (extension_binary_data.md, "Raw Binary
 * Request": `Inference-Header-Content-Length: 0`, the whole body the one input's bytes, every
 * output answered as bytes), as the model's input shape implies it: the body is whole FP32
 * samples, their count from its length (Triton takes one sample, its batch-1 request; more are
 * read as the TF-style octet-stream route reads them).
 */
function rawBinaryHeader(shape: InputShape, bytes: number, maxRows: number): InferBody {
  const sampleBytes = shape.width * FP32_BYTES;
  if (bytes === 0 || bytes % sampleBytes !== 0)
    failInput(
      RAW_DATA,
      `a raw binary request (${HEADER_LENGTH_NAME}: 0) is the input's FP32 samples, ${shape.width} values (${sampleBytes} bytes) each, so a multiple of ${sampleBytes} bytes; got ${bytes}`,
    );
  // Named as the body, before the header made here would name its shape.
  checkBatchSize(RAW_DATA, bytes / sampleBytes, maxRows);
  return {
    inputs: [
      {
        name: INPUT_TENSOR,
        datatype: 'FP32',
        shape: [bytes / sampleBytes, ...shape.shape],
        parameters: { binary_data_size: bytes },
      },
    ],
    parameters: { binary_data_output: true },
  };
}

/** Which requested outputs go back as bytes (binary_data, else the request's binary_data_output). */
function binaryOutputs(body: InferBody, count: number): boolean[] {
  const all = booleanParameter(body.parameters, 'binary_data_output', 'parameters') ?? false;
  return Array.from({ length: count }, (_, i) => {
    const output = body.outputs?.[i];
    return booleanParameter(output?.parameters, 'binary_data', `outputs[${i}].parameters`) ?? all;
  });
}

/**
 * The classes asked for on each requested output (the classification extension's
 * `parameters.classification`), checked against the model; undefined where its values are asked.
 */
function classifications(
  body: InferBody,
  served: AvailableVersion,
  requested: readonly OutputName[],
): (number | undefined)[] {
  const path = (i: number) => `outputs[${i}].parameters.${CLASSIFICATION_PARAMETER}`;
  const counts = requested.map((_, i) =>
    classificationCount(body.outputs?.[i]?.parameters?.[CLASSIFICATION_PARAMETER], path(i)),
  );
  checkClassifications(served, requested, counts, path);
  return counts;
}

/**
 * The reply: JSON, or, when some output goes back as bytes, the binary tensor data extension's
 * body (the JSON header, then those outputs' bytes in order). An output with a classification
 * count goes back as its classes (BYTES), in JSON or as bytes alike.
 */
function sendInference(
  reply: FastifyReply,
  out: PredictOutput,
  id: string | undefined,
  requested: readonly OutputName[],
  asBytes: readonly boolean[],
  counts: readonly (number | undefined)[],
  labels: readonly string[],
): FastifyReply {
  const parts: Buffer[] = [];
  const tensors = requested.map((name: OutputName, i) => {
    const count = counts[i];
    const tensor =
      count === undefined
        ? outputTensor(name, out)
        : classifiedTensor(outputTensor(name, out), count, labels);
    if (!asBytes[i]) return outputTensorJson(tensor);
    const bytes = tensorBytes(tensor);
    parts.push(bytes);
    return outputTensorJson(tensor, bytes.length);
  });
  const json = inferResponseJson(out, id, tensors);
  if (parts.length === 0) return reply.type(JSON_TYPE).send(json);
  const response = binaryBody(json, parts);
  return reply
    .header(HEADER_LENGTH_NAME, String(response.headerLength))
    .type(OCTET_STREAM)
    .send(response.body);
}

/**
 * The Open Inference Protocol's infer (JSON, or the binary tensor data extension) on the version
 * the route names, else the active one. One handler per app serves both infer routes.
 */
export function inferHandler({ config, inference }: Pick<AppDeps, 'config' | 'inference'>) {
  return async (
    request: FastifyRequest & { params: { name: string; version?: number } },
    reply: FastifyReply,
  ) => {
    // JSON bodies arrive parsed; binary ones (the binary tensor data extension) as bytes.
    let parsed: InferBody;
    let binary: Buffer | undefined;
    let binaryPath: string | undefined;
    if (Buffer.isBuffer(request.body) && isRawBinary(request.headers[HEADER_LENGTH])) {
      const served = inference.resolve(request.params.name, request.params.version);
      parsed = rawBinaryHeader(inputShapeOf(served), request.body.length, config.MAX_BATCH_SIZE);
      binary = request.body;
      binaryPath = RAW_DATA;
    } else if (Buffer.isBuffer(request.body)) {
      const lengthHeader = request.headers[HEADER_LENGTH];
      const split = splitInferBody(request.body, lengthHeader);
      binary = split.binary;
      const header = parseInferHeader(request, split.json, lengthHeader !== undefined);
      parsed = acceptsHeader?.(header) ? header : parseWith(headerSchema, header, 'body');
    } else {
      // A refused body is parsed with the header's schema (the same but for an input's `data`,
      // optional there): a missing `data` is then named by readInput, which knows why (binary
      // data without a binary body, or no data at all), instead of "expected array".
      parsed = acceptsBody?.(request.body)
        ? request.body
        : parseWith(headerSchema, request.body, 'body');
    }
    // The URL chooses the model: a body naming another is a client's mistake, not a choice.
    if (parsed.model_name !== undefined && parsed.model_name !== request.params.name)
      failInput(
        'model_name',
        `names the model ${quote(parsed.model_name)}, but the URL names ${quote(request.params.name)}`,
      );
    // An unknown model or version is named after the body's errors, in Fastify's order.
    const served = inference.resolve(request.params.name, request.params.version);
    const requested = requestedOutputs(
      served,
      parsed.outputs?.map((o) => o.name),
    );
    const counts = classifications(parsed, served, requested);
    const asBytes = binaryOutputs(parsed, requested.length);
    const input = readInput(parsed, binary, served, config.MAX_BATCH_SIZE, binaryPath);
    let out: PredictOutput | Promise<PredictOutput> = inference.infer(
      served,
      input.source,
      true,
      true,
      reply,
    );
    if (out instanceof Promise) out = await out;
    answered(request, reply, out, true, input.rowPath);
    return sendInference(
      reply,
      out,
      parsed.id,
      requested,
      asBytes,
      counts,
      served.checkpoint.config.labels ?? [],
    );
  };
}

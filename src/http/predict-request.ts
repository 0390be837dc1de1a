import type { FastifyReply, FastifyRequest } from 'fastify';
import Negotiator from 'negotiator';
import type { z } from 'zod';
import {
  type Accepts,
  type AvailableVersion,
  checkBatchSize,
  compileAccepts,
  FP32_BYTES,
  failInput,
  float32Bytes,
  float32Rows,
  INPUT_TENSOR,
  inputShapeOf,
  type PredictOutput,
  type RowSource,
  readFloat32,
} from '../service/index.js';
import type { AppDeps } from './app-types.js';
import { OCTET_STREAM } from './binary-infer.js';
import { answered } from './inference-reply.js';
import { JSON_TYPE, predictResponseJson } from './json-responses.js';
import {
  predictQuerySchema,
  predictRequestSchema,
  predictRequestSchemaFor,
} from './schemas/tf-serving.js';
import { isPlainObject, parseWith, validatedByHandler, withRowFields } from './validation.js';

type PredictBody = z.output<typeof predictRequestSchema>;

// Bodies (and the query, whose errors come after the body's, as Fastify orders them) are
// validated by the handler: a check compiled per model from the zod schema (samples of the
// model's input shape, flat or nested, at most MAX_BATCH_SIZE of them) accepts valid requests
// fast and the samples go straight into the engine's input buffer; anything it refuses takes
// the general path, whose zod schema and the input shape's reader name every problem.
export const predictBody = withRowFields(validatedByHandler(predictRequestSchema), [
  { field: 'instances', input: INPUT_TENSOR, named: 'each' },
  { field: 'inputs', input: INPUT_TENSOR, named: 'whole' },
]);
export const predictQuery = validatedByHandler(predictQuerySchema);

const fusedOf = (query: unknown): boolean => {
  // No query string is the common case: the default without running the schema.
  for (const _ in query as object) return parseWith(predictQuery, query, 'querystring').fused;
  return true;
};

const ANSWER_TYPES = ['application/json', OCTET_STREAM];

/**
 * Raw float32 outputs when Accept prefers application/octet-stream to JSON, by q-values
 * (`application/octet-stream;q=0, application/json` is JSON); without Accept, with any type or
 * with only types it cannot answer, JSON.
 */
function wantsBinary(request: FastifyRequest): boolean {
  const accept = request.headers.accept?.toLowerCase();
  if (accept === undefined || !accept.includes(OCTET_STREAM)) return false;
  // The form binary clients send, decided without parsing the header.
  if (accept === OCTET_STREAM) return true;
  return new Negotiator(request.raw).mediaType(ANSWER_TYPES) === OCTET_STREAM;
}

/**
 * The reply: the probabilities (regression: the outputs) as little-endian float32 rows when
 * Accept asks for them, else JSON (`outputs` for a columnar request, `predictions` otherwise).
 */
function sendPrediction(
  request: FastifyRequest,
  reply: FastifyReply,
  out: PredictOutput,
  columnar: boolean,
): FastifyReply {
  if (wantsBinary(request)) {
    return reply
      .type(OCTET_STREAM)
      .header('X-Output-Shape', `${out.rows},${out.outputWidth}`)
      .send(float32Bytes(out.probabilities ?? out.outputs));
  }
  return reply.type(JSON_TYPE).send(predictResponseJson(out, columnar));
}

// Where a row is named (a sample the reader refuses, outputs that overflow), by the form of the
// request.
const instancesRow = (r: number) => `instances[${r}]`;
const namedInstancesRow = (r: number) => `instances[${r}].${INPUT_TENSOR}`;
const inputsRow = (r: number) => `inputs[${r}]`;
const NAMED_INPUTS = `inputs.${INPUT_TENSOR}`;
const namedInputsRow = (r: number) => `${NAMED_INPUTS}[${r}]`;
const bodyRow = (r: number) => `body (row ${r})`;

/** A valid body's samples, where they stood, and which format it is (columnar or row). */
interface RowsForm {
  rows: readonly unknown[];
  rowPath: (r: number) => string;
  columnar: boolean;
}

/**
 * The samples of a body its schema accepted, in any of TF Serving's four forms: `instances` as a
 * list of samples or of `{"input": sample}` objects (all one or the other: the first decides),
 * `inputs` as the list or `{"input": list}`. The plain forms cost one Array.isArray each.
 */
function rowsForm(body: PredictBody): RowsForm {
  const { instances, inputs } = body;
  if (inputs !== undefined) {
    return Array.isArray(inputs)
      ? { rows: inputs, rowPath: inputsRow, columnar: true }
      : { rows: inputs[INPUT_TENSOR], rowPath: namedInputsRow, columnar: true };
  }
  const list = instances!;
  if (Array.isArray(list[0])) return { rows: list, rowPath: instancesRow, columnar: false };
  return {
    rows: (list as { [INPUT_TENSOR]: unknown[] }[]).map((item) => item[INPUT_TENSOR]),
    rowPath: namedInstancesRow,
    columnar: false,
  };
}

/**
 * TF Serving's REST predict (https://www.tensorflow.org/tfx/serving/api_rest): rows in row
 * (`instances`) or columnar (`inputs`) JSON, plain or named by the input (rowsForm), or float32
 * bytes, run on the version the route names
 * (else the active one), answered as JSON or float32 bytes. One handler per app serves both
 * predict routes; the compiled checks are kept per input shape.
 */
export function predictHandler({ config, inference }: Pick<AppDeps, 'config' | 'inference'>) {
  // Compiled per input shape, not per version: a model's next version (a publish, a
  // recalibration) has the shape of the one before, and its first request finds the check
  // compiled and warm — the rest of a version's first-call costs its load's warm-up pays
  // (inference/warm-up.ts). A version's later requests find it in one WeakMap look-up, no key
  // string built per request.
  const byShape = new Map<string, { accepts: Accepts<PredictBody> | undefined }>();
  const byVersion = new WeakMap<AvailableVersion, { accepts: Accepts<PredictBody> | undefined }>();
  const acceptsFor = (served: AvailableVersion) => {
    let entry = byVersion.get(served);
    if (entry === undefined) {
      const shape = served.compiled.inputShape;
      const key = shape.join('x');
      entry = byShape.get(key);
      if (entry === undefined) {
        entry = { accepts: compileAccepts(predictRequestSchemaFor(shape, config.MAX_BATCH_SIZE)) };
        byShape.set(key, entry);
      }
      byVersion.set(served, entry);
    }
    return entry.accepts;
  };

  const predict = async (
    request: FastifyRequest & { params: { name: string; version?: number } },
    reply: FastifyReply,
  ) => {
    const { name, version } = request.params;
    const resolved = inference.tryResolve(name, version);
    if (Buffer.isBuffer(request.body)) return predictBinary(request, reply, resolved);
    let source: RowSource;
    let fused: boolean;
    const raw: unknown = request.body;
    let served: AvailableVersion;
    let form: RowsForm;
    if (resolved && acceptsFor(resolved)?.(raw)) {
      served = resolved;
      form = rowsForm(raw);
      source = inputShapeOf(served).samples(form.rows);
      fused = fusedOf(request.query);
    } else {
      // The row count before the rows: millions of them are a 413 before any is looked at.
      if (isPlainObject(raw)) {
        const given = raw.instances ?? raw.inputs;
        const field = given === raw.instances ? 'instances' : 'inputs';
        const named = field === 'inputs' && isPlainObject(given);
        const list = named ? given[INPUT_TENSOR] : given;
        if (Array.isArray(list))
          checkBatchSize(named ? NAMED_INPUTS : field, list.length, config.MAX_BATCH_SIZE);
      }
      const parsed = parseWith(predictBody, raw, 'body');
      fused = fusedOf(request.query);
      form = rowsForm(parsed);
      served = resolved ?? inference.resolve(name, version);
      source = inputShapeOf(served).instances(form.rows, form.rowPath);
    }
    // The reply is the caller: its signal aborts if the client goes (client-gone.ts).
    let out: PredictOutput | Promise<PredictOutput> = inference.infer(
      served,
      source,
      fused,
      true,
      reply,
    );
    if (out instanceof Promise) out = await out;
    answered(request, reply, out, fused, form.rowPath);
    return sendPrediction(request, reply, out, form.columnar);
  };

  /**
   * `Content-Type: application/octet-stream`: little-endian float32 rows of the model's width
   * (a [C, H, W] sample row-major, as PyTorch stores it), back to back; the row count follows
   * from the length.
   */
  const predictBinary = async (
    request: FastifyRequest & { params: { name: string; version?: number } },
    reply: FastifyReply,
    resolved: AvailableVersion | undefined,
  ) => {
    const bytes = request.body as Buffer;
    const fused = fusedOf(request.query);
    const served = resolved ?? inference.resolve(request.params.name, request.params.version);
    const width = served.compiled.inputWidth;
    const rowBytes = width * FP32_BYTES;
    if (bytes.length === 0) failInput('body', 'at least one row is required');
    if (bytes.length % rowBytes !== 0) {
      failInput(
        'body',
        `${bytes.length} bytes is not a whole number of rows (${width} float32 values, ${rowBytes} bytes each)`,
      );
    }
    const rows = bytes.length / rowBytes;
    checkBatchSize('body', rows, config.MAX_BATCH_SIZE);
    const values = readFloat32(bytes, 'body');
    let out: PredictOutput | Promise<PredictOutput> = inference.infer(
      served,
      float32Rows(values, rows, width),
      fused,
      true,
      reply,
    );
    if (out instanceof Promise) out = await out;
    answered(request, reply, out, fused, bodyRow);
    return sendPrediction(request, reply, out, false);
  };

  return predict;
}

/**
 * Helpers of the HTTP tests: problem assertions, request bodies, the PyTorch fixture.
 */
import { readFileSync } from 'node:fs';
import type { LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';

export const PROBLEM_FIELDS = ['type', 'title', 'status', 'detail', 'instance', 'code', 'error'];

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  code: string;
  error: string;
  errors?: { path: string; message: string }[];
  /** Extra fields of some problems, e.g. a 409's `job_id`. */
  [extra: string]: unknown;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';
/** The protocol routes' error type: exactly this string, which KServe's client compares. */
export const PROTOCOL_ERROR_CONTENT_TYPE = 'application/json';

/**
 * normserve's own routes under /v1/models (with the methods they answer; HEAD with GET): their
 * errors are problem+json. Every other request under /v1/models or /v2 is a protocol route's, or
 * one no route took, answered by the shapes below. Written out here rather than read from src/,
 * so that the tests check the rule (docs/errors.md) instead of restating the code.
 */
const OWN_UNDER_V1_MODELS: [string, RegExp][] = [
  ['GET', /^\/v1\/models$/],
  ['GET', /^\/v1\/models\/[^/]*\/versions$/],
  ['DELETE', /^\/v1\/models\/[^/]*\/versions\/[^/:]+$/],
  ['GET', /^\/v1\/models\/[^/]*\/drift(\/layers)?$/],
  ['GET', /^\/v1\/models\/[^/]*\/versions\/[^/]*\/model\.onnx$/],
  ['POST', /^\/v1\/models\/[A-Za-z0-9][A-Za-z0-9._-]*:recalibrate$/],
  ['POST', /^\/v1\/models\/[^/]*\/versions\/[^/:]+:activate$/],
];

/**
 * A request no route took under /v1/models (404, 405, a router error) answers as the routes of its
 * path's shape, a parameter being any text without `/` or `:`: in the protocols' type when one of
 * them is TF Serving's, in problem+json when they are all normserve's own, and in the protocols'
 * type when no route has that shape.
 */
const P = '[^/:]+';
const shape = (pattern: string): RegExp => new RegExp(`^/v1/models${pattern.replaceAll('P', P)}$`);
const TF_SHAPES = [
  '/P',
  '/P/versions/P',
  '/P/metadata',
  '/P/versions/P/metadata',
  '/P:predict',
  '/P/versions/P:predict',
].map(shape);
const OWN_SHAPES = [
  '',
  '/P/versions',
  '/P/versions/P',
  '/P/drift',
  '/P/drift/layers',
  '/P/versions/P/model\\.onnx',
  '/P:recalibrate',
  '/P/versions/P:activate',
].map(shape);

/** The router's own refusals (problem.ts): the request reached no route. */
const ROUTER_ERROR =
  /the URL has a malformed percent-encoding|a path parameter of the URL is too long/;

/** Whether an Accept header names application/problem+json (q above 0). */
const acceptsProblem = (accept: unknown): boolean =>
  typeof accept === 'string' &&
  accept
    .split(',')
    .some(
      (range) =>
        /^\s*application\/problem\+json\s*(;|$)/i.test(range) &&
        !/;\s*q\s*=\s*0(\.0*)?\s*(;|$)/i.test(range),
    );

/**
 * The Content-Type the problem answering `res`'s request must have (docs/errors.md): exactly
 * application/json for the TF Serving and Open Inference Protocol routes and for unmatched
 * requests under /v1/models (unless shaped like own routes only) and /v2, unless Accept names
 * application/problem+json;
 * `application/problem+json; charset=utf-8` for the rest.
 */
export function expectedProblemType(res: LightMyRequestResponse): string {
  const request = res.raw.req as unknown as {
    url: string;
    method: string;
    headers: Record<string, unknown>;
  };
  const path = request.url.split('?')[0]!;
  const method = request.method === 'HEAD' ? 'GET' : request.method;
  const routedToOwn =
    !ROUTER_ERROR.test(res.body) &&
    OWN_UNDER_V1_MODELS.some(([m, pattern]) => m === method && pattern.test(path));
  const unmatchedProtocol =
    TF_SHAPES.some((p) => p.test(path)) || !OWN_SHAPES.some((p) => p.test(path));
  const protocol =
    /^\/v2(\/|$)/.test(path) ||
    (/^\/v1\/models([/:]|$)/.test(path) && !routedToOwn && unmatchedProtocol);
  return protocol && !acceptsProblem(request.headers.accept)
    ? PROTOCOL_ERROR_CONTENT_TYPE
    : PROBLEM_CONTENT_TYPE;
}

/**
 * Asserts an RFC 9457 problem response: status, the Content-Type of its route
 * (expectedProblemType), every field, `type` derived from `code`, `detail` equal to `error`,
 * `instance` the request path.
 */
export function expectProblem(
  res: LightMyRequestResponse,
  status: number,
  code: string,
  instance?: string,
): ProblemBody {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type'], 'Content-Type').toBe(expectedProblemType(res));
  const body = res.json<ProblemBody>();
  for (const field of PROBLEM_FIELDS) expect(body, `field ${field}`).toHaveProperty(field);
  expect(body.status).toBe(status);
  expect(body.code).toBe(code);
  expect(body.type).toBe(`urn:normserve:problem:${code.toLowerCase().replaceAll('_', '-')}`);
  expect(typeof body.title).toBe('string');
  expect(body.title.length).toBeGreaterThan(0);
  expect(typeof body.error).toBe('string');
  expect(body.error.length).toBeGreaterThan(0);
  expect(body.detail).toBe(body.error);
  if (instance !== undefined) expect(body.instance).toBe(instance);
  // The request id of the problem is the response's (and the log line's).
  expect(body.request_id, 'request_id').toBe(res.headers['x-request-id']);
  expect(typeof body.request_id).toBe('string');
  return body;
}

/** Asserts a 400 INVALID_INPUT whose `errors` has exactly these locations (in order). */
export function expectInvalid(
  res: LightMyRequestResponse,
  errors: { path: string; message: string | RegExp }[],
  code = 'INVALID_INPUT',
  status = 400,
): ProblemBody {
  const body = expectProblem(res, status, code);
  expect(body.errors, body.error).toHaveLength(errors.length);
  errors.forEach((e, i) => {
    expect(body.errors![i]!.path).toBe(e.path);
    if (typeof e.message === 'string') expect(body.errors![i]!.message).toBe(e.message);
    else expect(body.errors![i]!.message).toMatch(e.message);
  });
  // One place: the message is `path: message`; several: it starts with the first.
  const first = `${errors[0]!.path}: ${body.errors![0]!.message}`;
  if (errors.length === 1) expect(body.error).toBe(first);
  else expect(body.error.startsWith(first), body.error).toBe(true);
  return body;
}

/** A valid digits row (64 raw pixel values in 0..16). */
export const digitsRow = (seed = 0): number[] =>
  Array.from({ length: 64 }, (_, i) => (i * 7 + seed * 13) % 17);

/** An Open Inference Protocol infer request with one FP32 tensor "input". */
export function inferBody(
  rows: number[][],
  options: { flat?: boolean; outputs?: string[]; id?: string } = {},
): Record<string, unknown> {
  return {
    ...(options.id !== undefined ? { id: options.id } : {}),
    inputs: [
      {
        name: 'input',
        shape: [rows.length, rows[0]?.length ?? 0],
        datatype: 'FP32',
        data: options.flat === false ? rows : rows.flat(),
      },
    ],
    ...(options.outputs ? { outputs: options.outputs.map((name) => ({ name })) } : {}),
  };
}

export interface InferTensor {
  name: string;
  datatype: string;
  shape: number[];
  data: (number | string)[];
}

export interface InferResponse {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: InferTensor[];
}

export interface PredictResponse {
  model_version: number;
  predictions?: number[][];
  outputs?: number[][];
  labels?: string[];
}

/** PyTorch's eval outputs of digits-torch/1 on the 360 digits test rows. */
export interface TorchExpected {
  num_rows: number;
  labels: number[];
  predictions: number[];
  logits: { shape: [number, number]; data: number[] };
  probabilities: { shape: [number, number]; data: number[] };
}

export const torchExpected = (): TorchExpected =>
  JSON.parse(readFileSync('test/fixtures/torch-model/expected.json', 'utf8')) as TorchExpected;

export function argmax(values: readonly number[]): number {
  let best = 0;
  for (let k = 1; k < values.length; k++) if (values[k]! > values[best]!) best = k;
  return best;
}

/** Float32 values as little-endian bytes (what binary clients send). */
export const f32Bytes = (values: readonly number[]): Buffer => {
  const out = Buffer.alloc(values.length * 4);
  for (const [i, v] of values.entries()) out.writeFloatLE(v, i * 4);
  return out;
};

/** A body of the binary tensor data extension: the JSON header, then the tensors' bytes. */
export function binaryInfer(
  header: unknown,
  tensors: readonly Buffer[] = [],
  headerText = JSON.stringify(header),
): { payload: Buffer; headers: Record<string, string> } {
  const json = Buffer.from(headerText, 'utf8');
  return {
    payload: Buffer.concat([json, ...tensors]),
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(json.length),
    },
  };
}

/** An Open Inference Protocol infer response's JSON (a binary one's header), as tests read it. */
export interface InferAnswer<Parameters = Record<string, unknown>> {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: {
    name: string;
    datatype: string;
    shape: number[];
    data?: unknown[];
    parameters?: Parameters;
  }[];
}

/** Splits a binary infer response into its JSON header and tensor bytes. */
export function readBinaryResponse(res: LightMyRequestResponse): {
  header: InferAnswer<{ binary_data_size: number }>;
  bytes: Buffer;
} {
  const length = Number(res.headers['inference-header-content-length']);
  const body = res.rawPayload;
  return {
    header: JSON.parse(body.subarray(0, length).toString('utf8')),
    bytes: body.subarray(length),
  };
}

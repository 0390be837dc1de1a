/**
 * The OpenAPI document says what the server sends: each answer's status and media type are
 * declared for its operation, its JSON body valid against the declared schema (Ajv, JSON Schema
 * 2020-12, OpenAPI 3.1's dialect), its headers listed; every problem document, with the
 * extension members some codes add, valid against Problem; the component schemas valid JSON
 * Schema, each one used, none twice.
 */

import { Ajv2020 } from 'ajv/dist/2020.js';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NormserveError } from '../../src/errors/index.js';
import { toProblem } from '../../src/http/problem.js';
import { storageFailure } from '../../src/repository/storage-failure.js';
import { recalibrationInProgress } from '../../src/service/recalibration-service.js';
import {
  ADMIN_TOKEN,
  makeDigitsVersionsRepository,
  makeTestApp,
  type TestApp,
} from '../helpers/app.js';

interface Response {
  description: string;
  headers?: Record<string, unknown>;
  content?: Record<string, { schema?: unknown }>;
}
interface Operation {
  requestBody?: { required?: boolean };
  responses: Record<string, Response>;
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Record<string, unknown>> };
}

const ROW = [
  0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8,
  8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13,
  10, 0, 0, 0,
];
const f32 = (row: number[]) => Buffer.from(Float32Array.from(row).buffer);

let t: TestApp;
let doc: Document;
let ajv: Ajv2020;

beforeAll(async () => {
  t = await makeTestApp({ repository: makeDigitsVersionsRepository() });
  doc = (await t.app.inject({ url: '/openapi.json' })).json<Document>();
  ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addSchema({ ...doc, $id: 'openapi' });
});
afterAll(async () => {
  await t.close();
});

/** A JSON pointer's token. */
const token = (s: string) => s.replaceAll('~', '~0').replaceAll('/', '~1');

/** The headers of normserve's own that an answer may carry: each one it carries is declared. */
const OWN_HEADERS = [
  'x-model-version',
  'x-output-shape',
  'inference-header-content-length',
  'location',
  'content-disposition',
  'x-request-id',
  'retry-after',
  'www-authenticate',
];
const PREDICTION_HEADERS = OWN_HEADERS;

/**
 * What of `res` the document does not declare for `method path` (its status, media type, JSON
 * body, and which of `headers` it carries): [] when it declares all.
 */
function undeclared(
  method: string,
  path: string,
  res: LightMyRequestResponse,
  headers: readonly string[] = OWN_HEADERS,
): string[] {
  const responses = doc.paths[path]?.[method]?.responses;
  if (responses === undefined) return [`no operation ${method} ${path}`];
  const status = String(res.statusCode);
  const response = responses[status];
  if (response === undefined) return [`status ${status} undeclared`];
  const media = String(res.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim();
  const content = response.content?.[media];
  if (content === undefined) return [`${status} ${media} undeclared`];
  const found: string[] = [];
  for (const header of headers) {
    const declared = Object.keys(response.headers ?? {}).map((h) => h.toLowerCase());
    if (res.headers[header] !== undefined && !declared.includes(header))
      found.push(`header ${header} undeclared`);
  }
  if (media.endsWith('json')) {
    const pointer = `openapi#/paths/${token(path)}/${method}/responses/${status}/content/${token(media)}/schema`;
    const validate = ajv.compile({ $ref: pointer });
    if (!validate(res.json())) found.push(`${status} ${media}: ${ajv.errorsText(validate.errors)}`);
  }
  return found;
}

const PREDICT = '/v1/models/{name}:predict';
const INFER = '/v2/models/{name}/infer';
const OCTET = 'application/octet-stream';
const JSON_HEADERS = { 'content-type': 'application/json' };

describe('what the server sends is declared', () => {
  it('predict: JSON, and float32 rows for Accept: application/octet-stream with X-Output-Shape', async () => {
    const json = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:predict',
      headers: JSON_HEADERS,
      payload: { instances: [ROW] },
    });
    expect(json.statusCode).toBe(200);
    expect(undeclared('post', PREDICT, json, PREDICTION_HEADERS)).toEqual([]);
    for (const [url, path] of [
      ['/v1/models/digits:predict', PREDICT],
      ['/v1/models/digits/versions/1:predict', '/v1/models/{name}/versions/{version}:predict'],
    ] as const) {
      const binary = await t.app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': OCTET, accept: OCTET },
        payload: f32(ROW),
      });
      expect(binary.headers['content-type']).toBe(OCTET);
      expect(binary.headers['x-output-shape']).toBe('1,10');
      expect(undeclared('post', path, binary, PREDICTION_HEADERS)).toEqual([]);
    }
  });

  it('infer: JSON, and the binary tensor extension with Inference-Header-Content-Length', async () => {
    const input = { name: 'input', shape: [1, 64], datatype: 'FP32' };
    const json = await t.app.inject({
      method: 'POST',
      url: '/v2/models/digits/infer',
      headers: JSON_HEADERS,
      payload: { inputs: [{ ...input, data: ROW }] },
    });
    expect(json.statusCode).toBe(200);
    expect(undeclared('post', INFER, json, PREDICTION_HEADERS)).toEqual([]);
    const binary = await t.app.inject({
      method: 'POST',
      url: '/v2/models/digits/infer',
      headers: JSON_HEADERS,
      payload: {
        inputs: [{ ...input, data: ROW }],
        outputs: [{ name: 'probabilities', parameters: { binary_data: true } }],
      },
    });
    expect(binary.headers['content-type']).toBe(OCTET);
    expect(binary.headers['inference-header-content-length']).toMatch(/^\d+$/);
    expect(undeclared('post', INFER, binary, PREDICTION_HEADERS)).toEqual([]);
  });

  it('a malformed JSON body: the problem with its position', async () => {
    for (const [url, path] of [
      ['/v1/models/digits:predict', PREDICT],
      ['/v2/models/digits/infer', INFER],
    ] as const) {
      const res = await t.app.inject({
        method: 'POST',
        url,
        headers: JSON_HEADERS,
        payload: '{"x": [1, x]}',
      });
      expect(res.json()).toMatchObject({ code: 'INVALID_JSON', position: { line: 1 } });
      expect(undeclared('post', path, res)).toEqual([]);
    }
  });

  it('/metrics: the text format; /dashboard: its page', async () => {
    const metrics = await t.app.inject({ url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(undeclared('get', '/metrics', metrics)).toEqual([]);
    const dashboard = await t.app.inject({ url: '/dashboard' });
    expect(dashboard.statusCode).toBe(200);
    expect(undeclared('get', '/dashboard', dashboard)).toEqual([]);
  });

  it('/metrics: the 503 of a cluster primary that did not answer (WORKERS > 1)', async () => {
    const timedOut = await makeTestApp({
      scrapeMetrics: () =>
        Promise.reject(
          new NormserveError('CLUSTER_PRIMARY_TIMEOUT', 'cluster metrics are unavailable', {
            retryAfterSeconds: 1,
          }),
        ),
    });
    try {
      const res = await timedOut.app.inject({ url: '/metrics' });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(undeclared('get', '/metrics', res)).toEqual([]);
    } finally {
      await timedOut.close();
    }
  });

  it(':activate without a body, as the README calls it: the body is optional', async () => {
    const path = '/v1/models/{name}/versions/{version}:activate';
    expect(doc.paths[path]?.post?.requestBody?.required).toBe(false);
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits/versions/2:activate',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-model-version']).toBe('2');
    expect(undeclared('post', path, res)).toEqual([]);
  });

  it(':recalibrate: 201 with Location and X-Model-Version, 202 with Location', async () => {
    const path = '/v1/models/{name}:recalibrate';
    const rows = Array.from({ length: 8 }, (_, i) => ROW.map((v) => (v + i) % 17));
    const headers = { authorization: `Bearer ${ADMIN_TOKEN}`, ...JSON_HEADERS };
    const published = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:recalibrate?activate=false',
      headers,
      payload: { instances: rows },
    });
    expect(published.statusCode).toBe(201);
    expect(published.headers.location).toMatch(/^\/v1\/models\/digits\/versions\/\d+$/);
    expect(published.headers['x-model-version']).toBeDefined();
    expect(undeclared('post', path, published)).toEqual([]);
    const accepted = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:recalibrate?activate=false',
      headers: { ...headers, prefer: 'respond-async' },
      payload: { instances: rows },
    });
    expect(accepted.statusCode).toBe(202);
    expect(accepted.headers.location).toMatch(/^\/v1\/jobs\//);
    expect(undeclared('post', path, accepted)).toEqual([]);
    // Settled before the next test deletes versions (the job holds the model's lock).
    const location = String(accepted.headers.location);
    for (let i = 0; i < 600; i++) {
      const job = await t.app.inject({
        url: location,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      if (job.json<{ state: string }>().state !== 'running') break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  it('DELETE of a version: the model as it is now, by its schema', async () => {
    const path = '/v1/models/{name}/versions/{version}';
    const res = await t.app.inject({
      method: 'DELETE',
      url: '/v1/models/digits/versions/3',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ deleted_version: 3, model: { name: 'digits' } });
    const model = doc.paths[path]?.delete?.responses['200']?.content?.['application/json']
      ?.schema as { properties: { model: { properties?: object } } };
    expect(model.properties.model.properties).toHaveProperty('versions');
    expect(undeclared('delete', path, res)).toEqual([]);
  });
});

describe('WORKERS > 1', () => {
  it("every admin operation declares the 503 of the primary's rate-limit count (test/replicas/primary-timeout.test.ts)", () => {
    const admin = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item)
        .filter(([, op]) => (op as { tags?: string[] }).tags?.includes('admin'))
        .map(
          ([method, op]) => [`${method} ${path}`, op.responses['503']?.description ?? ''] as const,
        ),
    );
    expect(admin.length).toBeGreaterThan(3);
    expect(
      admin.filter(([, description]) => !description.includes('CLUSTER_PRIMARY_TIMEOUT')),
    ).toEqual([]);
  });
});

describe('Problem', () => {
  const problem = (error: NormserveError) => ({
    ...toProblem(error, '/v1/models/digits:recalibrate'),
    request_id: 'a-request-id',
  });

  it('accepts the extension members the codes add (docs/errors.md)', () => {
    const validate = ajv.compile({ $ref: 'openapi#/components/schemas/Problem' });
    const enospc = Object.assign(new Error('no space'), { code: 'ENOSPC', path: '/repo/x' });
    const bodies = [
      problem(recalibrationInProgress('digits', { owner: 'a-job-id', cli: undefined })),
      problem(
        recalibrationInProgress('digits', {
          owner: 'x',
          cli: 'recalibrate',
          host: 'h',
          pid: 7,
          acquired_at: '2026-01-01T00:00:00.000Z',
        }),
      ),
      problem(storageFailure(enospc, 'write', '/repo') as NormserveError),
    ];
    expect(bodies.map((b) => Object.keys(b))).toEqual([
      expect.arrayContaining(['job_id', 'job']),
      expect.arrayContaining(['holder']),
      expect.arrayContaining(['errno']),
    ]);
    for (const body of bodies) expect(validate(body), ajv.errorsText(validate.errors)).toBe(true);
    // RFC 9457 §3.2: a member a later code adds is still a problem.
    expect(validate({ ...bodies[0], added_later: 1 })).toBe(true);
  });
});

describe('component schemas', () => {
  it('are JSON Schema 2020-12: no $id with a fragment (§8.2.1), each compiles in Ajv', () => {
    for (const [name, schema] of Object.entries(doc.components.schemas)) {
      expect(schema.$id, name).toBeUndefined();
      expect(
        () => ajv.compile({ $ref: `openapi#/components/schemas/${name}` }),
        name,
      ).not.toThrow();
    }
    // Each alone, as a client's validator takes it: no fragment $id to refuse.
    expect(() =>
      new Ajv2020({ strict: false }).compile(doc.components.schemas['Problem']!),
    ).not.toThrow();
  });

  it('are each referenced, and none twice (as read and as sent)', () => {
    const text = JSON.stringify({ ...doc, components: undefined });
    const names = Object.keys(doc.components.schemas);
    const referenced = (name: string) =>
      text.includes(`"#/components/schemas/${name}"`) ||
      names.some(
        (other) =>
          other !== name &&
          JSON.stringify(doc.components.schemas[other]).includes(`"#/components/schemas/${name}"`),
      );
    expect(names.filter((name) => !referenced(name))).toEqual([]);
    expect(names.filter((name) => /Input$/.test(name))).toEqual([]);
    expect(names).toEqual(expect.arrayContaining(['PredictRequest', 'PredictResponse', 'Problem']));
  });
});

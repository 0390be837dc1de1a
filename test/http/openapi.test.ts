/**
 * The OpenAPI document: valid OpenAPI 3.x, the committed openapi/openapi.json up to date, every
 * operation summarised, every request body and 2xx response with an example, errors as the
 * Problem schema, the documented paths routed, and the interactive docs served.
 */
import { readFileSync } from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../../src/http/openapi-document.js';
import { ADMIN_TOKEN, makeTestApp, type TestApp } from '../helpers/app.js';

interface Schema {
  $ref?: string;
  example?: unknown;
  examples?: unknown[];
  [key: string]: unknown;
}
interface MediaType {
  schema?: Schema;
  example?: unknown;
  examples?: Record<string, unknown>;
}
interface Operation {
  summary?: string;
  security?: unknown[];
  requestBody?: { content: Record<string, MediaType> };
  responses?: Record<string, { description?: string; content?: Record<string, MediaType> }>;
}
interface Document {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

let t: TestApp;
let doc: Document;

beforeAll(async () => {
  t = await makeTestApp({ models: ['digits'] });
  const res = await t.app.inject({ url: '/openapi.json' });
  expect(res.statusCode).toBe(200);
  doc = res.json<Document>();
});
afterAll(async () => {
  await t.close();
});

function operations(): { path: string; method: string; op: Operation }[] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => METHODS.includes(method))
      .map(([method, op]) => ({ path, method, op })),
  );
}

/** A schema with `$ref`s to components followed. */
function resolve(schema: Schema | undefined): Schema | undefined {
  let s = schema;
  for (let i = 0; s?.$ref !== undefined && i < 10; i++) {
    s = doc.components.schemas[s.$ref.replace('#/components/schemas/', '')];
  }
  return s;
}

function hasExample(media: MediaType): boolean {
  if (media.example !== undefined || media.examples !== undefined) return true;
  const s = resolve(media.schema);
  return s !== undefined && (s.example !== undefined || (s.examples?.length ?? 0) > 0);
}

describe('/openapi.json', () => {
  it('is a valid OpenAPI 3.x document (swagger-parser)', async () => {
    expect(doc.openapi).toMatch(/^3\.[01]\.\d+$/);
    const validated = await SwaggerParser.validate(structuredClone(doc) as never);
    expect(validated.info.title).toBe('normserve');
  });

  it('is built once, by openApiText (the server calls it once ready): served without app.swagger()', async () => {
    const fresh = await makeTestApp({ models: ['digits'] });
    try {
      const built = fresh.app.openApiText();
      expect(built).toBe(JSON.stringify(fresh.app.swagger()));
      fresh.app.swagger = () => {
        throw new Error('the document was built by a request');
      };
      const res = await fresh.app.inject({ url: '/openapi.json' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      // Byte for byte what serialising the document per request sent (validation.ts: JSON.stringify).
      expect(res.body).toBe(built);
    } finally {
      await fresh.close();
    }
  });

  it('is what /docs/json serves', async () => {
    const res = await t.app.inject({ url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(doc);
  });

  it('documents the TF Serving and Open Inference routes with their verb suffixes', () => {
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/healthz',
        '/readyz',
        '/v1/models',
        '/v1/models/{name}',
        '/v1/models/{name}/metadata',
        '/v1/models/{name}:predict',
        '/v1/models/{name}/versions/{version}:predict',
        '/v2',
        '/v2/health/live',
        '/v2/health/ready',
        '/v2/models/{name}',
        '/v2/models/{name}/ready',
        '/v2/models/{name}/infer',
        '/v2/models/{name}/versions/{version}/infer',
        '/metrics',
        '/openapi.json',
      ]),
    );
  });
});

describe('openapi/openapi.json (committed)', () => {
  it('equals what the app generates; when stale, run `npm run openapi`', async () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const generated = `${JSON.stringify(await openApiDocument(version), null, 2)}\n`;
    let committed = '';
    try {
      committed = readFileSync('openapi/openapi.json', 'utf8');
    } catch {
      expect.fail('openapi/openapi.json is missing: run `npm run openapi` and commit the file');
    }
    if (committed !== generated) {
      const a = JSON.parse(committed) as Document;
      const b = JSON.parse(generated) as Document;
      const paths = [...new Set([...Object.keys(a.paths ?? {}), ...Object.keys(b.paths ?? {})])];
      const changed = paths.filter(
        (p) => JSON.stringify(a.paths?.[p]) !== JSON.stringify(b.paths?.[p]),
      );
      expect.fail(
        `openapi/openapi.json is stale (differs in ${changed.length > 0 ? `paths ${changed.join(', ')}` : 'info/components'}): run \`npm run openapi\` and commit openapi/openapi.json`,
      );
    }
  });
});

describe('every operation', () => {
  it('has a summary', () => {
    const missing = operations()
      .filter(({ op }) => typeof op.summary !== 'string' || op.summary.trim() === '')
      .map(({ path, method }) => `${method.toUpperCase()} ${path}`);
    expect(missing, 'operations without a summary').toEqual([]);
  });

  it('has an example for every request body', () => {
    const missing: string[] = [];
    for (const { path, method, op } of operations()) {
      for (const [type, media] of Object.entries(op.requestBody?.content ?? {})) {
        if (!hasExample(media)) missing.push(`${method.toUpperCase()} ${path} (${type})`);
      }
    }
    expect(missing, 'request bodies without an example').toEqual([]);
  });

  it('has an example for every 2xx JSON response schema', () => {
    const missing: string[] = [];
    for (const { path, method, op } of operations()) {
      for (const [status, response] of Object.entries(op.responses ?? {})) {
        if (!status.startsWith('2')) continue;
        for (const [type, media] of Object.entries(response.content ?? {})) {
          // A binary body (the ONNX download, float32 rows), the metrics' text and the
          // dashboard's page have no JSON example to show.
          if (!type.endsWith('json')) continue;
          if (media.schema !== undefined && !hasExample(media)) {
            missing.push(`${method.toUpperCase()} ${path} ${status} (${type})`);
          }
        }
      }
    }
    expect(missing, '2xx responses without an example').toEqual([]);
  });

  it('documents its 4xx errors with the Problem schema, whose example they reuse', () => {
    const problem = doc.components.schemas['Problem'];
    expect(problem?.examples?.length).toBeGreaterThan(0);
    const notProblem: string[] = [];
    for (const { path, method, op } of operations()) {
      for (const [status, response] of Object.entries(op.responses ?? {})) {
        if (!status.startsWith('4')) continue;
        for (const media of Object.values(response.content ?? {})) {
          if (media.schema?.$ref !== '#/components/schemas/Problem') {
            notProblem.push(`${method.toUpperCase()} ${path} ${status}`);
          }
        }
      }
    }
    expect(notProblem, '4xx responses not documented as Problem').toEqual([]);
  });

  it('is routed: the documented path with valid parameters does not fall through to the 404 handler', async () => {
    const unrouted: string[] = [];
    for (const { path, method } of operations()) {
      const url = path
        .replace('{name}', 'digits')
        .replace('{version}', '1')
        .replace(/\{[^}]+\}/g, 'x');
      const res = await t.app.inject({
        method: method.toUpperCase() as 'GET',
        url,
        headers: { authorization: 'Bearer wrong-token-wrong-token' },
      });
      const problem = String(res.headers['content-type'] ?? '').includes('problem');
      const code = problem ? res.json<{ code: string }>().code : '';
      if (code === 'NOT_FOUND') unrouted.push(`${method.toUpperCase()} ${path} → ${url}`);
    }
    expect(unrouted).toEqual([]);
  });

  it('accepts its request body examples (unauthenticated routes)', async () => {
    const refused: string[] = [];
    for (const { path, method, op } of operations()) {
      if (op.security !== undefined && op.security.length > 0) continue;
      const media = op.requestBody?.content['application/json'];
      if (media === undefined) continue;
      const examples = resolve(media.schema)?.examples ?? [];
      for (const example of examples) {
        const url = path.replace('{name}', 'digits').replace('{version}', '1');
        const res = await t.app.inject({
          method: method.toUpperCase() as 'POST',
          url,
          payload: example as Record<string, unknown>,
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        });
        if (res.statusCode >= 300) refused.push(`${path}: ${res.statusCode} ${res.body}`);
      }
    }
    expect(refused).toEqual([]);
  });
});

describe('/docs', () => {
  it('serves the interactive documentation as HTML', async () => {
    const res = await t.app.inject({ url: '/docs' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toMatch(/<html/i);
    expect(res.body).toMatch(/swagger-ui/i);
  });
});

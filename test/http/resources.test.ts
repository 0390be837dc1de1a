/**
 * Bounded resources (issue 8): for every route, hostile requests get answers no larger than a
 * stated bound — OVERHEAD_BYTES plus the request's rows × the model's output values ×
 * BYTES_PER_VALUE — and the server's own documents (/openapi.json, /docs, /metrics, the ONNX
 * export of a version, whose size is its weights') do not grow
 * with the request. And the process's RSS while 50 hostile requests of about 1 MB each are served
 * (5 at a time) stays under twice its idle RSS. Before the fixes, one infer request repeating
 * "logits" 200 times answered 161 MB and took RSS from 205 to 711 MB; 800 kB of bad values in a
 * predict body answered 17.7 MB.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsRow } from './http-helpers.js';

/** The fixed part of any answer: envelope, metadata, listings, problems (short URLs here). */
const OVERHEAD_BYTES = 16 * 1024;
/** One output value in JSON: a float64 (at most 24 characters) and a separator; labels are less. */
const BYTES_PER_VALUE = 32;
/** Output values per row of the digits model: probabilities (10), logits (10) and label (1). */
const OUTPUT_VALUES = 21;
const bound = (rows: number) => OVERHEAD_BYTES + rows * OUTPUT_VALUES * BYTES_PER_VALUE;

const ROWS = 512;
const MB = 1024 * 1024;
const rows = Array.from({ length: ROWS }, (_, i) => digitsRow(i));
const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` };

interface Hostile {
  what: string;
  method: 'GET' | 'POST' | 'DELETE';
  url: string;
  /** Rows the request carries (the bound's factor); 0 when none. */
  rows: number;
  body?: string;
  headers?: Record<string, string>;
}

const json = { 'content-type': 'application/json' };
/** A JSON array of `n` copies of `item`, as text (built without materialising the values). */
const repeat = (item: string, n: number) => `[${Array(n).fill(item).join(',')}]`;
const inferBody = (extra: Record<string, unknown>, data = rows) =>
  JSON.stringify({
    inputs: [{ name: 'input', shape: [data.length, 64], datatype: 'FP32', data: data.flat() }],
    ...extra,
  });
const junkQuery = `?fused=false&fused=true&x=${'a'.repeat(1000)}&mode=exact&batch_size=1e999`;

/** Hostile requests for a route of the document, by its path template. */
function hostileFor(method: string, path: string): Hostile[] {
  const url = path
    .replace('{name}', 'digits')
    .replace('{version}', '1')
    .replace('{id}', '00000000-0000-4000-8000-000000000000');
  const m = method as Hostile['method'];
  const generic: Hostile[] = [
    { what: 'junk query', method: m, url: `${url}${junkQuery}`, rows: 0 },
    {
      what: '1 MB of bad values',
      method: m,
      url,
      rows: 0,
      body: `{"instances":${repeat(repeat('{}', 64), 4096)}}`,
      headers: { ...json, ...ADMIN },
    },
  ];
  if (url.endsWith(':predict')) {
    return [
      ...generic,
      {
        what: `${ROWS} rows`,
        method: m,
        url,
        rows: ROWS,
        body: JSON.stringify({ instances: rows }),
        headers: json,
      },
      {
        what: `${ROWS} rows, columnar, a long signature_name`,
        method: m,
        url,
        rows: ROWS,
        body: JSON.stringify({ inputs: rows, signature_name: 'x'.repeat(MB) }),
        headers: json,
      },
      {
        what: '4096 rows of strings',
        method: m,
        url,
        rows: 4096,
        body: `{"instances":${repeat(repeat('"x"', 64), 4096)}}`,
        headers: json,
      },
    ];
  }
  if (url.endsWith('/infer')) {
    return [
      ...generic,
      {
        what: `${ROWS} rows, every output`,
        method: m,
        url,
        rows: ROWS,
        body: inferBody({
          id: 'r'.repeat(256),
          outputs: [{ name: 'probabilities' }, { name: 'logits' }, { name: 'label' }],
        }),
        headers: json,
      },
      {
        what: `${ROWS} rows, "logits" asked for 20,000 times`,
        method: m,
        url,
        rows: ROWS,
        body: inferBody({ outputs: Array(20_000).fill({ name: 'logits' }) }),
        headers: json,
      },
      {
        what: 'an id and an output name of 1 MB',
        method: m,
        url,
        rows: 1,
        body: inferBody(
          { id: 'i'.repeat(MB), outputs: [{ name: 'n'.repeat(MB) }] },
          rows.slice(0, 1),
        ),
        headers: json,
      },
      {
        what: 'parameters with 100,000 keys, an input name of 1 MB',
        method: m,
        url,
        rows: 1,
        body: JSON.stringify({
          parameters: Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i])),
          inputs: [{ name: 'x'.repeat(MB), shape: [1, 64], datatype: 'FP32', data: rows[0] }],
        }),
        headers: json,
      },
      {
        what: 'a shape of 100,000 dimensions',
        method: m,
        url,
        rows: 1,
        body: JSON.stringify({
          inputs: [{ name: 'input', shape: Array(100_000).fill(1), datatype: 'FP32', data: [] }],
        }),
        headers: json,
      },
    ];
  }
  if (url.endsWith(':recalibrate')) {
    return [
      ...generic,
      {
        what: `${ROWS} rows, not activated`,
        method: m,
        url: `${url}?activate=false`,
        rows: ROWS,
        body: JSON.stringify({ instances: rows }),
        headers: { ...json, ...ADMIN },
      },
      {
        what: 'running mode with a batch of 10^9 rows',
        method: m,
        url: `${url}?mode=running&batch_size=1000000000&activate=false`,
        rows: ROWS,
        body: JSON.stringify({ instances: rows }),
        headers: { ...json, ...ADMIN },
      },
      {
        what: '1 MB of unknown fields',
        method: m,
        url,
        rows: 0,
        body: JSON.stringify(
          Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`field${i}`, i])),
        ),
        headers: { ...json, ...ADMIN },
      },
    ];
  }
  return generic.map((h) => ({ ...h, headers: { ...h.headers, ...ADMIN } }));
}

let t: TestApp;
let operations: { method: string; path: string }[];

beforeAll(async () => {
  t = await makeTestApp({ env: { ADMIN_RATE_LIMIT_PER_MINUTE: '100000' } });
  const doc = (await t.app.inject({ url: '/openapi.json' })).json<{
    paths: Record<string, Record<string, unknown>>;
  }>();
  operations = Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.keys(item).map((method) => ({ method: method.toUpperCase(), path })),
  );
});
afterAll(async () => {
  await t.close();
});

const send = (h: Hostile): Promise<LightMyRequestResponse> =>
  t.app.inject({
    method: h.method,
    url: h.url,
    ...(h.body !== undefined ? { payload: h.body } : {}),
    headers: h.headers ?? {},
  });

/** Documents of the server: their size is the server's (or the model file's), whatever the request. */
const DOCUMENTS = ['/openapi.json', '/metrics', '/v1/models/{name}/versions/{version}/model.onnx'];

describe('response size', () => {
  it(`every route answers at most ${OVERHEAD_BYTES} B + rows × ${OUTPUT_VALUES} outputs × ${BYTES_PER_VALUE} B`, async () => {
    const checked: string[] = [];
    for (const { method, path } of operations) {
      if (DOCUMENTS.includes(path)) continue;
      for (const h of hostileFor(method, path)) {
        const res = await send(h);
        const context = `${method} ${path}, ${h.what}: ${res.statusCode} ${res.rawPayload.length} B ${res.body.slice(0, 200)}`;
        expect(res.statusCode, context).toBeLessThan(500);
        expect(res.rawPayload.length, context).toBeLessThanOrEqual(bound(h.rows));
        checked.push(`${method} ${path}`);
      }
    }
    // Every route but the documents was exercised.
    expect(new Set(checked).size).toBe(operations.length - DOCUMENTS.length);
  });

  it('an answer with every output of 512 rows is within the bound, and the bound is not loose by orders of magnitude', async () => {
    const [every] = hostileFor('POST', '/v2/models/{name}/infer').filter((h) =>
      h.what.includes('every output'),
    );
    const res = await send(every!);
    expect(res.statusCode).toBe(200);
    expect(res.rawPayload.length).toBeGreaterThan(bound(ROWS) / 4);
    expect(res.rawPayload.length).toBeLessThanOrEqual(bound(ROWS));
  });

  it('/openapi.json, /docs, /metrics and the ONNX export do not grow with the request', async () => {
    for (const url of ['/openapi.json', '/docs/json', '/docs/static/index.html']) {
      const plain = (await t.app.inject({ url })).rawPayload.length;
      const hostile = await t.app.inject({
        method: 'GET',
        url: `${url}${junkQuery}`,
        payload: `{"instances":${repeat('{}', 100_000)}}`,
        headers: json,
      });
      expect(hostile.rawPayload.length, url).toBeLessThanOrEqual(plain);
    }
    // The ONNX export is the model's file: its size is the weights', with or without the Softmax.
    const onnx = '/v1/models/digits/versions/1/model.onnx';
    const largest = (await t.app.inject({ url: `${onnx}?probabilities=true` })).rawPayload.length;
    for (const query of ['', junkQuery, '?probabilities=true&probabilities=false']) {
      const res = await t.app.inject({ url: `${onnx}${query}` });
      expect(res.statusCode, query).toBeLessThan(500);
      expect(res.rawPayload.length, query).toBeLessThanOrEqual(largest);
    }
    const before = (await t.app.inject({ url: '/metrics' })).rawPayload.length;
    const hostile = await t.app.inject({ url: `/metrics${junkQuery}` });
    // The scrape itself adds a few series (this request's count and latency buckets).
    expect(hostile.rawPayload.length).toBeLessThanOrEqual(before + 8 * 1024);
  });
});

describe('memory', () => {
  it('RSS while 50 hostile requests of about 1 MB are served, 5 at a time, stays under 2× the idle RSS', async () => {
    const hostile = operations
      .filter((o) => !DOCUMENTS.includes(o.path))
      .flatMap((o) => hostileFor(o.method, o.path))
      .filter((h) => h.body !== undefined && h.body.length >= 500_000);
    expect(hostile.length).toBeGreaterThanOrEqual(8);
    // Idle: the app built and every code path above run once.
    for (const h of hostile) await send(h);
    await new Promise((r) => setTimeout(r, 50));
    const idle = process.memoryUsage().rss;
    let peak = idle;
    const sample = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 5);
    try {
      const queue = Array.from({ length: 50 }, (_, i) => hostile[i % hostile.length]!);
      await Promise.all(
        Array.from({ length: 5 }, async () => {
          for (let h = queue.shift(); h !== undefined; h = queue.shift()) {
            const res = await send(h);
            expect(res.statusCode, h.what).toBeLessThan(500);
            peak = Math.max(peak, process.memoryUsage().rss);
          }
        }),
      );
    } finally {
      clearInterval(sample);
    }
    console.log(
      `RSS idle ${(idle / MB).toFixed(0)} MB, peak during 50 hostile requests ${(peak / MB).toFixed(0)} MB (${(peak / idle).toFixed(2)}×)`,
    );
    expect(peak).toBeLessThan(2 * idle);
  });
});

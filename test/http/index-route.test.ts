/**
 * First contact: `GET /` points to the documentation, the model list and each model's predict
 * and infer URLs (JSON, or HTML for a browser); `/docs` "Try it out" calls the page's own origin.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await makeTestApp();
});
afterAll(() => t.close());

describe('GET /', () => {
  it('lists the entry points that exist and every model with its predict and infer URLs', async () => {
    const res = await t.app.inject({ url: '/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const body = res.json();
    expect(body.name).toBe('normserve');
    expect(body.links.map((l: { href: string }) => l.href)).toEqual([
      '/docs',
      '/dashboard',
      '/v1/models',
      '/openapi.json',
      '/readyz',
      '/metrics',
      '/v2',
    ]);
    expect(body.models).toEqual([
      {
        name: 'digits',
        active_version: 1,
        predict: '/v1/models/digits:predict',
        infer: '/v2/models/digits/infer',
      },
    ]);
    // Every link answers (none is a placeholder).
    for (const { href } of body.links) {
      expect((await t.app.inject({ url: href })).statusCode, href).not.toBe(404);
    }
  });

  it('a browser gets the same as a small HTML page', async () => {
    const res = await t.app.inject({
      url: '/',
      headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.body).toContain('<a href="/docs">');
    expect(res.body).toContain('<a href="/v1/models">');
    expect(res.body).toContain('POST /v1/models/digits:predict');
  });

  it('negotiates by quality, JSON when the client prefers neither', async () => {
    const typeFor = async (accept: string) =>
      String((await t.app.inject({ url: '/', headers: { accept } })).headers['content-type']);
    // A client that takes JSON but prefers HTML gets HTML (a substring test answered JSON).
    expect(await typeFor('application/json;q=0.1, text/html')).toMatch(/^text\/html/);
    expect(await typeFor('text/html;q=0.5, application/json')).toMatch(/^application\/json/);
    expect(await typeFor('*/*')).toMatch(/^application\/json/);
    expect(await typeFor('application/xml')).toMatch(/^application\/json/);
  });
});

describe('/docs', () => {
  it('the OpenAPI document names no fixed host: "Try it out" uses the origin of the page', async () => {
    const doc = (await t.app.inject({ url: '/openapi.json' })).json();
    expect(doc.servers).toEqual([
      { url: '/', description: 'the server that serves this document' },
    ]);
    const page = await t.app.inject({ url: '/docs/' });
    expect(page.statusCode).toBe(200);
    expect(page.body).not.toContain('127.0.0.1');
  });
});

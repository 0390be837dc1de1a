/**
 * A path climbing out of the static files of /docs is answered as a missing file: 404 NOT_FOUND,
 * the same document. Issue: `curl --path-as-is /docs/static/../../package.json` answered 400
 * INVALID_INPUT "Forbidden" — @fastify/static's 403, turned into an input error by the error
 * handler. A 404 tells a probe nothing of what lies outside (a 403 would say it found something).
 * Sent over a socket, path as is: inject() normalises `..` away before the router sees it.
 */
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
let port: number;
beforeAll(async () => {
  t = await makeTestApp({ models: ['digits'] });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  port = (t.app.server.address() as AddressInfo).port;
});
afterAll(async () => {
  await t.close();
});

/** GET `path` exactly as written (what `curl --path-as-is` sends). */
const getAsIs = (path: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });

const noRoute = (path: string) =>
  `no route GET ${path}; GET / lists the entry points, /docs every route`;

describe('a path out of /docs/static', () => {
  it.each([
    '/docs/static/../../package.json',
    '/docs/static/../../../../../../etc/passwd',
    '/docs/static/%2e%2e/%2e%2e/package.json',
    '/docs/static/..%2f..%2fpackage.json',
    // A NUL byte: @fastify/static's bare 400 "Bad Request" (h247); the dashboard answers it 404.
    '/docs/static/%00',
    '/docs/static/index.css%00.js',
  ])('GET %s: 404 NOT_FOUND, as a missing file, worded the same', async (path) => {
    const res = await getAsIs(path);
    expect(res.status, res.body).toBe(404);
    const problem = JSON.parse(res.body) as { code: string; detail: string };
    expect(problem.code).toBe('NOT_FOUND');
    expect(problem.detail).toBe(noRoute(path));
    const missing = await getAsIs('/docs/static/nonexistent.js');
    expect(missing.status).toBe(404);
    expect((JSON.parse(missing.body) as { detail: string }).detail).toBe(
      noRoute('/docs/static/nonexistent.js'),
    );
  });

  it('a file that is there is still served', async () => {
    expect((await getAsIs('/docs/static/index.css')).status).toBe(200);
  });
});

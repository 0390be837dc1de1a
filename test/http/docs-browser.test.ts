/**
 * /docs in a real browser (Debian's chromium, driven by playwright-core), opened by a host name
 * that is not localhost, as a user reaching a container or a pod by its address does: every
 * operation of the OpenAPI document is shown, no request fails and the console stays clean.
 * Issue: @fastify/swagger-ui's default policy (`staticCSP: true`) sent `upgrade-insecure-requests`,
 * so the browser fetched the page's scripts and styles over https, which the server does not
 * speak, and showed a blank page (ERR_SSL_PROTOCOL_ERROR for each); at localhost it rendered, with
 * a console error for Swagger UI's inline styles. The name is mapped to 127.0.0.1 inside chromium
 * (`--host-resolver-rules`), so no resolver or network is needed.
 *
 * Without /usr/bin/chromium the test is skipped, unless DASHBOARD_BROWSER=required (.ci/run sets
 * it after installing chromium): there it fails.
 */
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../helpers/app.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available && process.env.DASHBOARD_BROWSER === 'required')
  throw new Error(`${CHROMIUM} is missing (apt-get install -y chromium)`);

/** A name that is not localhost (a reserved top-level domain, RFC 2606), mapped in the browser. */
const HOST = 'normserve.test';
/** Generous bound for the page to render on a busy machine. */
const PAGE_WAIT_MS = 60_000;

let t: TestApp;
let browser: Browser;
let port: number;
beforeAll(async () => {
  if (!available) return;
  t = await makeTestApp({ models: ['digits'] });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  port = (t.app.server.address() as AddressInfo).port;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', `--host-resolver-rules=MAP ${HOST} 127.0.0.1`],
  });
}, PAGE_WAIT_MS);
afterAll(async () => {
  await browser?.close();
  await t?.close();
});

describe.skipIf(!available)('/docs in a browser', () => {
  it(
    `renders every operation at http://${HOST}:<port>/docs with no failed request and a clean console`,
    async () => {
      const document = JSON.parse((await t.app.inject({ url: '/docs/json' })).body) as {
        paths: Record<string, Record<string, unknown>>;
      };
      const operations = Object.values(document.paths).reduce(
        (n, item) =>
          n + Object.keys(item).filter((k) => ['get', 'post', 'put', 'delete'].includes(k)).length,
        0,
      );
      expect(operations).toBeGreaterThan(20);

      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`console: ${m.text()}`);
      });
      page.on('requestfailed', (r) =>
        problems.push(`failed: ${r.url()} ${r.failure()?.errorText ?? ''}`),
      );
      page.on('response', (r) => {
        if (r.status() >= 400) problems.push(`${r.status()}: ${r.url()}`);
      });
      await page.goto(`http://${HOST}:${port}/docs/`, { timeout: PAGE_WAIT_MS });
      await page
        .locator('.opblock')
        .nth(operations - 1)
        .waitFor({ timeout: PAGE_WAIT_MS });
      expect(await page.locator('.opblock').count()).toBe(operations);
      // Styled by its own stylesheet (the topbar Swagger UI's CSS colours), not bare HTML.
      const topbar = await page
        .locator('.topbar')
        .evaluate(
          (e) =>
            (
              globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }
            ).getComputedStyle(e).backgroundColor,
        );
      expect(topbar).not.toBe('rgba(0, 0, 0, 0)');
      expect(problems).toEqual([]);
      await page.close();
    },
    2 * PAGE_WAIT_MS,
  );
});

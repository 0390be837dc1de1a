/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core. The page renders
 * with no console errors, its histograms and drift chart have data, the drift shown rises after
 * night traffic, and the rollback button activates the version it names. Its recalibrate button
 * sends a CSV as it is (the server's column rule: a label column and reordered columns give what
 * the server's own text/csv upload gives; a bad cell shows the server's message). A model whose
 * versions all fail to load is reported, and the others stay shown and refreshed. A screenshot is
 * written to test/artifacts/dashboard.png (not committed). With API_TOKEN set, the page asks for
 * the API token at the drift routes' first 401, asks again when the server refuses it, keeps it for
 * the tab (sessionStorage, a reload asks nothing) and sends it as a header, never in a URL;
 * without API_TOKEN it asks nothing. On digits-cnn, the after-BatchNorm titles follow the route's
 * share below 0 as traffic changes, the y axis is wide enough for five-digit labels, the drift
 * chart's time ticks are one whole time each (the date under the first was cut off), the page asks
 * for no favicon, and the charts fit a 420 px window; a LayerNorm-only model is said to have no
 * BatchNorm to chart.
 *
 * Without /usr/bin/chromium the test is skipped, unless DASHBOARD_BROWSER=required (.ci/run sets
 * it after installing chromium): there it fails.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSequential, parseModelConfig } from '../../src/checkpoint/index.js';
import { Rng } from '../../src/nn/index.js';
import { ModelRepository } from '../../src/repository/index.js';
import { ADMIN, ADMIN_TOKEN, rowsSha256, versionConfig, versionTensors } from '../helpers/admin.js';
import { makeRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available && process.env.DASHBOARD_BROWSER === 'required')
  throw new Error(`${CHROMIUM} is missing (apt-get install -y chromium)`);

/** Generous bound for what the page shows after a change (it polls every second). */
const PAGE_WAIT_MS = 60_000;
/** A test waits for the page several times: its bound, beyond vitest's default. */
const TEST_BOUND_MS = 4 * PAGE_WAIT_MS;
/** uPlot's default axis font (uplot/dist/uPlot.esm.js, `font`), which the dashboard keeps. */
const UPLOT_AXIS_FONT =
  '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif, "Apple Color Emoji", "Segoe UI Emoji", "Segoe UI Symbol", "Noto Color Emoji"';
/** What the page-side functions below use of the browser's globals (the project has no DOM types). */
interface PageElement {
  offsetLeft: number;
  offsetWidth: number;
  style: { left: string };
  getBoundingClientRect(): { right: number };
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): Iterable<PageElement>;
}
interface PageGlobals {
  navigator: { language: string };
  document: PageElement & {
    documentElement: { clientWidth: number; scrollWidth: number };
    createElement(tag: 'canvas'): {
      getContext(kind: '2d'): { font: string; measureText(text: string): { width: number } };
    };
  };
}
/** The digits model's recorded feature names, p0 … p63 (data/digits/README.md). */
const PIXELS = Array.from({ length: 64 }, (_, i) => `p${i}`);

/** A CSV of the header and rows as given (cells as text). */
const csvText = (header: readonly string[], rows: readonly (readonly unknown[])[]) =>
  `${[header, ...rows].map((r) => r.join(',')).join('\n')}\n`;

/** A listening app on `t`'s repository: its base URL. */
async function listen(t: TestApp): Promise<string> {
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
}

/**
 * `count` one-row predictions of `model` (digits unless named), rows drawn (seeded) from `rows`
 * (with the API token given).
 */
async function traffic(
  base: string,
  rows: number[][],
  count: number,
  seed: number,
  apiToken?: string,
  model = 'digits',
) {
  const rng = new Rng(seed);
  for (let i = 0; i < count; i++) {
    const res = await fetch(`${base}/v1/models/${model}:predict`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(apiToken === undefined ? {} : { authorization: `Bearer ${apiToken}` }),
      },
      body: JSON.stringify({ instances: [rows[rng.int(rows.length)]] }),
    });
    expect(res.status).toBe(200);
  }
}

/**
 * A page whose console errors, page errors, failed requests and requests to another host are
 * recorded in `problems` (a console error names the resource it is about, when it has one).
 */
async function openPage(browser: Browser, problems: string[]): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1800 } });
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  // Nothing may leave for another host.
  await page.route(/^(?!http:\/\/127\.0\.0\.1:)/, (route) => {
    problems.push(`network: ${route.request().url()}`);
    return route.abort();
  });
  return page;
}

/** Polls `read` until `accept` holds of it (or the bound is reached): the last value read. */
async function shown<T>(page: Page, read: () => Promise<T>, accept: (v: T) => boolean) {
  let value = await read();
  for (let i = 0; i < PAGE_WAIT_MS / 100 && !accept(value); i++) {
    await page.waitForTimeout(100);
    value = await read();
  }
  return value;
}

describe.skipIf(!available)('dashboard in chromium', () => {
  let browser: Browser;

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
  });

  describe('digits and digits-cnn', () => {
    let t: TestApp;
    let page: Page;
    let base: string;
    const problems: string[] = [];

    beforeAll(async () => {
      t = await makeTestApp({ models: ['digits', 'digits-cnn'] });
      base = await listen(t);
      page = await openPage(browser, problems);
    }, 120_000);

    afterAll(async () => {
      await t?.close();
    });

    const shownScore = async () => Number(await page.getAttribute('#drift-score', 'data-score'));

    it(
      'renders, shows drift rising after night traffic, and rolls back with one click',
      async () => {
        const { x } = digitsTestRows();
        await page.goto(`${base}/dashboard`);
        await page.waitForSelector('body[data-ready="true"]', { timeout: PAGE_WAIT_MS });
        expect(await page.inputValue('#model')).toBe('digits');
        expect(await page.locator('#versions tbody tr').count()).toBe(1);

        await traffic(base, x, 150, 1);
        // Polled from here: the page's CSP forbids the string evaluation waitForFunction needs.
        for (let i = 0; i < PAGE_WAIT_MS / 100; i++) {
          if (Number(await page.textContent('#drift-rows')) >= 150) break;
          await page.waitForTimeout(100);
        }
        expect(Number(await page.textContent('#drift-rows'))).toBeGreaterThanOrEqual(150);
        const clean = await shownScore();
        expect(clean).toBeGreaterThan(0);
        expect(await page.isHidden('#drift-recommended')).toBe(true);
        // Two BatchNorm layers, each with three charts whose histograms hold the recent rows.
        await page.waitForSelector('.layer[data-layer="5"] .after canvas', {
          timeout: PAGE_WAIT_MS,
        });
        expect(await page.locator('.layer').count()).toBe(2);
        const total = Number(
          await page.getAttribute('.layer[data-layer="1"] .before', 'data-total'),
        );
        expect(total).toBeGreaterThan(150 * 128 * 0.9);
        expect(await page.locator('.layer canvas').count()).toBe(6);
        // Without API_TOKEN, no 401: the page asks for no API token.
        expect(await page.isHidden('#api-token-form')).toBe(true);

        await traffic(base, nightShift(x), 150, 2);
        await page.waitForSelector('#drift-recommended:not([hidden])', { timeout: PAGE_WAIT_MS });
        const night = await shownScore();
        expect(night).toBeGreaterThan(clean);
        expect(night).toBeGreaterThan(0.5);
        expect(Number(await page.getAttribute('#drift-chart', 'data-points'))).toBeGreaterThan(1);
        expect(await page.locator('#drift-chart canvas').count()).toBe(1);
        // Named for a screen reader (a canvas says nothing); the numbers are in the table.
        expect(await page.getAttribute('#drift-chart', 'role')).toBe('img');
        expect(await page.getAttribute('#drift-chart', 'aria-label')).toBe(
          'drift score, threshold',
        );
        // Each time tick is one whole time of day: no date line under the first tick, whose left
        // end the chart's edge cut off, and no bare ":33".
        const ticks = (await page.getAttribute('#drift-chart', 'data-x-labels'))?.split('|') ?? [];
        expect(ticks.length).toBeGreaterThan(0);
        // (A run across midnight dates the first tick: "Dec 4, 11:59 PM".)
        for (const tick of ticks)
          expect(tick).toMatch(
            /^(\d{1,2}:\d{2}:\d{2}|[A-Z][a-z]{2} \d{1,2}, \d{1,2}:\d{2})(\s?[AP]M)?$/,
          );
        // … and the first one whole even at the plot's left edge: the y axis leaves room for half
        // of the widest (its left end was cut off, "0:03:35 AM", newcomer review of 2026-12-06).
        const room = await page.evaluate(
          ({ ticks, font }) => {
            const { document } = globalThis as unknown as PageGlobals;
            const ctx = document.createElement('canvas').getContext('2d');
            ctx.font = font;
            const root = document.querySelector('#drift-chart .uplot')!;
            const axis = [...root.querySelectorAll('.u-axis')].find((a) => a.style.left === '0px')!;
            const widest = Math.max(...ticks.map((t) => ctx.measureText(t).width));
            return axis.offsetWidth - widest / 2;
          },
          { ticks, font: UPLOT_AXIS_FONT },
        );
        expect(room).toBeGreaterThanOrEqual(0);

        mkdirSync('test/artifacts', { recursive: true });
        await page.screenshot({ path: 'test/artifacts/dashboard.png', fullPage: true });

        // The recalibrate button: a file of night rows (NDJSON) → version 2, served.
        await page.fill('#token', ADMIN_TOKEN);
        await page.setInputFiles('#recalibrate-file', {
          name: 'night.ndjson',
          mimeType: 'application/x-ndjson',
          buffer: Buffer.from(
            nightShift(x)
              .map((r) => JSON.stringify(r))
              .join('\n'),
          ),
        });
        await page.click('#recalibrate-button');
        await page.waitForSelector('#versions tr[data-version="2"][data-active="true"]', {
          timeout: PAGE_WAIT_MS,
        });
        expect(await page.textContent('#versions tr[data-version="2"] .provenance')).toMatch(
          /recalibration · from version 1 · exact · 360 samples/,
        );
        expect(await page.textContent('#status')).toMatch(
          /version 2 published from 360 rows and active/,
        );
        // Then the rollback button of version 1.
        await page.click('#versions tr[data-version="1"] button.activate');
        await page.waitForSelector('#versions tr[data-version="1"][data-active="true"]', {
          timeout: PAGE_WAIT_MS,
        });
        expect(t.registry.get('digits').active).toBe(1);
        expect(await page.textContent('#status')).toMatch(/version 1 active \(was 2\)/);
        expect(problems).toEqual([]);
      },
      TEST_BOUND_MS,
    );

    it(
      'sends a CSV as it is: its columns are matched by name, and a bad cell shows the server message',
      async () => {
        const { x, y } = digitsTestRows();
        const night = nightShift(x);
        // The label first, the pixels in reverse order.
        const header = ['label', ...[...PIXELS].reverse()];
        const rowOf = (r: number[], i: number): unknown[] => [y[i], ...[...r].reverse()];
        const csv = csvText(header, night.map(rowOf));
        const before = t.registry.get('digits').versions.size;
        await page.fill('#token', ADMIN_TOKEN);
        await page.setInputFiles('#recalibrate-file', {
          name: 'night-reordered.csv',
          mimeType: 'text/csv',
          buffer: Buffer.from(csv),
        });
        await page.click('#recalibrate-button');
        const fromPage = before + 1;
        await page.waitForSelector(`#versions tr[data-version="${fromPage}"][data-active="true"]`, {
          timeout: PAGE_WAIT_MS,
        });
        expect(await page.textContent('#status')).toBe(
          `version ${fromPage} published from 360 rows and active`,
        );
        // The rows the page's version was computed from: the pixels, in the model's order.
        expect(versionConfig(t.repository, 'digits', fromPage).provenance?.data_sha256).toBe(
          rowsSha256(night),
        );
        // The same file through the server's own text/csv upload: the same statistics, to the byte.
        const direct = await fetch(`${base}/v1/models/digits:recalibrate?activate=false`, {
          method: 'POST',
          headers: { ...ADMIN, 'content-type': 'text/csv' },
          body: csv,
        });
        expect(direct.status).toBe(201);
        const outcome = (await direct.json()) as { version: number; data_sha256: string };
        expect(outcome.data_sha256).toBe(rowsSha256(night));
        const expected = versionTensors(t.repository, 'digits', outcome.version);
        const got = versionTensors(t.repository, 'digits', fromPage);
        const statistics = [...expected.keys()].filter((k) => /running_(mean|var)$/.test(k));
        expect(statistics.length).toBe(4);
        for (const name of expected.keys())
          expect(
            Buffer.from(got.get(name)!.bytes).equals(Buffer.from(expected.get(name)!.bytes)),
            name,
          ).toBe(true);

        // A bad cell (line 4, pixel p5): the server's problem, shown as the server words it.
        const bad = csvText(
          header,
          night.map((r, i) => {
            const row = rowOf(r, i);
            if (i === 2) row[header.indexOf('p5')] = 'n/a';
            return row;
          }),
        );
        const refused = await fetch(`${base}/v1/models/digits:recalibrate`, {
          method: 'POST',
          headers: { ...ADMIN, 'content-type': 'text/csv' },
          body: bad,
        });
        expect(refused.status).toBe(400);
        const { detail } = (await refused.json()) as { detail: string };
        expect(detail).toBe('line 4, column "p5": "n/a" is not a finite number');
        await page.setInputFiles('#recalibrate-file', {
          name: 'bad.csv',
          mimeType: 'text/csv',
          buffer: Buffer.from(bad),
        });
        await page.click('#recalibrate-button');
        await page.waitForSelector('#status.error', { timeout: PAGE_WAIT_MS });
        expect(await page.textContent('#status')).toBe(`recalibration failed: ${detail}`);
        expect(t.registry.get('digits').versions.size).toBe(fromPage + 1);
        expect(t.registry.get('digits').active).toBe(fromPage);
        // The browser logs the refused upload's 400; nothing else went wrong.
        expect(problems.filter((p) => !/status of 400 .*:recalibrate\)$/.test(p))).toEqual([]);
        expect(problems.length).toBe(1);
      },
      TEST_BOUND_MS,
    );
  });

  describe('digits-cnn and a model without BatchNorm', () => {
    let t: TestApp;
    let page: Page;
    let base: string;
    let repository: string;
    const problems: string[] = [];
    const asked: string[] = [];

    beforeAll(async () => {
      repository = makeRepository(['digits-cnn']);
      // A LayerNorm model (no BatchNorm), listed after digits-cnn.
      const config = parseModelConfig({
        format: 'normserve.model/v1',
        name: 'layernormed',
        task: 'regression',
        input_shape: [4],
        layers: [
          { type: 'linear', in_features: 4, out_features: 8, bias: true },
          { type: 'layernorm', normalized_shape: [8], eps: 1e-5, elementwise_affine: true },
          { type: 'relu' },
          { type: 'linear', in_features: 8, out_features: 1, bias: true },
        ],
      });
      const network = buildSequential(config.layers, { init: new Rng(7) });
      await new ModelRepository(repository).publishVersion({ config, state: network.stateDict() });
      t = await makeTestApp({ repository });
      base = await listen(t);
      page = await openPage(browser, problems);
      page.on('request', (r) => asked.push(new URL(r.url()).pathname));
    }, 120_000);

    afterAll(async () => {
      await t?.close();
      if (repository) rmSync(repository, { recursive: true, force: true });
    });

    /** The route's pictures of digits-cnn, as the page is to show them. */
    const pictures = async () => {
      const res = await fetch(`${base}/v1/models/digits-cnn/drift/layers`);
      expect(res.status).toBe(200);
      return (await res.json()) as {
        rows: number;
        layers: { path: string; below_zero: number; before: { counts: number[] } }[];
      };
    };
    const titleOf = (belowZero: number) =>
      `after BatchNorm (${(belowZero * 100).toFixed(1)} % below 0)`;
    /** Each layer's after-BatchNorm chart title, in page order. */
    const titles = () => page.locator('.layer .after .u-title').allTextContents();

    it(
      'titles the after-BatchNorm charts with the latest traffic and fits the y axis to its labels',
      async () => {
        const { x } = digitsTestRows();
        await page.goto(`${base}/dashboard`);
        await page.waitForSelector('body[data-ready="true"]', { timeout: PAGE_WAIT_MS });
        expect(await page.inputValue('#model')).toBe('digits-cnn');

        await traffic(base, x, 100, 6, undefined, 'digits-cnn');
        const clean = (await pictures()).layers.map((l) => titleOf(l.below_zero));
        expect(clean.length).toBe(4);
        expect(await shown(page, titles, (v) => v.join() === clean.join())).toEqual(clean);

        // Night rows: other shares below 0, which the titles follow (uPlot sets a title once).
        await traffic(base, nightShift(x), 300, 7, undefined, 'digits-cnn');
        const night = (await pictures()).layers.map((l) => titleOf(l.below_zero));
        expect(night).not.toEqual(clean);
        expect(await shown(page, titles, (v) => v.join() === night.join())).toEqual(night);

        // Bars of more than 10,000 values: the y axis is wide enough for the labels of five
        // digits, drawn right-aligned at the tick marks (uPlot: ticks 10 px, gap 5 px).
        const { layers } = await pictures();
        const most = Math.max(...layers[0]!.before.counts);
        expect(most).toBeGreaterThanOrEqual(10_000);
        const room = await page.evaluate(
          ({ most, font }) => {
            const { document, navigator } = globalThis as unknown as PageGlobals;
            const label = new Intl.NumberFormat(navigator.language).format(
              10 ** Math.floor(Math.log10(most)),
            );
            const ctx = document.createElement('canvas').getContext('2d');
            ctx.font = font;
            const root = document.querySelector('.layer .before .uplot')!;
            const axis = [...root.querySelectorAll('.u-axis')].find((a) => a.style.left === '0px')!;
            // The label's left end, from the chart's left edge.
            return axis.offsetLeft + axis.offsetWidth - 10 - 5 - ctx.measureText(label).width;
          },
          { most, font: UPLOT_AXIS_FONT },
        );
        await page.screenshot({ path: 'test/artifacts/dashboard-cnn.png', fullPage: true });
        expect(room).toBeGreaterThanOrEqual(0);
        // The browser asked for no icon (the page declares an empty one).
        expect(asked).not.toContain('/favicon.ico');
        expect(problems).toEqual([]);
      },
      TEST_BOUND_MS,
    );

    it(
      'fits the charts, and the page, in a 420 px window',
      async () => {
        const overflow = () =>
          page.evaluate(() => {
            const { document } = globalThis as unknown as PageGlobals;
            return [...document.querySelectorAll('.uplot')]
              .map((c) => c.getBoundingClientRect().right)
              .filter((right) => right > document.documentElement.clientWidth);
          });
        await page.setViewportSize({ width: 420, height: 900 });
        expect(await shown(page, overflow, (o) => o.length === 0)).toEqual([]);
        // Made at that width too.
        await page.reload();
        await page.waitForSelector('body[data-ready="true"]', { timeout: PAGE_WAIT_MS });
        await page.waitForSelector('.layer .after canvas', { timeout: PAGE_WAIT_MS });
        await page.waitForSelector('#drift-chart canvas', { timeout: PAGE_WAIT_MS });
        expect(await page.locator('.uplot').count()).toBe(4 * 3 + 1);
        expect(await overflow()).toEqual([]);
        // Nor anything else: the page scrolls down, never sideways (the header's fields wrap).
        const widths = await page.evaluate(() => {
          const { document } = globalThis as unknown as PageGlobals;
          const root = document.documentElement;
          return { scroll: root.scrollWidth, client: root.clientWidth };
        });
        expect(widths.scroll).toBeLessThanOrEqual(widths.client);
        await page.screenshot({ path: 'test/artifacts/dashboard-narrow.png', fullPage: true });
        await page.setViewportSize({ width: 1400, height: 1800 });
        expect(problems).toEqual([]);
      },
      TEST_BOUND_MS,
    );

    it(
      'says that a model without BatchNorm has none to chart',
      async () => {
        const res = await fetch(`${base}/v1/models/layernormed:predict`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ instances: [[1, 2, 3, 4]] }),
        });
        expect(res.status).toBe(200);
        await page.selectOption('#model', 'layernormed');
        const note = () => page.textContent('#layers-note');
        const expected = 'This model has no BatchNorm layer: there is nothing to chart here.';
        expect(await shown(page, note, (n) => n === expected)).toBe(expected);
        expect(await page.locator('.layer').count()).toBe(0);
        expect(problems).toEqual([]);
      },
      TEST_BOUND_MS,
    );
  });

  describe('API_TOKEN set', () => {
    const API_TOKEN = 'dashboard-api-token-0123456789';
    let t: TestApp;
    let page: Page;
    let base: string;
    const problems: string[] = [];
    /** Every request of the page: its URL and its Authorization header. */
    const requests: { url: string; authorization: string | undefined }[] = [];

    beforeAll(async () => {
      t = await makeTestApp({ env: { API_TOKEN } });
      base = await listen(t);
      page = await openPage(browser, problems);
      page.on('request', (r) =>
        requests.push({ url: r.url(), authorization: r.headers().authorization }),
      );
    }, 120_000);

    afterAll(async () => {
      await t?.close();
    });

    const rowsShown = async () => Number(await page.textContent('#drift-rows'));
    const problemShown = async () => (await page.textContent('#model-problem')) ?? '';

    it(
      'asks for the API token once, asks again when it is refused, and keeps it for the tab',
      async () => {
        const { x } = digitsTestRows();
        await page.goto(`${base}/dashboard`);
        await page.waitForSelector('body[data-ready="true"]', { timeout: PAGE_WAIT_MS });
        // The public routes still answer: the versions are shown; the drift asks for the token.
        await page.waitForSelector('#versions tr[data-version="1"][data-active="true"]', {
          timeout: PAGE_WAIT_MS,
        });
        await page.waitForSelector('#api-token-form:not([hidden])', { timeout: PAGE_WAIT_MS });
        expect(await shown(page, problemShown, (p) => /enter the API token\)$/.test(p))).toMatch(
          /^refresh failed: traffic routes need .*\(enter the API token\)$/,
        );
        await traffic(base, x, 40, 5, API_TOKEN);

        // A wrong token: refused, forgotten, asked for again.
        await page.fill('#api-token', 'not-the-api-token-0123456789');
        await page.click('#api-token-button');
        expect(await page.isHidden('#api-token-form')).toBe(true);
        await page.waitForSelector('#api-token-form:not([hidden])', { timeout: PAGE_WAIT_MS });
        expect(
          await shown(page, problemShown, (p) =>
            /the API token was refused: enter it again\)$/.test(p),
          ),
        ).toMatch(/\(the API token was refused: enter it again\)$/);
        // Still said after the next polls, which carry no token (h265: it read "enter the API
        // token" a second later, as if none had been given).
        await page.waitForTimeout(2_500);
        expect(await problemShown()).toMatch(/\(the API token was refused: enter it again\)$/);

        // The right one: the drift and the pictures of the traffic are shown.
        await page.fill('#api-token', API_TOKEN);
        await page.click('#api-token-button');
        expect(await shown(page, rowsShown, (n) => n >= 40)).toBeGreaterThanOrEqual(40);
        await page.waitForSelector('.layer[data-layer="5"] .after canvas', {
          timeout: PAGE_WAIT_MS,
        });
        await page.waitForSelector('#model-problem[hidden]', {
          state: 'attached',
          timeout: PAGE_WAIT_MS,
        });
        expect(await page.isHidden('#api-token-form')).toBe(true);

        // A reload in the same tab asks nothing: the token was kept (sessionStorage).
        const before = requests.length;
        await page.reload();
        await page.waitForSelector('body[data-ready="true"]', { timeout: PAGE_WAIT_MS });
        await page.waitForSelector('.layer[data-layer="5"] .after canvas', {
          timeout: PAGE_WAIT_MS,
        });
        expect(await shown(page, rowsShown, (n) => n >= 40)).toBeGreaterThanOrEqual(40);
        expect(await page.isHidden('#api-token-form')).toBe(true);
        const drift = requests
          .slice(before)
          .filter((r) => /\/v1\/models\/digits\/drift(\/layers)?$/.test(new URL(r.url).pathname));
        expect(drift.length).toBeGreaterThanOrEqual(2);
        for (const r of drift) expect(r.authorization, r.url).toBe(`Bearer ${API_TOKEN}`);

        // Never in a URL; never sent before it was given.
        expect(requests.some((r) => r.url.includes(API_TOKEN))).toBe(false);
        expect(requests.some((r) => /not-the-api-token/.test(r.url))).toBe(false);
        // The browser logs the drift routes' 401s (before the token, and the refused one).
        expect(
          problems.filter((p) => !/status of 401 .*\/digits\/drift(\/layers)?\)$/.test(p)),
        ).toEqual([]);
      },
      TEST_BOUND_MS,
    );
  });

  describe('a model whose versions all fail to load, listed first', () => {
    let t: TestApp;
    let page: Page;
    let base: string;
    let repository: string;
    const problems: string[] = [];

    beforeAll(async () => {
      repository = makeRepository(['digits']);
      // aa0-broken sorts before digits; its one version's weights are cut short.
      const version = join(repository, 'aa0-broken', '1');
      cpSync(join(repository, 'digits', '1'), version, { recursive: true });
      // Named after its directory, so the config passes and the weights are what fails (the
      // config is checked first).
      const configPath = join(version, 'config.json');
      const config = JSON.parse(readFileSync(configPath, 'utf8')) as { name: string };
      writeFileSync(configPath, JSON.stringify({ ...config, name: 'aa0-broken' }));
      const weights = join(version, 'model.safetensors');
      writeFileSync(weights, readFileSync(weights).subarray(0, 100));
      // Uploads of more than 100 rows run as jobs (202), which the page follows.
      t = await makeTestApp({ repository, env: { RECALIBRATION_ASYNC_ROWS: '100' } });
      expect(t.registry.list().map((m) => m.name)).toEqual(['aa0-broken', 'digits']);
      base = await listen(t);
      page = await openPage(browser, problems);
    }, 120_000);

    afterAll(async () => {
      await t?.close();
      if (repository) rmSync(repository, { recursive: true, force: true });
    });

    const rowsShown = async () => Number(await page.textContent('#drift-rows'));

    it(
      'starts on the healthy model, reports the broken one, and keeps refreshing',
      async () => {
        const { x } = digitsTestRows();
        await page.goto(`${base}/dashboard`);
        await page.waitForSelector('body[data-ready="true"]', { timeout: PAGE_WAIT_MS });
        expect(await page.inputValue('#model')).toBe('digits');
        expect(await page.locator('#model option').allTextContents()).toEqual([
          'aa0-broken (unavailable)',
          'digits',
        ]);
        expect(await page.isHidden('#model-problem')).toBe(true);
        await page.waitForSelector('#versions tr[data-version="1"][data-active="true"]', {
          timeout: PAGE_WAIT_MS,
        });
        await traffic(base, x, 50, 3);
        expect(await shown(page, rowsShown, (n) => n >= 50)).toBeGreaterThanOrEqual(50);

        // The broken model: its problem, in the server's words, and its failed version.
        const res = await fetch(`${base}/v1/models/aa0-broken/metadata`);
        expect(res.status).toBe(503);
        const { detail } = (await res.json()) as { detail: string };
        expect(detail).toMatch(/model\.safetensors/);
        // A file chosen for digits is not kept for the next model (a click would send it there).
        await page.setInputFiles('#recalibrate-file', {
          name: 'night.csv',
          mimeType: 'text/csv',
          buffer: Buffer.from(csvText(PIXELS, nightShift(x).slice(0, 3))),
        });
        const chosenFiles = () =>
          page.$eval(
            '#recalibrate-file',
            (e) => (e as unknown as { files: unknown[] }).files.length,
          );
        expect(await chosenFiles()).toBe(1);
        await page.selectOption('#model', 'aa0-broken');
        expect(await chosenFiles()).toBe(0);
        await page.waitForSelector('#model-problem:not([hidden])', { timeout: PAGE_WAIT_MS });
        expect(await page.textContent('#model-problem')).toBe(detail);
        await page.waitForSelector('#versions tr[data-version="1"]', { timeout: PAGE_WAIT_MS });
        expect(await page.textContent('#versions tr[data-version="1"]')).toMatch(/FAILED/);
        expect(await page.textContent('#layers-note')).toBe('No version of this model is served.');
        // Still shown after the next refresh of its versions (every fifth poll) and the poll after.
        for (const path of ['/v1/models/aa0-broken/versions', '/v1/models/aa0-broken/drift']) {
          await page.waitForResponse((r) => new URL(r.url()).pathname === path, {
            timeout: PAGE_WAIT_MS,
          });
        }
        expect(await page.textContent('#model-problem')).toBe(detail);

        // Back to digits: the problem goes, and the page keeps refreshing it.
        await page.selectOption('#model', 'digits');
        await page.waitForSelector('#model-problem[hidden]', {
          state: 'attached',
          timeout: PAGE_WAIT_MS,
        });
        await page.waitForSelector('#versions tr[data-version="1"][data-active="true"]', {
          timeout: PAGE_WAIT_MS,
        });
        const before = await shown(page, rowsShown, (n) => n >= 50);
        await traffic(base, x, 50, 4);
        expect(await shown(page, rowsShown, (n) => n >= before + 50)).toBeGreaterThanOrEqual(
          before + 50,
        );
        await page.waitForSelector('.layer[data-layer="5"] .after canvas', {
          timeout: PAGE_WAIT_MS,
        });
        expect(await page.isHidden('#model-problem')).toBe(true);
        expect(await page.textContent('#status')).toBe('');
        // The browser logs the broken model's 503s (its metadata, asked for its problem); nothing else.
        expect(
          problems.filter((p) => !/status of 503 .*\/aa0-broken\/metadata\)$/.test(p)),
        ).toEqual([]);
      },
      TEST_BOUND_MS,
    );

    it(
      'sends a JSON array of rows as instances, and follows a recalibration run as a job',
      async () => {
        const night = nightShift(digitsTestRows().x);
        await page.fill('#token', ADMIN_TOKEN);
        await page.setInputFiles('#recalibrate-file', {
          name: 'night.json',
          mimeType: 'application/json',
          buffer: Buffer.from(JSON.stringify(night)),
        });
        const accepted = page.waitForResponse(
          (r) => new URL(r.url()).pathname === '/v1/models/digits:recalibrate',
          { timeout: PAGE_WAIT_MS },
        );
        const job = page.waitForResponse((r) => new URL(r.url()).pathname.startsWith('/v1/jobs/'), {
          timeout: PAGE_WAIT_MS,
        });
        await page.click('#recalibrate-button');
        expect((await accepted).status()).toBe(202);
        expect((await job).status()).toBe(200);
        await page.waitForSelector('#versions tr[data-version="2"][data-active="true"]', {
          timeout: PAGE_WAIT_MS,
        });
        expect(await page.textContent('#status')).toBe(
          'version 2 published from 360 rows and active',
        );
        expect(versionConfig(t.repository, 'digits', 2).provenance?.data_sha256).toBe(
          rowsSha256(night),
        );
        expect(
          problems.filter((p) => !/status of 503 .*\/aa0-broken\/metadata\)$/.test(p)),
        ).toEqual([]);
      },
      TEST_BOUND_MS,
    );
  });
});

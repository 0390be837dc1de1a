import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { AppInstance } from '../app-types.js';

/** The dashboard's own files (the repository's dashboard/, two levels above src/http/routes or dist/http/routes). */
const DASHBOARD_DIR = new URL('../../../dashboard/', import.meta.url);

const TYPES = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
} as const;

/**
 * Everything the page loads, read once at start-up: nothing is fetched from elsewhere at run time
 * (uPlot comes from the installed `uplot` npm package).
 */
function dashboardAssets(): Map<string, { body: Buffer; type: string }> {
  const require = createRequire(import.meta.url);
  const own = (file: string) => readFileSync(new URL(file, DASHBOARD_DIR));
  const pkg = (file: string) => readFileSync(require.resolve(`uplot/dist/${file}`));
  return new Map([
    ['index.html', { body: own('index.html'), type: TYPES.html }],
    ['dashboard.js', { body: own('dashboard.js'), type: TYPES.js }],
    ['dashboard.css', { body: own('dashboard.css'), type: TYPES.css }],
    ['uPlot.iife.min.js', { body: pkg('uPlot.iife.min.js'), type: TYPES.js }],
    ['uPlot.min.css', { body: pkg('uPlot.min.css'), type: TYPES.css }],
  ]);
}

/** The page may load and call this server only. */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/** `GET /dashboard` and its static files. */
export async function dashboardRoutes(app: AppInstance): Promise<void> {
  let assets: ReturnType<typeof dashboardAssets>;
  try {
    assets = dashboardAssets();
  } catch (e) {
    app.log.warn(
      { err: e, dir: fileURLToPath(DASHBOARD_DIR) },
      'dashboard files not found; /dashboard is not served',
    );
    return;
  }
  app.get(
    '/dashboard',
    {
      // Opened from links that may carry tracking parameters (strict-query.ts).
      config: { access: 'public', anyQuery: true },
      schema: {
        tags: ['operations'],
        summary: 'Dashboard: models, versions, rollback, live drift and BatchNorm pictures (HTML)',
        response: {
          200: z.unknown().meta({
            description:
              'The dashboard’s page; its script and style are /dashboard/dashboard.js and .css',
            content: { 'text/html': { schema: { type: 'string' } } },
          }),
        },
      },
    },
    async (_request, reply) => {
      const page = assets.get('index.html')!;
      return reply
        .type(page.type)
        .header('content-security-policy', CSP)
        .header('cache-control', 'no-cache')
        .send(page.body);
    },
  );
  // Each file its own route (no parameter to guess), left out of the OpenAPI document.
  for (const [file, asset] of assets) {
    if (file === 'index.html') continue;
    app.get(
      `/dashboard/${file}`,
      { config: { access: 'public' }, schema: { hide: true } },
      async (_request, reply) =>
        reply.type(asset.type).header('cache-control', 'no-cache').send(asset.body),
    );
  }
}

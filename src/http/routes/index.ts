import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AppInstance } from '../app-types.js';

/** Entry points a newcomer looks for; a link is listed only while its route exists. */
const LINKS = [
  { rel: 'docs', href: '/docs', title: 'Interactive API documentation (OpenAPI)' },
  { rel: 'dashboard', href: '/dashboard', title: 'Dashboard' },
  { rel: 'models', href: '/v1/models', title: 'Models, versions and their states' },
  { rel: 'openapi', href: '/openapi.json', title: 'The OpenAPI 3.1 document' },
  { rel: 'ready', href: '/readyz', title: 'Readiness' },
  { rel: 'metrics', href: '/metrics', title: 'Prometheus metrics' },
  { rel: 'v2', href: '/v2', title: 'Open Inference Protocol v2 server metadata' },
] as const;

const indexSchema = z
  .object({
    name: z.literal('normserve'),
    version: z.string(),
    links: z.array(z.object({ rel: z.string(), href: z.string(), title: z.string() })),
    models: z.array(
      z.object({
        name: z.string(),
        active_version: z.number().int().nullable(),
        predict: z.string().meta({ description: 'TF Serving REST predict (POST)' }),
        infer: z.string().meta({ description: 'Open Inference Protocol v2 infer (POST)' }),
      }),
    ),
  })
  .meta({
    examples: [
      {
        name: 'normserve',
        version: '0.1.0',
        links: [{ rel: 'docs', href: '/docs', title: 'Interactive API documentation (OpenAPI)' }],
        models: [
          {
            name: 'digits',
            active_version: 1,
            predict: '/v1/models/digits:predict',
            infer: '/v2/models/digits/infer',
          },
        ],
      },
    ],
  });

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** `GET /`: where to go from here, as JSON, or as a small HTML page for a browser. */
export async function indexRoutes(app: AppInstance): Promise<void> {
  const { registry, version } = app.deps;
  app.get(
    '/',
    {
      config: { access: 'public' },
      schema: {
        tags: ['operations'],
        summary: 'Entry points: documentation, model list, each model’s predict and infer URLs',
        description:
          'JSON by default; a small HTML page when the client prefers text/html (a browser).',
        produces: ['application/json', 'text/html'],
        response: { 200: indexSchema },
      },
    },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const links = LINKS.filter((l) => app.hasRoute({ method: 'GET', url: l.href })).map((l) => ({
        ...l,
      }));
      const models = registry.list().map((m) => ({
        name: m.name,
        active_version: m.active ?? null,
        predict: `/v1/models/${m.name}:predict`,
        infer: `/v2/models/${m.name}/infer`,
      }));
      const accept = request.headers.accept ?? '';
      if (/text\/html/.test(accept) && !/application\/json/.test(accept)) {
        const item = (href: string, text: string) =>
          `<li><a href="${escapeHtml(href)}">${escapeHtml(text)}</a></li>`;
        return reply
          .type('text/html; charset=utf-8')
          .send(
            `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>normserve</title></head><body><h1>normserve ${escapeHtml(version)}</h1><ul>${links.map((l) => item(l.href, `${l.title} — ${l.href}`)).join('')}</ul><h2>Models</h2><ul>${models.map((m) => item(`/v1/models/${m.name}`, `${m.name} (active version ${m.active_version ?? 'none'}): POST ${m.predict}, POST ${m.infer}`)).join('')}</ul></body></html>`,
          );
      }
      return { name: 'normserve' as const, version, links, models };
    },
  );
}

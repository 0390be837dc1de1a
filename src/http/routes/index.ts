import type { FastifyReply, FastifyRequest } from 'fastify';
import Negotiator from 'negotiator';
import type { AppInstance } from '../app-types.js';
import { indexHtml, indexSchema, indexView } from '../views/index-page.js';

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

/** What `GET /` answers in, JSON first: the answer to an Accept that prefers neither. */
const INDEX_TYPES = ['application/json', 'text/html'];

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
        produces: INDEX_TYPES,
        response: { 200: indexSchema },
      },
    },
    // Typed plainly: the HTML page is not the JSON schema's type.
    async (request: FastifyRequest, reply: FastifyReply) => {
      const links = LINKS.filter((l) => app.hasRoute({ method: 'GET', url: l.href })).map((l) => ({
        ...l,
      }));
      const view = indexView(version, links, registry.list());
      if (new Negotiator(request.raw).mediaType(INDEX_TYPES) === 'text/html')
        return reply.type('text/html; charset=utf-8').send(indexHtml(view));
      return view;
    },
  );
}

/**
 * `GET /`'s answer: where a newcomer goes from here (the documentation, the model list, each
 * model's predict and infer URLs), as JSON or as a small HTML page for a browser.
 */
import { z } from 'zod';
import type { ModelSnapshot } from '../../service/index.js';
import { escapeMarkup } from './escape-markup.js';

export const indexSchema = z
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
export type IndexView = z.output<typeof indexSchema>;

/** The index of a server at `version` with these entry points and models. */
export function indexView(
  version: string,
  links: IndexView['links'],
  models: readonly Pick<ModelSnapshot, 'name' | 'active'>[],
): IndexView {
  return {
    name: 'normserve',
    version,
    links,
    models: models.map((m) => ({
      name: m.name,
      active_version: m.active ?? null,
      predict: `/v1/models/${m.name}:predict`,
      infer: `/v2/models/${m.name}/infer`,
    })),
  };
}

/** The index as a page of links, every text escaped. */
export function indexHtml(view: IndexView): string {
  const item = (href: string, text: string) =>
    `<li><a href="${escapeMarkup(href)}">${escapeMarkup(text)}</a></li>`;
  const links = view.links.map((l) => item(l.href, `${l.title} — ${l.href}`)).join('');
  const models = view.models
    .map((m) =>
      item(
        `/v1/models/${m.name}`,
        `${m.name} (active version ${m.active_version ?? 'none'}): POST ${m.predict}, POST ${m.infer}`,
      ),
    )
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>normserve</title></head><body><h1>normserve ${escapeMarkup(view.version)}</h1><ul>${links}</ul><h2>Models</h2><ul>${models}</ul></body></html>`;
}

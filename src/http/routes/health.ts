import { z } from 'zod';
import { serverReadiness } from '../../service/index.js';
import type { AppInstance } from '../app-types.js';
import { NOT_READY_DESCRIPTION, notReadyReason } from '../schemas/common.js';
import { activeRecordStatus } from '../views/model-status.js';

const modelReadiness = z.object({
  name: z.string(),
  ready: z.boolean(),
  active_version: z.number().int().nullable(),
  active_record_error: z.string().optional().meta({
    description:
      "Why the model's active-version.json cannot be followed; the version served before stays served (ready), none at start-up (not ready); a record naming a deleted version serves the highest available one",
  }),
});

export async function healthRoutes(app: AppInstance): Promise<void> {
  const { registry, phase } = app.deps;
  app.get(
    '/healthz',
    {
      config: { access: 'public', anyQuery: true },
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process answers',
        response: {
          200: z.object({ status: z.literal('ok') }).meta({ examples: [{ status: 'ok' }] }),
        },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  const readiness = z.object({
    status: z.enum(['ready', 'not_ready']),
    reason: notReadyReason,
    models: z.array(modelReadiness),
  });
  app.get(
    '/readyz',
    {
      config: { access: 'public', anyQuery: true },
      schema: {
        tags: ['health'],
        summary:
          "Readiness: a model has an AVAILABLE version, and so does every model of the server's start or that has served since (STRICT_READINESS=off: one is enough); a model added later that never loaded does not count",
        response: {
          200: readiness.meta({
            examples: [
              { status: 'ready', models: [{ name: 'digits', ready: true, active_version: 1 }] },
            ],
          }),
          503: readiness.meta({
            description: NOT_READY_DESCRIPTION,
            examples: [
              {
                status: 'not_ready',
                models: [{ name: 'digits', ready: false, active_version: null }],
              },
            ],
          }),
        },
      },
    },
    async (_request, reply) => {
      const models = registry.list().map((m) => ({
        name: m.name,
        ready: m.active !== undefined,
        active_version: m.active ?? null,
        ...activeRecordStatus(m),
      }));
      const { ready, reason } = serverReadiness(phase, registry);
      return reply
        .code(ready ? 200 : 503)
        .send({ status: ready ? 'ready' : 'not_ready', ...(reason ? { reason } : {}), models });
    },
  );
}

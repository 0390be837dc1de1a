/**
 * What a running server makes of a repository changed under it (docs/model-format.md#model-repository,
 * README's /readyz and STRICT_READINESS): a model directory that appears later and never loads is
 * reported but leaves the server ready; a deleted active version falls back to the highest
 * available one; normserve_model_active_version says what is served. Each poll is one
 * `registry.refresh()` (what MODEL_POLL_INTERVAL_MS runs), so nothing here waits on a clock.
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../src/service/index.js';
import { ADMIN, expectProblem, predictRows } from '../helpers/admin.js';
import { makeRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows } from '../helpers/digits.js';
import { TEST_ENGINE } from '../helpers/engine.js';

const rows = digitsTestRows().x.slice(0, 8);
const made: string[] = [];
afterAll(() => {
  for (const root of made) rmSync(root, { recursive: true, force: true });
});

function repository(models: Parameters<typeof makeRepository>[0]): string {
  const root = makeRepository(models);
  made.push(root);
  return root;
}

async function metric(t: TestApp, name: string, model: string): Promise<string | undefined> {
  const body = (await t.app.inject({ url: '/metrics' })).body;
  return new RegExp(`^${name}\\{model="${model}"\\} (\\S+)$`, 'm').exec(body)?.[1];
}

interface ReadyzBody {
  status: string;
  models: {
    name: string;
    ready: boolean;
    active_version: number | null;
    active_record_error?: string;
  }[];
}

describe('a model directory that appears while the server runs', () => {
  it('that never loads is FAILED and not ready itself, but leaves the server ready (STRICT_READINESS=on)', async () => {
    const root = repository(['digits', 'digits-torch']);
    const t = await makeTestApp({ repository: root });
    try {
      expect((await t.app.inject({ url: '/readyz' })).statusCode).toBe(200);
      // The platform engineer's copy: config.json still names "digits" (a name mismatch).
      cpSync(join(root, 'digits'), join(root, 'digitsnew'), { recursive: true });
      await t.registry.refresh();

      const ready = await t.app.inject({ url: '/readyz' });
      expect(ready.statusCode, ready.body).toBe(200);
      expect(ready.json<ReadyzBody>().models).toEqual([
        { name: 'digits', ready: true, active_version: 1 },
        { name: 'digits-torch', ready: true, active_version: 1 },
        { name: 'digitsnew', ready: false, active_version: null },
      ]);
      expect((await t.app.inject({ url: '/v2/health/ready' })).statusCode).toBe(200);
      expect((await t.app.inject({ url: '/v2/models/digitsnew/ready' })).statusCode).toBe(503);
      const listing = (await t.app.inject({ url: '/v1/models' })).json<{
        models: { name: string; state: string; versions: { state: string }[] }[];
      }>();
      const late = listing.models.find((m) => m.name === 'digitsnew');
      expect(late).toMatchObject({ state: 'UNAVAILABLE', versions: [{ state: 'FAILED' }] });
      expect(await metric(t, 'normserve_model_ready', 'digitsnew')).toBe('0');
      expect(await metric(t, 'normserve_model_ready', 'digits')).toBe('1');
      expect(await metric(t, 'normserve_model_active_version', 'digitsnew')).toBeUndefined();
      expect((await predictRows(t.app, 'digits', rows)).model_version).toBe(1);

      // A server started with the broken directory is not ready: it is one of its models.
      const started = await makeTestApp({ repository: root });
      try {
        expect((await started.app.inject({ url: '/readyz' })).statusCode).toBe(503);
        expect((await started.app.inject({ url: '/v2/health/ready' })).statusCode).toBe(503);
      } finally {
        await started.close();
      }

      // Repaired, it serves; once it has served, it counts: losing every version is not ready.
      const config = join(root, 'digitsnew', '1', 'config.json');
      writeFileSync(
        config,
        JSON.stringify({ ...JSON.parse(readFileSync(config, 'utf8')), name: 'digitsnew' }),
      );
      await t.registry.refresh();
      expect((await predictRows(t.app, 'digitsnew', rows)).model_version).toBe(1);
      rmSync(join(root, 'digitsnew', '1'), { recursive: true });
      await t.registry.refresh();
      const lost = await t.app.inject({ url: '/readyz' });
      expect(lost.statusCode, lost.body).toBe(503);
      expect(lost.json<ReadyzBody>().models[2]).toEqual({
        name: 'digitsnew',
        ready: false,
        active_version: null,
      });
      // A model whose directory is removed is unloaded on purpose: it no longer counts.
      rmSync(join(root, 'digitsnew'), { recursive: true });
      await t.registry.refresh();
      expect((await t.app.inject({ url: '/readyz' })).statusCode).toBe(200);
    } finally {
      await t.close();
    }
  });

  it('a model the server started with that loses every version makes it not ready', async () => {
    const root = repository(['digits', 'digits-torch']);
    const t = await makeTestApp({ repository: root });
    try {
      rmSync(join(root, 'digits', '1'), { recursive: true });
      await t.registry.refresh();
      const ready = await t.app.inject({ url: '/readyz' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json<ReadyzBody>().models[0]).toEqual({
        name: 'digits',
        ready: false,
        active_version: null,
      });
      expect((await t.app.inject({ url: '/v2/health/ready' })).statusCode).toBe(503);
      expect(await metric(t, 'normserve_model_ready', 'digits')).toBe('0');
      expect(await metric(t, 'normserve_model_active_version', 'digits')).toBeUndefined();
    } finally {
      await t.close();
    }
  });
});

describe('a deleted active version directory', () => {
  /** digits 1, 2 and 3 (byte copies), the record naming 2. */
  function threeVersionsActive2(): string {
    const root = repository(['digits']);
    for (const v of ['2', '3'])
      cpSync(join(root, 'digits', '1'), join(root, 'digits', v), { recursive: true });
    writeFileSync(
      join(root, 'digits', 'active-version.json'),
      JSON.stringify({ version: 2, updated_at: new Date().toISOString() }),
    );
    return root;
  }
  const fellBack =
    /^digits\/active-version\.json names version 2, which does not exist; serving version 3, the highest available, until a version is activated$/;

  it('falls back to the highest available version, said in status, /readyz and /metrics', async () => {
    const root = threeVersionsActive2();
    const t = await makeTestApp({ repository: root });
    try {
      expect((await predictRows(t.app, 'digits', rows)).model_version).toBe(2);
      expect(await metric(t, 'normserve_model_active_version', 'digits')).toBe('2');
      rmSync(join(root, 'digits', '2'), { recursive: true });
      await t.registry.refresh();
      await t.registry.refresh(); // the next poll keeps it, and says the same

      expect((await predictRows(t.app, 'digits', rows)).model_version).toBe(3);
      const status = (await t.app.inject({ url: '/v1/models/digits' })).json<{
        active_record_error?: string;
        model_version_status: { version: string; active?: boolean }[];
      }>();
      expect(status.active_record_error).toMatch(fellBack);
      expect(status.model_version_status.find((v) => v.active)?.version).toBe('3');
      const ready = await t.app.inject({ url: '/readyz' });
      expect(ready.statusCode).toBe(200);
      expect(ready.json<ReadyzBody>().models[0]).toMatchObject({
        ready: true,
        active_version: 3,
      });
      expect(ready.json<ReadyzBody>().models[0]!.active_record_error).toMatch(fellBack);
      expect(await metric(t, 'normserve_model_active_version', 'digits')).toBe('3');
      expect(await metric(t, 'normserve_model_active_record_invalid', 'digits')).toBe('1');

      // A restarted replica reads the same repository the same way.
      const restarted = await makeTestApp({ repository: root });
      try {
        expect((await predictRows(restarted.app, 'digits', rows)).model_version).toBe(3);
        expect((await restarted.app.inject({ url: '/readyz' })).statusCode).toBe(200);
      } finally {
        await restarted.close();
      }

      // An activation rewrites the record: nothing left to report.
      const activate = await t.app.inject({
        method: 'POST',
        url: '/v1/models/digits/versions/1:activate',
        headers: ADMIN,
      });
      expect(activate.statusCode, activate.body).toBe(200);
      expect((await predictRows(t.app, 'digits', rows)).model_version).toBe(1);
      expect((await t.app.inject({ url: '/v1/models/digits' })).json()).not.toHaveProperty(
        'active_record_error',
      );
      expect(await metric(t, 'normserve_model_active_record_invalid', 'digits')).toBe('0');
    } finally {
      await t.close();
    }
  });

  it('with no other version available, serves nothing: 503, not ready, no active-version series', async () => {
    const root = threeVersionsActive2();
    const t = await makeTestApp({ repository: root });
    try {
      for (const v of ['1', '2', '3']) rmSync(join(root, 'digits', v), { recursive: true });
      await t.registry.refresh();
      const refused = await t.app.inject({
        method: 'POST',
        url: '/v1/models/digits:predict',
        payload: { instances: rows },
      });
      expect(expectProblem(refused, 503, 'MODEL_UNAVAILABLE').detail).toMatch(
        /names version 2, which does not exist; no other version is available/,
      );
      const ready = await t.app.inject({ url: '/readyz' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json<ReadyzBody>().models[0]).toMatchObject({
        ready: false,
        active_version: null,
      });
      expect(await metric(t, 'normserve_model_active_version', 'digits')).toBeUndefined();
      expect(await metric(t, 'normserve_model_ready', 'digits')).toBe('0');
    } finally {
      await t.close();
    }
  });
});

describe('the warnings an operator reads', () => {
  it('one line when a late model serves nothing, one when a deleted active version falls back', async () => {
    const root = repository(['digits']);
    cpSync(join(root, 'digits', '1'), join(root, 'digits', '2'), { recursive: true });
    writeFileSync(join(root, 'digits', 'active-version.json'), JSON.stringify({ version: 1 }));
    const warnings: { obj: Record<string, unknown>; msg: string | undefined }[] = [];
    const registry = new ModelRegistry(root, {
      maxBatchSize: 64,
      engine: TEST_ENGINE,
      log: {
        info() {},
        error() {},
        warn: (obj, msg) => warnings.push({ obj: obj as Record<string, unknown>, msg }),
      },
    });
    try {
      await registry.refresh();
      expect(warnings).toEqual([]);
      cpSync(join(root, 'digits'), join(root, 'digitsnew'), { recursive: true });
      rmSync(join(root, 'digitsnew', 'active-version.json')); // its own warning otherwise
      await registry.refresh();
      await registry.refresh(); // the next poll says nothing new
      expect(warnings).toEqual([
        {
          obj: { model: 'digitsnew', versions: expect.stringMatching(/^1: FAILED .*2: FAILED/) },
          msg: 'model serves no version; it does not count for readiness until one has been available',
        },
      ]);
      expect(registry.isReady()).toBe(true);
      expect(registry.countsForReadiness('digitsnew')).toBe(false);
      expect(registry.countsForReadiness('digits')).toBe(true);

      warnings.length = 0;
      rmSync(join(root, 'digits', '1'), { recursive: true });
      await registry.refresh();
      await registry.refresh();
      expect(warnings).toEqual([
        {
          obj: {
            model: 'digits',
            problem: expect.stringMatching(
              /names version 1, which does not exist; serving version 2/,
            ),
            serving: 2,
          },
          msg: 'active-version record names a deleted version; serving the highest available version',
        },
      ]);
      expect(registry.get('digits').active).toBe(2);
    } finally {
      registry.close();
    }
  });
});

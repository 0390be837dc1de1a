/**
 * Two processes' view of one repository (two apps on one directory, no polling): what one
 * publishes, activates or deletes must never be undone or shadowed by the other.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, ADMIN_TOKEN } from '../helpers/admin.js';
import { makeRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';

const night = nightShift(digitsTestRows().x).slice(0, 40);
let repository: string;
let a: TestApp;
let b: TestApp;

beforeAll(async () => {
  repository = makeRepository(['digits']);
  a = await makeTestApp({ repository, env: { ADMIN_TOKEN } });
  b = await makeTestApp({ repository, env: { ADMIN_TOKEN } });
});
afterAll(async () => {
  await a.close();
  await b.close();
  rmSync(repository, { recursive: true, force: true });
});

const recalibrate = (t: TestApp, url = '/v1/models/digits:recalibrate') =>
  t.app.inject({ method: 'POST', url, headers: ADMIN, payload: { instances: night } });

describe('one repository, two processes', () => {
  it('a recalibration starts from the version active in the repository, not from a stale view', async () => {
    const first = await recalibrate(a);
    expect(first.statusCode, first.body).toBe(201);
    expect(first.json().version).toBe(2);
    // b has not polled: it still believes version 1 is active.
    expect(b.registry.get('digits').active).toBe(1);
    const second = await recalibrate(b);
    expect(second.statusCode, second.body).toBe(201);
    expect(second.json()).toMatchObject({ version: 3, parent_version: 2 });
  });

  it('query options apply to a JSON body that does not set them (mode, activate)', async () => {
    const res = await recalibrate(
      a,
      '/v1/models/digits:recalibrate?mode=running&batch_size=8&activate=false',
    );
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({ mode: 'running', activated: false, batches: 5 });
    expect(a.registry.get('digits').active).toBe(3);
  });

  it('a deleted version number is never published again', async () => {
    const newest = Math.max(...a.registry.get('digits').versions.keys());
    const del = await a.app.inject({
      method: 'DELETE',
      url: `/v1/models/digits/versions/${newest}`,
      headers: ADMIN,
    });
    expect(del.statusCode, del.body).toBe(200);
    expect(existsSync(join(repository, 'digits', `.deleted-${newest}`))).toBe(true);
    const next = await recalibrate(a);
    expect(next.statusCode, next.body).toBe(201);
    expect(next.json().version).toBe(newest + 1);
  });

  it("another process's job record is read through its schema: a damaged one is no job (404), never a 500", async () => {
    const first = await a.app.inject({
      method: 'POST',
      url: '/v1/models/digits:recalibrate?activate=false',
      headers: { ...ADMIN, prefer: 'respond-async' },
      payload: { instances: night },
    });
    expect(first.statusCode, first.body).toBe(202);
    const id = first.json<{ job_id: string }>().job_id;
    const record = join(repository, '.jobs', `${id}.json`);
    const seen = async () => {
      for (let i = 0; i < 500; i++) {
        const res = await b.app.inject({ url: `/v1/jobs/${id}`, headers: ADMIN });
        if (res.statusCode === 200 && res.json<{ state: string }>().state !== 'running') return res;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error('the job never finished');
    };
    expect((await seen()).json()).toMatchObject({ id, kind: 'recalibration', state: 'succeeded' });
    for (const damaged of ['{"id":', '{"id":"x","state":"done"}', '[]', 'x'.repeat(2_000_000)]) {
      writeFileSync(record, damaged);
      const res = await b.app.inject({ url: `/v1/jobs/${id}`, headers: ADMIN });
      expect(res.statusCode, `${damaged.slice(0, 30)}: ${res.body}`).toBe(404);
      expect(res.json()).toMatchObject({ code: 'JOB_NOT_FOUND' });
    }
  });
});

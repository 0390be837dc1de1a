/**
 * GET /v1/jobs/{id} answers records other processes wrote to `.jobs/` (workers, replicas, other
 * builds): a record is parsed, result included, before it is answered under the documented job
 * type. A record whose result is no recalibration outcome is answered as a failed job naming what
 * is wrong (REPOSITORY_ERROR), not passed on as it is, nor turned into a 500.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from '../../src/service/index.js';
import { ADMIN } from '../helpers/admin.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';

const ID = '00000000-0000-4000-8000-00000000000a';
const BROKEN = '00000000-0000-4000-8000-00000000000b';

const outcome = {
  model: 'digits',
  version: 2,
  parent_version: 1,
  mode: 'exact',
  samples: 360,
  activated: true,
  duration_ms: 41.2,
  data_sha256: 'f'.repeat(64),
  layers: [{ index: 1, path: '1', features: 128, mean_shift: 1.93, std_ratio: 0.41 }],
  job_id: ID,
};

/** A finished record as another process wrote it. */
const record = (id: string, result: unknown) => ({
  id,
  kind: 'recalibration',
  model: 'digits',
  state: 'succeeded',
  phase: 'done',
  progress: { rows: 360, total_rows: 360 },
  created_at: '2026-12-02T11:00:00.000Z',
  updated_at: '2026-12-02T11:00:01.000Z',
  result,
});

let t: TestApp;
beforeAll(async () => {
  t = await makeTestApp();
  const jobs = join(t.repository, '.jobs');
  mkdirSync(jobs, { recursive: true });
  writeFileSync(join(jobs, `${ID}.json`), JSON.stringify(record(ID, outcome)));
  // Another build's result, or a damaged one: the version a string, the layers gone.
  const { layers: _gone, ...damaged } = outcome;
  writeFileSync(
    join(jobs, `${BROKEN}.json`),
    JSON.stringify(record(BROKEN, { ...damaged, version: '2' })),
  );
});
afterAll(() => t.close());

const getJob = (id: string) =>
  t.app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: ADMIN });

describe('a job record another process wrote', () => {
  it('whose result is a recalibration outcome is answered with it', async () => {
    const res = await getJob(ID);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<Job>()).toMatchObject({ id: ID, state: 'succeeded', result: outcome });
  });

  it('whose result is not is answered as a failed job with REPOSITORY_ERROR naming each place, without the result', async () => {
    const res = await getJob(BROKEN);
    expect(res.statusCode, res.body).toBe(200);
    const job = res.json<Job>();
    expect(job).toMatchObject({ id: BROKEN, model: 'digits', state: 'failed', phase: 'failed' });
    expect(job.result).toBeUndefined();
    expect(job.error?.code).toBe('REPOSITORY_ERROR');
    expect(job.error?.message).toMatch(
      new RegExp(
        `^\\.jobs/${BROKEN}\\.json records the job as succeeded but its result is not a recalibration outcome \\(result\\.version: .+; result\\.layers: .+\\); GET /v1/models/digits lists the versions it may have published$`,
      ),
    );
    expect(job.error?.errors?.map((e) => e.path)).toEqual(['result.version', 'result.layers']);
  });
});

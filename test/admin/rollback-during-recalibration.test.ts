/**
 * An operator's activation (rollback) while a recalibration runs is never undone by it: the job
 * publishes its version and activates it only if its parent is still the active version at
 * publish time (decided against active-version.json under the record's lock). Deleting the parent
 * meanwhile is allowed (it has to be inactive first), and the job then publishes without
 * activating, saying so. Jobs are held mid-way by a streamed upload the test writes itself.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  type LoggedApp,
  makeLoggedApp,
  ndjsonBody,
  predictRows,
  versionConfig,
  waitFor,
} from '../helpers/admin.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { streamedUpload } from '../helpers/streamed-upload.js';

const night = nightShift(digitsTestRows().x);
const RECALIBRATE = '/v1/models/digits:recalibrate';
/** A job answers 202 once its upload is received; its result is then polled. */
const ASYNC_NDJSON = {
  ...ADMIN,
  'content-type': 'application/x-ndjson',
  prefer: 'respond-async',
};

interface NotActivated {
  code: string;
  message: string;
  active_version: number | null;
}
interface Outcome {
  version: number;
  parent_version: number;
  activated: boolean;
  job_id: string;
  not_activated?: NotActivated;
}
interface JobBody {
  id: string;
  state: 'running' | 'succeeded' | 'failed';
  result?: Outcome;
  error?: { code: string; message: string };
}

let t: LoggedApp;
let port = 0;
beforeAll(async () => {
  t = await makeLoggedApp({ env: { ADMIN_RATE_LIMIT_PER_MINUTE: '100000' }, level: 'info' });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  port = (t.app.server.address() as AddressInfo).port;
});
afterAll(async () => {
  await t.close();
});

const activeRecord = () =>
  JSON.parse(readFileSync(join(t.repository, 'digits', 'active-version.json'), 'utf8')) as {
    version: number;
    note?: string;
  };

/**
 * Starts a recalibration job whose upload the test holds open: the first rows are sent, and the
 * job id is read from the model's lock once the job holds it. `finish` sends the rest and returns
 * the job's settled record (polled, generously bounded).
 */
async function heldJob(): Promise<{ jobId: string; finish: () => Promise<JobBody> }> {
  const { req, response } = streamedUpload(port, RECALIBRATE, ASYNC_NDJSON);
  req.write(ndjsonBody(night.slice(0, 10)));
  const lock = join(t.repository, 'digits', '.recalibration.lock');
  const jobId = await waitFor(() => {
    try {
      return (JSON.parse(readFileSync(lock, 'utf8')) as { owner: string }).owner;
    } catch {
      return undefined;
    }
  }, 'the upload to take the model lock');
  return {
    jobId,
    finish: async () => {
      req.end(ndjsonBody(night.slice(10)));
      const accepted = await response;
      expect(accepted.status, accepted.body).toBe(202);
      expect((JSON.parse(accepted.body) as { job_id: string }).job_id).toBe(jobId);
      return waitFor(
        async () => {
          const job = (
            await t.app.inject({ method: 'GET', url: `/v1/jobs/${jobId}`, headers: ADMIN })
          ).json<JobBody>();
          return job.state === 'running' ? undefined : job;
        },
        'the job to settle',
        120_000,
      );
    },
  };
}

const activate = (version: number, note: string) =>
  t.app.inject({
    method: 'POST',
    url: `/v1/models/digits/versions/${version}:activate`,
    headers: ADMIN,
    payload: { note },
  });

const warnings = () =>
  t.logs
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter(
      (l) =>
        l.msg ===
        'recalibration published without activating: the active version changed while it ran',
    );

describe('a recalibration job and the operator’s activations', () => {
  it('nobody interferes: the job activates its version (v2, parent 1)', async () => {
    const job = await heldJob();
    const settled = await job.finish();
    expect(settled.state, JSON.stringify(settled.error)).toBe('succeeded');
    expect(settled.result).toMatchObject({ version: 2, parent_version: 1, activated: true });
    expect(settled.result!.not_activated).toBeUndefined();
    expect(activeRecord().version).toBe(2);
    expect(t.registry.get('digits').active).toBe(2);
    expect(warnings()).toHaveLength(0);
  });

  it('the reviewer’s scenario: rollback to v1 and delete v2 during the job → v3 published, not active, reason given', async () => {
    const job = await heldJob(); // parent: version 2, active
    const rollback = await activate(1, 'v2 is bad');
    expect(rollback.statusCode, rollback.body).toBe(200);
    // Deleting the job's parent is allowed: it is no longer active, and the job works on its own copy.
    const deleted = await t.app.inject({
      method: 'DELETE',
      url: '/v1/models/digits/versions/2',
      headers: ADMIN,
    });
    expect(deleted.statusCode, deleted.body).toBe(200);

    const settled = await job.finish();
    expect(settled.state, JSON.stringify(settled.error)).toBe('succeeded');
    expect(settled.result).toMatchObject({
      version: 3,
      parent_version: 2,
      activated: false,
      not_activated: { code: 'PARENT_DELETED', active_version: 1 },
    });
    expect(settled.result!.not_activated!.message).toMatch(
      /version 3 was published but not activated: it derives from version 2, which was deleted .* version 1 is active/,
    );
    // The rollback stands: on disk, in this process, in the answers.
    expect(activeRecord()).toMatchObject({ version: 1, note: 'v2 is bad' });
    expect(t.registry.get('digits').active).toBe(1);
    expect((await predictRows(t.app, 'digits', night.slice(0, 2))).model_version).toBe(1);
    // The work is not lost: version 3 is on disk, loadable, with its provenance naming version 2.
    expect(t.registry.get('digits').versions.get(3)?.state).toBe('AVAILABLE');
    expect(versionConfig(t.repository, 'digits', 3).provenance).toMatchObject({
      parent_version: 2,
    });
    const [warning] = warnings();
    expect(warning).toMatchObject({
      level: 40,
      model: 'digits',
      job: job.jobId,
      parent: 2,
      active: 1,
      version: 3,
      code: 'PARENT_DELETED',
    });
  });

  it('another version activated during the job (parent kept) → published, not active: PARENT_NOT_ACTIVE; activating it by hand then works', async () => {
    const job = await heldJob(); // parent: version 1
    const forward = await activate(3, 'try the recalibrated one');
    expect(forward.statusCode, forward.body).toBe(200);
    const settled = await job.finish();
    expect(settled.state, JSON.stringify(settled.error)).toBe('succeeded');
    expect(settled.result).toMatchObject({
      version: 4,
      parent_version: 1,
      activated: false,
      not_activated: { code: 'PARENT_NOT_ACTIVE', active_version: 3 },
    });
    expect(settled.result!.not_activated!.message).toMatch(
      /derives from version 1, which is no longer the active version .* version 3 is active/,
    );
    expect(activeRecord().version).toBe(3);
    expect(t.registry.get('digits').active).toBe(3);
    expect(warnings().at(-1)).toMatchObject({ job: job.jobId, parent: 1, active: 3 });

    const byHand = await activate(4, 'the job’s version after all');
    expect(byHand.statusCode, byHand.body).toBe(200);
    expect(t.registry.get('digits').active).toBe(4);
  });

  it('the parent activated again before publishing (away and back) → the job activates: what counts is the active version at publish time', async () => {
    const job = await heldJob(); // parent: version 4
    expect((await activate(1, 'away')).statusCode).toBe(200);
    expect((await activate(4, 'and back')).statusCode).toBe(200);
    const settled = await job.finish();
    expect(settled.result).toMatchObject({ version: 5, parent_version: 4, activated: true });
    expect(activeRecord().version).toBe(5);
    expect(t.registry.get('digits').active).toBe(5);
  });
  it('the rollback comes from another process sharing the repository, unseen by the job’s process → not activated', async () => {
    // A second server on the same repository (another replica; no polling, no cluster hook): the
    // job's process learns of its activation only from active-version.json.
    const other = await makeLoggedApp({
      repository: t.repository,
      env: { ADMIN_RATE_LIMIT_PER_MINUTE: '100000' },
      level: 'info',
    });
    try {
      const job = await heldJob(); // parent: version 5
      const rollback = await other.app.inject({
        method: 'POST',
        url: '/v1/models/digits/versions/1:activate',
        headers: ADMIN,
        payload: { note: 'rolled back on the other replica' },
      });
      expect(rollback.statusCode, rollback.body).toBe(200);
      expect(t.registry.get('digits').active).toBe(5); // this process has not seen it
      const settled = await job.finish();
      expect(settled.result).toMatchObject({
        version: 6,
        parent_version: 5,
        activated: false,
        not_activated: { code: 'PARENT_NOT_ACTIVE', active_version: 1 },
      });
      expect(activeRecord()).toMatchObject({
        version: 1,
        note: 'rolled back on the other replica',
      });
      expect(t.registry.get('digits').active).toBe(1);
    } finally {
      await other.close();
    }
  });
});

/**
 * The active-version record's lock kept by another writer beyond the wait (a live, stuck writer:
 * here this process, holding it under another owner). A recalibration that has published its
 * version does not fail for it: the job succeeds with the version published, not activated,
 * `not_activated.code` ACTIVE_RECORD_BUSY, and a warning naming the version and the call that
 * activates it. Before anything is published (the record pinned first), and for an operator's
 * `:activate`, it is a 503 ACTIVE_RECORD_BUSY problem with Retry-After, nothing written. The wait
 * is shortened (activeRecordLockWaitMs); nothing here depends on how long anything takes.
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ACTIVE_RECORD_LOCK_FILE } from '../../src/repository/active-record-lock.js';
import { acquireModelLock, type HeldLock } from '../../src/repository/index.js';
import { ADMIN, type LoggedApp, makeLoggedApp } from '../helpers/admin.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { clearFsFaults, injectFsFaults } from '../helpers/fs-faults.mjs';

const night = nightShift(digitsTestRows().x);
/** Short enough for a test, long enough that the lock is seen held more than once. */
const LOCK_WAIT_MS = 50;

let t: LoggedApp | undefined;
let held: HeldLock | undefined;
afterEach(async () => {
  await held?.release();
  held = undefined;
  await t?.close();
  t = undefined;
});

const modelDir = () => join(t!.repository, 'digits');
const recordVersion = () =>
  (JSON.parse(readFileSync(join(modelDir(), 'active-version.json'), 'utf8')) as { version: number })
    .version;

/** Another writer takes the record's lock and keeps it. */
async function holdRecordLock(): Promise<HeldLock> {
  const lock = await acquireModelLock(modelDir(), 'stuck-writer', {
    file: ACTIVE_RECORD_LOCK_FILE,
  });
  if ('heldBy' in lock) throw new Error('the lock should be free');
  return lock;
}

const recalibrate = (payload: Record<string, unknown>) =>
  t!.app.inject({
    method: 'POST',
    url: '/v1/models/digits:recalibrate',
    headers: ADMIN,
    payload: { instances: night, ...payload },
  });

const activate = (version: number) =>
  t!.app.inject({
    method: 'POST',
    url: `/v1/models/digits/versions/${version}:activate`,
    headers: ADMIN,
    payload: { note: `operator: version ${version}` },
  });

const listedVersions = async () =>
  (
    (await t!.app.inject({ method: 'GET', url: '/v1/models/digits/versions' })).json() as {
      versions: { version: number; state: string; active: boolean }[];
    }
  ).versions;

const logged = (msg: string) =>
  t!.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg);

describe('a recalibration whose activation finds the record’s lock held', () => {
  it('succeeds with its version published, not activated (ACTIVE_RECORD_BUSY); the active version is unchanged; activating it later works', async () => {
    t = await makeLoggedApp({ level: 'info', activeRecordLockWaitMs: LOCK_WAIT_MS });
    // A record exists, so the job writes nothing before publishing.
    expect((await activate(1)).statusCode).toBe(200);
    held = await holdRecordLock();

    const res = await recalibrate({ note: 'night' });
    expect(res.statusCode, res.body).toBe(201);
    const outcome = res.json() as {
      version: number;
      activated: boolean;
      job_id: string;
      not_activated?: { code: string; message: string; active_version: number | null };
    };
    expect(outcome).toMatchObject({
      version: 2,
      parent_version: 1,
      activated: false,
      not_activated: { code: 'ACTIVE_RECORD_BUSY', active_version: 1 },
    });
    expect(outcome.not_activated!.message).toMatch(
      /^version 2 was published but not activated: digits\/\.active-version\.lock has been held since .* by process \d+ on .*; version 1 is active\. Activate version 2 to serve it \(POST \/v1\/models\/digits\/versions\/2:activate\)\.$/,
    );
    // The job record says the same: succeeded, not failed.
    const job = (
      await t.app.inject({ method: 'GET', url: `/v1/jobs/${outcome.job_id}`, headers: ADMIN })
    ).json() as { state: string; result?: unknown; error?: unknown };
    expect(job.state).toBe('succeeded');
    expect(job.error).toBeUndefined();
    expect(job.result).toMatchObject({
      version: 2,
      activated: false,
      not_activated: { code: 'ACTIVE_RECORD_BUSY', active_version: 1 },
    });

    // Published: on disk, listed and loaded; not active: the record and the served version are 1.
    expect(existsSync(join(modelDir(), '2', 'model.safetensors'))).toBe(true);
    expect(await listedVersions()).toEqual([
      expect.objectContaining({ version: 1, state: 'AVAILABLE', active: true }),
      expect.objectContaining({ version: 2, state: 'AVAILABLE', active: false }),
    ]);
    expect(recordVersion()).toBe(1);
    expect(t.registry.get('digits').active).toBe(1);

    const warnings = logged(
      'recalibration published without activating: the active-version record stayed locked',
    );
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      level: 40,
      model: 'digits',
      job: outcome.job_id,
      version: 2,
      parent: 1,
      active: 1,
      code: 'ACTIVE_RECORD_BUSY',
      activate: 'POST /v1/models/digits/versions/2:activate',
      reason: expect.stringContaining('digits/.active-version.lock has been held since'),
    });

    // Once the writer lets go, the operator's activation goes through.
    await held.release();
    held = undefined;
    const activated = await activate(2);
    expect(activated.statusCode, activated.body).toBe(200);
    expect(recordVersion()).toBe(2);
    expect(t.registry.get('digits').active).toBe(2);
  });

  it('on a model without a record (pinned before publishing) fails with 503 ACTIVE_RECORD_BUSY and publishes nothing', async () => {
    t = await makeLoggedApp({ level: 'info', activeRecordLockWaitMs: LOCK_WAIT_MS });
    expect(existsSync(join(modelDir(), 'active-version.json'))).toBe(false);
    held = await holdRecordLock();

    const res = await recalibrate({});
    expect(res.statusCode, res.body).toBe(503);
    expect(res.headers['retry-after']).toBe('30');
    expect(res.json()).toMatchObject({
      code: 'ACTIVE_RECORD_BUSY',
      type: 'urn:normserve:problem:active-record-busy',
      detail: expect.stringMatching(/, so no version was published/),
    });
    expect(existsSync(join(modelDir(), '2'))).toBe(false);
    expect((await listedVersions()).map((v) => v.version)).toEqual([1]);
    expect(existsSync(join(modelDir(), 'active-version.json'))).toBe(false);
  });
});

describe('an operator’s :activate while the record’s lock is held', () => {
  it('is 503 ACTIVE_RECORD_BUSY with Retry-After, and writes nothing', async () => {
    t = await makeLoggedApp({ level: 'info', activeRecordLockWaitMs: LOCK_WAIT_MS });
    const published = await recalibrate({ activate: false });
    expect(published.statusCode, published.body).toBe(201);
    expect(recordVersion()).toBe(1);
    held = await holdRecordLock();

    const res = await activate(2);
    expect(res.statusCode, res.body).toBe(503);
    expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(res.headers['retry-after']).toBe('30');
    expect(res.json()).toMatchObject({
      type: 'urn:normserve:problem:active-record-busy',
      title: 'The active-version record is locked by another writer',
      status: 503,
      code: 'ACTIVE_RECORD_BUSY',
      instance: '/v1/models/digits/versions/2:activate',
    });
    expect((res.json() as { detail: string }).detail).toMatch(
      /^digits\/\.active-version\.lock has been held since .* by process \d+ on .*, and was still held after waiting 0\.05 s; the active version was not written$/,
    );
    expect(recordVersion()).toBe(1);
    expect(t.registry.get('digits').active).toBe(1);
    // The holder's lock is left as it was: the refusal breaks nothing.
    expect(
      JSON.parse(readFileSync(join(modelDir(), ACTIVE_RECORD_LOCK_FILE), 'utf8')),
    ).toMatchObject({ owner: 'stuck-writer' });
  });

  it('held by a process whose lock file cannot be read now (EIO): the detail says so, no blank holder', async () => {
    t = await makeLoggedApp({ level: 'info', activeRecordLockWaitMs: LOCK_WAIT_MS });
    expect((await recalibrate({ activate: false })).statusCode).toBe(201);
    held = await holdRecordLock();
    injectFsFaults([{ op: 'open', suffix: ACTIVE_RECORD_LOCK_FILE, code: 'EIO' }]);
    try {
      const res = await activate(2);
      expect(res.statusCode, res.body).toBe(503);
      expect((res.json() as { detail: string }).detail).toBe(
        'digits/.active-version.lock has been held by a process whose lock file cannot be read now, and was still held after waiting 0.05 s; the active version was not written',
      );
    } finally {
      clearFsFaults();
    }
    expect(recordVersion()).toBe(1);
  });

  it('a lock left by a dead process is still broken at once, whatever the wait', async () => {
    t = await makeLoggedApp({ level: 'info', activeRecordLockWaitMs: 0 });
    expect((await recalibrate({ activate: false })).statusCode).toBe(201);
    writeFileSync(
      join(modelDir(), ACTIVE_RECORD_LOCK_FILE),
      JSON.stringify({
        owner: 'gone',
        host: 'elsewhere',
        pid: 1,
        acquired_at: '2026-01-01T00:00:00.000Z',
      }),
    );
    // Stale (no heartbeat for a long time): broken on the first attempt.
    const old = new Date('2026-01-01T00:00:00.000Z');
    utimesSync(join(modelDir(), ACTIVE_RECORD_LOCK_FILE), old, old);
    const res = await activate(2);
    expect(res.statusCode, res.body).toBe(200);
    expect(recordVersion()).toBe(2);
  });

  it('a directory where the lock goes: 500 REPOSITORY_ERROR naming it, not INTERNAL; kept, no debris', async () => {
    t = await makeLoggedApp({ level: 'info', activeRecordLockWaitMs: LOCK_WAIT_MS });
    expect((await recalibrate({ activate: false })).statusCode).toBe(201);
    mkdirSync(join(modelDir(), ACTIVE_RECORD_LOCK_FILE));
    const before = readdirSync(modelDir()).sort();
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await activate(2);
      expect(res.statusCode, res.body).toBe(500);
      expect(res.json()).toMatchObject({
        code: 'REPOSITORY_ERROR',
        detail:
          "digits/.active-version.lock is a directory where the model's lock file goes; nothing was written: remove the directory (normserve never makes one there) and try again",
      });
    }
    expect(readdirSync(modelDir()).sort()).toEqual(before);
    expect(recordVersion()).toBe(1);
  });
});

/**
 * A repository whose storage fails (a full device, a read-only file system, an fsync failing with
 * EIO; injected into fs/promises, test/helpers/fs-faults.mjs, so root fails the same): a write
 * that fails before its point of no return (the rename that publishes a version or the
 * active-version record) is STORAGE_FULL (507) or STORAGE_UNAVAILABLE (503), its detail naming
 * the operation, the errno and the path relative to the repository, nothing changed; one that
 * fails after it answers what did happen (published, active, deleted) with a `warning`, never a
 * failure a client would retry.
 */
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ADMIN,
  expectProblem,
  type LoggedApp,
  makeLoggedApp,
  predictRows,
} from '../helpers/admin.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { clearFsFaults, faultHits, injectFsFaults, READ_ONLY } from '../helpers/fs-faults.mjs';

const night = nightShift(digitsTestRows().x).slice(0, 200);

let t: LoggedApp | undefined;
afterEach(async () => {
  clearFsFaults();
  await t?.close();
  t = undefined;
});

const modelDir = () => join(t!.repository, 'digits');
const versionsOnDisk = () =>
  readdirSync(modelDir())
    .filter((n) => /^[0-9]+$/.test(n))
    .map(Number)
    .sort((a, b) => a - b);
const leftovers = () => readdirSync(modelDir()).filter((n) => n.startsWith('.tmp-'));
const recordVersion = () =>
  (JSON.parse(readFileSync(join(modelDir(), 'active-version.json'), 'utf8')) as { version: number })
    .version;

const activate = (version: number) =>
  t!.app.inject({
    method: 'POST',
    url: `/v1/models/digits/versions/${version}:activate`,
    headers: ADMIN,
    payload: {},
  });
const recalibrate = () =>
  t!.app.inject({
    method: 'POST',
    url: '/v1/models/digits:recalibrate',
    headers: ADMIN,
    payload: { instances: night },
  });
const remove = (version: number) =>
  t!.app.inject({ method: 'DELETE', url: `/v1/models/digits/versions/${version}`, headers: ADMIN });

/** An app on a repository holding digits/1, recorded active (so no pin is written first). */
async function appWithRecord(): Promise<LoggedApp> {
  t = await makeLoggedApp({ level: 'info' });
  expect((await activate(1)).statusCode).toBe(200);
  return t;
}

/** The detail names files relative to the repository, never by absolute path. */
function expectRelative(detail: string): void {
  expect(detail).not.toContain(t!.repository);
}

describe('a write that fails before its point of no return', () => {
  it('a read-only repository: :activate is 503 STORAGE_UNAVAILABLE naming the operation, EROFS and the lock file', async () => {
    await appWithRecord();
    injectFsFaults(READ_ONLY);
    const problem = expectProblem(await activate(1), 503, 'STORAGE_UNAVAILABLE');
    expect(problem.detail).toMatch(
      /^cannot record version 1 of "digits" as active: read-only file system \(EROFS\) creating digits\/\.tmp-[^ ]+-lock$/,
    );
    expect((problem as unknown as { errno: string }).errno).toBe('EROFS');
    expectRelative(problem.detail);
    expect(problem.title).toBe('The server’s storage cannot be used');
  });

  it('a full disk while writing the record’s lock file: :activate is 507 STORAGE_FULL naming the model’s directory', async () => {
    await appWithRecord();
    // A write on a file handle: Node's error names no file, so the directory written in is named.
    injectFsFaults([{ op: 'write', path: '-lock', code: 'ENOSPC' }]);
    const problem = expectProblem(await activate(1), 507, 'STORAGE_FULL');
    expect(problem.detail).toBe(
      'cannot record version 1 of "digits" as active: no space left on the device (ENOSPC) writing in digits',
    );
  });

  it('a read-only repository: :recalibrate is 503 STORAGE_UNAVAILABLE (its lock file), nothing published', async () => {
    await appWithRecord();
    injectFsFaults(READ_ONLY);
    const problem = expectProblem(await recalibrate(), 503, 'STORAGE_UNAVAILABLE');
    expect(problem.detail).toMatch(
      /^cannot start a recalibration of "digits" \(its lock file\): read-only file system \(EROFS\) creating digits\/\.tmp-/,
    );
    expectRelative(problem.detail);
    expect(versionsOnDisk()).toEqual([1]);
  });

  it('a full disk while writing the version: :recalibrate is 507 STORAGE_FULL naming the file, nothing published or left', async () => {
    await appWithRecord();
    injectFsFaults([{ op: 'write', path: 'model.safetensors', code: 'ENOSPC' }]);
    const problem = expectProblem(await recalibrate(), 507, 'STORAGE_FULL');
    expect(problem.detail).toMatch(
      /^cannot publish a version of "digits": no space left on the device \(ENOSPC\) writing digits\/\.tmp-[^/]+\/model\.safetensors$/,
    );
    expect(problem.title).toBe('The server’s storage is full');
    expectRelative(problem.detail);
    expect(versionsOnDisk()).toEqual([1]);
    expect(leftovers()).toEqual([]);
    expect(recordVersion()).toBe(1);
    // The job records the same error.
    const failed = t!.logs
      .map((l) => JSON.parse(l) as { msg?: string; error?: { code: string; message: string } })
      .find((l) => l.msg === 'recalibration failed');
    expect(failed?.error).toEqual({ code: 'STORAGE_FULL', message: problem.detail });
  });

  it('DELETE on a read-only repository is 503 STORAGE_UNAVAILABLE, the version kept', async () => {
    await appWithRecord();
    expect((await recalibrate()).json()).toMatchObject({ version: 2, activated: true });
    expect((await activate(1)).statusCode).toBe(200);
    injectFsFaults(READ_ONLY);
    const problem = expectProblem(await remove(2), 503, 'STORAGE_UNAVAILABLE');
    expect(problem.detail).toMatch(/^cannot delete version 2 of "digits": read-only file system/);
    expectRelative(problem.detail);
    clearFsFaults();
    expect(versionsOnDisk()).toEqual([1, 2]);
  });

  it('the record’s lock file cannot be written when a version is to be published and activated: published all the same, not activated (STORAGE_FULL)', async () => {
    await appWithRecord();
    injectFsFaults([{ op: 'write', path: '-lock', code: 'ENOSPC' }]);
    const { checkpoint } = t!.registry.resolve('digits');
    const result = await t!.registry.publish(checkpoint, true, 'night', { ifActive: 1 });
    expect(faultHits()).toEqual([1]);
    clearFsFaults();
    expect(result).toMatchObject({ version: 2, activated: false, activeFound: 1 });
    expect(result.activationBusy?.code).toBe('STORAGE_FULL');
    expect(versionsOnDisk()).toEqual([1, 2]);
    expect(recordVersion()).toBe(1);
  });

  it('DELETE on a full disk is 507 STORAGE_FULL naming the lock file it needs and the way around it, which works', async () => {
    await appWithRecord();
    expect((await recalibrate()).json()).toMatchObject({ version: 2, activated: true });
    expect((await activate(1)).statusCode).toBe(200);
    // A full device: a file with content cannot be written (the lock's); an empty one can.
    injectFsFaults([{ op: 'write', path: '-lock', code: 'ENOSPC' }]);
    const problem = expectProblem(await remove(2), 507, 'STORAGE_FULL');
    expect(problem.detail).toBe(
      'cannot delete version 2 of "digits": no space left on the device (ENOSPC) writing in digits; nothing was deleted. A deletion first takes digits/.active-version.lock (a file of a few bytes, which orders it against activations in every process sharing the repository) and writes an empty tombstone, digits/.deleted-2 (the number is never given out again). Free a few kilobytes another way and retry, or, in the repository, once digits/active-version.json does not name version 2 and nobody is activating it: mv digits/2 digits/.tmp-removed-2 && touch digits/.deleted-2 && rm -rf digits/.tmp-removed-2',
    );
    expect(versionsOnDisk()).toEqual([1, 2]);
    // The way around it, as the detail says (no write with content): the version is gone for
    // every reader at the rename, and its number stays retired.
    renameSync(join(modelDir(), '2'), join(modelDir(), '.tmp-removed-2'));
    writeFileSync(join(modelDir(), '.deleted-2'), '');
    rmSync(join(modelDir(), '.tmp-removed-2'), { recursive: true });
    clearFsFaults();
    await t!.registry.refreshModel('digits');
    expect([...t!.registry.get('digits').versions.keys()]).toEqual([1]);
    expect((await recalibrate()).json()).toMatchObject({ version: 3, activated: true });
  });
});

describe('a write that fails after its point of no return says what happened', () => {
  it('the model directory not synced after the rename that publishes: 201, version 2 published and active, with a warning', async () => {
    await appWithRecord();
    // The third fsync of the model directory is the one after the version's rename (the first
    // two: after the pin over the parent's record, and after the intent written into it).
    injectFsFaults([{ op: 'fsync', suffix: '/digits', code: 'EIO', skip: 2, times: 1 }]);
    const res = await recalibrate();
    expect(faultHits()).toEqual([1]);
    expect(res.statusCode, res.body).toBe(201);
    const outcome = res.json<{
      version: number;
      activated: boolean;
      warning: { code: string; errno: string; message: string };
    }>();
    expect(outcome).toMatchObject({ version: 2, activated: true });
    expect(outcome.warning).toEqual({
      code: 'STORAGE_UNAVAILABLE',
      errno: 'EIO',
      message:
        'version 2 of "digits" was published and is active, but digits could not be synced after the rename: input/output error (EIO); a crash of the machine may still undo it',
    });
    expect(versionsOnDisk()).toEqual([1, 2]);
    expect(recordVersion()).toBe(2);
    expect((await predictRows(t!.app, 'digits', night.slice(0, 1))).model_version).toBe(2);
  });

  for (const [what, skip] of [
    ['the pin over the parent’s record', 0],
    ['the intent written into that pin', 1],
  ] as const)
    it(`${what} not synced: 201, version 2 published and active, no warning (a crash that loses it leaves the parent’s record)`, async () => {
      await appWithRecord();
      injectFsFaults([{ op: 'fsync', suffix: '/digits', code: 'EIO', skip, times: 1 }]);
      const res = await recalibrate();
      expect(faultHits()).toEqual([1]);
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json()).toMatchObject({ version: 2, activated: true });
      expect(res.json()).not.toHaveProperty('warning');
      expect(recordVersion()).toBe(2);
    });

  it('the pin over the parent’s record refused by a full disk: 201, published and activated as before such pins', async () => {
    await appWithRecord();
    injectFsFaults([{ op: 'write', path: 'active-version.json', code: 'ENOSPC', times: 1 }]);
    const res = await recalibrate();
    expect(faultHits()).toEqual([1]);
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({ version: 2, activated: true });
    expect(recordVersion()).toBe(2);
  });

  it('the record not synced after its rename: 201, version 2 active, with a warning', async () => {
    await appWithRecord();
    // The fourth: after the active-version record's rename.
    injectFsFaults([{ op: 'fsync', suffix: '/digits', code: 'EIO', skip: 3, times: 1 }]);
    const res = await recalibrate();
    expect(faultHits()).toEqual([1]);
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({
      version: 2,
      activated: true,
      warning: {
        code: 'STORAGE_UNAVAILABLE',
        message: expect.stringMatching(/^version 2 of "digits" was published and is active, but/),
      },
    });
    expect(recordVersion()).toBe(2);
  });

  it('the record cannot be written after publishing (disk full): 201, published, not activated (STORAGE_FULL)', async () => {
    await appWithRecord();
    injectFsFaults([{ op: 'write', path: 'active-version.json', code: 'ENOSPC' }]);
    const res = await recalibrate();
    expect(res.statusCode, res.body).toBe(201);
    const outcome = res.json<{
      version: number;
      activated: boolean;
      not_activated: { code: string; message: string; active_version: number | null };
    }>();
    expect(outcome).toMatchObject({ version: 2, activated: false });
    expect(outcome.not_activated.code).toBe('STORAGE_FULL');
    expect(outcome.not_activated.active_version).toBe(1);
    expect(outcome.not_activated.message).toMatch(
      /^version 2 was published but not activated: cannot record version 2 of "digits" as active: no space left on the device \(ENOSPC\) writing digits\/\.tmp-[^ ]+-active-version\.json; version 1 is active\. Activate version 2 to serve it/,
    );
    expect(versionsOnDisk()).toEqual([1, 2]);
    expect(recordVersion()).toBe(1);
  });

  it(':activate whose record is not synced after its rename: 200, active, with a warning', async () => {
    await appWithRecord();
    expect((await recalibrate()).statusCode).toBe(201);
    injectFsFaults([{ op: 'fsync', suffix: '/digits', code: 'EIO', times: 1 }]);
    const res = await activate(1);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({
      model: 'digits',
      active_version: 1,
      previous_version: 2,
      warning: {
        code: 'STORAGE_UNAVAILABLE',
        errno: 'EIO',
        message:
          'version 1 of "digits" is active, but digits could not be synced after the rename: input/output error (EIO); a crash of the machine may still undo it',
      },
    });
    expect(recordVersion()).toBe(1);
  });

  it('DELETE whose model directory is not synced after the rename that hides the version: 200, deleted, with a warning', async () => {
    await appWithRecord();
    expect((await recalibrate()).statusCode).toBe(201);
    expect((await activate(1)).statusCode).toBe(200);
    // The tombstone's fsync first, then the one after the version is hidden.
    injectFsFaults([{ op: 'fsync', suffix: '/digits', code: 'EIO', skip: 1, times: 1 }]);
    const res = await remove(2);
    expect(faultHits()).toEqual([1]);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({
      deleted_version: 2,
      warning: {
        code: 'STORAGE_UNAVAILABLE',
        message: expect.stringMatching(/^version 2 of "digits" was deleted, but digits could not/),
      },
    });
    expect(versionsOnDisk()).toEqual([1]);
    expect(existsSync(join(modelDir(), '2'))).toBe(false);
  });
});

describe('the record’s lock file that cannot be removed after the record is written', () => {
  it(':activate answers 200 (the record is written); the next writer gets the lock all the same', async () => {
    await appWithRecord();
    expect((await recalibrate()).statusCode).toBe(201);
    injectFsFaults([{ op: 'rm', path: '.active-version.lock', code: 'EIO' }]);
    const res = await activate(1);
    expect(faultHits()[0]).toBeGreaterThan(0);
    expect(res.statusCode, res.body).toBe(200);
    expect(recordVersion()).toBe(1);
    clearFsFaults();
    expect((await activate(2)).statusCode).toBe(200);
    expect(recordVersion()).toBe(2);
  });
});

describe('a job record the storage refuses', () => {
  it('is a warning naming the job and the storage error, once; the recalibration itself succeeds', async () => {
    await appWithRecord();
    injectFsFaults([
      { op: 'mkdir', path: '.jobs', code: 'EROFS' },
      { op: 'open', path: '.jobs', writing: true, code: 'EROFS' },
    ]);
    const res = await recalibrate();
    expect(res.statusCode, res.body).toBe(201);
    expect(faultHits().some((n) => n > 0)).toBe(true);
    const jobId = res.json<{ job_id: string }>().job_id;
    await t!.close(); // flushes the job's queued record writes
    const warnings = t!.logs
      .map((l) => JSON.parse(l) as { msg?: string; job?: string; code?: string; reason?: string })
      .filter((l) => l.msg === 'job record not written');
    t = undefined;
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ job: jobId, code: 'STORAGE_UNAVAILABLE' });
    expect(warnings[0]!.reason).toMatch(
      new RegExp(
        `^cannot write the record of job ${jobId}: read-only file system \\(EROFS\\) creating \\.jobs`,
      ),
    );
  });
});

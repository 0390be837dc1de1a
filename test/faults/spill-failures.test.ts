/**
 * A recalibration whose temporary spill file the storage fails (RECALIBRATION_MEMORY_BYTES=0: every
 * row goes to the file under os.tmpdir(); faults injected into fs/promises, fs-faults.mjs): the
 * answer is the catalogue's storage error, STORAGE_FULL (507) or STORAGE_UNAVAILABLE (503), naming
 * the spill file, the errno and what to do, never 500 INTERNAL; a job records the same code.
 */
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN, expectProblem, type LoggedApp, makeLoggedApp, waitFor } from '../helpers/admin.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { clearFsFaults, faultHits, injectFsFaults } from '../helpers/fs-faults.mjs';

const night = nightShift(digitsTestRows().x).slice(0, 200);

let t: LoggedApp | undefined;
afterEach(async () => {
  clearFsFaults();
  await t?.close();
  t = undefined;
});

/** A write or read of the spill file (under TMPDIR, whoever else spills there) fails once. */
const spillFails = (op: 'write' | 'read', code: string) =>
  injectFsFaults([{ op, path: 'normserve-recalibration-', suffix: 'rows.f32', code, times: 1 }]);

const recalibrate = (headers: Record<string, string> = {}) =>
  t!.app.inject({
    method: 'POST',
    url: '/v1/models/digits:recalibrate',
    headers: { ...ADMIN, ...headers },
    payload: { instances: night, activate: false },
  });

const versionsOnDisk = () =>
  readdirSync(`${t!.repository}/digits`).filter((n) => /^[0-9]+$/.test(n));

describe('a recalibration whose spill file the storage fails', () => {
  it('a full device: :recalibrate is 507 STORAGE_FULL naming the spill file; the next one succeeds', async () => {
    t = await makeLoggedApp({ env: { RECALIBRATION_MEMORY_BYTES: '0' } });
    spillFails('write', 'ENOSPC');
    const problem = expectProblem(await recalibrate(), 507, 'STORAGE_FULL');
    expect(faultHits()).toEqual([1]);
    expect(problem.detail).toMatch(
      /^cannot keep the recalibration’s rows in its temporary spill file: no space left on the device \(ENOSPC\) writing \/\S+\/normserve-recalibration-\w+\/rows\.f32; free space in \/\S+, set TMPDIR to a directory with room, or raise RECALIBRATION_MEMORY_BYTES to keep more of the rows in memory$/,
    );
    expect((problem as unknown as { errno: string }).errno).toBe('ENOSPC');
    expect(versionsOnDisk()).toEqual(['1']);
    // The session's job records the same error.
    const failed = t.logs
      .map((l) => JSON.parse(l) as { msg?: string; error?: { code: string; message: string } })
      .find((l) => l.msg === 'recalibration failed');
    expect(failed?.error).toEqual({ code: 'STORAGE_FULL', message: problem.detail });
    // The model's lock was released: a recalibration once space is back publishes version 2.
    const ok = await recalibrate();
    expect(ok.statusCode, ok.body).toBe(201);
    expect(versionsOnDisk().sort()).toEqual(['1', '2']);
  });

  it('a failing device read back in a job: 202, and the job ends failed with STORAGE_UNAVAILABLE', async () => {
    t = await makeLoggedApp({ env: { RECALIBRATION_MEMORY_BYTES: '0' } });
    // The rows are read back from the file after the upload, for the BatchNorms past the first.
    spillFails('read', 'EIO');
    const accepted = await recalibrate({ prefer: 'respond-async' });
    expect(accepted.statusCode, accepted.body).toBe(202);
    const job = await waitFor(async () => {
      const res = await t!.app.inject({
        method: 'GET',
        url: accepted.headers.location as string,
        headers: ADMIN,
      });
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json<{ state: string; error?: { code: string; message: string } }>();
      return body.state === 'running' ? undefined : body;
    }, 'the recalibration job');
    expect(faultHits()).toEqual([1]);
    expect(job.state).toBe('failed');
    expect(job.error?.code).toBe('STORAGE_UNAVAILABLE');
    expect(job.error?.message).toMatch(
      /^cannot read the recalibration’s rows back from its temporary spill file: input\/output error \(EIO\) reading \/\S+\/rows\.f32; set TMPDIR to a directory on a working, writable file system/,
    );
    expect(versionsOnDisk()).toEqual(['1']);
  });
});

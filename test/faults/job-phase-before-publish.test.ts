/**
 * A recalibration job's record says `publishing` on disk before anything of its version is
 * written: a process that finds the job abandoned later (its process killed) says "nothing was
 * published" only for a job killed in an earlier phase, and "a new version may exist" for one
 * killed from the version's staging on (crash-safety review of 2026-12-04: the phase was queued
 * behind the progress records, reached the disk after the version's rename, and a job killed in
 * between was reported as having published nothing while its version was served).
 * The record writes are slowed (an injected delay on the `.jobs` directory), so the old order
 * fails whatever the machine's speed; the test checks the record when the version is staged.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ModelRepository } from '../../src/repository/index.js';
import { ADMIN, type LoggedApp, makeLoggedApp } from '../helpers/admin.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { clearFsFaults, injectFsFaults } from '../helpers/fs-faults.mjs';

let t: LoggedApp | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  clearFsFaults();
  await t?.close();
  t = undefined;
});

/** The phases the job records in `.jobs/` say now. */
function recordedPhases(repository: string): string[] {
  const dir = join(repository, '.jobs');
  return readdirSync(dir)
    .filter((name) => name.endsWith('.json') && !name.startsWith('.'))
    .map((name) => (JSON.parse(readFileSync(join(dir, name), 'utf8')) as { phase: string }).phase);
}

describe('a recalibration job’s record', () => {
  it('says "publishing" on disk before the version is staged', async () => {
    t = await makeLoggedApp({ level: 'warn' });
    const seen: string[][] = [];
    const stage = ModelRepository.prototype.stageVersion;
    vi.spyOn(ModelRepository.prototype, 'stageVersion').mockImplementation(async function (
      this: ModelRepository,
      checkpoint,
    ) {
      seen.push(recordedPhases(t!.repository));
      return stage.call(this, checkpoint);
    });
    // Every record write waits 300 ms at its first step (the directory's mkdir).
    injectFsFaults([{ op: 'mkdir', path: '.jobs', delayMs: 300 }]);
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:recalibrate',
      headers: ADMIN,
      payload: { instances: nightShift(digitsTestRows().x).slice(0, 200) },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(seen).toEqual([['publishing']]);
  });
});

/**
 * `npm run recalibrate` on a repository whose storage fails (faults injected into the CLI's
 * fs/promises by a preload, test/helpers/fs-faults.mjs): a failure before anything is written is
 * the catalogue's one line, exit 1; an fsync failing after the rename that records the new version
 * as active prints the outcome (published, active) and one line saying so, exit 1, never
 * "internal error".
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ndjsonBody } from '../helpers/admin.js';
import { makeRepository } from '../helpers/app.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { nodeArgs, ROOT } from '../helpers/entries.js';
import { FS_FAULTS_MODULE, type FsFault, READ_ONLY } from '../helpers/fs-faults.mjs';

let repository = '';
afterEach(() => {
  rmSync(repository, { recursive: true, force: true });
});

/** digits/1, recorded active, and a data file of night rows beside the model. */
function prepare(): { model: string; data: string } {
  repository = makeRepository(['digits']);
  const model = join(repository, 'digits');
  writeFileSync(join(model, 'active-version.json'), JSON.stringify({ version: 1 }));
  const data = join(repository, 'night.ndjson');
  writeFileSync(data, ndjsonBody(nightShift(digitsTestRows().x).slice(0, 200)));
  return { model, data };
}

function recalibrateWithFaults(faults: FsFault[], args: string[]) {
  return spawnSync(process.execPath, [...nodeArgs('src/cli/recalibrate.ts'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
    env: {
      ...process.env,
      NODE_OPTIONS: `--import ${FS_FAULTS_MODULE}`,
      NORMSERVE_TEST_FS_FAULTS: JSON.stringify(faults),
    },
  });
}

const versions = () => readdirSync(join(repository, 'digits')).filter((n) => /^\d+$/.test(n));

describe('recalibrate CLI on a failing storage', () => {
  it('a read-only repository: one line naming the operation, EROFS and the file; exit 1; nothing written', () => {
    const { model, data } = prepare();
    const res = recalibrateWithFaults(READ_ONLY, ['--model', model, '--data', data]);
    expect(res.status, res.stderr).toBe(1);
    expect(res.stderr).toMatch(
      /^recalibrate: cannot start a recalibration of "digits" \(its lock file\): read-only file system \(EROFS\) creating digits\/\.tmp-\S+\n$/,
    );
    expect(res.stdout).toBe('');
    expect(versions()).toEqual(['1']);
  });

  it('a full disk: one line, STORAGE_FULL’s words, exit 1; nothing published', () => {
    const { model, data } = prepare();
    const res = recalibrateWithFaults(
      [{ op: 'write', path: 'model.safetensors', code: 'ENOSPC' }],
      ['--model', model, '--data', data],
    );
    expect(res.status, res.stderr).toBe(1);
    expect(res.stderr).toMatch(
      /^recalibrate: cannot publish a version of "digits": no space left on the device \(ENOSPC\) writing digits\/\.tmp-[^/]+\/model\.safetensors\n$/,
    );
    expect(versions()).toEqual(['1']);
  });

  it('fsync failing after the active record’s rename: the outcome, then what happened; exit 1', () => {
    const { model, data } = prepare();
    // The model directory's fsyncs: after the pin over the parent's record (which carries the
    // publish's intent), after that intent, after the version's rename, then after the record's.
    const res = recalibrateWithFaults(
      [{ op: 'fsync', suffix: '/digits', code: 'EIO', skip: 3, times: 1 }],
      ['--model', model, '--data', data],
    );
    expect(res.status, res.stderr).toBe(1);
    expect(res.stderr).not.toContain('internal error');
    expect(res.stderr.trimEnd().split('\n').at(-1)).toBe(
      'recalibrate: version 2 of "digits" was published and is active, but digits could not be synced after the rename: input/output error (EIO); a crash of the machine may still undo it',
    );
    expect(JSON.parse(res.stdout)).toMatchObject({ version: 2, activated: true });
    expect(
      JSON.parse(readFileSync(join(repository, 'digits', 'active-version.json'), 'utf8')),
    ).toMatchObject({ version: 2 });
  });
});

/**
 * A deletion meeting a recalibration between its publish and its activation, and a pin left by a
 * publish that failed. Issues (review31): a retention job deleting every inactive version, in a
 * loop beside recalibrations, deleted a version just renamed into place before its activation,
 * and the recalibration answered 404 VERSION_NOT_FOUND "(it was deleted)" for a version it had
 * published (5 of 132); and a recalibration that failed on a full disk left the active version
 * pinned in `active-version.json`, so every version `train` published later was never served.
 *
 * The deletion comes from a second repository handle on the same directory (another worker or
 * replica), started by a hook right after the rename that publishes; the test waits until the
 * deletion either is done or has found the record's lock held (a hook on the lock), so nothing
 * depends on timing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isNormserveError } from '../../src/errors/index.js';
import { ACTIVE_RECORD_LOCK_FILE } from '../../src/repository/active-record-lock.js';
import { ModelRepository, type StagedVersion } from '../../src/repository/index.js';
import { publishCheckpoint } from '../../src/service/publish-checkpoint.js';
import { ADMIN, type LoggedApp, makeLoggedApp } from '../helpers/admin.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { clearFsFaults, injectFsFaults } from '../helpers/fs-faults.mjs';

/** Called when an attempt on the record's lock finds it held by another (a writer waits). */
const lockHooks: { onBusy?: (() => void) | undefined } = {};
vi.mock('../../src/repository/model-lock.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/repository/model-lock.js')>();
  return {
    ...actual,
    acquireModelLock: async (...args: Parameters<typeof actual.acquireModelLock>) => {
      const lock = await actual.acquireModelLock(...args);
      if ('heldBy' in lock && args[2]?.file === ACTIVE_RECORD_LOCK_FILE) lockHooks.onBusy?.();
      return lock;
    },
  };
});

const night = nightShift(digitsTestRows().x).slice(0, 200);

let t: LoggedApp | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  clearFsFaults();
  lockHooks.onBusy = undefined;
  await t?.close();
  t = undefined;
});

const modelDir = () => join(t!.repository, 'digits');
const record = () => {
  const path = join(modelDir(), 'active-version.json');
  return existsSync(path)
    ? (JSON.parse(readFileSync(path, 'utf8')) as { version: number; note?: string })
    : undefined;
};

const recalibrate = (payload: Record<string, unknown> = {}) =>
  t!.app.inject({
    method: 'POST',
    url: '/v1/models/digits:recalibrate',
    headers: ADMIN,
    payload: { instances: night, ...payload },
  });

/** How a promise settled: 'done', or the error's code. */
const settled = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'done',
    (e: unknown) => (isNormserveError(e) ? e.code : String(e)),
  );

/**
 * Right after the rename that publishes (the staged version's publish), another process deletes
 * the version just published, through its own repository handle; the publisher goes on once that
 * deletion is done or waits for the record's lock. Returns the deletion's outcome.
 */
function deleteRightAfterPublishing(): { outcome: () => Promise<string>; waited: () => boolean } {
  const other = new ModelRepository(t!.repository);
  const stage = ModelRepository.prototype.stageVersion;
  let deletion: Promise<string> | undefined;
  let waited = false;
  vi.spyOn(ModelRepository.prototype, 'stageVersion').mockImplementation(async function (
    this: ModelRepository,
    checkpoint,
  ): Promise<StagedVersion> {
    const staged = await stage.call(this, checkpoint);
    return {
      discard: () => staged.discard(),
      tempName: staged.tempName,
      configSha256: staged.configSha256,
      publish: async (fence) => {
        const published = await staged.publish(fence);
        const blocked = new Promise<string>((resolve) => {
          lockHooks.onBusy = () => {
            waited = true;
            resolve('waiting');
          };
        });
        deletion = settled(other.deleteVersion('digits', published.version));
        await Promise.race([deletion, blocked]);
        lockHooks.onBusy = undefined;
        return published;
      },
    };
  });
  return {
    outcome: () => deletion ?? Promise.resolve('never started'),
    waited: () => waited,
  };
}

describe('a deletion of the version a recalibration has just published', () => {
  it('waits for its activation, then is refused as the active version: the recalibration answers 201, activated', async () => {
    t = await makeLoggedApp({ level: 'info' });
    const race = deleteRightAfterPublishing();
    const res = await recalibrate();
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({ version: 2, parent_version: 1, activated: true });
    expect(race.waited()).toBe(true);
    expect(await race.outcome()).toBe('ACTIVE_VERSION_DELETE');
    expect(existsSync(join(modelDir(), '2', 'model.safetensors'))).toBe(true);
    expect(record()?.version).toBe(2);
    expect(t.registry.get('digits').active).toBe(2);
  });

  it('with activate=false, takes effect only once the version is published and loaded back: 201, not a failure', async () => {
    t = await makeLoggedApp({ level: 'info' });
    const race = deleteRightAfterPublishing();
    const res = await recalibrate({ activate: false });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({ version: 2, activated: false });
    expect(race.waited()).toBe(true);
    // The operator's deletion then stands: the version is gone, its number retired.
    expect(await race.outcome()).toBe('done');
    expect(existsSync(join(modelDir(), '2'))).toBe(false);
    expect(await new ModelRepository(t.repository).nextVersion('digits')).toBe(3);
    expect(record()?.version).toBe(1);
  });
});

describe('a pin written before a publish that fails', () => {
  it('a full disk while the version is written: nothing pinned, so a version published later is served', async () => {
    t = await makeLoggedApp({ level: 'info' });
    expect(record()).toBeUndefined();
    injectFsFaults([{ op: 'write', path: 'model.safetensors', code: 'ENOSPC' }]);
    const res = await recalibrate();
    expect(res.statusCode, res.body).toBe(507);
    clearFsFaults();
    expect(record()).toBeUndefined();

    // What `train` does: publish the next version; without a record the highest is served.
    const { checkpoint } = t.registry.resolve('digits');
    const { version } = await publishCheckpoint(t.repository, checkpoint);
    expect(version).toBe(2);
    await t.registry.refreshModel('digits');
    expect(t.registry.get('digits').active).toBe(2);
  });

  it('the rename that publishes fails after the pin: the pin is undone (no record, as before)', async () => {
    t = await makeLoggedApp({ level: 'info' });
    expect(record()).toBeUndefined();
    // The first rename of a temporary in the model's directory is the pin's record; the second
    // the version's directory.
    injectFsFaults([{ op: 'rename', path: 'digits/.tmp-', code: 'EIO', skip: 1, times: 1 }]);
    const res = await recalibrate();
    expect(res.statusCode, res.body).toBe(503);
    expect(res.json()).toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
    expect(existsSync(join(modelDir(), '2'))).toBe(false);
    expect(record()).toBeUndefined();
    const logged = t.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged).toContainEqual(
      expect.objectContaining({
        msg: 'pin of the active version undone: nothing was published',
        undone: true,
      }),
    );
  });

  it('an undo never clobbers another writer’s record written since the pin', async () => {
    t = await makeLoggedApp({ level: 'info' });
    const repository = new ModelRepository(t.repository);
    await repository.publishVersion(t.registry.resolve('digits').checkpoint);
    // A pin over no record: its undo removes it, unless the record is no longer the pin.
    const pin = await repository.writeActiveIf('digits', 1, null, 'pin');
    if (!pin.written) throw new Error('the pin should be written');
    await repository.writeActive('digits', 2, 'operator');
    expect(await repository.restoreActive('digits', pin.record, undefined)).toBe(false);
    expect(record()).toMatchObject({ version: 2, note: 'operator' });
    // Still the pin: the record it replaced put back.
    const operator = readFileSync(join(modelDir(), 'active-version.json'), 'utf8');
    const again = await repository.writeActiveIf('digits', 1, 2, 'pin');
    if (!again.written) throw new Error('the pin should be written');
    expect(await repository.restoreActive('digits', again.record, operator)).toBe(true);
    expect(record()).toMatchObject({ version: 2, note: 'operator' });
  });
});

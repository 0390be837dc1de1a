/**
 * An activation and a deletion of the same version, in two processes (two repository instances on
 * one directory, as two workers or replicas), each stopped inside its window by a hook while the
 * other runs. Issue (WORKERS=2, 2 rounds in 85): the activation wrote the record, the deletion hid
 * the directory, each then saw the other and undid its own change: the activation answered 404
 * "deleted", the deletion 409 "activated", and the version stayed, not active; meanwhile the
 * record named a hidden directory ("active-version.json names version 61, which does not exist").
 * Both now hold the record's lock (writeActive, deleteVersion): whichever takes it first takes
 * effect and answers so, the other waits and then answers truthfully against what it finds.
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isNormserveError } from '../../src/errors/index.js';
import { ACTIVE_RECORD_LOCK_FILE } from '../../src/repository/active-record-lock.js';
import { ModelRepository } from '../../src/repository/index.js';
import { makeRepository } from '../helpers/app.js';

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

const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
  lockHooks.onBusy = undefined;
});

let root: string;
/** A third process, reading only: what every worker's poll sees. */
let observer: ModelRepository;
beforeEach(() => {
  root = makeRepository(['digits']);
  roots.push(root);
  cpSync(join(root, 'digits', '1'), join(root, 'digits', '2'), { recursive: true });
  writeFileSync(join(root, 'digits', 'active-version.json'), '{"version":1}\n');
  observer = new ModelRepository(root);
});

const recordVersion = () =>
  (
    JSON.parse(readFileSync(join(root, 'digits', 'active-version.json'), 'utf8')) as {
      version: number;
    }
  ).version;
const outcome = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'done',
    (e: unknown) => (isNormserveError(e) ? e.code : String(e)),
  );
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Records, whenever called, a record that names a version a reader cannot find. */
const missingSeen: string[] = [];
async function observe(when: string): Promise<void> {
  const active = (await observer.readActive('digits'))?.version;
  if (active !== undefined && !(await observer.listVersions('digits')).includes(active))
    missingSeen.push(`${when}: the record names ${active}, which does not exist`);
}
beforeEach(() => {
  missingSeen.length = 0;
});

describe('activate and delete of one version, in two processes', () => {
  it('a deletion arriving inside the activation waits for it, then refuses: active version (409); the activation stands', async () => {
    const activator = new ModelRepository(root);
    const deleter = new ModelRepository(root);
    const listVersions = activator.listVersions.bind(activator);
    const readActive = deleter.readActive.bind(deleter);
    const deleterAtRecord = deferred<'record'>();
    const deleterWaits = deferred<'waits'>();
    const activatorListed = deferred();
    const deleterRead = deferred();
    lockHooks.onBusy = () => deleterWaits.resolve('waits');
    let deletion: Promise<string> | undefined;
    // The activation's check of the version (under the lock before the fix: after its write).
    vi.spyOn(activator, 'listVersions').mockImplementationOnce(async (name) => {
      deletion = outcome(deleter.deleteVersion('digits', 2));
      // The deletion runs as far as it can: to its read of the record, or to the busy lock.
      const reached = await Promise.race([deleterAtRecord.promise, deleterWaits.promise]);
      await observe('activation, at its check');
      const versions = await listVersions(name);
      activatorListed.resolve();
      if (reached === 'record') await deleterRead.promise;
      return versions;
    });
    vi.spyOn(deleter, 'readActive').mockImplementationOnce(async (name) => {
      deleterAtRecord.resolve('record');
      await activatorListed.promise;
      const record = await readActive(name);
      deleterRead.resolve();
      return record;
    });
    const activation = await outcome(activator.writeActive('digits', 2, 'roll forward'));
    expect(deletion).toBeDefined();
    expect({ activation, deletion: await deletion }).toEqual({
      activation: 'done',
      deletion: 'ACTIVE_VERSION_DELETE',
    });
    expect(recordVersion()).toBe(2);
    expect(await observer.listVersions('digits')).toEqual([1, 2]);
    expect(await observer.deletedVersions('digits')).toEqual([]);
    expect(missingSeen).toEqual([]);
  });

  it('an activation arriving inside the deletion waits for it, then refuses: no such version (404); the deletion stands', async () => {
    const activator = new ModelRepository(root);
    const deleter = new ModelRepository(root);
    const listVersions = activator.listVersions.bind(activator);
    const readActive = deleter.readActive.bind(deleter);
    const activatorAtCheck = deferred<'check'>();
    const activatorWaits = deferred<'waits'>();
    const deleterRead = deferred();
    lockHooks.onBusy = () => activatorWaits.resolve('waits');
    let activation: Promise<string> | undefined;
    // The deletion's read of the record (under the lock before hiding the version; before the
    // fix, after hiding it).
    vi.spyOn(deleter, 'readActive').mockImplementationOnce(async (name) => {
      activation = outcome(activator.writeActive('digits', 2, 'roll forward'));
      await Promise.race([activatorAtCheck.promise, activatorWaits.promise]);
      await observe('deletion, at its read of the record');
      const record = await readActive(name);
      deleterRead.resolve();
      return record;
    });
    vi.spyOn(activator, 'listVersions').mockImplementationOnce(async (name) => {
      activatorAtCheck.resolve('check');
      await deleterRead.promise;
      return listVersions(name);
    });
    const deletion = await outcome(deleter.deleteVersion('digits', 2));
    expect(activation).toBeDefined();
    expect({ activation: await activation, deletion }).toEqual({
      activation: 'VERSION_NOT_FOUND',
      deletion: 'done',
    });
    expect(recordVersion()).toBe(1);
    expect(await observer.listVersions('digits')).toEqual([1]);
    expect(await observer.deletedVersions('digits')).toEqual([2]);
    expect(missingSeen).toEqual([]);
  });

  it('the activation of a deleted version says it was deleted; of one that never was, only that it is missing', async () => {
    const repository = new ModelRepository(root);
    await repository.deleteVersion('digits', 2);
    await expect(repository.writeActive('digits', 2)).rejects.toThrow(
      'model "digits" has no version 2 (it was deleted)',
    );
    await expect(repository.writeActive('digits', 7)).rejects.toThrow(
      /^model "digits" has no version 7$/,
    );
    expect(recordVersion()).toBe(1);
  });
});

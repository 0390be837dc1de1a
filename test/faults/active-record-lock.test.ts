/**
 * The active-version record's lock: a conditional write (a recalibration's "activate only if my
 * parent is still active") decides on the record on disk and cannot slip between an operator's
 * activation written by another process and that activation's reply. Every writer of the record
 * holds the lock for one read and one write; a busy lock is waited for, one left by a dead
 * process is broken at once.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ACTIVE_RECORD_LOCK_FILE } from '../../src/repository/active-record-lock.js';
import {
  acquireModelLock,
  ModelRepository,
  writeFileAtomically,
} from '../../src/repository/index.js';
import { makeDigitsVersionsRepository } from '../helpers/app.js';

const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

let root: string;
let repository: ModelRepository;
let modelDir: string;
beforeEach(() => {
  root = makeDigitsVersionsRepository();
  roots.push(root);
  modelDir = join(root, 'digits');
  repository = new ModelRepository(root);
});

const recordVersion = () =>
  (JSON.parse(readFileSync(join(modelDir, 'active-version.json'), 'utf8')) as { version: number })
    .version;

/** Whether `promise` is still pending after the event loop had time to run everything else. */
async function stillPending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  // Many turns of the loop: a write that did not wait for the lock would have finished (a few
  // file operations); one that waits stays pending however long this takes.
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  return !settled;
}

describe('writeActiveIf', () => {
  it('writes only when the record names the expected version; otherwise reports what it found', async () => {
    await repository.writeActive('digits', 1);
    expect(await repository.writeActiveIf('digits', 3, 2)).toEqual({ written: false, found: 1 });
    expect(recordVersion()).toBe(1);
    const written = await repository.writeActiveIf('digits', 3, 1, 'recalibrated');
    expect(written).toMatchObject({ written: true, record: { version: 3, note: 'recalibrated' } });
    expect(recordVersion()).toBe(3);
  });

  it('null expects no usable record: absent or unreadable', async () => {
    expect(existsSync(join(modelDir, 'active-version.json'))).toBe(false);
    expect(await repository.writeActiveIf('digits', 2, 1)).toEqual({ written: false, found: null });
    expect(await repository.writeActiveIf('digits', 2, null)).toMatchObject({ written: true });
    writeFileSync(join(modelDir, 'active-version.json'), '{"version": "two"}');
    expect(await repository.writeActiveIf('digits', 3, 2)).toEqual({ written: false, found: null });
    expect(await repository.writeActiveIf('digits', 3, null)).toMatchObject({ written: true });
    expect(recordVersion()).toBe(3);
  });
});

describe('the record’s lock', () => {
  it('a conditional write waits for a writer holding the lock and decides on what it wrote (the rollback stands)', async () => {
    await repository.writeActive('digits', 1);
    // Another process is activating version 2 (an operator's rollback): it holds the lock.
    const operator = await acquireModelLock(modelDir, 'operator', {
      file: ACTIVE_RECORD_LOCK_FILE,
    });
    if ('heldBy' in operator) throw new Error('the lock should be free');
    // The job whose parent is version 1 publishes version 3, to be activated only if 1 is active.
    const job = repository.writeActiveIf('digits', 3, 1, 'recalibrated from version 1');
    expect(await stillPending(job)).toBe(true);
    expect(recordVersion()).toBe(1);
    await writeFileAtomically(
      modelDir,
      'active-version.json',
      new TextEncoder().encode(`${JSON.stringify({ version: 2, note: 'rollback' })}\n`),
    );
    await operator.release();
    expect(await job).toEqual({ written: false, found: 2 });
    expect(recordVersion()).toBe(2);
  });

  it('an activation waits for the lock too, so it never lands between a conditional read and write', async () => {
    const holder = await acquireModelLock(modelDir, 'job', { file: ACTIVE_RECORD_LOCK_FILE });
    if ('heldBy' in holder) throw new Error('the lock should be free');
    const activation = repository.writeActive('digits', 2, 'rollback');
    expect(await stillPending(activation)).toBe(true);
    await holder.release();
    await expect(activation).resolves.toMatchObject({ record: { version: 2, note: 'rollback' } });
    expect(recordVersion()).toBe(2);
    expect(existsSync(join(modelDir, ACTIVE_RECORD_LOCK_FILE))).toBe(false);
  });

  it('a lock kept beyond the wait: ACTIVE_RECORD_BUSY (Retry-After 30 s), nothing written, the holder’s lock untouched', async () => {
    await repository.writeActive('digits', 1);
    const holder = await acquireModelLock(modelDir, 'stuck', { file: ACTIVE_RECORD_LOCK_FILE });
    if ('heldBy' in holder) throw new Error('the lock should be free');
    const impatient = new ModelRepository(root, { activeRecordLockWaitMs: 20 });
    for (const write of [
      () => impatient.writeActive('digits', 2),
      () => impatient.writeActiveIf('digits', 2, 1),
    ]) {
      const error = await write().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({
        code: 'ACTIVE_RECORD_BUSY',
        retryAfterSeconds: 30,
        message: expect.stringMatching(
          /^digits\/\.active-version\.lock has been held since .* by process \d+ on .*, and was still held after waiting 0\.02 s; the active version was not written$/,
        ),
      });
    }
    expect(recordVersion()).toBe(1);
    expect(JSON.parse(readFileSync(join(modelDir, ACTIVE_RECORD_LOCK_FILE), 'utf8'))).toMatchObject(
      { owner: 'stuck' },
    );
    await holder.release();
    await expect(impatient.writeActive('digits', 2)).resolves.toMatchObject({
      record: { version: 2 },
    });
  });

  it('a lock left by a dead process of this host is broken at once', async () => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    writeFileSync(
      join(modelDir, ACTIVE_RECORD_LOCK_FILE),
      JSON.stringify({
        owner: 'gone',
        host: hostname(),
        pid: dead,
        acquired_at: new Date().toISOString(),
      }),
    );
    await expect(repository.writeActive('digits', 3)).resolves.toMatchObject({
      record: { version: 3 },
    });
    expect(recordVersion()).toBe(3);
    expect(existsSync(join(modelDir, ACTIVE_RECORD_LOCK_FILE))).toBe(false);
  });
});

/**
 * In a container node runs as PID 1 and the hostname survives a restart: a lock left by the
 * previous incarnation names this very process. Its owner is not one this process holds, so it is
 * broken at once; a lock this process does hold is still respected.
 */
describe.each([
  ['the active-version record', ACTIVE_RECORD_LOCK_FILE],
  ['a recalibration', '.recalibration.lock'],
])('the lock of %s, naming this process’s pid', (_what, file) => {
  const lockPath = () => join(modelDir, file);
  const earlierIncarnation = () =>
    writeFileSync(
      lockPath(),
      JSON.stringify({
        owner: 'job-of-the-previous-container',
        host: hostname(),
        pid: process.pid,
        acquired_at: new Date().toISOString(),
      }),
    );

  it('left by an earlier process (an owner this process does not hold) is broken at once', async () => {
    earlierIncarnation();
    // The file is fresh (its heartbeat is now): only its owner tells it was left behind.
    const lock = await acquireModelLock(modelDir, 'new-owner', { file });
    if ('heldBy' in lock) throw new Error(`not broken: held by ${JSON.stringify(lock.heldBy)}`);
    expect(JSON.parse(readFileSync(lockPath(), 'utf8'))).toMatchObject({
      owner: 'new-owner',
      pid: process.pid,
    });
    await lock.release();
    expect(existsSync(lockPath())).toBe(false);
  });

  it('held by this process is respected by a second acquisition in the same process, until released', async () => {
    const first = await acquireModelLock(modelDir, 'first', { file });
    if ('heldBy' in first) throw new Error('the lock should be free');
    const second = await acquireModelLock(modelDir, 'second', { file });
    expect(second).toEqual({
      heldBy: expect.objectContaining({ owner: 'first', pid: process.pid }),
    });
    await first.release();
    const third = await acquireModelLock(modelDir, 'second', { file });
    if ('heldBy' in third) throw new Error('the released lock should be free');
    await third.release();
  });
});

it('an activation is not held by a lock the previous incarnation of this process left', async () => {
  const path = join(modelDir, ACTIVE_RECORD_LOCK_FILE);
  writeFileSync(
    path,
    JSON.stringify({
      owner: 'job-of-the-previous-container',
      host: hostname(),
      pid: process.pid,
      acquired_at: new Date().toISOString(),
    }),
  );
  // The heartbeat is fresh: only the owner tells the lock was left behind. A write that waited for
  // the lock to age would take STALE_AFTER_MS, 30 s (the reviewer's :activate), past the test's
  // timeout.
  await expect(repository.writeActive('digits', 2, 'rollback')).resolves.toMatchObject({
    record: { version: 2 },
  });
  expect(recordVersion()).toBe(2);
  expect(existsSync(path)).toBe(false);
});

/**
 * A lock of another host cannot be probed: only its heartbeat (the file's mtime) tells whether its
 * holder lives. An mtime far ahead of this clock is no heartbeat (a clock set wrong, a `touch -d`):
 * judged by age alone it blocked every `:activate` until the clock caught up.
 */
describe('a lock of another host whose mtime is in the future', () => {
  const lockPath = () => join(modelDir, ACTIVE_RECORD_LOCK_FILE);
  const otherNodesLock = (mtimeAheadMs: number) => {
    writeFileSync(
      lockPath(),
      JSON.stringify({
        owner: 'other-job',
        host: 'other-node',
        pid: 4242,
        acquired_at: new Date().toISOString(),
      }),
    );
    const mtime = new Date(Date.now() + mtimeAheadMs);
    utimesSync(lockPath(), mtime, mtime);
  };

  it('a day ahead (more than STALE_AFTER_MS): broken at once, the activation written', async () => {
    await repository.writeActive('digits', 1);
    otherNodesLock(86_400_000);
    // A short wait: had the lock been respected, ACTIVE_RECORD_BUSY instead of the record.
    const impatient = new ModelRepository(root, { activeRecordLockWaitMs: 20 });
    await expect(impatient.writeActive('digits', 2)).resolves.toMatchObject({
      record: { version: 2 },
    });
    expect(recordVersion()).toBe(2);
    expect(existsSync(lockPath())).toBe(false);
  });

  it('a few seconds ahead (clock skew between hosts): still a live holder’s, respected', async () => {
    await repository.writeActive('digits', 1);
    otherNodesLock(5_000);
    const impatient = new ModelRepository(root, { activeRecordLockWaitMs: 20 });
    await expect(impatient.writeActive('digits', 2)).rejects.toMatchObject({
      code: 'ACTIVE_RECORD_BUSY',
    });
    expect(recordVersion()).toBe(1);
    expect(JSON.parse(readFileSync(lockPath(), 'utf8'))).toMatchObject({ host: 'other-node' });
  });
});

/**
 * A directory where a lock goes was made by someone else (normserve links a file there): refused
 * naming it, left as it was, and nothing left beside it (no lock-aside, no temporary file).
 */
describe.each([
  ['the active-version record', ACTIVE_RECORD_LOCK_FILE],
  ['a recalibration', '.recalibration.lock'],
])('a directory where the lock of %s goes', (_what, file) => {
  it('is refused with REPOSITORY_ERROR naming it, kept with its content, no debris', async () => {
    await repository.writeActive('digits', 1);
    const path = join(modelDir, file);
    mkdirSync(path);
    writeFileSync(join(path, 'operator-notes.txt'), 'kept');
    const before = readdirSync(modelDir).sort();
    const message = `digits/${file} is a directory where the model's lock file goes; nothing was written: remove the directory (normserve never makes one there) and try again`;
    for (let attempt = 0; attempt < 2; attempt++) {
      const acquire = acquireModelLock(modelDir, `owner-${attempt}`, { file });
      await expect(acquire).rejects.toMatchObject({ code: 'REPOSITORY_ERROR', message });
      if (file === ACTIVE_RECORD_LOCK_FILE)
        await expect(repository.writeActive('digits', 2)).rejects.toMatchObject({
          code: 'REPOSITORY_ERROR',
          message,
        });
    }
    expect(statSync(path).isDirectory()).toBe(true);
    expect(readFileSync(join(path, 'operator-notes.txt'), 'utf8')).toBe('kept');
    expect(readdirSync(modelDir).sort()).toEqual(before);
    expect(recordVersion()).toBe(1);
    // Once the operator removes it, the lock works again.
    rmSync(path, { recursive: true });
    await expect(repository.writeActive('digits', 2)).resolves.toMatchObject({
      record: { version: 2 },
    });
  });
});

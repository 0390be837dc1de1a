/**
 * A recalibration activated only if its parent is still active (model-registry.ts, publish with
 * `ifActive`) on a model without an active-version record pins the parent first
 * (version-publish.ts). Its process killed after the rename that publishes the version and before
 * the activation's write (a window of ~30 ms: the version is loaded back in between) left the pin
 * for good: its `pinned_for` named a staged directory that no longer existed, so no cleanup touched
 * it, and the version was never activated (the crash tester of h260). The pin now names the version
 * it is about to publish before the rename (`pinned_publishing`), and the cleanup that finds its
 * writer gone finishes the activation (active-record.ts, settleAbandonedPin) — never a live
 * writer's, never over a record written since.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { hostTag, temporaryName } from '../../src/repository/atomic-write.js';
import { ModelRepository, TEMP_PREFIX } from '../../src/repository/index.js';
import { ndjsonBody } from '../helpers/admin.js';
import { makeRepository } from '../helpers/app.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { nodeArgs, ROOT } from '../helpers/entries.js';
import { clearFsFaults, faultHits, injectFsFaults } from '../helpers/fs-faults.mjs';
import { KILL_ON_RENAME_MODULE } from '../helpers/kill-on-rename.mjs';
import { removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);
afterEach(clearFsFaults);

interface Pin {
  version: number;
  pinned_for?: string;
  pinned_over?: string;
  pinned_publishing?: { version: number; inode: string; config_sha256: string };
  note?: string;
}

/** A repository of digits/1 with no active-version record (the highest version is served). */
function prepare(): { root: string; model: string; data: string; record: string } {
  const root = makeRepository(['digits']);
  const model = join(root, 'digits');
  const data = join(root, 'night.ndjson');
  writeFileSync(data, ndjsonBody(nightShift(digitsTestRows().x).slice(0, 200)));
  const record = join(model, 'active-version.json');
  expect(existsSync(record)).toBe(false);
  return { root, model, data, record };
}

/**
 * `npm run recalibrate` (activated only if its parent, version 1, is still active), killed just
 * before (`before`) or just after (`after`) the first rename whose destination matches.
 */
function recalibrate(model: string, data: string, kill: { before?: string; after?: string }) {
  return spawnSync(
    process.execPath,
    [...nodeArgs('src/cli/recalibrate.ts'), '--model', model, '--data', data],
    {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
      env: {
        ...process.env,
        NODE_OPTIONS: `--import ${KILL_ON_RENAME_MODULE}`,
        ...(kill.before ? { NORMSERVE_TEST_KILL_ON_RENAME: kill.before } : {}),
        ...(kill.after ? { NORMSERVE_TEST_KILL_AFTER_RENAME: kill.after } : {}),
      },
    },
  );
}

const temporaries = (model: string) => readdirSync(model).filter((n) => n.startsWith(TEMP_PREFIX));
const readRecord = (record: string) => JSON.parse(readFileSync(record, 'utf8')) as Pin;
const inodeOf = (path: string) => statSync(path, { bigint: true }).ino.toString();
const sha256Of = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** A pid that existed and no longer does (a child that has exited and been reaped). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '0']);
  expect(child.status).toBe(0);
  return child.pid;
}

/**
 * A repository of digits/1 and digits/2 whose record is a conditional publish's pin of version 1
 * written by `writer` (a staged directory's name), naming version 2 as being published with
 * `inode` (default: digits/2's own), as recordIntent writes it.
 */
function intentPin(writer: string, inode?: string, configSha256?: string) {
  const root = makeRepository(['digits']);
  const model = join(root, 'digits');
  cpSync(join(model, '1'), join(model, '2'), { recursive: true });
  const record = join(model, 'active-version.json');
  const pin: Pin = {
    version: 1,
    note: 'pinned before publishing a version activated only if this one is still active',
    pinned_for: writer,
    pinned_publishing: {
      version: 2,
      inode: inode ?? inodeOf(join(model, '2')),
      config_sha256: configSha256 ?? sha256Of(join(model, '2', 'config.json')),
    },
  };
  const text = `${JSON.stringify(pin)}\n`;
  writeFileSync(record, text);
  return { root, model, record, text };
}

describe('a conditional publish killed between its rename and its activation', () => {
  it('the cleanup finishes the activation: the version the pin names as being published is activated', async () => {
    const { root, model, data, record } = prepare();
    const killed = recalibrate(model, data, { after: '/digits/2$' });
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    // Published, not activated: the pin of version 1 stays, naming a staged directory now gone.
    expect(existsSync(join(model, '2'))).toBe(true);
    const pin = readRecord(record);
    expect(pin).toMatchObject({ version: 1, pinned_publishing: { version: 2 } });
    expect(pin.pinned_publishing!.inode).toBe(inodeOf(join(model, '2')));
    expect(pin.pinned_publishing!.config_sha256).toBe(sha256Of(join(model, '2', 'config.json')));
    expect(temporaries(model)).not.toContain(pin.pinned_for);

    const { pinsUndone, pinActivations, failed } = await new ModelRepository(
      root,
    ).removeTemporaries();
    expect(failed).toEqual([]);
    expect(pinsUndone).toEqual([]);
    expect(pinActivations).toEqual([{ model: 'digits', version: 2 }]);
    const activated = readRecord(record);
    expect(activated.version).toBe(2);
    expect(activated.pinned_for).toBeUndefined();
    expect(activated.pinned_publishing).toBeUndefined();
    // Settled: a second cleanup finds nothing to do.
    const again = await new ModelRepository(root).removeTemporaries();
    expect([again.pinsUndone, again.pinActivations]).toEqual([[], []]);
  });

  it('killed before the rename (its intent written): the cleanup removing the staged directory undoes the pin, as before', async () => {
    const { root, model, data, record } = prepare();
    const killed = recalibrate(model, data, { before: '/digits/2$' });
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    const pin = readRecord(record);
    expect(pin).toMatchObject({ version: 1, pinned_publishing: { version: 2 } });
    expect(temporaries(model)).toEqual([pin.pinned_for]);
    expect(existsSync(join(model, '2'))).toBe(false);

    const { removed, pinsUndone, pinActivations } = await new ModelRepository(
      root,
    ).removeTemporaries();
    expect(removed).toContain(join(model, pin.pinned_for!));
    expect(pinsUndone).toEqual(['digits']);
    expect(pinActivations).toEqual([]);
    // No record: the highest version is served again, as before the pin.
    expect(existsSync(record)).toBe(false);
  });

  it('a publish that went through leaves no intent: the activation replaced the pin', () => {
    const { model, data, record } = prepare();
    const done = recalibrate(model, data, {});
    expect(done.status, done.stderr).toBe(0);
    const written = readRecord(record);
    expect(written.version).toBe(2);
    expect(written.pinned_for).toBeUndefined();
    expect(written.pinned_publishing).toBeUndefined();
  });
});

describe('the cleanup of a pin naming the version it was publishing', () => {
  it("a live writer's pin is never touched, however old everything is taken to be", async () => {
    // This process's own name: its publish may be between its rename and its activation now.
    const { root, record, text } = intentPin(temporaryName());
    const { pinsUndone, pinActivations } = await new ModelRepository(root).removeTemporaries(-1);
    expect([pinsUndone, pinActivations]).toEqual([[], []]);
    expect(readFileSync(record, 'utf8')).toBe(text);
  });

  it("a dead writer's pin whose version has another inode but its config.json (copied into place: FUSE stores, overlayfs without xino) is activated: the inode is recorded, not relied on (h285)", async () => {
    const writer = `${TEMP_PREFIX}${hostTag()}-${deadPid()}-aaaaaaaaaaaa`;
    const { root, model, record } = intentPin(writer, '1');
    expect(inodeOf(join(model, '2'))).not.toBe('1');
    const { pinsUndone, pinActivations } = await new ModelRepository(root).removeTemporaries();
    expect(pinsUndone).toEqual([]);
    expect(pinActivations).toEqual([{ model: 'digits', version: 2 }]);
    expect(readRecord(record).version).toBe(2);
  });

  it("a dead writer's pin whose version has its directory's inode but another config.json (a reused inode: another publisher's) is undone, not activated (h262)", async () => {
    const writer = `${TEMP_PREFIX}${hostTag()}-${deadPid()}-eeeeeeeeeeee`;
    const { root, record } = intentPin(writer, undefined, 'f'.repeat(64));
    const { pinsUndone, pinActivations } = await new ModelRepository(root).removeTemporaries();
    expect(pinsUndone).toEqual(['digits']);
    expect(pinActivations).toEqual([]);
    expect(existsSync(record)).toBe(false);
  });

  it("an operator's record written since is never overwritten", async () => {
    const writer = `${TEMP_PREFIX}${hostTag()}-${deadPid()}-bbbbbbbbbbbb`;
    const { root, record } = intentPin(writer);
    const repo = new ModelRepository(root);
    // Replaced before the cleanup: not a pin any more.
    await repo.writeActive('digits', 1, 'keep 1');
    const operators = readFileSync(record, 'utf8');
    expect((await repo.removeTemporaries()).pinActivations).toEqual([]);
    expect(readFileSync(record, 'utf8')).toBe(operators);
  });

  it("an operator's activation written while the cleanup checks the version stands (compare under the lock)", async () => {
    const writer = `${TEMP_PREFIX}${hostTag()}-${deadPid()}-cccccccccccc`;
    const { root, record } = intentPin(writer);
    const repo = new ModelRepository(root);
    // The cleanup reads version 2's weights (does it load?) after reading the pin and before
    // taking the record's lock: the operator's activation lands there.
    injectFsFaults([{ op: 'open', path: 'digits/2/model.safetensors', delayMs: 400, times: 1 }]);
    const cleanup = repo.removeTemporaries();
    const deadline = Date.now() + 10_000;
    while ((faultHits()[0] ?? 0) === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5));
    expect(faultHits()[0], 'the cleanup reads the version it would activate').toBe(1);
    await repo.writeActive('digits', 1, 'rolled back by the operator');
    const operators = readFileSync(record, 'utf8');
    const { pinsUndone, pinActivations } = await cleanup;
    expect([pinsUndone, pinActivations]).toEqual([[], []]);
    expect(readFileSync(record, 'utf8')).toBe(operators);
    expect(readRecord(record).note).toBe('rolled back by the operator');
  });

  it("a dead writer's pin whose version does not load is undone, not activated", async () => {
    const writer = `${TEMP_PREFIX}${hostTag()}-${deadPid()}-dddddddddddd`;
    const { root, model, record } = intentPin(writer);
    writeFileSync(join(model, '2', 'model.safetensors'), 'not weights');
    const { pinsUndone, pinActivations } = await new ModelRepository(root).removeTemporaries();
    expect(pinsUndone).toEqual(['digits']);
    expect(pinActivations).toEqual([]);
    expect(existsSync(record)).toBe(false);
  });
});

describe('a conditional publish over a plain record naming its parent (an operator’s activation of 1), killed (h288)', () => {
  /** prepare(), with an operator's record of version 1: no pin was needed, so none was written. */
  function prepareActivated() {
    const prepared = prepare();
    const text = `${JSON.stringify({ version: 1, updated_at: '2026-12-01T00:00:00.000Z', note: 'rolled back by hand' })}\n`;
    writeFileSync(prepared.record, text);
    return { ...prepared, text };
  }

  it('between its rename and its activation: the pin over that record carries the intent, and the cleanup finishes the activation', async () => {
    const { root, model, data, record, text } = prepareActivated();
    const killed = recalibrate(model, data, { after: '/digits/2$' });
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    expect(existsSync(join(model, '2'))).toBe(true);
    // Before, the operator's record stayed as it was and version 2 was never activated.
    const pin = readRecord(record);
    expect(pin).toMatchObject({ version: 1, pinned_publishing: { version: 2 }, pinned_over: text });
    const { pinActivations, failed } = await new ModelRepository(root).removeTemporaries();
    expect(failed).toEqual([]);
    expect(pinActivations).toEqual([{ model: 'digits', version: 2 }]);
    expect(readRecord(record)).toMatchObject({ version: 2 });
  });

  it('before its rename: the cleanup undoes the pin, and the operator’s record is back as it was', async () => {
    const { root, model, data, record, text } = prepareActivated();
    const killed = recalibrate(model, data, { before: '/digits/2$' });
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    const { pinsUndone, pinActivations } = await new ModelRepository(root).removeTemporaries();
    expect(pinsUndone).toEqual(['digits']);
    expect(pinActivations).toEqual([]);
    expect(readFileSync(record, 'utf8')).toBe(text);
  });

  it('not killed: activated, the pin replaced', () => {
    const { model, data, record } = prepareActivated();
    const done = recalibrate(model, data, {});
    expect(done.status, done.stderr).toBe(0);
    const written = readRecord(record);
    expect(written.version).toBe(2);
    expect(written.pinned_for).toBeUndefined();
  });
});

/**
 * How a pin (HeldActiveRecord.pin) is decided and settled, from a second reading of the pins
 * written in the publish's hold (h269):
 * - a record that cannot be read fails the publish or the conditional activation with a storage
 *   error, whatever the errno (ESTALE on a network file system was thrown raw: a 500 INTERNAL);
 * - the version a pin names is the one served when the lock is held, not the one this process
 *   saw before waiting for it (a `train` publishing meanwhile, a deletion meanwhile);
 * - a pin whose undo fails after its version was deleted again says what becomes of it;
 * - the cleanup settles a chain of dead publishers' pins in one pass;
 * - a publish over a dead publisher's pin that names the version it was activating keeps that
 *   intent for the cleanup to finish.
 */
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NormserveError } from '../../src/errors/index.js';
import { CompiledModel } from '../../src/inference/index.js';
import type { ActiveRecordStore } from '../../src/repository/active-record.js';
import { intentsReplacedWords, ModelRepository } from '../../src/repository/index.js';
import {
  type AvailableVersion,
  type Log,
  ModelRegistry,
  type ServedVersion,
} from '../../src/service/index.js';
import { clearFsFaults, faultHits, injectFsFaults } from '../helpers/fs-faults.mjs';
import {
  changeHeld,
  failUnpin,
  openPinTest,
  publishLosingLock,
  type RecordOnDisk,
} from '../helpers/pins.js';
import { closeRegistries } from '../helpers/registry.js';
import { removeTempDirs } from '../helpers/temp-files.js';

afterEach(() => {
  clearFsFaults();
  vi.restoreAllMocks();
  closeRegistries();
  removeTempDirs();
});

/** An hour ago and more: a pin's record as old as the cleanup's rule for another host's writer. */
const longAgo = () => new Date(Date.now() - 2 * 3_600_000);

/**
 * An hour later, a cleanup judges the dead publisher's staged directory `aName` and the record
 * abandoned: it removes the directory and finishes the dead recalibration's activation of 2.
 */
async function expectActivatedAfterAnHour(
  root: string,
  model: string,
  record: string,
  aName: string,
): Promise<void> {
  for (const p of [record, join(model, aName, 'config.json'), join(model, aName)])
    utimesSync(p, longAgo(), longAgo());
  const { removed, pinActivations } = await new ModelRepository(root).removeTemporaries();
  expect(removed).toContain(join(model, aName));
  expect(pinActivations).toEqual([{ model: 'digits', version: 2 }]);
  expect(JSON.parse(readFileSync(record, 'utf8'))).toMatchObject({ version: 2 });
}

/** `dir` copied and put back in its place: the same files, another inode (a rename by copy). */
function copiedInPlace(dir: string): void {
  cpSync(dir, `${dir}.copy`, { recursive: true });
  rmSync(dir, { recursive: true });
  renameSync(`${dir}.copy`, dir);
}

/**
 * A second registry over `root` whose warn lines are kept (`warnings`): closed by the caller.
 */
function warnedRegistry(root: string) {
  const warnings: { obj: object; msg?: string }[] = [];
  const log = {
    info: () => undefined,
    warn: (obj: object, msg?: string) => warnings.push({ obj, ...(msg ? { msg } : {}) }),
    error: () => undefined,
  } as unknown as Log;
  return { registry: new ModelRegistry(root, { maxBatchSize: 64, log }), warnings };
}

/**
 * A recalibration on another host (activate if 1 is still active) renamed its version into place
 * and died before writing the activation: publishes that version, and returns the text of its
 * pin, which names it as being published (`pinned_publishing`).
 */
async function deadRecalibrationPin(
  registry: ModelRegistry,
  model: string,
  note = 'pinned',
  /** The record it pinned over (`pinned_over`), and its staged directory's name. */
  under?: { over: string; pinnedFor: string },
): Promise<string> {
  const { version } = await registry.repository.publishVersion(
    registry.resolve('digits').checkpoint,
  );
  const dir = join(model, String(version));
  const inode = statSync(dir, { bigint: true }).ino.toString();
  const sha = createHash('sha256')
    .update(readFileSync(join(dir, 'config.json')))
    .digest('hex');
  return `${JSON.stringify({
    version: 1,
    note,
    pinned_for: under?.pinnedFor ?? '.tmp-otherhost-4242-aaaaaaaaaaaa',
    // In the order of the record's schema, as a pin is written (recordText).
    ...(under ? { pinned_over: under.over } : {}),
    pinned_publishing: { version, inode, config_sha256: sha },
  })}\n`;
}

describe('a record that cannot be read, with an errno that is not EIO (ESTALE on NFS)', () => {
  it('fails an inactive publish with STORAGE_UNAVAILABLE naming the record, nothing published', async () => {
    const { registry, record, staged } = await openPinTest();
    const operators = `${JSON.stringify({ version: 7, note: 'keep 7' })}\n`;
    writeFileSync(record, operators);
    await registry.refresh();
    const { checkpoint } = registry.resolve('digits');
    injectFsFaults([{ op: 'read', suffix: 'active-version.json', code: 'ESTALE' }]);
    const failed = await registry.publish(checkpoint, false).catch((e: unknown) => e);
    clearFsFaults();
    expect(failed).toMatchObject({
      code: 'STORAGE_UNAVAILABLE',
      message: expect.stringMatching(/active-version\.json: cannot be read \(ESTALE\)/),
    });
    expect(await registry.repository.listVersions('digits')).toEqual([1]);
    expect(readFileSync(record, 'utf8')).toBe(operators);
    expect(staged()).toEqual([]);
  });

  it('makes a conditional activation STORAGE_UNAVAILABLE, nothing written', async () => {
    const { registry, record } = await openPinTest();
    const text = `${JSON.stringify({ version: 1 })}\n`;
    writeFileSync(record, text);
    await registry.refresh();
    injectFsFaults([{ op: 'read', suffix: 'active-version.json', code: 'ESTALE' }]);
    const outcome = await registry.activateIf('digits', 1, 1).catch((e: unknown) => e);
    clearFsFaults();
    expect(outcome).toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
    expect(readFileSync(record, 'utf8')).toBe(text);
  });
});

describe('the version a pin names', () => {
  it('is the one served when the lock is held: a version a `train` published meanwhile (no record: the highest) stays served', async () => {
    const { root, registry, record, readRecord, beforeHold } = await openPinTest();
    expect(existsSync(record)).toBe(false);
    const { checkpoint } = registry.resolve('digits');
    // While this publish waits for the record's lock, a `train` CLI publishes version 2 without
    // one: with no record it is what every replica serves.
    beforeHold(async () => {
      await registry.repository.publishVersion(checkpoint);
    });
    expect(await registry.publish(checkpoint, false)).toMatchObject({ version: 3 });
    expect(readRecord().version).toBe(2);
    const other = new ModelRegistry(root, { maxBatchSize: 64 });
    try {
      await other.refresh();
      expect(other.get('digits').active).toBe(2);
    } finally {
      other.close();
    }
  });

  it('is the one served when the lock is held: a served version deleted meanwhile is not named (no 404)', async () => {
    const { registry, readRecord, beforeHold } = await openPinTest();
    const { checkpoint } = registry.resolve('digits');
    await registry.repository.publishVersion(checkpoint); // version 2, the highest, no record
    await registry.refresh();
    expect(registry.get('digits').active).toBe(2);
    // Another replica publishes version 3 and deletes version 2 meanwhile.
    beforeHold(async () => {
      await registry.repository.publishVersion(checkpoint);
      await registry.repository.deleteVersion('digits', 2);
    });
    expect(await registry.publish(checkpoint, false)).toMatchObject({ version: 4 });
    expect(readRecord().version).toBe(3);
  });
});

describe('the version a pin names, when a version above it failed to load here only (h279 R3)', () => {
  it('is the one every process serves: the version this process once failed to read (EMFILE) is loaded again, not rolled back', async () => {
    const { root, registry, model, readRecord } = await openPinTest();
    const { checkpoint } = registry.resolve('digits');
    await registry.repository.publishVersion(checkpoint); // version 2, no record: the highest
    // This process's read of version 2 fails once: FAILED, kept while its files are unchanged.
    injectFsFaults([
      { op: 'open', path: join(model, '2', 'model.safetensors'), code: 'EMFILE', times: 1 },
    ]);
    await registry.refresh();
    clearFsFaults();
    expect(registry.get('digits').active).toBe(1);
    const other = new ModelRegistry(root, { maxBatchSize: 64 });
    try {
      await other.refresh();
      expect(other.get('digits').active).toBe(2);
      expect(await registry.publish(checkpoint, false)).toMatchObject({ version: 3 });
      expect(readRecord().version).toBe(2);
      await other.refresh();
      expect(other.get('digits').active, 'an inactive publish changes nothing served').toBe(2);
      expect(registry.get('digits').active).toBe(2);
    } finally {
      other.close();
    }
  });

  it('is refused while this process still cannot read that version: nothing pinned, nothing published', async () => {
    const { registry, model, record, staged } = await openPinTest();
    const { checkpoint } = registry.resolve('digits');
    await registry.repository.publishVersion(checkpoint); // version 2, no record: the highest
    injectFsFaults([{ op: 'open', path: join(model, '2', 'model.safetensors'), code: 'EMFILE' }]);
    await registry.refresh();
    expect(registry.get('digits').active).toBe(1);
    const failed = await registry.publish(checkpoint, false).catch((e: unknown) => e);
    clearFsFaults();
    expect(failed).toMatchObject({
      code: 'STORAGE_UNAVAILABLE',
      message: expect.stringMatching(/version 2 cannot be read here .*no version was published/),
    });
    expect(existsSync(record)).toBe(false);
    expect(await registry.repository.listVersions('digits')).toEqual([1, 2]);
    expect(staged()).toEqual([]);
  });

  it('passes over a version whose files are broken, which no process serves', async () => {
    const { registry, model, readRecord } = await openPinTest();
    const { checkpoint } = registry.resolve('digits');
    await registry.repository.publishVersion(checkpoint); // version 2
    writeFileSync(join(model, '2', 'model.safetensors'), 'not a safetensors file');
    await registry.refresh();
    expect(registry.get('digits').active).toBe(1);
    expect(await registry.publish(checkpoint, false)).toMatchObject({ version: 3 });
    expect(readRecord().version).toBe(1);
  });
});

describe('a pin whose undo fails after its version, which did not load, was deleted again', () => {
  it('stays naming the version served, and the error says so (no staged directory to wait for)', async () => {
    const { registry, record, readRecord, staged } = await openPinTest();
    expect(existsSync(record)).toBe(false);
    const { config } = registry.resolve('digits').checkpoint;
    failUnpin(registry);
    const errors: string[] = [];
    vi.spyOn(
      (registry as unknown as { log: { error: (o: unknown, m: string) => void } }).log,
      'error',
    ).mockImplementation((_o, m) => {
      errors.push(m);
    });
    const failed = await registry
      .publish({ config, state: new Map() }, false)
      .catch((e: unknown) => e);
    expect(failed).toMatchObject({ code: 'REPOSITORY_ERROR' });
    expect(await registry.repository.listVersions('digits')).toEqual([1]);
    expect(readRecord()).toMatchObject({ version: 1 });
    expect(staged()).toEqual([]);
    const pinErrors = errors.filter((m) => m.includes('pin'));
    expect(pinErrors).toHaveLength(1);
    expect(pinErrors[0]).toMatch(/version 2 was published, did not load and was deleted again/);
    expect(pinErrors[0]).toMatch(/not served as the highest until a version is activated/);
    expect(pinErrors[0]).not.toMatch(/staged directory kept/);
  });
});

describe('two dead publishes, one pinned over the other', () => {
  it('are both undone by one cleanup pass: no record, as before the first pin', async () => {
    const { root, model, record } = await openPinTest();
    // D: a publish on another host pinned version 1 (no record before) and died before its rename.
    const dName = '.tmp-otherhost-4242-aaaaaaaaaaaa';
    const dText = `${JSON.stringify({ version: 1, note: 'pinned', pinned_for: dName })}\n`;
    // P: a publish on a third host pinned over D and died before its rename.
    const pName = '.tmp-thirdhost-4343-bbbbbbbbbbbb';
    const p = { version: 1, note: 'pinned', pinned_for: pName, pinned_over: dText };
    writeFileSync(record, `${JSON.stringify(p)}\n`);
    for (const n of [dName, pName]) {
      mkdirSync(join(model, n));
      writeFileSync(join(model, n, 'config.json'), '{}');
      utimesSync(join(model, n, 'config.json'), longAgo(), longAgo());
      utimesSync(join(model, n), longAgo(), longAgo());
    }
    const { removed, pinsUndone } = await new ModelRepository(root).removeTemporaries();
    expect(removed).toEqual(expect.arrayContaining([join(model, dName), join(model, pName)]));
    expect(pinsUndone).toEqual(['digits']);
    expect(existsSync(record)).toBe(false);
  });
});

describe("an inactive publish over a dead publisher's pin naming the version it was activating", () => {
  it('keeps that intent: the cleanup finishes the activation once the writer is judged gone', async () => {
    const { root, registry, model, record } = await openPinTest();
    const { checkpoint } = registry.resolve('digits');
    // Its pin names version 2 as being published.
    writeFileSync(
      record,
      await deadRecalibrationPin(
        registry,
        model,
        'pinned before publishing a version activated only if this one is still active',
      ),
    );
    await registry.refresh();
    expect(registry.get('digits').active).toBe(1);
    // Within the hour, an inactive publish here.
    expect(await registry.publish(checkpoint, false)).toMatchObject({ version: 3 });
    await registry.refresh();
    expect(registry.get('digits').active, 'the inactive version 3 is not served').toBe(1);
    // An hour later (the record's mtime moved back): the other host's writer is judged gone.
    utimesSync(record, longAgo(), longAgo());
    const { pinActivations } = await new ModelRepository(root).removeTemporaries();
    expect(pinActivations).toEqual([{ model: 'digits', version: 2 }]);
    expect(JSON.parse(readFileSync(record, 'utf8'))).toMatchObject({ version: 2 });
  });

  it('its undo, when the activation cannot be finished, puts back the plain record naming the version served (not no record)', async () => {
    const { root, registry, record } = await openPinTest();
    const { checkpoint } = registry.resolve('digits');
    // The dead recalibration's version 2 is not there: it never got renamed.
    writeFileSync(
      record,
      `${JSON.stringify({
        version: 1,
        note: 'pinned',
        pinned_for: '.tmp-otherhost-4242-aaaaaaaaaaaa',
        pinned_publishing: { version: 2, inode: '1', config_sha256: '0'.repeat(64) },
      })}\n`,
    );
    await registry.refresh();
    expect(await registry.publish(checkpoint, false)).toMatchObject({ version: 2 });
    utimesSync(record, longAgo(), longAgo());
    const { pinsUndone } = await new ModelRepository(root).removeTemporaries();
    expect(pinsUndone).toEqual(['digits']);
    expect(JSON.parse(readFileSync(record, 'utf8'))).toMatchObject({ version: 1 });
    await registry.refresh();
    expect(registry.get('digits').active, 'the inactive version 2 is not served').toBe(1);
  });
});

describe("a dead recalibration's intent whose version was copied into place (h285)", () => {
  it('is finished by its number and config.json, whatever the directory’s inode (FUSE stores, overlayfs without xino)', async () => {
    const { root, registry, model, record } = await openPinTest();
    writeFileSync(record, await deadRecalibrationPin(registry, model)); // version 2
    copiedInPlace(join(model, '2'));
    utimesSync(record, longAgo(), longAgo());
    const { pinsUndone, pinActivations } = await new ModelRepository(root).removeTemporaries();
    expect(pinsUndone).toEqual([]);
    expect(pinActivations).toEqual([{ model: 'digits', version: 2 }]);
    expect(JSON.parse(readFileSync(record, 'utf8'))).toMatchObject({ version: 2 });
  });
});

describe("a dead recalibration's intent whose version cannot be read (h286)", () => {
  it('is left for a later cleanup on a failed read (ESTALE), and undone when its config.json is broken for good', async () => {
    const { root, registry, model, record } = await openPinTest();
    const pin = await deadRecalibrationPin(registry, model); // version 2
    writeFileSync(record, pin);
    utimesSync(record, longAgo(), longAgo());
    injectFsFaults([{ op: 'stat', suffix: join('digits', '2'), code: 'ESTALE', times: 1 }]);
    const first = await new ModelRepository(root).removeTemporaries();
    clearFsFaults();
    expect([first.pinsUndone, first.pinActivations]).toEqual([[], []]);
    expect(first.pinsUnsettled).toEqual([
      { model: 'digits', error: expect.stringContaining('ESTALE') },
    ]);
    expect(readFileSync(record, 'utf8'), 'the pin, as it was').toBe(pin);
    rmSync(join(model, '2', 'config.json'));
    mkdirSync(join(model, '2', 'config.json'));
    const { pinsUndone } = await new ModelRepository(root).removeTemporaries();
    expect(pinsUndone).toEqual(['digits']);
  });
});

describe("a dead publisher's pin and the record's age (h271)", () => {
  it('carried over by an inactive publish, keeps the age by which the cleanup judges its writer', async () => {
    const { registry, model, record } = await openPinTest();
    const { checkpoint } = registry.resolve('digits');
    writeFileSync(record, await deadRecalibrationPin(registry, model)); // version 2, being activated
    const fiftyMinutesAgo = new Date(Date.now() - 50 * 60_000);
    utimesSync(record, fiftyMinutesAgo, fiftyMinutesAgo);
    await registry.refresh();
    expect(await registry.publish(checkpoint, false)).toMatchObject({ version: 3 });
    expect(JSON.parse(readFileSync(record, 'utf8'))).toMatchObject({
      pinned_for: '.tmp-otherhost-4242-aaaaaaaaaaaa',
    });
    // Each inactive publish used to make it new again, putting the activation off by an hour.
    expect(Math.abs(statSync(record).mtimeMs - fiftyMinutesAgo.getTime())).toBeLessThan(2_000);
  });

  it('whose undo fails (the record lock held elsewhere) keeps its staged directory, and a later cleanup undoes it', async () => {
    const { root, registry, model, record } = await openPinTest();
    expect(existsSync(record)).toBe(false);
    // D, on another host, pinned version 1 (no record before) and died before its rename.
    const dName = '.tmp-otherhost-4242-aaaaaaaaaaaa';
    writeFileSync(record, `${JSON.stringify({ version: 1, note: 'pinned', pinned_for: dName })}\n`);
    mkdirSync(join(model, dName));
    writeFileSync(join(model, dName, 'config.json'), '{}');
    for (const p of [join(model, dName, 'config.json'), join(model, dName)])
      utimesSync(p, longAgo(), longAgo());
    // Another replica holds the record's lock longer than this cleanup waits for it.
    let release!: () => void;
    let held!: () => void;
    const holding = new Promise<void>((r) => {
      held = r;
    });
    const hold = new ModelRepository(root).withActiveRecord(
      'digits',
      () =>
        new Promise<void>((r) => {
          held();
          release = r;
        }),
      'a test hold',
    );
    await holding;
    const cleanup = new ModelRepository(root, { activeRecordLockWaitMs: 300 });
    const first = await cleanup.removeTemporaries();
    release();
    await hold;
    expect(first.pinsUndone).toEqual([]);
    expect(first.removed).not.toContain(join(model, dName));
    expect(existsSync(join(model, dName)), 'the one sign that nothing was published').toBe(true);

    const second = await cleanup.removeTemporaries();
    expect(second.pinsUndone).toEqual(['digits']);
    expect(second.removed).toContain(join(model, dName));
    expect(existsSync(record)).toBe(false);
    // So a version a `train` publishes is served as the highest again.
    await registry.repository.publishVersion(registry.resolve('digits').checkpoint);
    await registry.refresh();
    expect(registry.get('digits').active).toBe(2);
  });
});

describe('a record that is a symbolic link to itself (ELOOP)', () => {
  it('is no record, as a link out of the repository is none: an inactive publish goes on and leaves it', async () => {
    const { registry, record, staged } = await openPinTest();
    symlinkSync('active-version.json', record);
    const { checkpoint } = registry.resolve('digits');
    expect(await registry.publish(checkpoint, false)).toMatchObject({ version: 2 });
    expect(staged()).toEqual([]);
    expect(readlinkSync(record)).toBe('active-version.json');
  });
});

describe('an inactive publish killed after its rename, its pin over a dead recalibration’s intent', () => {
  it('is made the lasting record its publish would have left, carrying that intent, which the cleanup finishes (h271)', async () => {
    const { root, registry, model, record } = await openPinTest();
    const { checkpoint } = registry.resolve('digits');
    // D (another host): activate-if-1 recalibration, renamed its version 2, died before activating.
    const dText = await deadRecalibrationPin(registry, model);
    // P (a third host): inactive publish, pinned 1 over D's pin, renamed its version 3, killed
    // before making its pin a lasting record.
    await registry.repository.publishVersion(checkpoint);
    writeFileSync(
      record,
      `${JSON.stringify({
        version: 1,
        note: 'pinned',
        pinned_for: '.tmp-thirdhost-4343-bbbbbbbbbbbb',
        pinned_over: dText,
      })}\n`,
    );
    utimesSync(record, longAgo(), longAgo());
    const { pinActivations } = await new ModelRepository(root).removeTemporaries();
    expect(pinActivations).toEqual([{ model: 'digits', version: 2 }]);
    expect(JSON.parse(readFileSync(record, 'utf8'))).toMatchObject({ version: 2 });
  });

  it('without an intent under it, is made a plain record naming the version served', async () => {
    const { root, registry, record } = await openPinTest();
    await registry.repository.publishVersion(registry.resolve('digits').checkpoint); // P's version 2
    writeFileSync(
      record,
      `${JSON.stringify({ version: 1, note: 'pinned', pinned_for: '.tmp-thirdhost-4343-bbbbbbbbbbbb' })}\n`,
    );
    utimesSync(record, longAgo(), longAgo());
    const { pinsUndone, pinActivations } = await new ModelRepository(root).removeTemporaries();
    expect([pinsUndone, pinActivations]).toEqual([[], []]);
    const after = JSON.parse(readFileSync(record, 'utf8'));
    expect(after).toMatchObject({ version: 1 });
    expect(after).not.toHaveProperty('pinned_for');
    await registry.refresh();
    expect(registry.get('digits').active, 'the inactive version 2 is not served').toBe(1);
  });
});

describe("a dead recalibration's intent two pins down (h279 R1)", () => {
  /**
   * A (a third host): an inactive publish that pinned version 1 over D's pin (`dText`) and died
   * before its rename, its staged directory left. Returns A's staged directory's name and pin.
   */
  function deadBeforeRenamePin(model: string, dText: string): { aName: string; aText: string } {
    const aName = '.tmp-thirdhost-4343-bbbbbbbbbbbb';
    mkdirSync(join(model, aName));
    writeFileSync(join(model, aName, 'config.json'), '{}');
    const aText = `${JSON.stringify({ version: 1, note: 'pinned', pinned_for: aName, pinned_over: dText })}\n`;
    return { aName, aText };
  }

  it('is kept by an inactive publish over the pin above it: the cleanup undoes that pin, then finishes the activation', async () => {
    const { root, registry, model, record } = await openPinTest();
    const { checkpoint } = registry.resolve('digits');
    const dText = await deadRecalibrationPin(registry, model); // D: activate 2 if 1 is active
    const { aName, aText } = deadBeforeRenamePin(model, dText);
    writeFileSync(record, aText);
    await registry.refresh();
    // B, within the hour: an inactive publish here, pinning over A.
    expect(await registry.publish(checkpoint, false)).toMatchObject({ version: 3 });
    const carried = JSON.parse(readFileSync(record, 'utf8'));
    expect(carried).toMatchObject({ version: 1, pinned_for: aName });
    expect(JSON.parse(carried.pinned_over)).toMatchObject({
      version: 1,
      pinned_publishing: { version: 2 },
    });
    await expectActivatedAfterAnHour(root, model, record, aName);
  });

  it('is kept when the cleanup makes a pin over it lasting: one pass undoes the pin between, then finishes the activation', async () => {
    const { root, registry, model, record } = await openPinTest();
    const { checkpoint } = registry.resolve('digits');
    const dText = await deadRecalibrationPin(registry, model); // version 2
    const { aName, aText } = deadBeforeRenamePin(model, dText);
    // P (a fourth host): an inactive publish that pinned 1 over A, renamed its version 3 into
    // place and died before making its pin a lasting record.
    await registry.repository.publishVersion(checkpoint);
    writeFileSync(
      record,
      `${JSON.stringify({ version: 1, note: 'pinned', pinned_for: '.tmp-fourthhost-4444-cccccccccccc', pinned_over: aText })}\n`,
    );
    await expectActivatedAfterAnHour(root, model, record, aName);
  });
});

describe("a pin's undo whose read fails with an errno no table lists (ENOTCONN on a network file system, h279 R2)", () => {
  it('is a storage failure, not a record changed by hand: the staged directory the pin names is kept for the cleanup after this process', async () => {
    const { registry, readRecord, staged } = await openPinTest();
    // The undo's read of the record fails once, with an errno outside the storage table.
    changeHeld(registry, (held) => ({
      unpin: async (pin) => {
        injectFsFaults([{ op: 'read', suffix: 'active-version.json', code: 'ENOTCONN' }]);
        try {
          return await held.unpin(pin);
        } finally {
          clearFsFaults();
        }
      },
    }));
    // A recalibration's model lock lost just before its rename: nothing published, the pin undone.
    const failed = await publishLosingLock(registry);
    expect(failed).toMatchObject({ code: 'LOCK_LOST' });
    expect(await registry.repository.listVersions('digits')).toEqual([1]);
    const pin = readRecord();
    expect(pin.pinned_for).toBeDefined();
    expect(staged(), 'a pin never names a directory that is gone').toEqual([pin.pinned_for]);
  });
});

describe("a dead publisher's pin whose staged directory is gone, with no version above the one it pins (h279 R4)", () => {
  it('is undone, not made lasting: the directory went without a rename, nothing was published', async () => {
    const { root, registry, record } = await openPinTest();
    expect(existsSync(record)).toBe(false);
    // A publish on another host pinned version 1 (no record before) and died; its staged
    // directory was removed by hand, never renamed into place.
    writeFileSync(
      record,
      `${JSON.stringify({ version: 1, note: 'pinned', pinned_for: '.tmp-thirdhost-4343-bbbbbbbbbbbb' })}\n`,
    );
    utimesSync(record, longAgo(), longAgo());
    const { pinsUndone } = await new ModelRepository(root).removeTemporaries();
    expect(pinsUndone).toEqual(['digits']);
    expect(existsSync(record), 'as before the pin: no record').toBe(false);
    // So a version a `train` publishes is served as the highest again.
    await registry.repository.publishVersion(registry.resolve('digits').checkpoint);
    await registry.refresh();
    expect(registry.get('digits').active).toBe(2);
  });
});

const readRecordText = (record: string) => readFileSync(record, 'utf8');

/** What a pin records of its staged directory (`pinned_staged`). */
function identityOf(dir: string): { config_sha256: string } {
  return {
    config_sha256: createHash('sha256')
      .update(readFileSync(join(dir, 'config.json')))
      .digest('hex'),
  };
}

/**
 * The pin of a publish on a third host that died with its staged directory gone: it records that
 * directory's identity (`pinned_staged`); `renamedAs` the version directory it became, else one
 * removed by hand before its rename (its config.json its own, which no version holds).
 */
function deadPinWithIdentity(model: string, renamedAs?: number): string {
  let staged: { config_sha256: string };
  if (renamedAs !== undefined) staged = identityOf(join(model, String(renamedAs)));
  else {
    const dir = join(model, '.tmp-thirdhost-4343-bbbbbbbbbbbb');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), '{"staged": "by the dead publish"}');
    staged = identityOf(dir);
    rmSync(dir, { recursive: true });
  }
  return `${JSON.stringify({
    version: 1,
    note: 'pinned',
    pinned_for: '.tmp-thirdhost-4343-bbbbbbbbbbbb',
    pinned_staged: staged,
  })}\n`;
}

describe("a dead publisher's pin whose staged directory is gone, by the directory's identity (h282 R1)", () => {
  it('records the identity of its staged directory, which the version published keeps', async () => {
    const { registry, model } = await openPinTest();
    const pins: (RecordOnDisk | undefined)[] = [];
    changeHeld(registry, (held) => ({
      pin: async (...args) => {
        const pin = await held.pin(...args);
        pins.push(pin?.record as RecordOnDisk | undefined);
        return pin;
      },
    }));
    const { checkpoint } = registry.resolve('digits');
    expect(await registry.publish(checkpoint, false)).toMatchObject({ version: 2 });
    expect(pins).toHaveLength(1);
    expect(pins[0]?.pinned_staged).toEqual(identityOf(join(model, '2')));
  });

  it('is undone when a `train` published a version above it meanwhile (not the staged directory)', async () => {
    const { root, registry, model, record } = await openPinTest();
    writeFileSync(record, deadPinWithIdentity(model));
    // Within the hour (its writer may live), a train publishes version 2 (no lock): not served
    // while the pin names 1.
    await registry.repository.publishVersion(registry.resolve('digits').checkpoint);
    expect(readRecordText(record)).toMatch(/pinned_for/);
    utimesSync(record, longAgo(), longAgo());
    const { pinsUndone } = await new ModelRepository(root).removeTemporaries();
    expect(pinsUndone).toEqual(['digits']);
    expect(existsSync(record), 'as before the pin: no record').toBe(false);
    await registry.refresh();
    expect(registry.get('digits').active, "the train's version is served as the highest").toBe(2);
  });

  it('is undone when the version above it is a broken one (not the staged directory)', async () => {
    const { root, registry, model, record } = await openPinTest();
    await registry.repository.publishVersion(registry.resolve('digits').checkpoint);
    writeFileSync(join(model, '2', 'model.safetensors'), 'not a safetensors file');
    writeFileSync(record, deadPinWithIdentity(model));
    utimesSync(record, longAgo(), longAgo());
    const { pinsUndone } = await new ModelRepository(root).removeTemporaries();
    expect(pinsUndone).toEqual(['digits']);
    expect(existsSync(record)).toBe(false);
  });

  it('is made a plain record when a version directory is the staged one (renamed, then the publish died)', async () => {
    const { root, registry, model, record } = await openPinTest();
    await registry.repository.publishVersion(registry.resolve('digits').checkpoint); // version 2
    await registry.repository.publishVersion(registry.resolve('digits').checkpoint); // version 3
    writeFileSync(record, deadPinWithIdentity(model, 2));
    utimesSync(record, longAgo(), longAgo());
    const { pinsUndone } = await new ModelRepository(root).removeTemporaries();
    expect(pinsUndone).toEqual([]);
    const after = JSON.parse(readFileSync(record, 'utf8'));
    expect(after).toMatchObject({ version: 1 });
    expect(after).not.toHaveProperty('pinned_for');
  });

  it('is made a plain record when the version holding its config.json is a copy, not the same inode (a rename by copy: FUSE stores; overlayfs without xino)', async () => {
    const { root, registry, model, record } = await openPinTest();
    await registry.repository.publishVersion(registry.resolve('digits').checkpoint); // version 2
    // As a pin of the hour before this rule also recorded it: the staged directory's inode.
    const pin = JSON.parse(deadPinWithIdentity(model, 2));
    pin.pinned_staged.inode = statSync(join(model, '2'), { bigint: true }).ino.toString();
    writeFileSync(record, `${JSON.stringify(pin)}\n`);
    // The version's directory copied and put back: another inode, the same files.
    copiedInPlace(join(model, '2'));
    utimesSync(record, longAgo(), longAgo());
    const { pinsUndone } = await new ModelRepository(root).removeTemporaries();
    expect(pinsUndone).toEqual([]);
    const after = JSON.parse(readFileSync(record, 'utf8'));
    expect(after).toMatchObject({ version: 1 });
    expect(after, 'made lasting').not.toHaveProperty('pinned_for');
    await registry.refresh();
    expect(registry.get('digits').active, 'the inactive version 2 is not served').toBe(1);
  });

  it('is made a plain record past a version above whose files are broken for good (config.json a directory), or cannot be read here', async () => {
    for (const broken of ['directory', 'EACCES'] as const) {
      const { root, registry, model, record } = await openPinTest();
      await registry.repository.publishVersion(registry.resolve('digits').checkpoint); // 2
      await registry.repository.publishVersion(registry.resolve('digits').checkpoint); // 3
      writeFileSync(record, deadPinWithIdentity(model, 3));
      utimesSync(record, longAgo(), longAgo());
      if (broken === 'directory') {
        rmSync(join(model, '2', 'config.json'));
        mkdirSync(join(model, '2', 'config.json'));
      } else
        injectFsFaults([{ op: 'open', path: join(model, '2', 'config.json'), code: 'EACCES' }]);
      const { pinsUndone } = await new ModelRepository(root).removeTemporaries();
      clearFsFaults();
      expect(pinsUndone, broken).toEqual([]);
      expect(JSON.parse(readFileSync(record, 'utf8')), broken).not.toHaveProperty('pinned_for');
    }
  });

  it('is left for a later cleanup when a version directory cannot be read (ESTALE): never undone on a failed read', async () => {
    const { root, registry, model, record } = await openPinTest();
    await registry.repository.publishVersion(registry.resolve('digits').checkpoint); // version 2
    const pin = deadPinWithIdentity(model, 2);
    writeFileSync(record, pin);
    utimesSync(record, longAgo(), longAgo());
    injectFsFaults([{ op: 'stat', suffix: join('digits', '2'), code: 'ESTALE', times: 1 }]);
    const { pinsUndone, pinsUnsettled } = await new ModelRepository(root).removeTemporaries();
    clearFsFaults();
    expect(pinsUndone).toEqual([]);
    expect(pinsUnsettled).toEqual([{ model: 'digits', error: expect.stringContaining('ESTALE') }]);
    expect(readFileSync(record, 'utf8'), 'the pin, as it was').toBe(pin);
    // The next cleanup, the storage reading again: made lasting.
    await new ModelRepository(root).removeTemporaries();
    expect(JSON.parse(readFileSync(record, 'utf8'))).not.toHaveProperty('pinned_for');
  });
});

describe('versions this process failed to read, as a pin names the version served (h282 R2, R3)', () => {
  it('more than MAX_FRESH_LOADS of them (an EMFILE burst): the highest are loaded again, and the publish pins the one every process serves', async () => {
    const { registry, readRecord } = await openPinTest();
    const { checkpoint } = registry.resolve('digits');
    for (let i = 0; i < 5; i++) await registry.repository.publishVersion(checkpoint); // 2..6
    injectFsFaults([{ op: 'open', path: 'model.safetensors', code: 'EMFILE', times: 5 }]);
    await registry.refresh();
    clearFsFaults();
    // A later refresh that retries no read (a publish's, or an operator's :activate): FAILED kept,
    // fingerprints unchanged. (A scan would load the highest again: read-retry.test.ts.)
    await registry.refreshModel('digits');
    expect(registry.get('digits').active).toBe(1);
    // The storage reads again (every other process serves 6).
    expect(await registry.publish(checkpoint, false)).toMatchObject({ version: 7 });
    expect(readRecord().version).toBe(6);
    expect(registry.get('digits').active).toBe(6);
  });

  /** Makes `registry`'s own loads of version 2 fail with `error`: another process loads it. */
  function failHere(registry: ModelRegistry, error: () => Error): void {
    const load = registry.repository.loadVersion.bind(registry.repository);
    vi.spyOn(registry.repository, 'loadVersion').mockImplementation(async (name, version) => {
      if (version === 2) throw error();
      return load(name, version);
    });
  }

  for (const [what, error] of [
    [
      'EACCES, this process alone (a root-squashed NFS mount, a replica of another uid)',
      () =>
        new NormserveError('REPOSITORY_ERROR', 'digits/2/model.safetensors: cannot be read', {
          cause: Object.assign(new Error('EACCES: permission denied, open'), { code: 'EACCES' }),
        }),
    ],
    [
      'a RangeError building the network (this process short of memory)',
      () => new RangeError('Array buffer allocation failed'),
    ],
  ] as const)
    it(`a load failing here with ${what} is a failure another process may not meet: the publish is refused, nothing pinned, and no replica rolled back (h283 F3)`, async () => {
      const { root, registry, model, record, staged } = await openPinTest();
      const { checkpoint } = registry.resolve('digits');
      await registry.repository.publishVersion(checkpoint); // 2
      failHere(registry, error);
      await registry.refresh();
      expect(registry.get('digits').active).toBe(1);
      const other = new ModelRegistry(root, { maxBatchSize: 64 });
      try {
        await other.refresh();
        expect(other.get('digits').active, 'the other process serves 2').toBe(2);
        await expect(registry.publish(checkpoint, false)).rejects.toMatchObject({
          code: 'STORAGE_UNAVAILABLE',
          message: expect.stringContaining('version 2 cannot be read here'),
        });
        expect(existsSync(record), 'nothing pinned').toBe(false);
        expect(await registry.repository.listVersions('digits')).toEqual([1, 2]);
        expect(staged()).toEqual([]);
        await other.refresh();
        expect(other.get('digits').active, 'still 2').toBe(2);
        expect(existsSync(join(model, '3'))).toBe(false);
      } finally {
        other.close();
      }
    });
});

describe('a version that does not compile here, or no version that loads here (h288)', () => {
  it('a compile failing for memory (a RangeError sizing the buffers) is a failure another process may not meet: the publish is refused, nothing pinned', async () => {
    const { root, registry, record, staged } = await openPinTest();
    const { checkpoint } = registry.resolve('digits');
    await registry.repository.publishVersion(checkpoint); // 2
    const building = CompiledModel.building;
    let failing = true;
    vi.spyOn(CompiledModel, 'building').mockImplementation(function* (...args) {
      if (failing) throw new RangeError('Array buffer allocation failed');
      return yield* building.apply(CompiledModel, args);
    });
    await registry.refresh();
    expect(registry.get('digits').active).toBe(1);
    const other = new ModelRegistry(root, { maxBatchSize: 64 });
    try {
      failing = false;
      await other.refresh();
      expect(other.get('digits').active, 'the other process serves 2').toBe(2);
      failing = true;
      await expect(registry.publish(checkpoint, false)).rejects.toMatchObject({
        code: 'STORAGE_UNAVAILABLE',
        message: expect.stringContaining('version 2 cannot be read here'),
      });
      expect(existsSync(record), 'nothing pinned').toBe(false);
      expect(staged()).toEqual([]);
    } finally {
      other.close();
    }
  });

  it('with versions on disk and none loading here, an inactive publish is refused rather than published without a pin', async () => {
    const { root, registry, model, record, staged } = await openPinTest();
    const { checkpoint } = registry.resolve('digits');
    writeFileSync(join(model, '1', 'model.safetensors'), 'not a safetensors file');
    // A process started now: version 1 does not load here.
    const here = new ModelRegistry(root, { maxBatchSize: 64 });
    try {
      await here.refresh();
      expect(here.get('digits').active).toBeUndefined();
      await expect(here.publish(checkpoint, false)).rejects.toMatchObject({
        code: 'STORAGE_UNAVAILABLE',
        message: expect.stringContaining('none of its versions loads in this process'),
      });
      expect(existsSync(record)).toBe(false);
      expect(await here.repository.listVersions('digits')).toEqual([1]);
      expect(staged()).toEqual([]);
    } finally {
      here.close();
    }
  });
});

describe('a version loaded again for a pin (h282 R4)', () => {
  /** Version 2 failed to read here once (EMFILE): FAILED, readFailed, kept. */
  async function failedOnce() {
    const test = await openPinTest();
    const { registry, model } = test;
    await registry.repository.publishVersion(registry.resolve('digits').checkpoint);
    injectFsFaults([
      { op: 'open', path: join(model, '2', 'model.safetensors'), code: 'EMFILE', times: 1 },
    ]);
    await registry.refresh();
    clearFsFaults();
    expect(registry.get('digits').active).toBe(1);
    return test;
  }

  /**
   * Calls `then` with version 2 the first time it is loaded again (the pin's reload), before its
   * refresh.
   */
  function onReload(registry: ModelRegistry, then: (loaded: AvailableVersion) => void): void {
    const target = registry as unknown as {
      loadVersion: (name: string, version: number) => Promise<ServedVersion>;
    };
    const loadVersion = target.loadVersion.bind(registry);
    let reloaded = false;
    vi.spyOn(target, 'loadVersion').mockImplementation(async (name, version) => {
      const loaded = await loadVersion(name, version);
      if (version === 2 && loaded.state === 'AVAILABLE' && !reloaded) {
        reloaded = true;
        then(loaded);
      }
      return loaded;
    });
  }

  it('is released when the refreshed snapshot does not hold it (its directory removed meanwhile)', async () => {
    const { registry, model } = await failedOnce();
    let close: ReturnType<typeof vi.fn> | undefined;
    onReload(registry, (loaded) => {
      close = vi.spyOn(loaded.compiled, 'close') as unknown as ReturnType<typeof vi.fn>;
      rmSync(join(model, '2'), { recursive: true });
    });
    // Version 2 gone (removed by hand, no tombstone): the pin names 1, and 2 is published anew.
    expect(await registry.publish(registry.resolve('digits').checkpoint, false)).toMatchObject({
      version: 2,
      activated: false,
    });
    expect(close).toHaveBeenCalled();
  });

  it('is not released while served when the refresh fails after swapping it in', async () => {
    const { registry } = await failedOnce();
    let close: ReturnType<typeof vi.fn> | undefined;
    onReload(registry, (loaded) => {
      close = vi.spyOn(loaded.compiled, 'close') as unknown as ReturnType<typeof vi.fn>;
      const target = registry as unknown as { swap: (...args: unknown[]) => unknown };
      const swap = target.swap.bind(registry);
      vi.spyOn(target, 'swap').mockImplementationOnce((...args) => {
        swap(...args);
        throw new Error('after the swap');
      });
    });
    const failed = await registry
      .publish(registry.resolve('digits').checkpoint, false)
      .catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(Error);
    expect(registry.get('digits').active).toBe(2);
    expect(close).not.toHaveBeenCalled();
  });
});

describe('a pin still to be settled past MAX_PINS_SETTLED pins down the chain (h282 R5)', () => {
  /** D's intent (activate 2 if 1 is active) under eight dead publishes' pins, their dirs gone. */
  async function deepChain(registry: ModelRegistry, model: string): Promise<string> {
    let text = await deadRecalibrationPin(registry, model);
    for (let i = 0; i < 8; i++)
      text = `${JSON.stringify({ version: 1, note: 'pinned', pinned_for: `.tmp-h${i}-4343-bbbbbbbbbbbb`, pinned_over: text })}\n`;
    return text;
  }

  it('is dropped with a warning naming it when an inactive publish settles its pin', async () => {
    const { registry, model, record } = await openPinTest();
    writeFileSync(record, await deepChain(registry, model));
    await registry.refresh();
    const warnings: string[] = [];
    vi.spyOn(
      (registry as unknown as { log: { warn: (o: unknown, m: string) => void } }).log,
      'warn',
    ).mockImplementation((_o, m) => {
      warnings.push(m);
    });
    expect(await registry.publish(registry.resolve('digits').checkpoint, false)).toMatchObject({
      version: 3,
    });
    const dropped = warnings.filter((m) => m.includes('dropped'));
    expect(dropped).toHaveLength(1);
    expect(dropped[0]).toMatch(
      /\.tmp-otherhost-4242-aaaaaaaaaaaa \(its publish was activating version 2\)/,
    );
  });

  it('is returned by the cleanup that makes a pin over it lasting (pinsDropped)', async () => {
    const { root, registry, model, record } = await openPinTest();
    const chain = await deepChain(registry, model); // version 2
    await registry.repository.publishVersion(registry.resolve('digits').checkpoint); // 3
    writeFileSync(
      record,
      `${JSON.stringify({ version: 1, note: 'pinned', pinned_for: '.tmp-ninthhost-4444-cccccccccccc', pinned_staged: identityOf(join(model, '3')), pinned_over: chain })}\n`,
    );
    utimesSync(record, longAgo(), longAgo());
    const { pinsDropped } = await new ModelRepository(root).removeTemporaries();
    expect(pinsDropped).toEqual([
      {
        model: 'digits',
        pins: [{ version: 1, pinnedFor: '.tmp-otherhost-4242-aaaaaaaaaaaa', publishing: 2 }],
      },
    ]);
  });
});

describe('a conditional publish over a plain record naming its parent (h288: the intent needs a pin to go in)', () => {
  const operators = `${JSON.stringify({ version: 1, updated_at: '2026-12-01T00:00:00.000Z', note: 'rolled back by hand' })}\n`;

  it('whose activation is not written (the storage fails) leaves the operator’s record as it was, its age too', async () => {
    const { registry, record, staged } = await openPinTest();
    writeFileSync(record, operators);
    utimesSync(record, longAgo(), longAgo());
    const age = statSync(record).mtimeMs;
    await registry.refresh();
    changeHeld(registry, () => ({
      writeActiveIf: () =>
        Promise.reject(
          new NormserveError(
            'STORAGE_UNAVAILABLE',
            'cannot record version 2 of "digits" as active',
          ),
        ),
    }));
    const result = await registry.publish(registry.resolve('digits').checkpoint, true, 'recal', {
      ifActive: 1,
    });
    expect(result).toMatchObject({ version: 2, activated: false });
    expect(readFileSync(record, 'utf8')).toBe(operators);
    // Given back at the millisecond (keepRecordAge's utimes), not made new.
    expect(Math.abs(statSync(record).mtimeMs - age)).toBeLessThan(2);
    expect(staged()).toEqual([]);
  });

  it('whose publish fails before its rename puts the operator’s record back as it was', async () => {
    const { registry, record } = await openPinTest();
    writeFileSync(record, operators);
    await registry.refresh();
    expect(await publishLosingLock(registry)).toMatchObject({ code: 'LOCK_LOST' });
    expect(readFileSync(record, 'utf8')).toBe(operators);
    expect(await registry.repository.listVersions('digits')).toEqual([1]);
  });

  it('that goes through activates its version over the pin', async () => {
    const { registry, record, readRecord } = await openPinTest();
    writeFileSync(record, operators);
    await registry.refresh();
    const result = await registry.publish(registry.resolve('digits').checkpoint, true, 'recal', {
      ifActive: 1,
    });
    expect(result).toMatchObject({ version: 2, activated: true });
    expect(readRecord()).toMatchObject({ version: 2, note: 'recal' });
    expect(readRecord()).not.toHaveProperty('pinned_for');
  });
});

describe('an activation over a dead recalibration’s intent still to be finished (h288: dropped without a word)', () => {
  /** digits/2 renamed into place by a dead recalibration whose pin names it as being published. */
  async function withDeadIntent() {
    const test = await openPinTest();
    writeFileSync(test.record, await deadRecalibrationPin(test.registry, test.model));
    const { registry, warnings } = warnedRegistry(test.root);
    await registry.refresh();
    expect(registry.get('digits').active).toBe(1);
    return { ...test, registry, warnings };
  }

  it('an operator’s :activate replacing it says so, naming the version left inactive', async () => {
    const { registry, warnings, readRecord } = await withDeadIntent();
    try {
      await registry.activate('digits', 1, 'keep 1');
      expect(readRecord()).toMatchObject({ version: 1, note: 'keep 1' });
      expect(warnings).toEqual([
        {
          obj: expect.objectContaining({
            model: 'digits',
            version: 1,
            intentsReplaced: [expect.objectContaining({ version: 1, publishing: 2 })],
          }),
          msg: expect.stringMatching(
            /^activated version 1 of "digits"; it replaced the activation of version 2 .*version 2 stays published, inactive/,
          ),
        },
      ]);
    } finally {
      registry.close();
    }
  });

  it('another recalibration of the same parent activating over it says so too (its own intent is not named)', async () => {
    const { registry, warnings, readRecord } = await withDeadIntent();
    try {
      const result = await registry.publish(registry.resolve('digits').checkpoint, true, 'recal', {
        ifActive: 1,
      });
      expect(result).toMatchObject({ version: 3, activated: true });
      expect(readRecord()).toMatchObject({ version: 3 });
      expect(warnings.map((w) => w.obj)).toEqual([
        expect.objectContaining({
          version: 3,
          intentsReplaced: [expect.objectContaining({ publishing: 2 })],
        }),
      ]);
    } finally {
      registry.close();
    }
  });

  it('no warning over an intent whose staged directory is still there (not renamed: nothing published)', async () => {
    const { registry, warnings, model, readRecord } = await withDeadIntent();
    try {
      mkdirSync(join(model, readRecord().pinned_for!));
      await registry.activate('digits', 1);
      expect(warnings).toEqual([]);
    } finally {
      registry.close();
    }
  });
});

describe('a conditional publish’s pin over its parent’s plain record, second reading (h291)', () => {
  const operators = `${JSON.stringify({ version: 1, updated_at: '2026-12-01T00:00:00.000Z', note: 'rolled back by hand', ticket: 'OPS-1' })}\n`;

  it('a LOCK_LOST while it is written ends the publish: not taken for the storage’s refusal', async () => {
    const { root, record } = await openPinTest();
    writeFileSync(record, operators);
    const store = (new ModelRepository(root) as unknown as { activeRecord: ActiveRecordStore })
      .activeRecord;
    const lost = async (): Promise<never> => {
      throw new NormserveError('LOCK_LOST', 'the record’s lock is no longer this writer’s');
    };
    await expect(
      store.writePin('digits', async () => 1, '.tmp-host-1-abc', 'pinned', lost, 1),
    ).rejects.toMatchObject({ code: 'LOCK_LOST' });
    expect(readFileSync(record, 'utf8')).toBe(operators);
  });

  it('its staged directory failing to stat as the intent is written: the publish goes on, activated (best effort)', async () => {
    const { registry, record, readRecord } = await openPinTest();
    writeFileSync(record, operators);
    await registry.refresh();
    // The second stat of the staged directory is the intent's (the first: the pin's identity).
    injectFsFaults([{ op: 'stat', path: '.tmp-', code: 'EIO', skip: 1, times: 1 }]);
    const result = await registry.publish(registry.resolve('digits').checkpoint, true, 'recal', {
      ifActive: 1,
    });
    expect(faultHits()).toEqual([1]);
    expect(result).toMatchObject({ version: 2, activated: true });
    expect(readRecord()).toMatchObject({ version: 2, note: 'recal' });
  });

  it('under a dead recalibration’s pin that an inactive publish carries, the operator’s record stays at the bottom of the chain, its note kept', async () => {
    const { registry, model, record } = await openPinTest();
    writeFileSync(
      record,
      await deadRecalibrationPin(registry, model, 'pinned', {
        over: operators,
        pinnedFor: '.tmp-otherhost-4242-aaaaaaaaaaaa',
      }),
    );
    await registry.refresh();
    expect(await registry.publish(registry.resolve('digits').checkpoint, false)).toMatchObject({
      version: 3,
    });
    const carried = JSON.parse(readFileSync(record, 'utf8'));
    expect(carried).toMatchObject({ version: 1, pinned_publishing: { version: 2 } });
    expect(JSON.parse(carried.pinned_over)).toEqual(JSON.parse(operators));
  });

  it('the cleanup finishing a dead recalibration’s activation names the one under it that it replaces', async () => {
    const { root, registry, model, record } = await openPinTest();
    const under = await deadRecalibrationPin(registry, model, 'A'); // activating 2
    writeFileSync(
      record,
      await deadRecalibrationPin(registry, model, 'B', {
        over: under,
        pinnedFor: '.tmp-otherhost-4243-bbbbbbbbbbbb',
      }), // activating 3
    );
    utimesSync(record, longAgo(), longAgo());
    const { pinActivations } = await new ModelRepository(root).removeTemporaries();
    expect(pinActivations).toEqual([
      {
        model: 'digits',
        version: 3,
        intentsReplaced: [
          expect.objectContaining({ pinnedFor: '.tmp-otherhost-4242-aaaaaaaaaaaa', publishing: 2 }),
        ],
      },
    ]);
    expect(JSON.parse(readFileSync(record, 'utf8'))).toMatchObject({ version: 3 });
  });

  it('an activation over an intent whose version is another publisher’s (another config.json) names none', async () => {
    const { registry, model, record } = await openPinTest();
    const pin = JSON.parse(await deadRecalibrationPin(registry, model));
    pin.pinned_publishing.config_sha256 = '0'.repeat(64);
    writeFileSync(record, `${JSON.stringify(pin)}\n`);
    const { registry: here, warnings } = warnedRegistry(registry.repository.root);
    try {
      await here.refresh();
      await here.activate('digits', 1);
      expect(warnings).toEqual([]);
    } finally {
      here.close();
    }
  });
});

describe('a conditional publish’s pin over its parent’s plain record, third reading (h292)', () => {
  const operators = `${JSON.stringify({ version: 1, updated_at: '2026-12-01T00:00:00.000Z', note: 'rolled back by hand' })}\n`;

  for (const [what, fault] of [
    [
      'EMFILE opening the record’s temporary',
      {
        op: 'open',
        suffix: 'active-version.json',
        writing: true,
        code: 'EMFILE',
        skip: 1,
        times: 1,
      },
    ],
    [
      'ETIMEDOUT renaming it (a network mount)',
      { op: 'rename', suffix: 'active-version.json', code: 'ETIMEDOUT', skip: 1, times: 1 },
    ],
  ] as const)
    it(`its intent refused by the storage with ${what}: the publish goes on, activated (best effort, whatever the errno)`, async () => {
      const { registry, record, readRecord } = await openPinTest();
      writeFileSync(record, operators);
      await registry.refresh();
      injectFsFaults([fault]);
      const result = await registry.publish(registry.resolve('digits').checkpoint, true, 'recal', {
        ifActive: 1,
      });
      expect(faultHits()).toEqual([1]);
      expect(result).toMatchObject({ version: 2, activated: true });
      expect(readRecord()).toMatchObject({ version: 2, note: 'recal' });
    });

  it('an operator’s record under a chain deeper than MAX_PINS_SETTLED stays at its bottom, its note kept', async () => {
    const { registry, model, record } = await openPinTest();
    // Nine dead publishers' pins, each with its staged directory still there (to be settled).
    let text = operators;
    for (let i = 0; i < 9; i++) {
      const name = `.tmp-otherhost-${4200 + i}-${'c'.repeat(12)}`;
      mkdirSync(join(model, name));
      text = `${JSON.stringify({ version: 1, note: 'pinned', pinned_for: name, pinned_over: text })}\n`;
    }
    writeFileSync(record, text);
    await registry.refresh();
    expect(await registry.publish(registry.resolve('digits').checkpoint, false)).toMatchObject({
      version: 2,
    });
    let carried = JSON.parse(readFileSync(record, 'utf8'));
    for (let depth = 0; depth < 8; depth++) {
      expect(carried.pinned_for).toMatch(/^\.tmp-otherhost-/);
      carried = JSON.parse(carried.pinned_over);
    }
    expect(carried).toEqual(JSON.parse(operators));
  });

  it('words the activations an activation replaced: one, or a list', () => {
    const pin = (publishing: number) => ({ version: 1, pinnedFor: '.tmp-h-1-a', publishing });
    expect(intentsReplacedWords('digits', [pin(2)])).toMatch(
      /replaced the activation of version 2 still to be finished \(its publish died, or could not write it.*: version 2 stays published, inactive/,
    );
    expect(intentsReplacedWords('digits', [pin(2), pin(3), pin(4)])).toMatch(
      /of versions 2, 3 and 4 still to be finished .*: versions 2, 3 and 4 stay published, inactive/,
    );
    expect(intentsReplacedWords('digits', [])).toBe('');
  });
});

describe('a publish whose pin is no longer its own when it settles it (h295 2)', () => {
  it('says so, rather than leave an intent the cleanup will finish without a word', async () => {
    const { root, record, readRecord } = await openPinTest();
    writeFileSync(record, `${JSON.stringify({ version: 1, note: 'rolled back by hand' })}\n`);
    const { registry, warnings } = warnedRegistry(root);
    try {
      await registry.refresh();
      changeHeld(registry, (held) => ({
        writeActiveIf: () =>
          Promise.reject(new NormserveError('STORAGE_UNAVAILABLE', 'cannot record version 2')),
        // The pin on disk differs from the one this publish holds (its intent's rewrite landed
        // though it reported a failure, say): the settlement writes nothing.
        settlePin: (pin, note) => {
          writeFileSync(record, `${JSON.stringify({ ...readRecord(), note: 'changed' })}\n`);
          return held.settlePin(pin, note);
        },
      }));
      const result = await registry.publish(registry.resolve('digits').checkpoint, true, 'recal', {
        ifActive: 1,
      });
      expect(result).toMatchObject({ version: 2, activated: false });
      expect(warnings.map((w) => w.msg)).toContainEqual(
        expect.stringMatching(/^the pin in active-version\.json was not made a lasting record/),
      );
    } finally {
      registry.close();
    }
  });
});

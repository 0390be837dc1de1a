/**
 * A pin (HeldActiveRecord.pin: the record naming the version served, written in the hold of the
 * record's lock that publishes a version which must not be served as the highest, `pinned_for`
 * its staged directory) is never left naming nothing, never mistaken for a lasting record, and
 * never written over an operator's record:
 * - a publish failing at its rename step whose pin cannot be undone keeps its staged directory,
 *   so the cleanup once its process is gone removes the two together (h264);
 * - an inactive publish over another publish's pin writes its own: that pin's undo (by its own
 *   publisher, or the cleanup) would otherwise remove the record and serve the inactive version
 *   as the highest (h264) — decided from the record on disk under the lock, so a pin that lands
 *   after this process's last look is pinned over too (h267);
 * - a publish that goes through leaves a plain record, not its pin: each inactive publish used to
 *   pin over the one before, nesting them in `pinned_over`, and past 16 KiB the record it kept
 *   was dropped, so an undo removed the record (h267);
 * - a record naming a version that is there (even one that does not load) is an operator's and
 *   stays; a record that cannot be read (EIO) fails the publish, nothing written (h267);
 * - a conditional publish whose version does not load leaves neither the version nor the pin
 *   (nor its intent to activate).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { clearFsFaults, injectFsFaults } from '../helpers/fs-faults.mjs';
import { failUnpin, openPinTest, publishLosingLock } from '../helpers/pins.js';
import { closeRegistries } from '../helpers/registry.js';
import { removeTempDirs } from '../helpers/temp-files.js';

afterEach(() => {
  clearFsFaults();
  vi.restoreAllMocks();
  closeRegistries();
  removeTempDirs();
});

/** Another process's pin of version 1 (its publish under way, or its process gone). */
const foreign = {
  version: 1,
  note: 'pinned before publishing an inactive version',
  pinned_for: '.tmp-otherhost-4242-aaaaaaaaaaaa',
};
const foreignText = `${JSON.stringify(foreign)}\n`;

describe('a pin', () => {
  it('that its failed publish cannot undo keeps its staged directory (the rename step failed: LOCK_LOST)', async () => {
    const { registry, model, record, readRecord } = await openPinTest();
    expect(existsSync(record)).toBe(false);
    // The undo, in the publish's hold, fails (a failing disk).
    failUnpin(registry);
    // Activated only if version 1 is still active: pinned first; the fence before the rename
    // finds the caller's lock lost.
    const failed = await publishLosingLock(registry);
    expect(failed).toMatchObject({ code: 'LOCK_LOST' });
    expect(await registry.repository.listVersions('digits')).toEqual([1]);
    const pin = readRecord();
    expect(pin.version).toBe(1);
    expect(pin.pinned_for).toBeDefined();
    expect(existsSync(join(model, pin.pinned_for!)), 'the staged directory the pin names').toBe(
      true,
    );
  });

  it('of another publish is pinned over by an inactive publish, which then leaves a plain record: the other undo finds it changed', async () => {
    const { registry, record, readRecord } = await openPinTest();
    writeFileSync(record, foreignText);
    await registry.refresh();
    const { checkpoint } = registry.resolve('digits');

    const published = await registry.publish(checkpoint, false);
    expect(published).toMatchObject({ version: 2, activated: false });
    const after = readRecord();
    expect(after.version).toBe(1);
    expect(after).not.toHaveProperty('pinned_for');
    expect(after).not.toHaveProperty('pinned_over');

    // The other publish's undo (or the cleanup's) finds the record changed, and leaves it.
    expect(
      await registry.repository.restoreActive('digits', JSON.parse(foreignText), undefined),
    ).toBe(false);
    await registry.refresh();
    expect(registry.get('digits').active).toBe(1);
  });

  it('of another publish that lands after this process last looked is pinned over all the same: decided under the lock, from disk (h267)', async () => {
    const { registry, record, readRecord } = await openPinTest();
    expect(existsSync(record)).toBe(false);
    const { checkpoint } = registry.resolve('digits');
    // The other publish pins version 1 right after this publish's look at the repository.
    const refreshModel = registry.refreshModel.bind(registry);
    vi.spyOn(registry, 'refreshModel').mockImplementationOnce(async (...args) => {
      const snapshot = await refreshModel(...args);
      writeFileSync(record, foreignText);
      return snapshot;
    });

    expect(await registry.publish(checkpoint, false)).toMatchObject({ version: 2 });
    expect(readRecord()).toMatchObject({ version: 1 });
    // The other publish fails and undoes its pin: it finds the record changed, and leaves it.
    await registry.repository.restoreActive('digits', JSON.parse(foreignText), undefined);
    await registry.refresh();
    expect(registry.get('digits').active, 'the inactive version 2 is not served').toBe(1);
  });

  it('is not left by a publish that goes through: inactive publishes, one after another, leave one small plain record (h267)', async () => {
    const { registry, record, readRecord } = await openPinTest();
    expect(existsSync(record)).toBe(false);
    const { checkpoint } = registry.resolve('digits');
    for (let i = 0; i < 4; i++) await registry.publish(checkpoint, false);
    expect(await registry.repository.listVersions('digits')).toEqual([1, 2, 3, 4, 5]);
    const after = readRecord();
    expect(after.version).toBe(1);
    expect(Object.keys(after).sort()).toEqual(['note', 'updated_at', 'version']);
    // The first publish's pin became this plain record; the later ones needed no pin.
    expect(after.note).toBe(
      'recorded as active when version 2 was published without being activated',
    );
    await registry.refresh();
    expect(registry.get('digits').active).toBe(1);
  });
});

describe('no pin', () => {
  it("is written over an operator's record naming a version that is there but does not load: that record stays as it was (h267)", async () => {
    const { registry, model, record } = await openPinTest();
    const { config, state } = registry.resolve('digits').checkpoint;
    await registry.repository.publishVersion({ config, state }); // version 2, not loaded yet
    // Version 2 broken on disk, then named by the operator: version 1 stays served (swap).
    writeFileSync(join(model, '2', 'model.safetensors'), 'not a checkpoint');
    const operators = `${JSON.stringify({ version: 2, note: 'the operator’s' })}\n`;
    writeFileSync(record, operators);
    await registry.refresh();
    expect(registry.get('digits').versions.get(2)?.state).toBe('FAILED');
    expect(registry.get('digits').active).toBe(1);

    expect(await registry.publish({ config, state }, false)).toMatchObject({ version: 3 });
    expect(readFileSync(record, 'utf8')).toBe(operators);
    await registry.refresh();
    expect(registry.get('digits').active).toBe(1);
  });

  it('is decided on a record that cannot be read (EIO): the publish fails, nothing published, the record as it was (h267)', async () => {
    const { registry, record, staged } = await openPinTest();
    // The operator's choice, version 7, is gone: version 1, the highest, is served; a pin would
    // keep this record to put back.
    const operators = `${JSON.stringify({ version: 7, note: 'keep 7' })}\n`;
    writeFileSync(record, operators);
    await registry.refresh();
    expect(registry.get('digits').active).toBe(1);
    const { checkpoint } = registry.resolve('digits');

    injectFsFaults([{ op: 'read', suffix: 'active-version.json', code: 'EIO' }]);
    const failed = await registry.publish(checkpoint, false).catch((e: unknown) => e);
    clearFsFaults();
    expect(failed).toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
    expect((failed as Error).message).toMatch(/no version was published/);
    expect(await registry.repository.listVersions('digits')).toEqual([1]);
    expect(readFileSync(record, 'utf8')).toBe(operators);
    expect(staged()).toEqual([]);
  });
});

describe('a conditional publish whose version does not load', () => {
  it('leaves neither the version nor its pin (nor the intent to activate it)', async () => {
    const { registry, record, staged } = await openPinTest();
    expect(existsSync(record)).toBe(false);
    const { config } = registry.resolve('digits').checkpoint;
    // No tensors: written, then refused by the load check.
    const failed = await registry
      .publish({ config, state: new Map() }, true, 'recalibrated', { ifActive: 1 })
      .catch((e: unknown) => e);
    expect(failed).toMatchObject({
      code: 'REPOSITORY_ERROR',
      message: expect.stringMatching(/^published version 2 does not load, it was deleted again: /),
    });
    expect(await registry.repository.listVersions('digits')).toEqual([1]);
    expect(existsSync(record), 'the pin is undone: there was no record').toBe(false);
    expect(staged()).toEqual([]);
  });
});

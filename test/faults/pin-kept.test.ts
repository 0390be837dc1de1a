/**
 * A pin (model-registry.ts pinActive: the record naming the version served, written before a
 * publish that must not be served as the highest, `pinned_for` its staged directory) is never
 * left naming nothing, and never mistaken for a lasting record (h264):
 * - a publish failing at its rename step whose pin cannot be undone keeps its staged directory,
 *   so the cleanup once its process is gone removes the two together (the rename step used to
 *   remove the directory itself, before the registry could undo the pin);
 * - an inactive publish over another publish's pin writes its own: that pin's undo (by its own
 *   publisher, or the cleanup) would otherwise remove the record and serve the inactive version
 *   as the highest.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NormserveError } from '../../src/errors/index.js';
import { closeRegistries, openRegistry } from '../helpers/registry.js';
import { removeTempDirs } from '../helpers/temp-files.js';

afterEach(() => {
  vi.restoreAllMocks();
  closeRegistries();
  removeTempDirs();
});

async function setUp() {
  const { root, registry } = await openRegistry();
  const model = join(root, 'digits');
  const record = join(model, 'active-version.json');
  const readRecord = () =>
    JSON.parse(readFileSync(record, 'utf8')) as {
      version: number;
      pinned_for?: string;
      pinned_over?: string;
    };
  return { root, registry, model, record, readRecord };
}

describe('a pin', () => {
  it('that its failed publish cannot undo keeps its staged directory (the rename step failed: LOCK_LOST)', async () => {
    const { registry, model, record, readRecord } = await setUp();
    expect(existsSync(record)).toBe(false);
    const { checkpoint } = registry.resolve('digits');
    vi.spyOn(registry.repository, 'restoreActive').mockRejectedValue(
      Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }),
    );
    const lockLost = async () => {
      throw new NormserveError('LOCK_LOST', 'the recalibration lock is no longer this job’s');
    };
    // Activated only if version 1 is still active: pinned first; the fence before the rename
    // finds the caller's lock lost.
    const failed = await registry
      .publish(checkpoint, true, 'recalibrated', { ifActive: 1, fence: lockLost })
      .catch((e: unknown) => e);
    expect(failed).toMatchObject({ code: 'LOCK_LOST' });
    expect(await registry.repository.listVersions('digits')).toEqual([1]);
    const pin = readRecord();
    expect(pin.version).toBe(1);
    expect(pin.pinned_for).toBeDefined();
    expect(existsSync(join(model, pin.pinned_for!)), 'the staged directory the pin names').toBe(
      true,
    );
  });

  it('of another publish is pinned over by an inactive publish, so its undo never serves the inactive version', async () => {
    const { registry, record, readRecord } = await setUp();
    // Another process's pin of version 1 (its publish under way, or its process gone).
    const foreign = {
      version: 1,
      note: 'pinned before publishing an inactive version',
      pinned_for: '.tmp-otherhost-4242-aaaaaaaaaaaa',
    };
    const foreignText = `${JSON.stringify(foreign)}\n`;
    writeFileSync(record, foreignText);
    await registry.refresh();
    const { checkpoint } = registry.resolve('digits');

    const published = await registry.publish(checkpoint, false);
    expect(published).toMatchObject({ version: 2, activated: false });
    const pin = readRecord();
    expect(pin.version).toBe(1);
    expect(pin.pinned_for).not.toBe(foreign.pinned_for);
    expect(pin.pinned_over).toBe(foreignText);

    // The other publish's undo (or the cleanup's) finds the record changed, and leaves it.
    expect(
      await registry.repository.restoreActive('digits', JSON.parse(foreignText), undefined),
    ).toBe(false);
    await registry.refresh();
    expect(registry.get('digits').active).toBe(1);
  });
});

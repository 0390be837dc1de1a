import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { vi } from 'vitest';
import { NormserveError } from '../../src/errors/index.js';
import type { HeldActiveRecord } from '../../src/repository/index.js';
import type { ModelRegistry } from '../../src/service/index.js';
import { openRegistry } from './registry.js';

/** A pin's fields as a test reads them from active-version.json. */
export interface RecordOnDisk {
  version: number;
  note?: string;
  pinned_for?: string;
  pinned_staged?: { config_sha256: string };
  pinned_over?: string;
  pinned_publishing?: unknown;
}

/**
 * A registry over a fresh `digits` repository (openRegistry; closed by closeRegistries), with
 * what the pin tests read: the model's directory, its record, and the staged directories in it.
 */
export async function openPinTest() {
  const { root, registry } = await openRegistry();
  const model = join(root, 'digits');
  const record = join(model, 'active-version.json');
  const readRecord = () => JSON.parse(readFileSync(record, 'utf8')) as RecordOnDisk;
  const staged = () => readdirSync(model).filter((n) => n.startsWith('.tmp-'));
  /** Runs `before` once, just before the next publish's hold of the record's lock is taken. */
  const beforeHold = (before: () => Promise<void>) => {
    const withActiveRecord = registry.repository.withActiveRecord.bind(registry.repository);
    vi.spyOn(registry.repository, 'withActiveRecord').mockImplementationOnce(async (...args) => {
      await before();
      return withActiveRecord(...args);
    });
  };
  return { root, registry, model, record, readRecord, staged, beforeHold };
}

/**
 * Runs every later publish of `registry` with the writes of its hold of the record's lock
 * (HeldActiveRecord) changed by `change`, given the real ones; the others as they are.
 */
export function changeHeld(
  registry: ModelRegistry,
  change: (held: HeldActiveRecord) => Partial<HeldActiveRecord>,
): void {
  const withActiveRecord = registry.repository.withActiveRecord.bind(registry.repository);
  vi.spyOn(registry.repository, 'withActiveRecord').mockImplementation((name, work, ...rest) =>
    withActiveRecord(name, (held) => work({ ...held, ...change(held) }), ...rest),
  );
}

/** Makes every undo of a pin in `registry`'s publishes fail, as a failing disk would (EIO). */
export function failUnpin(registry: ModelRegistry): void {
  changeHeld(registry, () => ({
    unpin: () => Promise.reject(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' })),
  }));
}

/** A publish's fence that finds the caller's lock lost, as a recalibration's may before its rename. */
const lockLost = async (): Promise<never> => {
  throw new NormserveError('LOCK_LOST', 'the recalibration lock is no longer this job’s');
};

/**
 * A recalibration's publish of digits (activated only if version 1 is still active: pinned
 * first) whose lock the fence before the rename finds lost: what it threw.
 */
export const publishLosingLock = (registry: ModelRegistry): Promise<unknown> =>
  registry
    .publish(registry.resolve('digits').checkpoint, true, 'recalibrated', {
      ifActive: 1,
      fence: lockLost,
    })
    .catch((e: unknown) => e);

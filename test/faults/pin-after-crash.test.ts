/**
 * The pin a publish writes before its rename (version-publish.ts, the pin: a version published
 * without activation must not be served as the highest) when the publishing process dies between
 * the two: the start-up cleanup that removes its staged directory removes the pin with it
 * (active-record.ts, settleAbandonedPin), as the publish's own failure would have. Before, the
 * pin stayed through every restart, and every version trained or copied in later was silently
 * not served (the operations tester of 2026-12-05).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelRepository } from '../../src/repository/index.js';
import { ndjsonBody } from '../helpers/admin.js';
import { makeRepository } from '../helpers/app.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { nodeArgs, ROOT } from '../helpers/entries.js';
import { KILL_ON_RENAME_MODULE } from '../helpers/kill-on-rename.mjs';
import { removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

/** A repository of digits/1 with no active-version record (the highest version is served). */
function prepare(): { model: string; data: string; record: string } {
  const repository = makeRepository(['digits']);
  const model = join(repository, 'digits');
  const data = join(repository, 'night.ndjson');
  writeFileSync(data, ndjsonBody(nightShift(digitsTestRows().x).slice(0, 200)));
  const record = join(model, 'active-version.json');
  expect(existsSync(record)).toBe(false);
  return { model, data, record };
}

/** `npm run recalibrate -- --no-activate`, killed (when `killAt` is set) before that rename. */
function recalibrate(model: string, data: string, killAt?: string) {
  return spawnSync(
    process.execPath,
    [...nodeArgs('src/cli/recalibrate.ts'), '--model', model, '--data', data, '--no-activate'],
    {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
      env: {
        ...process.env,
        ...(killAt
          ? {
              NODE_OPTIONS: `--import ${KILL_ON_RENAME_MODULE}`,
              NORMSERVE_TEST_KILL_ON_RENAME: killAt,
            }
          : {}),
      },
    },
  );
}

const temporaries = (model: string) => readdirSync(model).filter((n) => n.startsWith('.tmp-'));

describe('a publish killed between its pin and its rename', () => {
  it('leaves a pin that the cleanup removing its staged version removes too', async () => {
    const { model, data, record } = prepare();
    const killed = recalibrate(model, data, '/digits/2$');
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    // Killed where the operations tester's hook killed it: pinned, staged, not renamed.
    const pin = JSON.parse(readFileSync(record, 'utf8')) as { version: number; pinned_for: string };
    expect(pin.version).toBe(1);
    expect(temporaries(model)).toEqual([pin.pinned_for]);
    expect(existsSync(join(model, '2'))).toBe(false);

    // It held the record's lock too (a publish renames holding it).
    const lock = join(model, '.active-version.lock');
    expect(existsSync(lock)).toBe(true);
    const { removed, pinsUndone } = await new ModelRepository(
      join(model, '..'),
    ).removeTemporaries();
    expect(removed).toEqual([join(model, pin.pinned_for)]);
    // The pin's undoing broke the dead holder's lock (and released its own).
    expect(existsSync(lock)).toBe(false);
    expect(pinsUndone).toEqual(['digits']);
    // No record: the highest version is served again, as before the pin.
    expect(existsSync(record)).toBe(false);
  });

  it("killed while writing the pin itself: the cleanup removes the dead holder's record lock too", async () => {
    const { model, data, record } = prepare();
    const killed = recalibrate(model, data, '/digits/active-version\\.json$');
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    expect(existsSync(record)).toBe(false);
    const lock = join(model, '.active-version.lock');
    expect(existsSync(lock)).toBe(true);
    const { removed, pinsUndone } = await new ModelRepository(
      join(model, '..'),
    ).removeTemporaries();
    // It used to stay through every restart, reading as a write in progress.
    expect(removed).toContain(lock);
    expect(existsSync(lock)).toBe(false);
    expect(pinsUndone).toEqual([]);
    expect(temporaries(model)).toEqual([]);
  });

  it('a pin whose publish went through stays, whatever the cleanup', async () => {
    const { model, data, record } = prepare();
    const done = recalibrate(model, data);
    expect(done.status, done.stderr).toBe(0);
    expect(existsSync(join(model, '2'))).toBe(true);
    const pinText = readFileSync(record, 'utf8');
    expect(JSON.parse(pinText)).toMatchObject({ version: 1 });
    // Every temporary taken as abandoned (age 0): none is the pin's, which was renamed.
    const { pinsUndone } = await new ModelRepository(join(model, '..')).removeTemporaries(-1);
    expect(pinsUndone).toEqual([]);
    expect(readFileSync(record, 'utf8')).toBe(pinText);
  });
});

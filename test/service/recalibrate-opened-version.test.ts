/**
 * The recalibrate CLI's path (src/cli/recalibrate.ts: loadModelDirectory, ModelRegistry.openVersion,
 * RecalibrationService.forRepository with in-memory jobs, recalibrateRows) on a model of many
 * versions reads two of them: the parent and the version it publishes (read back, as publish
 * verifies it). The recalibration's refresh under the model's lock and publish's own refreshes
 * used to read every version (41 loads for 40 versions). A server's registry, which opens no
 * version alone, still reads every version and serves what a publish leaves.
 */
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { loadModelDirectory, ModelRepository } from '../../src/repository/index.js';
import { ModelRegistry, RecalibrationService } from '../../src/service/index.js';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);
afterEach(() => vi.restoreAllMocks());

const VERSIONS = [1, 2, 3, 4, 5, 6];
const night = new Float32Array(nightShift(digitsTestRows().x).flat());

function repositoryOfVersions(): string {
  const repository = makeTempDir('recalibrate-opened-version');
  for (const version of VERSIONS) copyBundledModel('digits', repository, { version });
  return repository;
}

/** What the CLI does once its flags and data are read. */
async function recalibrateAsTheCli(dir: string) {
  const opened = await loadModelDirectory(dir);
  const registry = new ModelRegistry(opened.root, { maxBatchSize: 4096 });
  await registry.openVersion(opened.name, opened.version, opened.checkpoint);
  const service = RecalibrationService.forRepository(registry, {
    maxSamples: Number.MAX_SAFE_INTEGER,
    jobRecords: 'memory',
    cli: 'recalibrate',
  });
  try {
    return await service.recalibrateRows(
      { model: opened.name, mode: 'exact', activate: true },
      night,
    );
  } finally {
    await service.close();
    registry.close();
  }
}

describe('the recalibrate CLI on a model of six versions', () => {
  it('without an active-version record: reads the highest version and the one it publishes', async () => {
    const repository = repositoryOfVersions();
    const loads = vi.spyOn(ModelRepository.prototype, 'loadVersion');
    const outcome = await recalibrateAsTheCli(join(repository, 'digits'));
    expect([outcome.parent_version, outcome.version, outcome.activated]).toEqual([6, 7, true]);
    expect(loads.mock.calls).toEqual([
      ['digits', 6],
      ['digits', 7],
    ]);
    expect((await new ModelRepository(repository).readActive('digits'))?.version).toBe(7);
  });

  it('with a record naming version 3: reads 3 and the one it publishes', async () => {
    const repository = repositoryOfVersions();
    await new ModelRepository(repository).writeActive('digits', 3);
    const loads = vi.spyOn(ModelRepository.prototype, 'loadVersion');
    const outcome = await recalibrateAsTheCli(join(repository, 'digits'));
    expect([outcome.parent_version, outcome.version, outcome.activated]).toEqual([3, 7, true]);
    expect(loads.mock.calls).toEqual([
      ['digits', 3],
      ['digits', 7],
    ]);
  });

  it('a server’s registry still reads every version, and serves the published one with them', async () => {
    const repository = repositoryOfVersions();
    const registry = new ModelRegistry(repository, { maxBatchSize: 4096 });
    const loads = vi.spyOn(ModelRepository.prototype, 'loadVersion');
    await registry.refresh();
    expect(loads.mock.calls.map(([, v]) => v)).toEqual(VERSIONS);
    const service = RecalibrationService.forRepository(registry, { maxSamples: 100_000 });
    try {
      const outcome = await service.recalibrateRows(
        { model: 'digits', mode: 'exact', activate: true },
        night,
      );
      expect(outcome.version).toBe(7);
      const served = registry.get('digits');
      expect(served.active).toBe(7);
      expect([...served.versions.values()].map((v) => [v.version, v.state])).toEqual(
        [...VERSIONS, 7].map((v) => [v, 'AVAILABLE']),
      );
    } finally {
      await service.close();
      registry.close();
    }
  });
});

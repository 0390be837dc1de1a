import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  JobRegistry,
  ModelRegistry,
  type RecalibrationRequest,
  RecalibrationService,
} from '../../src/service/index.js';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

describe('recalibration rows of a traffic sample', () => {
  it('stay in memory with a spill budget of 0; an upload with the same budget spills', async () => {
    const repository = makeTempDir('traffic-sample-memory');
    copyBundledModel('digits', repository);
    const registry = new ModelRegistry(repository, { maxBatchSize: 64 });
    await registry.refresh();
    const warnings: string[] = [];
    const log = {
      info: () => {},
      warn: (_context: object, msg?: string) => {
        warnings.push(msg ?? '');
      },
      error: () => {},
    };
    const service = new RecalibrationService(registry, new JobRegistry(), {
      maxSamples: 1_000_000,
      rowMemoryBytes: 0,
      spillDirectory: join(repository, 'no', 'such', 'directory'),
      log,
    });
    const rows = Float32Array.from(nightShift(digitsTestRows().x).flat());
    const request = (source?: 'traffic'): RecalibrationRequest => ({
      model: 'digits',
      mode: 'exact',
      activate: false,
      ...(source ? { source } : {}),
    });
    try {
      const traffic = await service.recalibrateRows(request('traffic'), rows);
      expect(warnings).toEqual([]);
      const upload = await service.recalibrateRows(request(), rows);
      expect(warnings).toEqual([
        'no temporary directory for the recalibration rows: they are kept in memory',
      ]);
      expect(upload.version).toBe(traffic.version + 1);
    } finally {
      registry.close();
    }
  });
});

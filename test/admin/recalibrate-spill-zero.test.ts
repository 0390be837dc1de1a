/**
 * RECALIBRATION_MEMORY_BYTES=0: an exact recalibration keeps its rows in a temporary file from the
 * first row (faster than fresh memory: SpillingRowStore). Same statistics as the default, every
 * row in memory (up to the float64 order of the sums), and no file is left when the job ends; the
 * default budget (64 MiB) writes nothing.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServerConfig } from '../../src/service/index.js';
import { ADMIN, float32Body, versionTensors } from '../helpers/admin.js';
import { makeTestApp } from '../helpers/app.js';
import { expectRelClose } from '../helpers/compare.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { CHUNKING_RTOL } from '../recalibration/helpers/recalibration-tolerances.js';

const night = nightShift(digitsTestRows().x);
const FLOAT32 = { ...ADMIN, 'content-type': 'application/octet-stream' };

describe('recalibration rows with no memory budget', () => {
  let spill: string;
  const previous = process.env.TMPDIR;
  beforeAll(() => {
    spill = mkdtempSync(join(tmpdir(), 'normserve-spill-default-'));
    process.env.TMPDIR = spill;
  });
  afterAll(() => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    rmSync(spill, { recursive: true, force: true });
  });

  it('go to a temporary file and give the statistics of an in-memory recalibration', async () => {
    expect(parseServerConfig({}).RECALIBRATION_MEMORY_BYTES).toBe(64 * 1024 * 1024);
    const versions = [];
    for (const env of [{}, { RECALIBRATION_MEMORY_BYTES: '0' }]) {
      const t = await makeTestApp({ env: { ADMIN_RATE_LIMIT_PER_MINUTE: '100000', ...env } });
      try {
        const res = await t.app.inject({
          method: 'POST',
          url: '/v1/models/digits:recalibrate?mode=exact',
          headers: FLOAT32,
          payload: float32Body(night),
        });
        expect(res.statusCode, res.body).toBe(201);
        versions.push(versionTensors(t.repository, 'digits', 2));
      } finally {
        await t.close();
      }
    }
    expect(readdirSync(spill)).toEqual([]);
    const [memory, file] = versions as [
      ReturnType<typeof versionTensors>,
      ReturnType<typeof versionTensors>,
    ];
    const statistics = [...memory.keys()].filter((k) => /\.running_(mean|var)$/.test(k));
    expect(statistics).toHaveLength(4);
    for (const name of statistics)
      expectRelClose(file.get(name)!.values!, memory.get(name)!.values!, CHUNKING_RTOL, name);
  });
});

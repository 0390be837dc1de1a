/**
 * An exact recalibration whose rows exceed RECALIBRATION_MEMORY_BYTES keeps the rest in a
 * temporary file (with 0, every row: faster than fresh memory, SpillingRowStore): the same
 * statistics as with every row in memory, the default 64 MiB budget here (up to the float64 order
 * of the sums: the blocks are cut elsewhere), and the file is gone when the job ends.
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

describe('recalibration rows past RECALIBRATION_MEMORY_BYTES', () => {
  let spill: string;
  const previous = process.env.TMPDIR;
  beforeAll(() => {
    spill = mkdtempSync(join(tmpdir(), 'normserve-spill-http-'));
    process.env.TMPDIR = spill;
  });
  afterAll(() => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    rmSync(spill, { recursive: true, force: true });
  });

  it('gives the statistics of an in-memory recalibration and leaves no file', async () => {
    expect(parseServerConfig({}).RECALIBRATION_MEMORY_BYTES).toBe(64 * 1024 * 1024);
    const versions = [];
    // 10 rows of 64 float32 features in memory and the other 350 in the file; then all in the file.
    for (const env of [
      {},
      { RECALIBRATION_MEMORY_BYTES: String(10 * 64 * 4) },
      { RECALIBRATION_MEMORY_BYTES: '0' },
    ]) {
      const t = await makeTestApp({ env: { ADMIN_RATE_LIMIT_PER_MINUTE: '100000', ...env } });
      try {
        const res = await t.app.inject({
          method: 'POST',
          url: '/v1/models/digits:recalibrate?mode=exact',
          headers: FLOAT32,
          payload: float32Body(night),
        });
        expect(res.statusCode, res.body).toBe(201);
        expect(res.json<{ samples: number }>().samples).toBe(night.length);
        versions.push(versionTensors(t.repository, 'digits', 2));
      } finally {
        await t.close();
      }
    }
    expect(readdirSync(spill)).toEqual([]);
    const [memory, ...spilled] = versions as ReturnType<typeof versionTensors>[];
    const statistics = [...memory!.keys()].filter((k) => /\.running_(mean|var)$/.test(k));
    expect(statistics).toHaveLength(4);
    for (const file of spilled)
      for (const name of statistics)
        expectRelClose(file.get(name)!.values!, memory!.get(name)!.values!, CHUNKING_RTOL, name);
  });
});

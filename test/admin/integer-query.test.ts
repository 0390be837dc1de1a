/**
 * One rule for an integer in a URL, a path segment or a query parameter: decimal digits, no sign,
 * no leading zero (common.ts, URL_INTEGER_PATTERN). Issue: `?batch_size=0x10` was read as 16 by
 * :recalibrate (Number() of the text) while a version `0x1` in the path was refused.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServerConfig } from '../../src/service/index.js';
import { ADMIN, expectProblem } from '../helpers/admin.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';

const RECALIBRATE = '/v1/models/digits:recalibrate';
const night = nightShift(digitsTestRows().x).slice(0, 64);

let t: TestApp;
beforeAll(async () => {
  t = await makeTestApp({ env: { ADMIN_RATE_LIMIT_PER_MINUTE: '100000' } });
});
afterAll(async () => {
  await t.close();
});

const recalibrate = (query: string) =>
  t.app.inject({
    method: 'POST',
    url: `${RECALIBRATE}?mode=running&activate=false&${query}`,
    headers: ADMIN,
    payload: { instances: night },
  });

describe('an integer in the query of :recalibrate, as in the path', () => {
  it.each(['0x10', '1e1', '0b10', '0o20', '+16', '016', '16.0', ' 16', '16 ', '1_6'])(
    '?batch_size=%s: 400 quoting the text, as a version %s in the path is',
    async (text) => {
      const res = await recalibrate(`batch_size=${encodeURIComponent(text)}`);
      const problem = expectProblem(res, 400, 'INVALID_INPUT');
      expect(problem.errors).toEqual([
        { path: 'query.batch_size', message: expect.stringContaining(`got "${text}"`) },
      ]);
      const path = await t.app.inject({
        url: `/v1/models/digits/versions/${encodeURIComponent(text)}`,
      });
      expect(expectProblem(path, 400, 'INVALID_INPUT').errors?.map((e) => e.path)).toEqual([
        'path.version',
      ]);
    },
  );

  it('?batch_size=16 is read: 4 batches of the 64 rows', async () => {
    const res = await recalibrate('batch_size=16');
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json<{ batches?: number }>().batches).toBe(4);
  });
});

describe('a decimal number in the query of :recalibrate and in the environment (review48)', () => {
  it.each(['0x10', '0b10', '0o20', '1_6', 'Infinity', '%20%201'])(
    '?prior_strength=%s: 400 quoting the text (all but Infinity were read as numbers)',
    async (text) => {
      const res = await t.app.inject({
        method: 'POST',
        url: `${RECALIBRATE}?mode=prior&activate=false&prior_strength=${text.startsWith('%') ? text : encodeURIComponent(text)}`,
        headers: ADMIN,
        payload: { instances: night },
      });
      const problem = expectProblem(res, 400, 'INVALID_INPUT');
      expect(problem.errors?.map((e) => e.path)).toEqual(['query.prior_strength']);
    },
  );

  it.each([
    ['16', 16],
    ['1e1', 10],
    ['.5', 0.5],
    ['2.', 2],
  ])('?prior_strength=%s is read as %d', async (text, value) => {
    const res = await t.app.inject({
      method: 'POST',
      url: `${RECALIBRATE}?mode=prior&activate=false&prior_strength=${encodeURIComponent(text)}`,
      headers: ADMIN,
      payload: { instances: night },
    });
    expect(res.statusCode, res.body).toBe(201);
    const { version } = res.json<{ version: number }>();
    const config = JSON.parse(
      readFileSync(join(t.repository, 'digits', String(version), 'config.json'), 'utf8'),
    );
    expect(config.provenance.prior_strength).toBe(value);
  });

  it('PORT=0x4839 is refused quoting it; PORT=" 8080 " is 8080', () => {
    expect(() => parseServerConfig({ PORT: '0x4839' })).toThrow(/PORT.*"0x4839"/);
    expect(parseServerConfig({ PORT: ' 8080 ' }).PORT).toBe(8080);
    expect(parseServerConfig({ DRIFT_THRESHOLD: '1e-1' }).DRIFT_THRESHOLD).toBe(0.1);
  });
});

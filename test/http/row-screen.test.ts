/**
 * Rows screened before zod (src/http/validation.ts, withRowFields): zod reports every element of
 * an array that fails, so millions of numbers where rows belong built millions of issues (and
 * took a server past its heap); the screen lists the first LIMITS.errorLocations and counts the
 * rest, without running the schema.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { LIMITS } from '../../src/http/schemas/limits.js';
import { validate, withRowFields } from '../../src/http/validation.js';
import { ADMIN } from '../helpers/admin.js';
import { makeTestApp } from '../helpers/app.js';
import { digitsRow, expectInvalid } from './http-helpers.js';

const ROW = 'expected an array of numbers (one row)';

describe('withRowFields', () => {
  // A schema that records whether zod ran it: the screen must answer first.
  let zodRan = false;
  const unreachable = withRowFields(
    z.object({ instances: z.array(z.array(z.unknown())).optional() }).refine(() => {
      zodRan = true;
      return true;
    }),
    ['instances', 'inputs'],
  );

  it('names the first elements that are not rows and counts all of them, without zod', () => {
    const instances: unknown[] = Array.from({ length: 100_000 }, (_, i) => (i % 4 === 0 ? [] : i));
    zodRan = false;
    const { error } = validate(unreachable, { instances }, 'body');
    expect(zodRan).toBe(false);
    expect(error?.code).toBe('INVALID_INPUT');
    expect(error?.errors).toHaveLength(LIMITS.errorLocations);
    expect(error?.errors[0]).toEqual({ path: 'instances[1]', message: ROW });
    expect(error?.errors.at(-1)?.path).toBe('instances[13]');
    expect(error?.message).toBe(
      `instances[1]: ${ROW}; instances[2]: ${ROW}; instances[3]: ${ROW}; … and 74997 more`,
    );
  });

  it('screens each named field and leaves rows that are all arrays to the schema', () => {
    zodRan = false;
    const { error } = validate(unreachable, { inputs: [[1], 2] }, 'body');
    expect(error?.errors).toEqual([{ path: 'inputs[1]', message: ROW }]);
    expect(zodRan).toBe(false);
    expect(validate(unreachable, { instances: [[1], []] }, 'body').error).toBeUndefined();
    expect(zodRan).toBe(true);
    zodRan = false;
    expect(validate(unreachable, { instances: 'rows' }, 'body').error?.errors[0]?.path).toBe(
      'instances',
    );
  });
});

describe('bodies of numbers where rows belong', () => {
  it('a predict body of 3,000 numbers (under MAX_BATCH_SIZE) and a recalibration body of 20,000 are 400s listing ten', async () => {
    const t = await makeTestApp({ models: ['digits'] });
    try {
      const predict = await t.app.inject({
        method: 'POST',
        url: '/v1/models/digits:predict',
        payload: { instances: new Array(3000).fill(0) },
      });
      const first = Array.from({ length: 10 }, (_, i) => ({
        path: `instances[${i}]`,
        message: ROW,
      }));
      expect(expectInvalid(predict, first).error).toMatch(/… and 2997 more$/);
      const recalibrate = await t.app.inject({
        method: 'POST',
        url: '/v1/models/digits:recalibrate',
        headers: ADMIN,
        payload: { instances: [digitsRow(), ...new Array(20_000).fill(0)] },
      });
      const listed = Array.from({ length: 10 }, (_, i) => ({
        path: `instances[${i + 1}]`,
        message: ROW,
      }));
      expect(expectInvalid(recalibrate, listed).error).toMatch(/… and 19997 more$/);
    } finally {
      await t.close();
    }
  });
});

describe('the row count before the rows', () => {
  it(':recalibrate: more JSON rows than MAX_RECALIBRATION_SAMPLES are a 413 TOO_MANY_SAMPLES, whatever they hold', async () => {
    const t = await makeTestApp({ models: ['digits'], env: { MAX_RECALIBRATION_SAMPLES: '10' } });
    try {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/models/digits:recalibrate',
        headers: ADMIN,
        payload: { instances: new Array(11).fill(0) },
      });
      expect(res.statusCode, res.body).toBe(413);
      expect(res.json()).toMatchObject({ code: 'TOO_MANY_SAMPLES' });
    } finally {
      await t.close();
    }
  });

  it('predict: the 413 names the field the rows came from (instances: null beside inputs)', async () => {
    const t = await makeTestApp({ models: ['digits'], env: { MAX_BATCH_SIZE: '2' } });
    try {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/models/digits:predict',
        payload: { instances: null, inputs: [digitsRow(), digitsRow(), digitsRow()] },
      });
      expectInvalid(
        res,
        [{ path: 'inputs', message: 'at most 2 rows per request (MAX_BATCH_SIZE), got 3' }],
        'BATCH_TOO_LARGE',
        413,
      );
    } finally {
      await t.close();
    }
  });
});

/**
 * Two :activate calls of one model at once: each reply's previous_version is the version its
 * activation replaced, read in the same critical section as its write (the active-version record's
 * lock), so the replies tell the order the activations took effect in — never both the version
 * served before either.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelRepository } from '../../src/repository/index.js';
import { ADMIN } from '../helpers/admin.js';
import { makeDigitsVersionsRepository, makeTestApp, type TestApp } from '../helpers/app.js';

interface Activation {
  model: string;
  active_version: number;
  previous_version: number | null;
}

let t: TestApp;
let repository = '';

beforeAll(async () => {
  repository = makeDigitsVersionsRepository();
  await new ModelRepository(repository).writeActive('digits', 1, 'start');
  t = await makeTestApp({ repository });
});
afterAll(async () => {
  await t.close();
  rmSync(repository, { recursive: true, force: true });
});

const activate = async (version: number): Promise<Activation> => {
  const res = await t.app.inject({
    method: 'POST',
    url: `/v1/models/digits/versions/${version}:activate`,
    headers: ADMIN,
  });
  expect(res.statusCode, res.body).toBe(200);
  expect(res.headers['x-model-version']).toBe(String(version));
  return res.json<Activation>();
};

describe(':activate, concurrently', () => {
  it('each reply names the version its activation replaced, in the order they took effect', async () => {
    for (let round = 0; round < 5; round++) {
      expect((await activate(1)).active_version).toBe(1);
      const [two, three] = await Promise.all([activate(2), activate(3)]);
      expect(two.active_version).toBe(2);
      expect(three.active_version).toBe(3);
      const last = t.registry.get('digits').active;
      expect([2, 3]).toContain(last);
      // The one that took effect last replaced the other; the other replaced version 1.
      const [first, second] = last === 3 ? [two, three] : [three, two];
      expect(first.previous_version, `round ${round}`).toBe(1);
      expect(second.previous_version, `round ${round}`).toBe(first.active_version);
    }
  });
});

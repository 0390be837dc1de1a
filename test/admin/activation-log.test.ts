/**
 * An operator's `:activate` and version delete are logged with the request that made them (its
 * id, the note), so who switched versions is read off one line, not lined up by timestamps with
 * the registry's 'active version changed' (ops review of 2026-12-04, minor observation).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN, type LoggedApp, makeLoggedApp } from '../helpers/admin.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';

let t: LoggedApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const lines = (t: LoggedApp) => t.logs.map((l) => JSON.parse(l) as Record<string, unknown>);

describe('admin writes in the log', () => {
  it('a rollback names its request id, model, version, previous version and note; a delete its version', async () => {
    t = await makeLoggedApp({ level: 'info' });
    const published = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:recalibrate',
      headers: ADMIN,
      payload: { instances: nightShift(digitsTestRows().x) },
    });
    expect(published.statusCode, published.body).toBe(201);
    const back = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits/versions/1:activate',
      headers: { ...ADMIN, 'x-request-id': 'rollback-0001' },
      payload: { note: 'night version misbehaves' },
    });
    expect(back.statusCode).toBe(200);
    expect(lines(t).filter((l) => l.msg === 'version activated')).toEqual([
      expect.objectContaining({
        level: 30,
        request_id: 'rollback-0001',
        model: 'digits',
        version: 1,
        previous: 2,
        note: 'night version misbehaves',
      }),
    ]);
    expect(
      lines(t).find((l) => l.msg === 'request' && l.request_id === 'rollback-0001'),
    ).toMatchObject({ route: '/v1/models/{name}/versions/{version}:activate', version: 1 });
    const deleted = await t.app.inject({
      method: 'DELETE',
      url: '/v1/models/digits/versions/2',
      headers: { ...ADMIN, 'x-request-id': 'delete-0001' },
    });
    expect(deleted.statusCode).toBe(200);
    expect(lines(t).filter((l) => l.msg === 'version deleted')).toEqual([
      expect.objectContaining({ request_id: 'delete-0001', model: 'digits', version: 2 }),
    ]);
  });
});

/**
 * The lame-duck phase in the app (service/serving-phase.ts): from the shutdown signal on, the
 * readiness routes answer 503 with reason shutting_down whatever the models, while liveness,
 * predictions and the rest are served as before, each response with `Connection: close` so that
 * kept-alive clients reconnect (through the Service, to another pod) before the drain.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServingPhase } from '../../src/service/index.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows } from '../helpers/digits.js';
import { removeTempDirs } from '../helpers/temp-files.js';

describe('ServingPhase', () => {
  it('moves forward only, telling its listeners each later phase once', () => {
    const phase = new ServingPhase();
    const seen: string[] = [];
    phase.onChange((p) => seen.push(p));
    expect(phase.acceptingTraffic).toBe(true);
    phase.enter('lame-duck');
    phase.enter('lame-duck');
    phase.enter('serving');
    expect(phase.current).toBe('lame-duck');
    expect(phase.acceptingTraffic).toBe(false);
    phase.enter('draining');
    phase.enter('lame-duck');
    expect(phase.current).toBe('draining');
    expect(seen).toEqual(['lame-duck', 'draining']);
  });

  it('skips the lame duck when the drain comes first (an error, SHUTDOWN_DELAY_MS=0)', () => {
    const phase = new ServingPhase();
    phase.enter('draining');
    phase.enter('lame-duck');
    expect(phase.current).toBe('draining');
  });
});

describe('the app in the lame-duck phase', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp();
  });
  afterAll(async () => {
    await t?.close();
    removeTempDirs();
  });

  it('answers readiness 503 (shutting_down) and serves everything else, with Connection: close', async () => {
    const get = (url: string) => t.app.inject({ method: 'GET', url });
    expect((await get('/readyz')).statusCode).toBe(200);
    expect((await get('/v2/health/ready')).json()).toEqual({ ready: true });
    expect((await get('/healthz')).headers.connection).not.toBe('close');

    t.app.deps.phase.enter('lame-duck');

    const ready = await get('/readyz');
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toEqual({
      status: 'not_ready',
      reason: 'shutting_down',
      models: [{ name: 'digits', ready: true, active_version: 1 }],
    });
    const v2 = await get('/v2/health/ready');
    expect(v2.statusCode).toBe(503);
    expect(v2.json()).toEqual({ ready: false, reason: 'shutting_down' });
    for (const url of ['/healthz', '/v2/health/live', '/v2/models/digits/ready']) {
      const reply = await get(url);
      expect(reply.statusCode, url).toBe(200);
      expect(reply.headers.connection, url).toBe('close');
    }
    const predicted = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:predict',
      payload: { instances: digitsTestRows().x.slice(0, 3) },
    });
    expect(predicted.statusCode, predicted.body).toBe(200);
    expect(predicted.json().predictions).toHaveLength(3);
    expect(predicted.headers.connection).toBe('close');
  });
});

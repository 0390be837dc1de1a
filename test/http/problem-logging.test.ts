/**
 * What a problem writes to the log: a state of the server (MODEL_UNAVAILABLE, a 503) and a
 * client's error (4xx) write exactly their request line, without a stack; only a fault (500
 * INTERNAL, an exception nothing expected) adds an error line with its stack. A recalibration
 * upload refused for its rows is such a client error (no `recalibration failed` line quoting its
 * cell, no failed recalibration counted); one that fails for a server reason is a failed one.
 */
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NormserveError } from '../../src/errors/index.js';
import type { PredictOutput } from '../../src/service/index.js';
import { ADMIN, type LoggedApp, makeLoggedApp, ndjsonBody } from '../helpers/admin.js';
import { makeRepository } from '../helpers/app.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { digitsTestRows } from '../helpers/digits.js';
import { digitsRow, expectProblem } from './http-helpers.js';

/** pino's numeric levels. */
const INFO = 30;
const WARN = 40;
const ERROR = 50;

interface Line {
  level: number;
  msg: string;
  request_id?: string;
  status?: number;
  code?: string;
  route?: string;
  err?: { type: string; message: string; stack: string };
}

/** A repository with digits and `broken`, whose only version has a truncated checkpoint. */
function repositoryWithBrokenModel(): string {
  const root = makeRepository(['digits']);
  const dir = join(root, 'broken', '1');
  cpSync(bundledVersionDir('digits'), dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { name: string };
  config.name = 'broken';
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const weights = readFileSync(join(dir, 'model.safetensors'));
  writeFileSync(join(dir, 'model.safetensors'), weights.subarray(0, weights.length >> 1));
  return root;
}

describe('problems in the log', () => {
  let served: LoggedApp;
  beforeAll(async () => {
    served = await makeLoggedApp({ repository: repositoryWithBrokenModel(), level: 'info' });
  });
  afterAll(async () => {
    await served.close();
  });

  /** The lines written for the request answered with `id`. */
  const linesOf = (id: string): Line[] =>
    served.logs.map((l) => JSON.parse(l) as Line).filter((l) => l.request_id === id);

  it('MODEL_UNAVAILABLE writes exactly its request line, at warn, without a stack', async () => {
    const res = await served.app.inject({
      method: 'POST',
      url: '/v1/models/broken:predict',
      headers: { 'x-request-id': 'unavailable-1' },
      payload: { instances: [digitsRow()] },
    });
    expectProblem(res, 503, 'MODEL_UNAVAILABLE');
    const lines = linesOf('unavailable-1');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: WARN,
      msg: 'request',
      status: 503,
      code: 'MODEL_UNAVAILABLE',
    });
    expect(lines[0]!.err).toBeUndefined();
  });

  it('a client error writes its request line at info', async () => {
    const res = await served.app.inject({
      method: 'POST',
      url: '/v1/models/digits:predict',
      headers: { 'x-request-id': 'invalid-1' },
      payload: { instances: [[1, 2, 3]] },
    });
    expectProblem(res, 400, 'INVALID_INPUT');
    expect(linesOf('invalid-1')).toEqual([
      expect.objectContaining({ level: INFO, msg: 'request', status: 400, code: 'INVALID_INPUT' }),
    ]);
  });

  it("a 405's request line names the route at its path; a 404's names none", async () => {
    for (const [url, id] of [
      ['/v1/models/digits:predict', 'not-allowed-1'],
      ['/v1/nothing/here', 'no-route-1'],
    ] as const) {
      await served.app.inject({ method: 'GET', url, headers: { 'x-request-id': id } });
    }
    expect(linesOf('not-allowed-1')).toEqual([
      expect.objectContaining({
        status: 405,
        code: 'METHOD_NOT_ALLOWED',
        route: '/v1/models/{name}:predict',
      }),
    ]);
    expect(linesOf('no-route-1')).toEqual([
      expect.objectContaining({ status: 404, code: 'NOT_FOUND', route: 'unmatched' }),
    ]);
  });

  it("a problem's request line carries its catalogue code; an answered request's carries none", async () => {
    const ok = await served.app.inject({
      method: 'POST',
      url: '/v1/models/digits:predict',
      headers: { 'x-request-id': 'ok-1' },
      payload: { instances: [digitsRow()] },
    });
    expect(ok.statusCode, ok.body).toBe(200);
    const [line] = linesOf('ok-1');
    expect(line).toMatchObject({ status: 200, msg: 'request' });
    expect(line!.code).toBeUndefined();
    const unauthorized = await served.app.inject({
      method: 'POST',
      url: '/v1/models/digits:recalibrate',
      headers: { 'x-request-id': 'unauthorized-1' },
      payload: { instances: [digitsRow()] },
    });
    expectProblem(unauthorized, 401, 'UNAUTHORIZED');
    expect(linesOf('unauthorized-1')).toEqual([
      expect.objectContaining({ status: 401, code: 'UNAUTHORIZED' }),
    ]);
  });

  it('a fault after the engine answered is a problem line, not an answered inference: no rows, not observed', async () => {
    const { inference } = served.app.deps;
    const infer = inference.infer;
    // The engine answers; shaping the reply then fails (its outputs are gone).
    inference.infer = (...args) => {
      const out = infer.apply(inference, args);
      const broken = (o: PredictOutput): PredictOutput => ({
        ...o,
        outputs: undefined as unknown as Float32Array,
        probabilities: undefined as unknown as Float32Array,
      });
      return out instanceof Promise ? out.then(broken) : broken(out);
    };
    const observed = async () =>
      /^normserve_batch_size_count\{model="digits"\} (\d+)$/m.exec(
        (await served.app.inject({ url: '/metrics' })).body,
      )?.[1] ?? '0';
    const before = await observed();
    try {
      const res = await served.app.inject({
        method: 'POST',
        url: '/v1/models/digits:predict',
        headers: { 'x-request-id': 'fault-after-1' },
        payload: { instances: [digitsRow()] },
      });
      expectProblem(res, 500, 'INTERNAL');
    } finally {
      inference.infer = infer;
    }
    const line = linesOf('fault-after-1').find((l) => l.msg === 'request');
    expect(line).toMatchObject({ status: 500, code: 'INTERNAL', model: 'digits', version: 1 });
    expect(line).not.toHaveProperty('rows');
    expect(await observed()).toBe(before);
  });

  it('an unexpected exception is a 500 INTERNAL whose error line keeps the stack', async () => {
    const { inference } = served.app.deps;
    const infer = inference.infer;
    inference.infer = () => {
      throw new TypeError('engine exploded');
    };
    try {
      const res = await served.app.inject({
        method: 'POST',
        url: '/v1/models/digits:predict',
        headers: { 'x-request-id': 'fault-1' },
        payload: { instances: [digitsRow()] },
      });
      const body = expectProblem(res, 500, 'INTERNAL');
      // The client learns nothing of the exception; the log has it whole.
      expect(body.detail).toBe('internal server error');
    } finally {
      inference.infer = infer;
    }
    const lines = linesOf('fault-1');
    expect(lines.map((l) => [l.level, l.msg, l.code])).toEqual([
      [ERROR, 'request failed', undefined],
      [WARN, 'request', 'INTERNAL'],
    ]);
    expect(lines[0]!.err).toMatchObject({ type: 'TypeError', message: 'engine exploded' });
    expect(lines[0]!.err!.stack).toMatch(/^TypeError: engine exploded\n\s+at /);
  });

  const recalibrationsEnded = async (outcome: string) =>
    Number(
      new RegExp(
        `^normserve_recalibrations_total\\{model="digits",mode="exact",outcome="${outcome}"\\} (\\d+)$`,
        'm',
      ).exec((await served.app.inject({ url: '/metrics' })).body)?.[1] ?? 0,
    );

  const failedRecalibrations = () => recalibrationsEnded('failed');

  it('a recalibration upload refused for its rows writes its request line alone: no line quotes its cell; counted client_error, never failed', async () => {
    const rows = digitsTestRows().x.slice(0, 20);
    const cell = 'jane.doe@example.com';
    const header = Array.from({ length: 64 }, (_, i) => `p${i}`).join(',');
    const csvRows = rows.map((r) => r.join(','));
    csvRows[7] = csvRows[7]!.replace(/^[^,]*/, cell);
    const ndjsonRows = ndjsonBody(rows).split('\n');
    ndjsonRows[3] = `[${cell}]`;
    const uploads = [
      { id: 'refused-csv', type: 'text/csv', body: `${header}\n${csvRows.join('\n')}\n` },
      { id: 'refused-ndjson', type: 'application/x-ndjson', body: ndjsonRows.join('\n') },
      // Checked by the session (its statistics), not by the reader.
      {
        id: 'refused-json',
        type: 'application/json',
        body: JSON.stringify({ instances: [rows[0]] }),
      },
    ];
    for (const { id, type, body } of uploads) {
      const res = await served.app.inject({
        method: 'POST',
        url: '/v1/models/digits:recalibrate',
        headers: { ...ADMIN, 'content-type': type, 'x-request-id': id },
        payload: body,
      });
      expect(res.statusCode, res.body).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, res.body).toBeLessThan(500);
      expect(linesOf(id), id).toEqual([
        expect.objectContaining({ level: INFO, msg: 'request', status: res.statusCode }),
      ]);
    }
    expect(served.logs.filter((l) => l.includes(cell))).toEqual([]);
    expect(await failedRecalibrations()).toBe(0);
    expect(await recalibrationsEnded('client_error')).toBe(3);
    // A refusal in a job (202 first) is counted alike, and logged at info, not as a failure
    // (ops review of 2026-12-04: it counted `failed`): two rows alike, which only the
    // computation refuses (one row is refused before a job is made).
    const job = await served.app.inject({
      method: 'POST',
      url: '/v1/models/digits:recalibrate',
      headers: { ...ADMIN, prefer: 'respond-async', 'x-request-id': 'refused-job' },
      payload: { instances: [rows[0], rows[0]] },
    });
    expect(job.statusCode, job.body).toBe(202);
    await expect
      .poll(() => recalibrationsEnded('client_error'), { timeout: 20_000, interval: 20 })
      .toBe(4);
    expect(await failedRecalibrations()).toBe(0);
    expect(linesOf('refused-job').map((l) => [l.level, l.msg])).toEqual([
      [INFO, 'request'],
      [INFO, 'recalibration refused: a client error'],
    ]);
  });

  it('a recalibration refused before it starts is counted too: its JSON rows (client_error), a lock file the repository refuses (failed)', async () => {
    const clientErrors = await recalibrationsEnded('client_error');
    const failed = await failedRecalibrations();
    // A JSON body's rows are checked before the model's lock is taken (an upload's after).
    const narrow = await served.app.inject({
      method: 'POST',
      url: '/v1/models/digits:recalibrate',
      headers: ADMIN,
      payload: { instances: [[1, 2, 3]] },
    });
    expectProblem(narrow, 400, 'INVALID_INPUT');
    expect(await recalibrationsEnded('client_error')).toBe(clientErrors + 1);
    // A model the server does not have makes no series (its name comes from the URL).
    const unknown = await served.app.inject({
      method: 'POST',
      url: '/v1/models/no-such-model:recalibrate',
      headers: ADMIN,
      payload: { instances: [[1, 2, 3]] },
    });
    expect(unknown.statusCode).toBe(404);
    for (const [method, url] of [
      ['POST', '/v1/models/no-such-model/versions/1:activate'],
      ['DELETE', '/v1/models/no-such-model/versions/2'],
    ] as const)
      expect((await served.app.inject({ method, url, headers: ADMIN })).statusCode).toBe(404);
    expect((await served.app.inject({ url: '/metrics' })).body).not.toContain('no-such-model');
    // The lock file cannot be created (a directory in its place, as a broken volume may leave):
    // a failure of the server's storage, which an alert on `failed` must see.
    const lock = join(served.repository, 'digits', '.recalibration.lock');
    mkdirSync(lock);
    try {
      const res = await served.app.inject({
        method: 'POST',
        url: '/v1/models/digits:recalibrate',
        headers: ADMIN,
        payload: { instances: digitsTestRows().x.slice(0, 20) },
      });
      expect(res.statusCode, res.body).toBeGreaterThanOrEqual(500);
      expect(await failedRecalibrations()).toBe(failed + 1);
      expect(await recalibrationsEnded('client_error')).toBe(clientErrors + 1);
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  });

  it('a recalibration that fails for a server reason is a failed one: logged at warn and counted', async () => {
    const { registry } = served;
    const failed = await failedRecalibrations();
    const publish = registry.publish;
    registry.publish = () =>
      Promise.reject(new NormserveError('STORAGE_UNAVAILABLE', 'the disk went away'));
    try {
      const res = await served.app.inject({
        method: 'POST',
        url: '/v1/models/digits:recalibrate',
        headers: { ...ADMIN, 'x-request-id': 'storage-1' },
        payload: { instances: digitsTestRows().x.slice(0, 20) },
      });
      expectProblem(res, 503, 'STORAGE_UNAVAILABLE');
    } finally {
      registry.publish = publish;
    }
    expect(linesOf('storage-1').map((l) => [l.level, l.msg])).toEqual([
      [WARN, 'recalibration failed'],
      [WARN, 'request'],
    ]);
    expect(await failedRecalibrations()).toBe(failed + 1);
  });
});

/**
 * What a problem writes to the log: a state of the server (MODEL_UNAVAILABLE, a 503) and a
 * client's error (4xx) write exactly their request line, without a stack; only a fault (500
 * INTERNAL, an exception nothing expected) adds an error line with its stack.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LoggedApp, makeLoggedApp } from '../helpers/admin.js';
import { makeRepository } from '../helpers/app.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
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
    expect(lines[0]).toMatchObject({ level: WARN, msg: 'request', status: 503 });
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
      expect.objectContaining({ level: INFO, msg: 'request', status: 400 }),
    ]);
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
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      [ERROR, 'request failed'],
      [WARN, 'request'],
    ]);
    expect(lines[0]!.err).toMatchObject({ type: 'TypeError', message: 'engine exploded' });
    expect(lines[0]!.err!.stack).toMatch(/^TypeError: engine exploded\n\s+at /);
  });
});

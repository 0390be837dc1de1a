/**
 * Overload and the 503s' Retry-After: MAX_QUEUED_REQUESTS bounds the requests waiting for the
 * engine (here: queued for a dynamic batch whose delay outlasts the test), one more is answered
 * 503 OVERLOADED with Retry-After and counted; MODEL_UNAVAILABLE says when the next scan comes,
 * SHUTTING_DOWN asks for a retry a second later. A request leaves the count however it leaves the
 * queue: answered, its client gone, its engine call failed. Driven by the queue's state, never by
 * timing.
 */
import { mkdirSync } from 'node:fs';
import { type AddressInfo, connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  float32Rows,
  InferenceService,
  ModelRegistry,
  nestedRows,
  unavailableRetryAfterSeconds,
} from '../../src/service/index.js';
import { type LoggedApp, makeLoggedApp } from '../helpers/admin.js';
import { makeRepository, makeTestApp } from '../helpers/app.js';
import { digitsTestRows } from '../helpers/digits.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { digitsRow, expectProblem } from './http-helpers.js';

let t: LoggedApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

/** Polls `ready` every 10 ms, for at most 30 s (a busy machine), then fails. */
async function until(ready: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 3000 && !ready(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(ready(), what).toBe(true);
}

const predict = (app: LoggedApp['app'], i: number) =>
  app.inject({
    method: 'POST',
    url: '/v1/models/digits:predict',
    payload: { instances: [digitsRow(i)] },
  });

describe('MAX_QUEUED_REQUESTS', () => {
  it('refuses a request beyond the bound with 503 OVERLOADED, Retry-After and a count; the queued ones are answered', async () => {
    // A batch delay of 60 s: the queued requests wait until the test flushes them.
    t = await makeLoggedApp({
      batchMaxDelayUs: 60_000_000,
      env: { MAX_QUEUED_REQUESTS: '2' },
      level: 'info',
    });
    const { app } = t;
    const inference = app.deps.inference;
    const queued = [predict(app, 0), predict(app, 1)];
    await until(() => inference.queuedRequests === 2, 'two requests queued for their batch');

    const refused = await predict(app, 2);
    const body = expectProblem(refused, 503, 'OVERLOADED');
    expect(refused.headers['retry-after']).toBe('1');
    expect(body.detail).toBe(
      '2 requests already wait for the engine (MAX_QUEUED_REQUESTS); retry in 1 s',
    );
    // Refused before it was queued: the batch still holds the two.
    expect(inference.queuedRequests).toBe(2);
    const metrics = (await app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(/^normserve_overloaded_requests_total\{model="digits"\} 1$/m);
    expect(metrics).toMatch(
      /^normserve_http_requests_total\{method="POST",route="\/v1\/models\/\{name\}:predict",status="503",model="digits",version=""\} 1$/m,
    );

    inference.flush();
    for (const res of await Promise.all(queued)) expect(res.statusCode, res.body).toBe(200);
    await until(() => inference.queuedRequests === 0, 'the answered requests left the count');
    // Room again: the next one waits for its batch instead of being refused.
    const next = predict(app, 3);
    await until(() => inference.queuedRequests === 1, 'the next request queued');
    inference.flush();
    expect((await next).statusCode).toBe(200);
  });

  it('0, the default, bounds nothing', async () => {
    t = await makeLoggedApp({ batchMaxDelayUs: 60_000_000, level: 'info' });
    expect(t.config.MAX_QUEUED_REQUESTS).toBe(0);
    const inference = t.app.deps.inference;
    const app = t.app;
    const queued = Array.from({ length: 8 }, (_, i) => predict(app, i));
    await until(() => inference.queuedRequests === 8, 'eight requests queued');
    inference.flush();
    for (const res of await Promise.all(queued)) expect(res.statusCode).toBe(200);
  });
});

describe('MAX_QUEUED_REQUESTS with ENGINE_ASYNC=on', () => {
  it('counts the calls waiting for the helper thread; a call computed at once is never refused', async () => {
    const plain = await makeTestApp({ env: { ENGINE_THREADS: '2', ENGINE_ASYNC: 'on' } });
    try {
      const service = new InferenceService(plain.registry, {
        batchMaxDelayUs: 0,
        batchMaxRows: 256,
        engineAsync: true,
        maxQueuedRequests: 1,
      });
      const served = service.resolve('digits');
      const executor = served.compiled.executor;
      // The helper thread answers when the test lets it: every JSON call is handed to it.
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const runAsync = executor.runAsync.bind(executor);
      executor.offloads = () => true;
      executor.runAsync = (input, rows, probe) => gate.then(() => runAsync(input, rows, probe));
      const rows = digitsTestRows().x.slice(0, 4);
      const waiting = service.infer(served, nestedRows(rows, 64));
      expect(waiting).toBeInstanceOf(Promise);
      expect(service.queuedRequests).toBe(1);
      expect(() => service.infer(served, nestedRows(rows, 64))).toThrow(
        expect.objectContaining({
          code: 'OVERLOADED',
          retryAfterSeconds: 1,
          // One request: said in the singular.
          message: '1 request already waits for the engine (MAX_QUEUED_REQUESTS); retry in 1 s',
        }),
      );
      // float32 rows are computed on the calling thread (inferSources): nothing to wait for.
      const direct = service.infer(served, float32Rows(Float32Array.from(rows.flat()), 4, 64));
      expect(direct).not.toBeInstanceOf(Promise);
      release();
      expect((await waiting).rows).toBe(4);
      expect(service.queuedRequests).toBe(0);
    } finally {
      await plain.close();
    }
  });
});

describe('Retry-After of the other 503s', () => {
  it('MODEL_UNAVAILABLE: the next scan of the repository, in whole seconds; none without scans', async () => {
    expect(unavailableRetryAfterSeconds(2000)).toBe(2);
    expect(unavailableRetryAfterSeconds(1500)).toBe(2);
    expect(unavailableRetryAfterSeconds(100)).toBe(1);
    expect(unavailableRetryAfterSeconds(0)).toBeUndefined();
    // An empty version directory: the model exists, and no version of it can serve.
    const repository = makeRepository([]);
    mkdirSync(`${repository}/empty/1`, { recursive: true });
    const registry = new ModelRegistry(repository, {
      maxBatchSize: 16,
      engine: TEST_ENGINE,
      unavailableRetryAfterSeconds: unavailableRetryAfterSeconds(2000),
    });
    await registry.refresh();
    try {
      expect(() => registry.resolve('empty')).toThrow(
        expect.objectContaining({ code: 'MODEL_UNAVAILABLE', retryAfterSeconds: 2 }),
      );
    } finally {
      registry.close();
    }
  });

  it('SHUTTING_DOWN: Retry-After 1 with Connection: close', async () => {
    t = await makeLoggedApp({ level: 'info' });
    const { app } = t;
    await app.listen({ port: 0, host: '127.0.0.1' });
    const socket = connect((app.server.address() as AddressInfo).port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // The drain has begun when the preClose hook flushes the batcher: the request sent then, on
    // the connection already open, is read and refused.
    const inference = app.deps.inference;
    const flush = inference.flush.bind(inference);
    inference.flush = () => {
      flush();
      const body = JSON.stringify({ instances: [digitsRow(0)] });
      socket.write(
        `POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    };
    await app.close();
    await ended;
    const [head = '', body = ''] = received.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 503 /);
    expect(head).toMatch(/^retry-after: 1$/im);
    expect(head).toMatch(/^connection: close$/im);
    expect(JSON.parse(body)).toMatchObject({ code: 'SHUTTING_DOWN' });
  });
});

describe('MAX_QUEUED_REQUESTS: every path out of the queue gives the place back', () => {
  /** POSTs a prediction on a connection of its own; resolves when the connection closes. */
  async function postOn(port: number, i: number) {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const body = JSON.stringify({ instances: [digitsRow(i)] });
    socket.write(
      `POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    return socket;
  }

  it('an HTTP client that goes while its request is queued', async () => {
    t = await makeLoggedApp({
      batchMaxDelayUs: 60_000_000,
      env: { MAX_QUEUED_REQUESTS: '1' },
      level: 'info',
    });
    const { app } = t;
    const inference = app.deps.inference;
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    // An idle connection: a client that could still send, so the batch waits its delay.
    const idle = connect(port, '127.0.0.1');
    idle.on('error', () => {});
    const leaving = await postOn(port, 0);
    try {
      await until(() => inference.queuedRequests === 1, 'the request queued');
      expectProblem(await predict(app, 1), 503, 'OVERLOADED');
      leaving.destroy();
      await until(() => inference.queuedRequests === 0, 'the departed request gave its place back');
      const next = predict(app, 2);
      await until(() => inference.queuedRequests === 1, 'the next request queued');
      inference.flush();
      expect((await next).statusCode).toBe(200);
    } finally {
      idle.destroy();
      leaving.destroy();
    }
  });

  /** A service over the digits model with MAX_QUEUED_REQUESTS=1, and requests of 4 JSON rows. */
  async function bounded(options: { batchMaxDelayUs: number; engineAsync?: boolean }) {
    const plain = await makeTestApp({ env: { ENGINE_THREADS: '2', ENGINE_ASYNC: 'on' } });
    const service = new InferenceService(plain.registry, {
      batchMaxRows: 256,
      maxQueuedRequests: 1,
      ...options,
    });
    const served = service.resolve('digits');
    const rows = digitsTestRows().x.slice(0, 4);
    const request = () => service.infer(served, nestedRows(rows, 64));
    return { plain, service, served, request };
  }

  it('a batch whose engine call throws (on the event loop)', async () => {
    const { plain, service, served, request } = await bounded({ batchMaxDelayUs: 600_000_000 });
    try {
      const compiled = served.compiled;
      const forward = compiled.forward.bind(compiled);
      compiled.forward = () => {
        throw new Error('engine failed');
      };
      const failing = request();
      expect(service.queuedRequests).toBe(1);
      service.flush();
      await expect(failing).rejects.toThrow('engine failed');
      await until(() => service.queuedRequests === 0, 'the failed request gave its place back');
      compiled.forward = forward;
      const next = request();
      expect(service.queuedRequests).toBe(1);
      service.flush();
      expect((await next).rows).toBe(4);
    } finally {
      await plain.close();
    }
  });

  for (const batchMaxDelayUs of [0, 600_000_000]) {
    it(`an engine call that fails on the helper thread (${batchMaxDelayUs === 0 ? 'unbatched' : 'a batch'})`, async () => {
      const { plain, service, served, request } = await bounded({
        batchMaxDelayUs,
        engineAsync: true,
      });
      try {
        const executor = served.compiled.executor;
        const runAsync = executor.runAsync.bind(executor);
        executor.offloads = () => true;
        executor.runAsync = () => Promise.reject(new Error('helper thread failed'));
        const failing = request();
        expect(service.queuedRequests).toBe(1);
        service.flush();
        await expect(failing).rejects.toThrow('helper thread failed');
        await until(() => service.queuedRequests === 0, 'the failed request gave its place back');
        executor.runAsync = runAsync;
        const next = request();
        expect(service.queuedRequests).toBe(1);
        service.flush();
        expect((await next).rows).toBe(4);
        expect(service.queuedRequests).toBe(0);
      } finally {
        await plain.close();
      }
    });
  }
});

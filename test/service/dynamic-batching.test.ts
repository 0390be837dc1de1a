/**
 * Dynamic batching (BATCH_MAX_DELAY_US, config.json `dynamic_batching`): concurrent requests for
 * one version run as one engine call; each response has exactly its own rows (equal to the
 * unbatched answer bit for bit) and the version of its batch; BATCH_MAX_ROWS bounds a batch; the
 * batch metrics count it all; a batch runs before its delay once every caller waits in it; a
 * request whose caller goes while it waits leaves its batch uncomputed.
 * Outcomes and order only: no timing assertion. A convolutional
 * model's samples, flat or nested, JSON or binary, batch together the same way.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WasmExecutor } from '../../src/inference/index.js';
import {
  type CallerCount,
  float32Rows,
  InferenceService,
  nestedRows,
  type PredictOutput,
  runSources,
} from '../../src/service/index.js';
import { makeRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsImage, digitsTestRows } from '../helpers/digits.js';
import {
  binaryInfer,
  f32Bytes,
  type InferResponse,
  inferBody,
  readBinaryResponse,
} from '../http/http-helpers.js';

const rows = digitsTestRows().x.slice(0, 24);
let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('dynamic batching', () => {
  it('runs concurrent requests as one engine call; each gets its own rows and the version', async () => {
    // The batch fills (24 rows) long before the 1 s delay, even on a loaded machine.
    t = await makeTestApp({ env: { BATCH_MAX_DELAY_US: '1000000', BATCH_MAX_ROWS: '24' } });
    const app = t.app;
    const alone = (
      await makeTestApp({ env: { BATCH_MAX_DELAY_US: '0' } }).then(async (plain) => {
        const res = await plain.app.inject({
          method: 'POST',
          url: '/v1/models/digits:predict',
          payload: { instances: rows },
        });
        await plain.close();
        return res;
      })
    ).json<{ predictions: number[][]; labels: string[] }>();
    const responses = await Promise.all(
      rows.map((row, i) =>
        i % 2 === 0
          ? app.inject({
              method: 'POST',
              url: '/v1/models/digits:predict',
              payload: { instances: [row] },
            })
          : app.inject({
              method: 'POST',
              url: '/v2/models/digits/infer',
              payload: inferBody([row], { outputs: ['probabilities', 'label'] }),
            }),
      ),
    );
    responses.forEach((res, i) => {
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers['x-model-version']).toBe('1');
      if (i % 2 === 0) {
        const body = res.json<{
          model_version: number;
          predictions: number[][];
          labels: string[];
        }>();
        expect(body.model_version).toBe(1);
        expect(body.predictions).toEqual([alone.predictions[i]]);
        expect(body.labels).toEqual([alone.labels[i]]);
      } else {
        const body = res.json<InferResponse>();
        expect(body.model_version).toBe('1');
        expect(body.outputs[0]!.data).toEqual(alone.predictions[i]);
        expect(body.outputs[1]!.data).toEqual([alone.labels[i]]);
      }
    });
    const metrics = (await app.inject({ url: '/metrics' })).body;
    // All 24 requests were queued together and ran as one engine call of 24 rows.
    expect(metrics).toMatch(/normserve_dynamic_batch_requests_count\{model="digits"\} 1\b/);
    expect(metrics).toMatch(/normserve_dynamic_batch_rows_sum\{model="digits"\} 24\b/);
    expect(metrics).toMatch(/normserve_batch_queue_delay_seconds_count\{model="digits"\} 24\b/);
  });

  it('BATCH_MAX_ROWS bounds a batch; a larger request runs alone', async () => {
    t = await makeTestApp();
    const reports: { rows: number; requests: number }[] = [];
    const service = new InferenceService(t.registry, {
      batchMaxDelayUs: 500_000,
      batchMaxRows: 4,
      onBatch: (r) => reports.push({ rows: r.rows, requests: r.requests }),
    });
    const served = service.resolve('digits');
    const one = (n: number) => service.infer(served, nestedRows(rows.slice(0, n), 64));
    const results = await Promise.all([one(1), one(2), one(1), one(3), one(9)]);
    expect(results.map((r) => r.rows)).toEqual([1, 2, 1, 3, 9]);
    // 1+2+1 fill a batch of 4; 3 waits; 9 overflows, sends the 3 off and runs alone.
    expect(reports).toEqual([
      { rows: 4, requests: 3 },
      { rows: 3, requests: 1 },
      { rows: 9, requests: 1 },
    ]);
    expect(results[4]!.batchRows).toBe(9);
    expect(results[0]!.batchRows).toBe(4);
  });

  it('a convolutional model: nested, flat and binary samples of both APIs run as one engine call', async () => {
    const n = 10;
    t = await makeTestApp({
      models: ['digits-cnn'],
      env: { BATCH_MAX_DELAY_US: '1000000', BATCH_MAX_ROWS: String(n) },
    });
    const app = t.app;
    const PREDICT = '/v1/models/digits-cnn:predict';
    const INFER = '/v2/models/digits-cnn/infer';
    const alone = await makeTestApp({ models: ['digits-cnn'] }).then(async (plain) => {
      const res = await plain.app.inject({
        method: 'POST',
        url: PREDICT,
        payload: { instances: rows.slice(0, n).map(digitsImage) },
      });
      await plain.close();
      return res.json<{ predictions: number[][] }>().predictions;
    });
    const f32 = (values: readonly number[]) => Array.from(Float32Array.from(values));
    const forms: ((row: number[]) => Promise<number[]>)[] = [
      // TF JSON, nested [1][8][8] and flat 64.
      async (row) =>
        (
          await app.inject({
            method: 'POST',
            url: PREDICT,
            payload: { instances: [digitsImage(row)] },
          })
        ).json<{ predictions: number[][] }>().predictions[0]!,
      async (row) =>
        (await app.inject({ method: 'POST', url: PREDICT, payload: { inputs: [row] } })).json<{
          outputs: number[][];
        }>().outputs[0]!,
      // TF float32 rows, answered as float32.
      async (row) => {
        const res = await app.inject({
          method: 'POST',
          url: PREDICT,
          payload: f32Bytes(row),
          headers: {
            'content-type': 'application/octet-stream',
            accept: 'application/octet-stream',
          },
        });
        const bytes = res.rawPayload;
        return Array.from(
          new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)),
        );
      },
      // OIP JSON [1, 1, 8, 8] nested, and the binary extension with [1, 64].
      async (row) =>
        (
          await app.inject({
            method: 'POST',
            url: INFER,
            payload: {
              inputs: [
                { name: 'input', shape: [1, 1, 8, 8], datatype: 'FP32', data: [digitsImage(row)] },
              ],
            },
          })
        ).json<InferResponse>().outputs[0]!.data as number[],
      async (row) => {
        const { payload, headers } = binaryInfer(
          {
            inputs: [
              {
                name: 'input',
                shape: [1, 64],
                datatype: 'FP32',
                parameters: { binary_data_size: 256 },
              },
            ],
            outputs: [{ name: 'probabilities', parameters: { binary_data: true } }],
          },
          [f32Bytes(row)],
        );
        const { bytes } = readBinaryResponse(
          await app.inject({ method: 'POST', url: INFER, payload, headers }),
        );
        return Array.from(
          new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)),
        );
      },
    ];
    const answers = await Promise.all(
      rows.slice(0, n).map((row, i) => forms[i % forms.length]!(row)),
    );
    answers.forEach((probabilities, i) => {
      expect(f32(probabilities), `row ${i}`).toEqual(f32(alone[i]!));
    });
    const metrics = (await app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(/normserve_dynamic_batch_requests_count\{model="digits-cnn"\} 1\b/);
    expect(metrics).toMatch(
      new RegExp(`normserve_dynamic_batch_rows_sum\\{model="digits-cnn"\\} ${n}\\b`),
    );
  });

  it('batches computed on the helper thread: each request gets its own rows; the next batch collects meanwhile', async () => {
    // 2 engine threads: a batch of 256 digits rows (~8.7 MFLOP) runs on the helper thread.
    t = await makeTestApp({ env: { ENGINE_THREADS: '2', ENGINE_ASYNC: 'on' } });
    const many = digitsTestRows().x.slice(0, 256);
    const reports: { rows: number; requests: number }[] = [];
    const service = new InferenceService(t.registry, {
      batchMaxDelayUs: 1000,
      batchMaxRows: 256,
      engineAsync: true,
      onBatch: (r) => reports.push({ rows: r.rows, requests: r.requests }),
    });
    const served = service.resolve('digits');
    const executor = served.compiled.executor;
    if (executor instanceof WasmExecutor) await executor.ready();
    const offloadedBefore = executor instanceof WasmExecutor ? executor.offloadedCalls : 0;
    const alone = runSources(served, [nestedRows(many, 64)])[0]!.probabilities!;
    // 64 requests of 8 rows: the first 32 fill a batch at once; the next ones queue while it runs.
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) => {
        const own = many.slice((i % 32) * 8, (i % 32) * 8 + 8);
        return i < 32
          ? service.infer(served, nestedRows(own, 64))
          : service.infer(served, float32Rows(Float32Array.from(own.flat()), 8, 64));
      }),
    );
    results.forEach((r, i) => {
      const from = (i % 32) * 8 * 10;
      expect(r.rows).toBe(8);
      expect(Array.from(r.probabilities!), `request ${i}`).toEqual(
        Array.from(alone.subarray(from, from + 80)),
      );
    });
    expect(reports.reduce((n, r) => n + r.rows, 0)).toBe(512);
    expect(reports.reduce((n, r) => n + r.requests, 0)).toBe(64);
    expect(reports[0]).toEqual({ rows: 256, requests: 32 });
    if (executor instanceof WasmExecutor)
      expect(executor.offloadedCalls).toBeGreaterThan(offloadedBefore);
  });

  it('ENGINE_ASYNC=on: 256-row JSON, float32 and OIP binary requests answer what they answer synchronously', async () => {
    const body = { instances: digitsTestRows().x.slice(0, 256) };
    const f32Body = f32Bytes(body.instances.flat());
    const ask = async (app: TestApp['app']) => {
      const json = await app.inject({
        method: 'POST',
        url: '/v1/models/digits:predict',
        payload: body,
      });
      const binary = await app.inject({
        method: 'POST',
        url: '/v1/models/digits:predict',
        payload: f32Bytes(body.instances.flat()),
        headers: { 'content-type': 'application/octet-stream', accept: 'application/octet-stream' },
      });
      const oip = binaryInfer(
        {
          inputs: [
            {
              name: 'input',
              shape: [256, 64],
              datatype: 'FP32',
              parameters: { binary_data_size: f32Body.length },
            },
          ],
          outputs: [{ name: 'probabilities', parameters: { binary_data: true } }],
        },
        [f32Body],
      );
      const infer = await app.inject({ method: 'POST', url: '/v2/models/digits/infer', ...oip });
      expect([json.statusCode, binary.statusCode, infer.statusCode]).toEqual([200, 200, 200]);
      return [json.body, binary.rawPayload, readBinaryResponse(infer).bytes];
    };
    const plain = await makeTestApp({ env: { ENGINE_THREADS: '2' } });
    const expected = await ask(plain.app);
    await plain.close();
    t = await makeTestApp({ env: { ENGINE_THREADS: '2', ENGINE_ASYNC: 'on' } });
    const executor = t.registry.resolve('digits').compiled.executor;
    if (executor instanceof WasmExecutor) await executor.ready();
    // Four at once: they queue on the helper thread, first in, first out.
    const answers = await Promise.all([ask(t.app), ask(t.app), ask(t.app), ask(t.app)]);
    for (const answer of answers) expect(answer).toEqual(expected);
    if (executor instanceof WasmExecutor) expect(executor.offloadedCalls).toBeGreaterThan(0);
  });

  it('a batch runs before its delay once every caller waits in it, and not while one could still send', async () => {
    t = await makeTestApp();
    const reports: { rows: number; requests: number }[] = [];
    const service = new InferenceService(t.registry, {
      batchMaxDelayUs: 1_000_000,
      batchMaxRows: 256,
      onBatch: (r) => reports.push({ rows: r.rows, requests: r.requests }),
    });
    const callers = { connections: 3, idleConnections: 0, requests: 3 };
    service.countCallers(() => callers);
    const served = service.resolve('digits');
    const http = (i: number) => service.infer(served, nestedRows([rows[i]!], 64), true, true);
    const grpc = (i: number) => service.infer(served, nestedRows([rows[i]!], 64));
    const alone = runSources(served, [nestedRows(rows.slice(0, 4), 64)])[0]!.probabilities!;
    const first = [http(0), http(1)];
    // A gRPC call queued meanwhile is not counted: it does not stand in for the third HTTP request.
    first.push(grpc(3));
    expect(reports).toEqual([]);
    // The third HTTP caller's request: nobody else can send, so the batch runs within this call.
    const third = http(2);
    expect(reports).toEqual([{ rows: 4, requests: 4 }]);
    const results = await Promise.all([...first, third]);
    results.forEach((r, i) => {
      const row = [0, 1, 3, 2][i]!;
      expect(r.batchRows).toBe(4);
      expect(Array.from(r.probabilities!)).toEqual(
        Array.from(alone.subarray(row * 10, row * 10 + 10)),
      );
    });
    // A fourth connection is open and idle: three queued requests wait for it (or the delay).
    callers.connections = 4;
    callers.idleConnections = 1;
    const waiting = [http(0), http(1), http(2)];
    expect(reports).toHaveLength(1);
    // As many requests as connections, but two of them on one pipelining connection while
    // another is idle: the idle one could still send, so the batch still waits.
    callers.requests = 4;
    waiting.push(http(3));
    expect(reports).toHaveLength(1);
    // No connections counted (gRPC alone, or app.inject): the delay as before.
    callers.connections = 0;
    callers.idleConnections = 0;
    callers.requests = 0;
    waiting.push(http(0));
    expect(reports).toHaveLength(1);
    service.flush();
    expect(reports).toEqual([
      { rows: 4, requests: 4 },
      { rows: 5, requests: 5 },
    ]);
    await Promise.all(waiting);
  });

  it('a request whose caller goes while it waits leaves the batch uncomputed; the others get their own rows', async () => {
    t = await makeTestApp();
    const reports: { rows: number; requests: number }[] = [];
    const service = new InferenceService(t.registry, {
      batchMaxDelayUs: 1_000_000,
      batchMaxRows: 256,
      onBatch: (r) => reports.push({ rows: r.rows, requests: r.requests }),
    });
    const served = service.resolve('digits');
    const alone = runSources(served, [nestedRows(rows.slice(0, 4), 64)])[0]!.probabilities!;
    const callers = rows.slice(0, 4).map(() => new AbortController());
    const pending = Promise.allSettled(
      callers.map((caller, i) =>
        service.infer(served, nestedRows([rows[i]!, rows[i]!], 64), true, false, caller),
      ),
    );
    callers[1]!.abort();
    callers[3]!.abort();
    // A caller gone before its request is queued: refused at once, never queued.
    const early = new AbortController();
    early.abort();
    await expect(
      service.infer(served, nestedRows([rows[5]!], 64), true, false, early),
    ).rejects.toMatchObject({ code: 'CLIENT_ABORTED', status: 499 });
    service.flush();
    expect(reports).toEqual([{ rows: 4, requests: 2 }]);
    const results = await pending;
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
      'rejected',
    ]);
    for (const i of [0, 2]) {
      const out = (results[i] as PromiseFulfilledResult<PredictOutput>).value;
      expect(out.batchRows).toBe(4);
      const own = Array.from(alone.subarray(i * 10, i * 10 + 10));
      expect(Array.from(out.probabilities!)).toEqual([...own, ...own]);
    }
    for (const i of [1, 3])
      expect((results[i] as PromiseRejectedResult).reason).toMatchObject({
        code: 'CLIENT_ABORTED',
      });
    // Every caller of a queue gone: the queue is gone too, and no engine call is made for it.
    const last = new AbortController();
    const alone1 = service.infer(served, nestedRows([rows[0]!], 64), true, false, last);
    last.abort();
    await expect(alone1).rejects.toMatchObject({ code: 'CLIENT_ABORTED' });
    service.flush();
    expect(reports).toHaveLength(1);
    // Gone once its batch is on the engine: it runs to the end and is answered.
    const late = new AbortController();
    const running = service.infer(served, nestedRows([rows[2]!], 64), true, false, late);
    service.flush();
    late.abort();
    expect(Array.from((await running).probabilities!)).toEqual(Array.from(alone.subarray(20, 30)));
  });

  it("a caller's signal is read only for a request that waits for a batch", async () => {
    t = await makeTestApp();
    let reads = 0;
    const caller = {
      get signal() {
        reads++;
        return new AbortController().signal;
      },
    };
    const plain = new InferenceService(t.registry, { batchMaxDelayUs: 0, batchMaxRows: 256 });
    plain.infer(plain.resolve('digits'), nestedRows([rows[0]!], 64), true, true, caller);
    expect(reads).toBe(0);
    const batched = new InferenceService(t.registry, {
      batchMaxDelayUs: 1_000_000,
      batchMaxRows: 256,
    });
    const waiting = batched.infer(
      batched.resolve('digits'),
      nestedRows([rows[0]!], 64),
      true,
      true,
      caller,
    );
    expect(reads).toBe(1);
    batched.flush();
    await waiting;
  });

  it('the connection count forgets the requests a pipelining client left when it closed', async () => {
    t = await makeTestApp({ env: { BATCH_MAX_DELAY_US: '1000000' } });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as AddressInfo;
    // What the server counts, read through the hook the batcher reads.
    const batcher = (
      t.app.deps.inference as unknown as { batcher: { callers?: () => CallerCount } }
    ).batcher;
    const body = JSON.stringify({ instances: [rows[0]] });
    const predict = `POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const open = async () => {
      const s = connect(port, '127.0.0.1');
      await new Promise<void>((resolve, reject) => {
        s.once('connect', resolve);
        s.once('error', reject);
      });
      return s;
    };
    // An idle connection keeps the batch waiting its delay (1 s).
    const idle = await open();
    // Three pipelined predicts on another: the first waits in the batcher, the other two are
    // queued behind it; the client goes away once all three are counted.
    const socket = await open();
    socket.on('error', () => {});
    socket.write(predict.repeat(3));
    for (let i = 0; i < 500 && (batcher.callers?.().requests ?? 0) < 3; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(batcher.callers?.()).toEqual({ connections: 2, idleConnections: 1, requests: 3 });
    socket.destroy();
    for (let i = 0; i < 500 && (batcher.callers?.().connections ?? 0) > 1; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(batcher.callers?.()).toEqual({ connections: 1, idleConnections: 1, requests: 0 });
    idle.destroy();
    t.app.deps.inference.flush();
  });

  it('the HTTP server counts its connections and requests: a closed loop of clients runs as one batch at once', async () => {
    t = await makeTestApp({ env: { BATCH_MAX_DELAY_US: '1000000' } });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as AddressInfo;
    const n = 4;
    const agent = new Agent({ keepAlive: true, maxSockets: n });
    const post = (path: string, body?: unknown) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            path,
            agent,
            method: body === undefined ? 'GET' : 'POST',
            headers: body === undefined ? {} : { 'content-type': 'application/json' },
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => {
              text += chunk;
            });
            res.on('end', () => resolve({ status: res.statusCode!, text }));
          },
        );
        req.on('error', reject);
        req.end(body === undefined ? undefined : JSON.stringify(body));
      });
    try {
      // Open the n connections first, as a closed loop's clients have.
      await Promise.all(Array.from({ length: n }, () => post('/healthz')));
      const alone = runSources(t.app.deps.inference.resolve('digits'), [
        nestedRows(rows.slice(0, n), 64),
      ])[0]!.probabilities!;
      const answers = await Promise.all(
        rows.slice(0, n).map((row) => post('/v1/models/digits:predict', { instances: [row] })),
      );
      answers.forEach((a, i) => {
        expect(a.status, a.text).toBe(200);
        const body = JSON.parse(a.text) as { predictions: number[][] };
        expect(body.predictions[0]).toEqual(Array.from(alone.subarray(i * 10, i * 10 + 10)));
      });
    } finally {
      agent.destroy();
    }
    const metrics = (await t.app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(/normserve_dynamic_batch_requests_count\{model="digits"\} 1\b/);
    expect(metrics).toMatch(
      new RegExp(`normserve_dynamic_batch_rows_sum\\{model="digits"\\} ${n}\\b`),
    );
    // Ran when the last request came, not after the 1 s delay: together the four waited less
    // than the one second each would have waited (a bound no loaded machine comes near).
    const waited = Number(
      /normserve_batch_queue_delay_seconds_sum\{model="digits"\} (\S+)/.exec(metrics)![1],
    );
    expect(waited).toBeLessThan(1);
  });

  it("a model's config.json dynamic_batching overrides the server setting", async () => {
    const repository = makeRepository(['digits']);
    const config = join(repository, 'digits', '1', 'config.json');
    const parsed = JSON.parse(readFileSync(config, 'utf8')) as Record<string, unknown>;
    writeFileSync(
      config,
      JSON.stringify({
        ...parsed,
        dynamic_batching: { max_queue_delay_microseconds: 100_000, max_batch_rows: 8 },
      }),
    );
    t = await makeTestApp({ repository, env: { BATCH_MAX_DELAY_US: '0' } });
    const service = t.app.deps.inference;
    expect(service.policy(service.resolve('digits'))).toEqual({ maxDelayUs: 100_000, maxRows: 8 });
    const results = await Promise.all(
      rows
        .slice(0, 8)
        .map((row) => service.infer(service.resolve('digits'), nestedRows([row], 64))),
    );
    expect(results.every((r) => r.batchRows === 8)).toBe(true);
  });
});

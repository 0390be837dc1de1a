/**
 * `?fused=false`, the unfused debugging path, runs every layer in plain JavaScript: a 4,096-row
 * digits-cnn request takes seconds. It runs in slices with the event loop's turns between them,
 * so the server answers other requests meanwhile; a client that leaves stops the slices not yet
 * run (499); MAX_QUEUED_REQUESTS counts it as a request waiting for the engine.
 * Outcomes and order only, no timings.
 */
import { type AddressInfo, connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CompiledModel } from '../../src/inference/index.js';
import { type LoggedApp, makeLoggedApp, waitFor } from '../helpers/admin.js';
import { digitsTestRows } from '../helpers/digits.js';

const ROWS = 512;
const PREDICT = '/v1/models/digits-cnn:predict?fused=false';
const pixels = digitsTestRows().x;
/** ROWS digit images as float32 rows (the octet-stream body). */
const body = Buffer.from(
  new Float32Array(Array.from({ length: ROWS }, (_, r) => pixels[r % pixels.length]!).flat())
    .buffer,
);

let t: LoggedApp | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const s of sockets.splice(0)) s.destroy();
  await t?.close();
  t = undefined;
});

const unfused = () =>
  t!.app.inject({
    method: 'POST',
    url: PREDICT,
    headers: { 'content-type': 'application/octet-stream' },
    payload: body,
  });

describe('?fused=false', () => {
  it('answers the other requests while it computes, then its own rows', async () => {
    t = await makeLoggedApp({ models: ['digits-cnn'], level: 'warn' });
    const slices = vi.spyOn(CompiledModel.prototype, 'reference');
    const order: string[] = [];
    const big = unfused().then((r) => {
      order.push('unfused');
      return r;
    });
    // Once the unfused request computes its first slice, a health check and a fused predict.
    await waitFor(() => (slices.mock.calls.length > 0 ? true : undefined), 'the first slice');
    const health = await t.app.inject({ url: '/healthz' });
    order.push('healthz');
    const fused = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits-cnn:predict',
      headers: { 'content-type': 'application/octet-stream' },
      payload: body.subarray(0, 64 * 4),
    });
    order.push('fused');
    const answer = await big;
    expect(health.statusCode).toBe(200);
    expect(fused.statusCode).toBe(200);
    expect(order).toEqual(['healthz', 'fused', 'unfused']);
    expect(answer.statusCode, answer.body).toBe(200);
    const predictions = answer.json<{ predictions: number[][] }>().predictions;
    expect(predictions).toHaveLength(ROWS);
    // Every row in one of the slices, none twice.
    const computed = slices.mock.calls.reduce((n, call) => n + (call[1] as number), 0);
    expect(computed).toBe(ROWS);
    expect(slices.mock.calls.length).toBeGreaterThan(1);
    // The same probabilities as the fused engine, within fusion's rounding.
    const first = fused.json<{ predictions: number[][] }>().predictions[0]!;
    for (let k = 0; k < first.length; k++)
      expect(Math.abs(predictions[0]![k]! - first[k]!)).toBeLessThan(1e-5);
  });

  it('stops computing when its client leaves: 499, the slices not yet run are not', async () => {
    t = await makeLoggedApp({ models: ['digits-cnn'], level: 'info' });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const port = (t.app.server.address() as AddressInfo).port;
    const slices = vi.spyOn(CompiledModel.prototype, 'reference');
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      `POST ${PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    socket.write(body);
    await waitFor(() => (slices.mock.calls.length > 0 ? true : undefined), 'the first slice');
    socket.destroy();
    const line = await waitFor(
      () => t!.logs.find((l) => l.includes('"msg":"request aborted by the client"')),
      'the 499 line',
    );
    expect(JSON.parse(line)).toMatchObject({ status: 499, code: 'CLIENT_ABORTED' });
    // The slices of the request that left, told apart by their input buffer.
    const left = (slices.mock.calls[0]![0] as Float32Array).buffer;
    // Another unfused request twice its size, run to its end: had the first gone on computing,
    // its slices would have run between this one's, and all its rows with them.
    const twice = Buffer.concat([body, body]);
    const other = await t.app.inject({
      method: 'POST',
      url: PREDICT,
      headers: { 'content-type': 'application/octet-stream' },
      payload: twice,
    });
    expect(other.statusCode).toBe(200);
    const rowsOf = (buffer: ArrayBufferLike) =>
      slices.mock.calls
        .filter((call) => (call[0] as Float32Array).buffer === buffer)
        .reduce((n, call) => n + (call[1] as number), 0);
    expect(rowsOf(left)).toBeLessThan(ROWS);
  });

  it('counts against MAX_QUEUED_REQUESTS while it computes', async () => {
    t = await makeLoggedApp({
      models: ['digits-cnn'],
      level: 'warn',
      env: { MAX_QUEUED_REQUESTS: '1' },
    });
    const slices = vi.spyOn(CompiledModel.prototype, 'reference');
    const first = unfused();
    await waitFor(() => (slices.mock.calls.length > 0 ? true : undefined), 'the first slice');
    const second = await unfused();
    expect(second.statusCode).toBe(503);
    expect(second.json()).toMatchObject({ code: 'OVERLOADED' });
    expect((await first).statusCode).toBe(200);
    // Its place is given back: the next one runs.
    expect((await unfused()).statusCode).toBe(200);
  });
});

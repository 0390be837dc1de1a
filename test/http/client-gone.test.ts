/**
 * An HTTP client that closes its connection after sending its request but before its response:
 * recorded once as 499 (CLIENT_ABORTED, nginx's), at info, never as 200 nor as a server error.
 * Waiting for a dynamic batch, its request leaves the batch: its rows are never computed and the
 * requests batched with it get exactly their own rows; computing off the event loop, the work ends
 * and is not sent. A close during an engine call that holds the event loop is read only after the
 * response was written: recorded as the 200 it was sent as, once.
 * Outcomes and order only (the batch waits far longer than any test; the test flushes it).
 */
import { type AddressInfo, connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type CallerSignal,
  type InferenceService,
  nestedRows,
  type PredictOutput,
  runSources,
} from '../../src/service/index.js';
import { type LoggedApp, makeLoggedApp, waitFor } from '../helpers/admin.js';
import { digitsTestRows } from '../helpers/digits.js';
import { type InferResponse, inferBody } from './http-helpers.js';

const rows = digitsTestRows().x.slice(0, 4);
const PREDICT = '/v1/models/digits:predict';
const INFER = '/v2/models/digits/infer';

let t: LoggedApp | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await t?.close();
  t = undefined;
});

async function listening(batchMaxDelayUs: number): Promise<number> {
  t = await makeLoggedApp({ batchMaxDelayUs, level: 'info' });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  return (t.app.server.address() as AddressInfo).port;
}

async function open(port: number): Promise<Socket> {
  const s = connect(port, '127.0.0.1');
  sockets.push(s);
  s.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  return s;
}

/** POSTs JSON on its own connection; resolves with the response's status and body, if any. */
async function post(port: number, path: string, body: unknown) {
  const socket = await open(port);
  const text = JSON.stringify(body);
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    received += chunk;
  });
  const response = new Promise<{ status: number; body: string }>((resolve) => {
    socket.once('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(received)?.[1] ?? 0);
      resolve({ status, body: received.slice(received.indexOf('\r\n\r\n') + 4) });
    });
  });
  socket.write(
    `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
  return { socket, response };
}

/** Requests waiting in the app's batcher (its queues are private). */
const queued = (service: InferenceService): number => {
  const { queues } = (service as unknown as { batcher: { queues: Map<unknown, { items: [] }> } })
    .batcher;
  return [...queues.values()].reduce((n, q) => n + q.items.length, 0);
};

const metricsText = async () => (await t!.app.inject({ url: '/metrics' })).body;
/** The request counter's value for a route and status ('' when there is no such series). */
const requests = (metrics: string, route: string, status: number): string =>
  new RegExp(
    `normserve_http_requests_total\\{method="POST",route="${route.replace(/[{}]/g, '\\$&')}",status="${status}",model="digits",version="[^"]*"\\} (\\d+)`,
  ).exec(metrics)?.[1] ?? '';
const PREDICT_ROUTE = '/v1/models/{name}:predict';
const INFER_ROUTE = '/v2/models/{name}/infer';

const logLines = () =>
  t!.logs.map(
    (l) => JSON.parse(l) as { level: number; msg: string; status?: number; code?: string },
  );

describe('a client that goes before its response', () => {
  it('while queued for a batch: leaves it uncomputed, 499 at info; the others get their own rows and 200', async () => {
    const port = await listening(600_000_000);
    const inference = t!.app.deps.inference;
    const served = inference.resolve('digits');
    const alone = runSources(served, [nestedRows(rows, 64)])[0]!.probabilities!;
    // An idle connection: a client that could still send, so the batch waits its delay.
    await open(port);
    const staysPredict = await post(port, PREDICT, { instances: [rows[0]] });
    const leavesInfer = await post(port, INFER, inferBody([rows[1]!]));
    const leavesPredict = await post(port, PREDICT, { instances: [rows[2]] });
    const staysInfer = await post(port, INFER, inferBody([rows[3]!]));
    await waitFor(() => (queued(inference) === 4 ? true : undefined), 'four requests queued');
    leavesInfer.socket.destroy();
    leavesPredict.socket.destroy();
    await waitFor(async () => {
      const m = await metricsText();
      return requests(m, PREDICT_ROUTE, 499) === '1' && requests(m, INFER_ROUTE, 499) === '1'
        ? true
        : undefined;
    }, 'both departures recorded');
    expect(queued(inference)).toBe(2);
    inference.flush();
    const [predicted, inferred] = await Promise.all([staysPredict.response, staysInfer.response]);
    expect(predicted.status, predicted.body).toBe(200);
    expect(inferred.status, inferred.body).toBe(200);
    expect((JSON.parse(predicted.body) as { predictions: number[][] }).predictions[0]).toEqual(
      Array.from(alone.subarray(0, 10)),
    );
    expect((JSON.parse(inferred.body) as InferResponse).outputs[0]!.data).toEqual(
      Array.from(alone.subarray(30, 40)),
    );
    const m = await metricsText();
    // One engine call, of the two requests that stayed.
    expect(m).toMatch(/normserve_dynamic_batch_requests_count\{model="digits"\} 1\b/);
    expect(m).toMatch(/normserve_dynamic_batch_requests_sum\{model="digits"\} 2\b/);
    expect(m).toMatch(/normserve_dynamic_batch_rows_sum\{model="digits"\} 2\b/);
    expect(m).toMatch(/normserve_batch_size_count\{model="digits"\} 2\b/);
    // Each request counted once, with what happened to it.
    expect(
      [PREDICT_ROUTE, INFER_ROUTE].map((route) => [
        requests(m, route, 200),
        requests(m, route, 499),
      ]),
    ).toEqual([
      ['1', '1'],
      ['1', '1'],
    ]);
    const lines = logLines();
    const gone = lines.filter((l) => l.status === 499);
    expect(gone.map((l) => [l.level, l.msg, l.code])).toEqual([
      [30, 'request aborted by the client', 'CLIENT_ABORTED'],
      [30, 'request aborted by the client', 'CLIENT_ABORTED'],
    ]);
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
  });

  it('while its rows compute: the work ends unsent, recorded 499 and not 200', async () => {
    const port = await listening(0);
    const inference = t!.app.deps.inference;
    // The engine answers at once, but the route gets the answer only once the client has gone.
    const infer = inference.infer.bind(inference);
    let computed: Promise<PredictOutput> | undefined;
    inference.infer = (served, source, fused, counted, caller?: CallerSignal) => {
      const out = infer(served, source, fused, counted) as PredictOutput;
      computed = new Promise((resolve) =>
        caller!.signal.addEventListener('abort', () => resolve(out)),
      );
      return computed;
    };
    const leaves = await post(port, PREDICT, { instances: [rows[0]] });
    await waitFor(() => (computed ? true : undefined), 'the request computing');
    leaves.socket.destroy();
    await computed;
    inference.infer = infer;
    // A request after it: answered and counted as usual, and the late reply counted nowhere.
    const after = await t!.app.inject({
      method: 'POST',
      url: PREDICT,
      payload: { instances: [rows[1]] },
    });
    expect(after.statusCode).toBe(200);
    const m = await metricsText();
    expect([requests(m, PREDICT_ROUTE, 200), requests(m, PREDICT_ROUTE, 499)]).toEqual(['1', '1']);
    const lines = logLines();
    expect(lines.filter((l) => l.status === 499).map((l) => l.level)).toEqual([30]);
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
  });

  it('during an engine call that holds the event loop: seen only after the response was written whole, recorded as the 200 it was sent as, not 499', async () => {
    const port = await listening(0);
    const inference = t!.app.deps.inference;
    const infer = inference.infer.bind(inference);
    let client: Socket | undefined;
    // The client closes its connection while its rows compute on the event loop's thread (the
    // default, ENGINE_ASYNC=off): its FIN reaches the server's socket at once (loopback), but
    // nothing reads it until the engine call returns and the response has been written.
    inference.infer = (served, source, fused, counted, caller?: CallerSignal) => {
      client!.destroy();
      return infer(served, source, fused, counted, caller);
    };
    const leaves = await post(port, PREDICT, { instances: [rows[0]] });
    client = leaves.socket;
    await waitFor(async () => {
      const m = await metricsText();
      return requests(m, PREDICT_ROUTE, 200) === '1' ? true : undefined;
    }, 'the request recorded');
    // The server has read the close too (its connection is gone): still recorded once, as sent.
    await waitFor(
      () =>
        new Promise<true | undefined>((resolve) =>
          t!.app.server.getConnections((_e, n) => resolve(n === 0 ? true : undefined)),
        ),
      'the connection closed on the server',
    );
    inference.infer = infer;
    const m = await metricsText();
    expect([requests(m, PREDICT_ROUTE, 200), requests(m, PREDICT_ROUTE, 499)]).toEqual(['1', '']);
    const lines = t!.logs
      .map((l) => JSON.parse(l) as { level: number; msg: string; status?: number; url?: string })
      .filter((l) => l.url === PREDICT);
    expect(lines.map((l) => [l.level, l.msg, l.status])).toEqual([[30, 'request', 200]]);
  });
});

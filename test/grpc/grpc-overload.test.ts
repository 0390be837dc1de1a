/**
 * MAX_QUEUED_REQUESTS on the gRPC port: ModelInfer calls waiting in the compute lane behind their
 * session's calls are requests waiting for the engine, counted with HTTP's and the batcher's in
 * the one bound. One more is refused with UNAVAILABLE (OVERLOADED, HTTP's message), counted in
 * normserve_overloaded_requests_total and recorded once; a call cancelled in the lane and a call
 * answered give their places back; a call refused for its token, or naming no model, takes none. The lane's turns run when the test lets them (its `defer`), so
 * every step is driven by the queue's state, never by timing.
 */
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ComputeLane } from '../../src/grpc/compute-lane.js';
import type { Log } from '../../src/service/index.js';
import { type LoggedApp, makeLoggedApp, waitFor } from '../helpers/admin.js';
import { digitsTestRows } from '../helpers/digits.js';
import { grpcPerTest, startGrpc } from '../helpers/grpc.js';
import { digitsRow, expectProblem, f32Bytes } from '../http/http-helpers.js';

const rows = digitsTestRows().x.slice(0, 8);
const request = (i: number) => ({
  model_name: 'digits',
  inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64] }],
  raw_input_contents: [f32Bytes(rows[i]!)],
});
const MESSAGE = '2 requests already wait for the engine (MAX_QUEUED_REQUESTS); retry in 1 s';

const started = grpcPerTest<LoggedApp>();

/**
 * A gRPC server over the app's inference service (MAX_QUEUED_REQUESTS=2; batching with
 * `batchMaxDelayUs`) whose compute lane takes
 * a turn only when the test calls `turn`; its calls recorded in the app's metrics and in `lines`.
 */
async function serve(batchMaxDelayUs?: number, apiToken?: string) {
  const t = await makeLoggedApp({
    env: { MAX_QUEUED_REQUESTS: '2' },
    level: 'warn',
    ...(batchMaxDelayUs === undefined ? {} : { batchMaxDelayUs }),
  });
  started.app = t;
  const turns: (() => void)[] = [];
  const lane = new ComputeLane((next) => turns.push(next));
  const lines: { level: string; code?: string; error?: string; msg?: string }[] = [];
  const line = (level: string) => (obj: object, msg?: string) =>
    lines.push({ level, ...(obj as { code?: string }), ...(msg ? { msg } : {}) });
  const log: Log = { info: line('info'), warn: line('warn'), error: line('error') };
  const g = await startGrpc(t, {
    computeLane: lane,
    log,
    observer: t.app.deps.metrics,
    ...(apiToken === undefined ? {} : { apiToken }),
  });
  started.stop = g.stop;
  const app = t.app;
  const inference = app.deps.inference;
  /** Runs the lane's turns until every outcome has arrived. */
  const drain = async (outcomes: Promise<unknown>[]) => {
    let done = false;
    void Promise.all(outcomes).then(() => {
      done = true;
    });
    await waitFor(() => {
      if (done) return true;
      turns.shift()?.();
      return undefined;
    }, 'the lane drained and every call answered');
  };
  const metrics = async () => (await app.inject({ url: '/metrics' })).body;
  return { g, app, inference, turns, lines, drain, metrics };
}

describe('MAX_QUEUED_REQUESTS and the gRPC compute lane', () => {
  it('counts the calls waiting in the lane: one more is UNAVAILABLE (OVERLOADED), counted and recorded once; cancels and answers give places back', async () => {
    const { g, inference, lines, drain, metrics } = await serve();
    // One channel, one session: its calls wait in the lane, one per turn, and no turn runs yet.
    const first = g.client.start('ModelInfer', request(0));
    const second = g.client.start('ModelInfer', request(1));
    await waitFor(
      () => (inference.queuedRequests === 2 ? true : undefined),
      'two calls in the lane',
    );

    const refused = await g.client.call('ModelInfer', request(2));
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    expect(refused.error.code).toBe(status.UNAVAILABLE);
    expect(refused.error.details).toBe(MESSAGE);
    expect(refused.error.metadata.get('normserve-code')).toEqual(['OVERLOADED']);
    // Retry-After: 1 as gRPC's retry pushback.
    expect(refused.error.metadata.get('grpc-retry-pushback-ms')).toEqual(['1000']);
    // Refused on arrival: the lane still holds the two.
    expect(inference.queuedRequests).toBe(2);
    const text = await metrics();
    expect(text).toMatch(/^normserve_overloaded_requests_total\{model="digits"\} 1$/m);
    expect(text).toMatch(
      /^normserve_grpc_requests_total\{method="ModelInfer",code="UNAVAILABLE",model="digits"\} 1$/m,
    );
    expect(lines.filter((l) => l.msg === 'grpc request')).toEqual([
      expect.objectContaining({ level: 'info', code: 'UNAVAILABLE', error: MESSAGE }),
    ]);

    // Cancelled while it waits in the lane: its place is free before its turn comes.
    first.cancel();
    expect((await first.outcome).code).toBe(status.CANCELLED);
    await waitFor(
      () => (inference.queuedRequests === 1 ? true : undefined),
      'the cancelled call gave its place back',
    );
    const third = g.client.start('ModelInfer', request(3));
    await waitFor(
      () => (inference.queuedRequests === 2 ? true : undefined),
      'the next call took the free place',
    );

    await drain([second.outcome, third.outcome]);
    expect((await second.outcome).ok).toBe(true);
    expect((await third.outcome).ok).toBe(true);
    expect(inference.queuedRequests).toBe(0);
    // Answered calls gave their places back: two more wait again, and are answered.
    const again = [0, 1].map((i) => g.client.start('ModelInfer', request(4 + i)));
    await waitFor(
      () => (inference.queuedRequests === 2 ? true : undefined),
      'two more calls in the lane',
    );
    await drain(again.map((c) => c.outcome));
    for (const c of again) expect((await c.outcome).ok).toBe(true);
    expect(inference.queuedRequests).toBe(0);
    const after = await metrics();
    expect(after).toMatch(/^normserve_overloaded_requests_total\{model="digits"\} 1$/m);
    expect(after).toMatch(
      /^normserve_grpc_requests_total\{method="ModelInfer",code="OK",model="digits"\} 4$/m,
    );
    expect(after).toMatch(
      /^normserve_grpc_requests_total\{method="ModelInfer",code="CANCELLED",model="digits"\} 1$/m,
    );
    expect(lines.filter((l) => l.msg === 'grpc request').map((l) => l.code)).toEqual([
      'UNAVAILABLE',
      'CANCELLED',
      'OK',
      'OK',
      'OK',
      'OK',
    ]);
  });

  it('shares the bound with HTTP and the batcher; a call leaving the lane for its batch is never refused', async () => {
    // The batch delay outlasts the test: queued requests wait until the test flushes them.
    const { g, app, inference, turns, drain } = await serve(600_000_000);
    const predict = (i: number) =>
      app.inject({
        method: 'POST',
        url: '/v1/models/digits:predict',
        payload: { instances: [digitsRow(i)] },
      });
    const queuedHttp = predict(0);
    await waitFor(
      () => (inference.queuedRequests === 1 ? true : undefined),
      'an HTTP request queued for its batch',
    );
    const inLane = g.client.start('ModelInfer', request(0));
    await waitFor(
      () => (inference.queuedRequests === 2 ? true : undefined),
      'a gRPC call in the lane',
    );
    const refused = await g.client.call('ModelInfer', request(1));
    expect(refused.ok ? undefined : refused.error.code).toBe(status.UNAVAILABLE);
    expectProblem(await predict(1), 503, 'OVERLOADED');

    // Its turn: out of the lane and into the batch, in one step (the count stays at the bound).
    turns.shift()!();
    expect(inference.queuedRequests).toBe(2);
    inference.flush();
    await drain([inLane.outcome]);
    expect((await inLane.outcome).ok).toBe(true);
    expect((await queuedHttp).statusCode).toBe(200);
    await waitFor(
      () => (inference.queuedRequests === 0 ? true : undefined),
      'every place given back',
    );
  });

  it('a call refused for its token, or naming no model, takes no place', async () => {
    const { g, inference, turns, drain, metrics } = await serve(undefined, 'secret');
    const bearer = { authorization: 'Bearer secret' };
    // A name the repository lacks: in the lane (its turn is pending) without a place, and
    // NOT_FOUND in its turn.
    const unknown = g.client.call('ModelInfer', { ...request(0), model_name: 'nope' }, bearer);
    await waitFor(() => (turns.length === 1 ? true : undefined), 'the call in the lane');
    expect(inference.queuedRequests).toBe(0);
    await drain([unknown]);
    const notFound = await unknown;
    expect(notFound.ok ? undefined : notFound.error.code).toBe(status.NOT_FOUND);

    const filling = [0, 1].map((i) => g.client.call('ModelInfer', request(i), bearer));
    await waitFor(
      () => (inference.queuedRequests === 2 ? true : undefined),
      'two calls in the lane',
    );
    // Refused for its token on arrival, before the bound is looked at: UNAUTHENTICATED.
    const unauthenticated = await g.client.call('ModelInfer', request(2));
    expect(unauthenticated.ok ? undefined : unauthenticated.error.code).toBe(
      status.UNAUTHENTICATED,
    );
    await drain(filling);
    for (const c of filling) expect((await c).ok).toBe(true);
    expect(inference.queuedRequests).toBe(0);
    expect(await metrics()).not.toMatch(/^normserve_overloaded_requests_total\{/m);
  });
});

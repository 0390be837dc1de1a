/**
 * A gRPC ModelInfer call that ends before its answer, with a real @grpc/grpc-js client: cancelled
 * by its client while it waits for a dynamic batch, it leaves the batch (its rows are never
 * computed; the call batched with it gets exactly its own rows) and is counted and logged as
 * CANCELLED, never OK; past its deadline, as DEADLINE_EXCEEDED; cancelled while its rows compute,
 * it is still CANCELLED (the result is not sent). A call answered is OK. Outcomes and order only.
 */
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  type CallerSignal,
  InferenceService,
  type Log,
  nestedRows,
  runSources,
} from '../../src/service/index.js';
import { waitFor } from '../helpers/admin.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows } from '../helpers/digits.js';
import { grpcPerTest, rawFloat32, startGrpc } from '../helpers/grpc.js';
import { f32Bytes } from '../http/http-helpers.js';

const rows = digitsTestRows().x.slice(0, 4);
const request = (i: number) => ({
  model_name: 'digits',
  inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64] }],
  raw_input_contents: [f32Bytes(rows[i]!)],
  outputs: [{ name: 'probabilities' }],
});

const started = grpcPerTest<TestApp>();

/** A gRPC server whose calls are recorded (observer and log) over `inference`. */
async function serve(inference: (t: TestApp) => InferenceService) {
  const t = await makeTestApp();
  started.app = t;
  const service = inference(t);
  const records: { method: string; code: string; model: string }[] = [];
  const lines: { level: string; code?: string; msg?: string }[] = [];
  const line = (level: string) => (obj: object, msg?: string) =>
    lines.push({ level, ...(obj as { code?: string }), ...(msg ? { msg } : {}) });
  const log: Log = { info: line('info'), warn: line('warn'), error: line('error') };
  const g = await startGrpc(t, {
    inference: service,
    log,
    observer: {
      observeGrpc: (method, code, model) => records.push({ method, code, model }),
      observeInference: () => {},
    },
  });
  started.stop = g.stop;
  return { g, service, records, lines, served: service.resolve('digits') };
}

/** Requests waiting in a service's batcher (its queues are private). */
const queued = (service: InferenceService): number => {
  const { queues } = (service as unknown as { batcher: { queues: Map<unknown, { items: [] }> } })
    .batcher;
  return [...queues.values()].reduce((n, q) => n + q.items.length, 0);
};

describe('gRPC ModelInfer ended before its answer', () => {
  it('cancelled while queued: leaves the batch uncomputed, CANCELLED in metrics and log, never OK; the other call gets its own rows', async () => {
    const reports: { rows: number; requests: number }[] = [];
    const { g, service, records, lines, served } = await serve(
      (t) =>
        // The delay outlasts the test: the batch runs when the test flushes it.
        new InferenceService(t.registry, {
          batchMaxDelayUs: 600_000_000,
          batchMaxRows: 256,
          onBatch: (r) => reports.push({ rows: r.rows, requests: r.requests }),
        }),
    );
    const alone = runSources(served, [nestedRows(rows.slice(0, 2), 64)])[0]!.probabilities!;
    const stays = g.client.start('ModelInfer', request(0));
    const leaves = g.client.start('ModelInfer', request(1));
    await waitFor(() => (queued(service) === 2 ? true : undefined), 'both calls queued');
    leaves.cancel();
    expect((await leaves.outcome).code).toBe(status.CANCELLED);
    await waitFor(
      () => (records.some((r) => r.code === 'CANCELLED') ? true : undefined),
      'the cancelled call recorded',
    );
    expect(queued(service)).toBe(1);
    service.flush();
    const answer = await stays.outcome;
    expect(answer.ok).toBe(true);
    const value = answer.value as { raw_output_contents: Buffer[] };
    expect(rawFloat32(value.raw_output_contents[0]!)).toEqual(Array.from(alone.subarray(0, 10)));
    // One engine call, of the call that stayed only.
    expect(reports).toEqual([{ rows: 1, requests: 1 }]);
    expect(records).toEqual([
      { method: 'ModelInfer', code: 'CANCELLED', model: 'digits' },
      { method: 'ModelInfer', code: 'OK', model: 'digits' },
    ]);
    expect(lines.filter((l) => l.msg === 'grpc request').map((l) => [l.level, l.code])).toEqual([
      ['info', 'CANCELLED'],
      ['info', 'OK'],
    ]);
    expect(lines.filter((l) => l.level !== 'info')).toEqual([]);
  });

  it('past its deadline while queued: DEADLINE_EXCEEDED, uncomputed', async () => {
    const reports: number[] = [];
    const { g, service, records } = await serve(
      (t) =>
        new InferenceService(t.registry, {
          batchMaxDelayUs: 600_000_000,
          batchMaxRows: 256,
          onBatch: (r) => reports.push(r.rows),
        }),
    );
    // Long enough to arrive in time on a loaded machine; the batch waits far longer.
    const call = g.client.start('ModelInfer', request(0), {
      deadline: new Date(Date.now() + 2_000),
    });
    expect((await call.outcome).code).toBe(status.DEADLINE_EXCEEDED);
    await waitFor(() => (records.length > 0 ? true : undefined), 'the call recorded');
    expect(records).toEqual([{ method: 'ModelInfer', code: 'DEADLINE_EXCEEDED', model: 'digits' }]);
    await waitFor(() => (queued(service) === 0 ? true : undefined), 'the call out of the queue');
    service.flush();
    expect(reports).toEqual([]);
  });

  it('cancelled while its rows compute: the work ends, unsent, recorded CANCELLED', async () => {
    /** Computes at once, and hands the result over only once its caller has gone. */
    let entered: () => void;
    const running = new Promise<void>((resolve) => {
      entered = resolve;
    });
    class SlowToAnswer extends InferenceService {
      override infer(
        ...args: [
          Parameters<InferenceService['infer']>[0],
          Parameters<InferenceService['infer']>[1],
          boolean?,
          boolean?,
          CallerSignal?,
        ]
      ) {
        const [served, source, fused, counted, caller] = args;
        const out = super.infer(served, source, fused, counted);
        entered();
        return new Promise<Awaited<typeof out>>((resolve) =>
          caller!.signal.addEventListener('abort', () => resolve(out)),
        );
      }
    }
    const { g, records, lines } = await serve(
      (t) => new SlowToAnswer(t.registry, { batchMaxDelayUs: 0, batchMaxRows: 256 }),
    );
    const call = g.client.start('ModelInfer', request(0));
    await running;
    call.cancel();
    expect((await call.outcome).code).toBe(status.CANCELLED);
    await waitFor(() => (records.length > 0 ? true : undefined), 'the call recorded');
    expect(records).toEqual([{ method: 'ModelInfer', code: 'CANCELLED', model: 'digits' }]);
    expect(lines.filter((l) => l.level !== 'info')).toEqual([]);
  });

  it('a call answered is OK', async () => {
    const { g, records } = await serve((t) => t.app.deps.inference);
    const call = g.client.start('ModelInfer', request(2));
    expect((await call.outcome).ok).toBe(true);
    expect(records).toEqual([{ method: 'ModelInfer', code: 'OK', model: 'digits' }]);
  });
});

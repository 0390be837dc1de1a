/**
 * normserve_inference_duration_seconds and normserve_batch_size observe every answered inference
 * request, whatever its transport: a gRPC ModelInfer is observed as an HTTP predict is, in the same
 * series (the service's InferenceObservation, observed by the metrics' observeInference). A call
 * refused before its compute is not.
 */
import { describe, expect, it } from 'vitest';
import { ADMIN, type LoggedApp, makeLoggedApp } from '../helpers/admin.js';
import { digitsTestRows } from '../helpers/digits.js';
import { grpcPerTest, startGrpc } from '../helpers/grpc.js';
import { f32Bytes } from '../http/http-helpers.js';

const rows = digitsTestRows().x.slice(0, 5);
const modelInfer = (n: number, width = 64) => ({
  model_name: 'digits',
  inputs: [{ name: 'input', datatype: 'FP32', shape: [n, width] }],
  raw_input_contents: [f32Bytes(rows.slice(0, n).flatMap((r) => r.slice(0, width)))],
});

const started = grpcPerTest<LoggedApp>();

/** The value of a sample of `/metrics`, 0 when absent. */
const sample = (text: string, series: string): number => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
};

describe('inference metrics of gRPC ModelInfer', () => {
  it('a ModelInfer is observed as an HTTP predict is: its compute in normserve_inference_duration_seconds, its rows in normserve_batch_size', async () => {
    const t = await makeLoggedApp({ level: 'warn' });
    started.app = t;
    const g = await startGrpc(t, { observer: t.app.deps.metrics });
    started.stop = g.stop;
    const scrape = async () => {
      const text = (await t.app.inject({ url: '/metrics', headers: ADMIN })).body;
      return {
        computed: sample(
          text,
          'normserve_inference_duration_seconds_count{model="digits",version="1",fused="true"}',
        ),
        requests: sample(text, 'normserve_batch_size_count{model="digits"}'),
        rows: sample(text, 'normserve_batch_size_sum{model="digits"}'),
      };
    };

    const ok = await g.client.call('ModelInfer', modelInfer(2));
    expect(ok.ok).toBe(true);
    expect(await scrape()).toEqual({ computed: 1, requests: 1, rows: 2 });

    // Refused before its compute (a row of the wrong width): not an inference.
    const refused = await g.client.call('ModelInfer', modelInfer(2, 63));
    expect(refused.ok).toBe(false);
    expect(await scrape()).toEqual({ computed: 1, requests: 1, rows: 2 });

    // HTTP's predict lands in the same series.
    const predict = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:predict',
      payload: { instances: rows.slice(0, 3) },
    });
    expect(predict.statusCode, predict.body).toBe(200);
    expect(await scrape()).toEqual({ computed: 2, requests: 2, rows: 5 });
  });
});

/**
 * Concurrent ModelInfer calls on one channel, computed synchronously (BATCH_MAX_DELAY_US=0): each
 * reply leaves once its call is computed, not once the whole burst is. The calls' messages arrive
 * together and grpc-js hands them to their handlers in one turn of the event loop; the replies
 * used to be written only when the last compute of that turn had finished. Order only: the first
 * call is over (logged, its reply received) before the last call's compute starts.
 */
import { describe, expect, it } from 'vitest';
import { InferenceService, type Log } from '../../src/service/index.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows } from '../helpers/digits.js';
import { grpcPerTest, startGrpc } from '../helpers/grpc.js';
import { f32Bytes } from '../http/http-helpers.js';

const CALLS = 6;
const rows = digitsTestRows().x.slice(0, 8);

const started = grpcPerTest<TestApp>();

describe('gRPC replies of a burst of calls on one channel', () => {
  it('each leaves as its call is computed: the first is over before the last compute starts', async () => {
    const t = await makeTestApp();
    started.app = t;
    const events: string[] = [];
    /** Notes when each call's compute starts (synchronous: no dynamic batch). */
    class Noted extends InferenceService {
      override infer(...args: Parameters<InferenceService['infer']>) {
        events.push('compute');
        return super.infer(...args);
      }
    }
    const inference = new Noted(t.registry, { batchMaxDelayUs: 0, batchMaxRows: 256 });
    const line = (obj: object, msg?: string) => {
      if (msg === 'grpc request') events.push(`over:${(obj as { code: string }).code}`);
    };
    const log: Log = { info: line, warn: line, error: line };
    const g = await startGrpc(t, { inference, log });
    started.stop = g.stop;
    // The channel is connected before the burst, so the calls go out together.
    expect((await g.client.call('ServerLive', {})).ok).toBe(true);
    events.length = 0;
    const replies = Array.from({ length: CALLS }, (_, i) =>
      g.client
        .call('ModelInfer', {
          model_name: 'digits',
          inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64] }],
          raw_input_contents: [f32Bytes(rows[i]!)],
        })
        .then((res) => {
          events.push(`received:${res.ok}`);
          return res;
        }),
    );
    expect((await Promise.all(replies)).every((r) => r.ok)).toBe(true);
    expect(events.filter((e) => e === 'compute')).toHaveLength(CALLS);
    const lastCompute = events.lastIndexOf('compute');
    expect(events.indexOf('over:OK'), events.join(' ')).toBeLessThan(lastCompute);
    expect(events.indexOf('received:true'), events.join(' ')).toBeLessThan(lastCompute);
  });
});

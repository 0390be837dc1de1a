/**
 * A client that never reads its replies holds up only its own calls. Client A sends many
 * ModelInfer calls on one HTTP/2 session that offers the server no window (HTTP/2 flow control
 * holds every reply back) and reads nothing; client B's call, on another session, is computed and
 * answered before A's calls are, past their own computes. Order only: B's reply is received
 * before A's last compute starts (a lane that waited for each of A's replies in turn, up to
 * 100 ms each, computed B's call seconds later).
 */
import { type ClientHttp2Session, connect } from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { InferenceService } from '../../src/service/index.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows } from '../helpers/digits.js';
import { modelInferFrame, startGrpc } from '../helpers/grpc.js';
import { f32Bytes } from '../http/http-helpers.js';

/** A's calls: enough that, at 100 ms each, B's turn came seconds later. */
const UNREAD_CALLS = 20;
const A_ROWS = 2;
const row = digitsTestRows().x[0]!;

let t: TestApp | undefined;
let stop: (() => Promise<void>) | undefined;
let unread: ClientHttp2Session | undefined;
afterEach(async () => {
  unread?.destroy();
  await stop?.();
  await t?.close();
  unread = undefined;
  stop = undefined;
  t = undefined;
});

/** A's request: A_ROWS copies of a digits row. */
const inferFrame = (rows: number): Buffer =>
  modelInferFrame(rows, f32Bytes(Array.from({ length: rows }, () => row).flat()));

describe('gRPC calls of a session that does not read its replies', () => {
  it("hold up only that session: another session's call is answered before their computes end", async () => {
    t = await makeTestApp();
    const events: string[] = [];
    /** Notes each compute with its rows (synchronous: no dynamic batch). */
    class Noted extends InferenceService {
      override infer(...args: Parameters<InferenceService['infer']>) {
        events.push(args[1].rows === A_ROWS ? 'compute:A' : 'compute:B');
        return super.infer(...args);
      }
    }
    const inference = new Noted(t.registry, { batchMaxDelayUs: 0, batchMaxRows: 256 });
    const g = await startGrpc(t, { inference });
    stop = g.stop;
    expect((await g.client.call('ServerLive', {})).ok).toBe(true);

    // A window of 0: the server can send A no DATA, so no reply of A's is ever over.
    unread = connect(`http://127.0.0.1:${g.port}`, { settings: { initialWindowSize: 0 } });
    await new Promise((resolve, reject) => {
      unread!.once('error', reject);
      unread!.once('remoteSettings', resolve);
    });
    const frame = inferFrame(A_ROWS);
    for (let i = 0; i < UNREAD_CALLS; i++) {
      unread
        .request({
          ':method': 'POST',
          ':path': '/inference.GRPCInferenceService/ModelInfer',
          'content-type': 'application/grpc',
          te: 'trailers',
        })
        .on('error', () => {})
        .end(frame);
    }
    // A's calls arrived together and were queued in one turn; the first has been computed.
    for (let i = 0; i < 1000 && !events.includes('compute:A'); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(events).toContain('compute:A');

    const b = await g.client.call('ModelInfer', {
      model_name: 'digits',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64] }],
      raw_input_contents: [f32Bytes(row)],
    });
    events.push(`received:B:${b.ok}`);
    expect(b.ok).toBe(true);
    expect(events.filter((e) => e === 'compute:A').length, events.join(' ')).toBeLessThan(
      UNREAD_CALLS,
    );
    expect(events.indexOf('compute:B')).toBeLessThan(events.indexOf('received:B:true'));
  });
});

/**
 * The gRPC server offers a receive window larger than HTTP/2's 65,535-byte default, on every
 * stream (its SETTINGS) and on the connection (a WINDOW_UPDATE), so a 256-row digits request
 * (65,536 bytes of raw contents and the protobuf framing) goes out without waiting for a window
 * update; and such a request still answers with the rows the REST route computes.
 */
import { connect } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRPC_RECEIVE_WINDOW_BYTES } from '../../src/grpc/flow-control.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows } from '../helpers/digits.js';
import { rawFloat32, startGrpc } from '../helpers/grpc.js';
import { f32Bytes } from '../http/http-helpers.js';

let t: TestApp;
let g: Awaited<ReturnType<typeof startGrpc>>;

beforeAll(async () => {
  t = await makeTestApp();
  g = await startGrpc(t);
});
afterAll(async () => {
  await g.stop();
  await t.close();
});

describe('gRPC HTTP/2 flow control', () => {
  it('offers the wide window on streams and on the connection', async () => {
    const session = connect(`http://127.0.0.1:${g.port}`);
    try {
      const settings = await new Promise<{ initialWindowSize?: number }>((resolve, reject) => {
        session.once('error', reject);
        session.once('remoteSettings', resolve);
      });
      expect(settings.initialWindowSize).toBe(GRPC_RECEIVE_WINDOW_BYTES);
      // The connection window arrives as a WINDOW_UPDATE right after the settings.
      const deadline = Date.now() + 10_000;
      while ((session.state.remoteWindowSize ?? 0) < GRPC_RECEIVE_WINDOW_BYTES) {
        if (Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(session.state.remoteWindowSize).toBe(GRPC_RECEIVE_WINDOW_BYTES);
    } finally {
      session.close();
    }
  });

  it('answers a 256-row request (more than 65,535 bytes) with the REST results', async () => {
    const x = digitsTestRows().x;
    const rows = Array.from({ length: 256 }, (_, i) => x[i % x.length]!);
    const grpc = await g.client.call<{ raw_output_contents: Uint8Array[] }>('ModelInfer', {
      model_name: 'digits',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [256, 64] }],
      raw_input_contents: [f32Bytes(rows.flat())],
      outputs: [{ name: 'probabilities' }],
    });
    expect(grpc.ok).toBe(true);
    const rest = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:predict',
      payload: { instances: rows },
    });
    expect(rest.statusCode).toBe(200);
    const expected = (rest.json() as { predictions: number[][] }).predictions.flat();
    if (grpc.ok) expect(rawFloat32(grpc.value.raw_output_contents[0]!)).toEqual(expected);
  });
});

/**
 * The gRPC Open Inference Protocol (inference.GRPCInferenceService) with a real @grpc/grpc-js
 * client: health, metadata, ModelInfer with raw and typed contents equal to the REST results bit
 * for bit, every malformed request refused with a client-side status (never INTERNAL/UNKNOWN),
 * the API token, and draining on shutdown. A convolutional model ([1, 8, 8]) takes tensors of
 * shape [N, 1, 8, 8] or [N, 64] the same way.
 */
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/admin.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsImage, digitsTestRows } from '../helpers/digits.js';
import { type GrpcError, rawFloat32, startGrpc } from '../helpers/grpc.js';
import { f32Bytes, type InferResponse, inferBody } from '../http/http-helpers.js';

let t: TestApp;
let g: Awaited<ReturnType<typeof startGrpc>>;
const rows = digitsTestRows().x.slice(0, 30);
const flat = rows.flat();

beforeAll(async () => {
  t = await makeTestApp({ models: ['digits', 'digits-cnn'], env: { MAX_BATCH_SIZE: '64' } });
  g = await startGrpc(t);
});
afterAll(async () => {
  await g.stop();
  await t.close();
});

const input = (shape: number[] = [rows.length, 64], extra: Record<string, unknown> = {}) => ({
  name: 'input',
  datatype: 'FP32',
  shape,
  ...extra,
});
const inferRaw = (extra: Record<string, unknown> = {}) => ({
  model_name: 'digits',
  inputs: [input()],
  raw_input_contents: [f32Bytes(flat)],
  outputs: [{ name: 'probabilities' }, { name: 'logits' }, { name: 'label' }],
  ...extra,
});

interface InferReply {
  model_name: string;
  model_version: string;
  id: string;
  outputs: { name: string; datatype: string; shape: number[] }[];
  raw_output_contents: Buffer[];
}

async function refused(request: unknown, code: status, normserveCode?: string): Promise<GrpcError> {
  const res = await g.client.call('ModelInfer', request);
  expect(res.ok, JSON.stringify(res.ok ? res.value : null)).toBe(false);
  const error = (res as { error: GrpcError }).error;
  expect(error.code, error.details).toBe(code);
  if (normserveCode) expect(error.metadata.get('normserve-code')).toEqual([normserveCode]);
  return error;
}

describe('gRPC health and metadata', () => {
  it('ServerLive, ServerReady, ServerMetadata', async () => {
    expect(await g.client.call('ServerLive', {})).toEqual({ ok: true, value: { live: true } });
    expect(await g.client.call('ServerReady', {})).toEqual({ ok: true, value: { ready: true } });
    expect(await g.client.call('ServerMetadata', {})).toEqual({
      ok: true,
      value: {
        name: 'normserve',
        version: '0.0.0-test',
        extensions: ['binary_tensor_data', 'classification'],
      },
    });
  });

  it('ModelReady and ModelMetadata answer what REST answers', async () => {
    expect(await g.client.call('ModelReady', { name: 'digits' })).toEqual({
      ok: true,
      value: { ready: true },
    });
    expect(await g.client.call('ModelReady', { name: 'digits', version: '1' })).toEqual({
      ok: true,
      value: { ready: true },
    });
    // REST answers a 404 for a model or version the server does not have; ModelReady answers OK
    // with ready false, as Triton core's ModelIsReady does (tritonclient.grpc's is_model_ready
    // returns False, not an error).
    const rest = (await t.app.inject({ url: '/v2/models/digits' })).json();
    const meta = await g.client.call('ModelMetadata', { name: 'digits' });
    expect(meta.ok && { ...meta.value, properties: undefined }).toEqual({
      ...rest,
      properties: undefined,
    });
    const unknown = await g.client.call('ModelMetadata', { name: 'nope' });
    expect(unknown.ok ? 0 : unknown.error.code).toBe(status.NOT_FOUND);
  });

  it('ModelReady is OK with ready false for an unknown model or version, as Triton answers', async () => {
    for (const ref of [
      { name: 'digits', version: '7' },
      { name: 'nope' },
      { name: 'nope', version: '1' },
    ]) {
      expect(await g.client.call('ModelReady', ref), JSON.stringify(ref)).toEqual({
        ok: true,
        value: { ready: false },
      });
    }
    // REST keeps its 404, which says why.
    for (const url of ['/v2/models/digits/versions/7/ready', '/v2/models/nope/ready']) {
      expect((await t.app.inject({ url })).statusCode, url).toBe(404);
    }
    // A version that is not a version number is still refused.
    const malformed = await g.client.call('ModelReady', { name: 'digits', version: 'x' });
    expect(malformed.ok ? 0 : malformed.error.code).toBe(status.INVALID_ARGUMENT);
  });
});

describe('gRPC ModelInfer', () => {
  let json: InferResponse;
  beforeAll(async () => {
    json = (
      await t.app.inject({
        method: 'POST',
        url: '/v2/models/digits/infer',
        payload: inferBody(rows, { outputs: ['probabilities', 'logits', 'label'] }),
      })
    ).json<InferResponse>();
  });

  it('raw_input_contents → raw_output_contents equal the REST JSON results bit for bit', async () => {
    const res = await g.client.call<InferReply>('ModelInfer', inferRaw({ id: 'g1' }));
    expect(res.ok).toBe(true);
    const reply = (res as { value: InferReply }).value;
    expect(reply).toMatchObject({ model_name: 'digits', model_version: '1', id: 'g1' });
    expect(reply.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ['probabilities', 'FP32', [30, 10]],
      ['logits', 'FP32', [30, 10]],
      ['label', 'BYTES', [30]],
    ]);
    const f32 = (values: unknown[]) => Array.from(Float32Array.from(values as number[]));
    expect(rawFloat32(reply.raw_output_contents[0]!)).toEqual(f32(json.outputs[0]!.data));
    expect(rawFloat32(reply.raw_output_contents[1]!)).toEqual(f32(json.outputs[1]!.data));
    const labels: string[] = [];
    const bytes = reply.raw_output_contents[2]!;
    for (let at = 0; at < bytes.length; ) {
      const n = bytes.readUInt32LE(at);
      labels.push(bytes.toString('utf8', at + 4, at + 4 + n));
      at += 4 + n;
    }
    expect(labels).toEqual(json.outputs[2]!.data);
  });

  it('typed contents (fp32_contents) give the same bits; no outputs asked = all of them', async () => {
    const res = await g.client.call<InferReply>('ModelInfer', {
      model_name: 'digits',
      model_version: '1',
      inputs: [input(undefined, { contents: { fp32_contents: flat } })],
    });
    expect(res.ok).toBe(true);
    const reply = (res as { value: InferReply }).value;
    expect(reply.outputs.map((o) => o.name)).toEqual(['probabilities', 'logits', 'label']);
    expect(rawFloat32(reply.raw_output_contents[0]!)).toEqual(
      Array.from(Float32Array.from(json.outputs[0]!.data as number[])),
    );
  });

  it('an empty outputs list means every output over REST as over gRPC (the protocol)', async () => {
    const grpc = await g.client.call<InferReply>('ModelInfer', inferRaw({ outputs: [] }));
    expect(grpc.ok).toBe(true);
    const reply = (grpc as { value: InferReply }).value;
    expect(reply.outputs.map((o) => o.name)).toEqual(['probabilities', 'logits', 'label']);
    const body = { ...inferBody(rows), outputs: [] };
    const rest = await t.app.inject({
      method: 'POST',
      url: '/v2/models/digits/infer',
      payload: body,
    });
    expect(rest.statusCode).toBe(200);
    const outputs = rest.json<InferResponse>().outputs;
    expect(outputs.map((o) => o.name)).toEqual(['probabilities', 'logits', 'label']);
    expect(Array.from(Float32Array.from(outputs[0]!.data as number[]))).toEqual(
      rawFloat32(reply.raw_output_contents[0]!),
    );
  });

  it('refuses every malformed request with a client-side status', async () => {
    const I = status.INVALID_ARGUMENT;
    await refused(inferRaw({ model_name: 'nope' }), status.NOT_FOUND, 'MODEL_NOT_FOUND');
    await refused(inferRaw({ model_version: '9' }), status.NOT_FOUND, 'VERSION_NOT_FOUND');
    await refused(inferRaw({ model_version: 'x1' }), I, 'INVALID_INPUT');
    await refused(inferRaw({ inputs: [] }), I, 'INVALID_INPUT');
    await refused(inferRaw({ inputs: [{ ...input(), name: 'x' }] }), I);
    await refused(inferRaw({ inputs: [{ ...input(), datatype: 'INT32' }] }), I);
    await refused(inferRaw({ inputs: [input([30, 63])] }), I);
    await refused(inferRaw({ inputs: [input([0, 64])] }), I);
    // metadata's -1 ("any") copied into a request: told the size is negative (review44: it was
    // told "at least one row is required"), as the REST route tells it.
    const negative = await refused(inferRaw({ inputs: [input([-1, 64])] }), I, 'INVALID_INPUT');
    expect(negative.details).toMatch(/^inputs\[0\]\.shape\[0\]: expected an integer ≥ 0, got -1/);
    await refused(inferRaw({ inputs: [input([65, 64])] }), I, 'BATCH_TOO_LARGE');
    // An int64 dimension beyond 2^53 - 1 is refused, not echoed rounded (…775807 as …776000).
    const huge = await refused(
      inferRaw({ inputs: [input(['9223372036854775807', 64] as never)] }),
      I,
      'INVALID_INPUT',
    );
    expect(huge.details).toBe(
      'inputs[0].shape[0]: expected an int64 of at most 2^53 - 1 (9007199254740991) in absolute value',
    );
    // 2^53 - 1 itself is read exactly, and echoed as sent.
    const largest = await refused(inferRaw({ inputs: [input([2 ** 53 - 1, 64])] }), I);
    expect(largest.details).toContain('9007199254740991');
    // Wrong lengths and misaligned sizes.
    const short = await refused(inferRaw({ raw_input_contents: [f32Bytes(flat).subarray(1)] }), I);
    expect(short.details).toBe(
      'raw_input_contents[0]: shape [30, 64] of FP32 is 7680 bytes, got 7679',
    );
    await refused(inferRaw({ raw_input_contents: [f32Bytes(flat), Buffer.alloc(4)] }), I);
    await refused(
      inferRaw({ inputs: [input(undefined, { contents: { fp32_contents: [1, 2] } })] }),
      I,
    );
    await refused(
      inferRaw({ inputs: [input(undefined, { contents: { fp32_contents: flat } })] }),
      I,
    );
    await refused(
      {
        model_name: 'digits',
        inputs: [input(undefined, { contents: { int_contents: flat } })],
      },
      I,
    );
    // NaN and Infinity, raw and typed.
    const nan = f32Bytes(flat);
    nan.writeFloatLE(Number.NaN, 12);
    const e = await refused(inferRaw({ raw_input_contents: [nan] }), I, 'INVALID_INPUT');
    expect(e.details).toBe('raw_input_contents[0][3]: expected a finite number, got NaN');
    const inf = [...flat];
    inf[5] = Number.POSITIVE_INFINITY;
    const typedInf = await refused(
      { model_name: 'digits', inputs: [input(undefined, { contents: { fp32_contents: inf } })] },
      I,
      'INVALID_INPUT',
    );
    expect(typedInf.details).toBe(
      'inputs[0].contents.fp32_contents[5]: expected a finite number, got Infinity',
    );
    inf[5] = Number.NaN;
    const typedNaN = await refused(
      { model_name: 'digits', inputs: [input(undefined, { contents: { fp32_contents: inf } })] },
      I,
      'INVALID_INPUT',
    );
    expect(typedNaN.details).toBe(
      'inputs[0].contents.fp32_contents[5]: expected a finite number, got NaN',
    );
    // Unknown output names.
    const unknown = await refused(inferRaw({ outputs: [{ name: 'nope' }] }), I);
    expect(unknown.details).toMatch(/^outputs\[0\]\.name: unknown output "nope"/);
    // An output asked for twice (the answer must stay bounded by rows × the model's outputs).
    const twice = await refused(
      inferRaw({ outputs: Array(2).fill({ name: 'logits' }) }),
      I,
      'INVALID_INPUT',
    );
    expect(twice.details).toBe('outputs[1].name: output "logits" is asked for twice');
    // The HTTP routes' limits (LIMITS): more outputs than a request may name, as over REST.
    const many = await refused(
      inferRaw({ outputs: Array(2_000).fill({ name: 'logits' }) }),
      I,
      'INVALID_INPUT',
    );
    expect(many.details).toMatch(/^outputs: /);
    // Finite values whose outputs overflow inside the network: the row is named where its values
    // came from, as HTTP names inputs[0].data or inputs[0].binary_data.
    const overflowing = flat.map((v, i) => (i >= 64 && i < 128 ? 3e38 : v));
    const overflowMessage = "the model's outputs overflow float32 for this row (values too large)";
    const raw = await refused(
      inferRaw({ raw_input_contents: [f32Bytes(overflowing)] }),
      I,
      'INVALID_INPUT',
    );
    expect(raw.details).toBe(`raw_input_contents[0] (row 1): ${overflowMessage}`);
    const typed = await refused(
      inferRaw({
        raw_input_contents: [],
        inputs: [input(undefined, { contents: { fp32_contents: overflowing } })],
      }),
      I,
      'INVALID_INPUT',
    );
    expect(typed.details).toBe(`inputs[0].contents.fp32_contents (row 1): ${overflowMessage}`);
  });

  it('holds requests to the HTTP limits, so a status message stays short (a second attacker)', async () => {
    const I = status.INVALID_ARGUMENT;
    // A 100,000-character model name was echoed in a status message of 100 KB that stalled the
    // connection, the calls sharing it included. (Within ModelInfer's message limit here: 96 KiB
    // at MAX_BATCH_SIZE 64; a larger message is refused from its length: grpc-admission.test.ts.)
    const [long, alongside] = await Promise.all([
      refused(inferRaw({ model_name: 'm'.repeat(60_000) }), I, 'INVALID_INPUT'),
      g.client.call('ModelInfer', inferRaw()),
    ]);
    expect(long.details.length).toBeLessThan(300);
    expect(long.details).toMatch(/^model_name: expected a model name/);
    expect(alongside.ok).toBe(true);
    const id = await refused(inferRaw({ id: 'i'.repeat(60_000) }), I, 'INVALID_INPUT');
    expect(id.details).toMatch(/^id: /);
    expect(id.details.length).toBeLessThan(300);
    const shape = await refused(
      inferRaw({ inputs: [input(Array(60_000).fill(1))] }),
      I,
      'INVALID_INPUT',
    );
    // 60,000 packed dimensions are more than one per 4 bytes of the message: the wire check's.
    expect(shape.details).toMatch(
      /InferInputTensor\.shape \(field 3\): more than \d+ packed values/,
    );
    expect(shape.details.length).toBeLessThan(300);
    const ready = await g.client.call('ModelReady', { name: 'n'.repeat(60_000), version: '' });
    expect(ready.ok).toBe(false);
    const readyError = (ready as { error: GrpcError }).error;
    expect(readyError.code).toBe(I);
    expect(readyError.details.length).toBeLessThan(300);
  });

  it('needs the API token when API_TOKEN is set (metadata authorization: Bearer)', async () => {
    const secured = await startGrpc(t, { apiToken: 'grpc-api-token-0123456789' });
    try {
      const none = await secured.client.call('ModelInfer', inferRaw());
      expect(none.ok ? 0 : none.error.code).toBe(status.UNAUTHENTICATED);
      const wrong = await secured.client.call('ModelInfer', inferRaw(), {
        authorization: 'Bearer nope',
      });
      expect(wrong.ok ? 0 : wrong.error.code).toBe(status.UNAUTHENTICATED);
      const right = await secured.client.call('ModelInfer', inferRaw(), {
        authorization: 'Bearer grpc-api-token-0123456789',
      });
      expect(right.ok).toBe(true);
      // Health stays open, as on HTTP.
      expect((await secured.client.call('ServerLive', {})).ok).toBe(true);
    } finally {
      await secured.stop();
    }
  });

  it('with dynamic batching, concurrent calls each get exactly their own rows', async () => {
    const batched = await startGrpc(t, { batchMaxDelayUs: 20_000 });
    try {
      const calls = rows.slice(0, 12).map((row) =>
        batched.client.call<InferReply>('ModelInfer', {
          model_name: 'digits',
          inputs: [input([1, 64])],
          raw_input_contents: [f32Bytes(row)],
          outputs: [{ name: 'logits' }],
        }),
      );
      const replies = await Promise.all(calls);
      replies.forEach((res, i) => {
        expect(res.ok).toBe(true);
        const logits = rawFloat32((res as { value: InferReply }).value.raw_output_contents[0]!);
        expect(logits).toEqual(
          Array.from(
            Float32Array.from((json.outputs[1]!.data as number[]).slice(i * 10, i * 10 + 10)),
          ),
        );
      });
    } finally {
      await batched.stop();
    }
  });

  it('drains on shutdown: a call in flight finishes, new calls are refused', async () => {
    const s = await startGrpc(t, { batchMaxDelayUs: 1_000_000 });
    // Waits in the batch queue (up to 1 s), so it is in flight when the server starts closing:
    // closed once the queue holds it (not after a fixed wait a busy machine may outlast).
    const inFlight = s.client.call('ModelInfer', inferRaw());
    await waitFor(
      () => (s.inference.queuedRequests === 1 ? true : undefined),
      'the call queued',
      30_000,
    );
    const closed = s.close(10_000);
    const result = await inFlight;
    expect(result.ok).toBe(true);
    await closed;
    const after = await s.client.call('ServerLive', {});
    expect(after.ok).toBe(false);
    s.client.close();
  });
});

describe('gRPC ModelInfer of a convolutional model ([1, 8, 8])', () => {
  const n = rows.length;
  const f32 = (values: unknown[]) => Array.from(Float32Array.from(values as number[]));
  let json: InferResponse;
  beforeAll(async () => {
    // The REST JSON form with the tensor nested [N][1][8][8].
    json = (
      await t.app.inject({
        method: 'POST',
        url: '/v2/models/digits-cnn/infer',
        payload: {
          inputs: [
            { name: 'input', shape: [n, 1, 8, 8], datatype: 'FP32', data: rows.map(digitsImage) },
          ],
          outputs: [{ name: 'probabilities' }, { name: 'logits' }, { name: 'label' }],
        },
      })
    ).json<InferResponse>();
  });
  const cnnRequest = (shape: number[], contents: 'raw' | 'typed') => ({
    model_name: 'digits-cnn',
    inputs: [input(shape, contents === 'typed' ? { contents: { fp32_contents: flat } } : {})],
    ...(contents === 'raw' ? { raw_input_contents: [f32Bytes(flat)] } : {}),
    outputs: [{ name: 'probabilities' }, { name: 'logits' }, { name: 'label' }],
  });

  it('ModelMetadata shows the input [-1, 1, 8, 8], as REST does', async () => {
    const rest = (await t.app.inject({ url: '/v2/models/digits-cnn' })).json();
    const meta = await g.client.call<{ inputs: unknown[] }>('ModelMetadata', {
      name: 'digits-cnn',
    });
    expect(meta.ok && meta.value.inputs).toEqual([
      { name: 'input', datatype: 'FP32', shape: [-1, 1, 8, 8] },
    ]);
    expect(meta.ok && { ...meta.value, properties: undefined }).toEqual({
      ...rest,
      properties: undefined,
    });
  });

  it('raw or typed contents, shape [N, 1, 8, 8] or [N, 64]: the REST JSON results bit for bit', async () => {
    for (const shape of [
      [n, 1, 8, 8],
      [n, 64],
    ]) {
      for (const contents of ['raw', 'typed'] as const) {
        const res = await g.client.call<InferReply>('ModelInfer', cnnRequest(shape, contents));
        expect(res.ok, JSON.stringify({ shape, contents })).toBe(true);
        const reply = (res as { value: InferReply }).value;
        expect(reply.outputs.map((o) => [o.name, o.shape])).toEqual([
          ['probabilities', [n, 10]],
          ['logits', [n, 10]],
          ['label', [n]],
        ]);
        expect(rawFloat32(reply.raw_output_contents[0]!)).toEqual(f32(json.outputs[0]!.data));
        expect(rawFloat32(reply.raw_output_contents[1]!)).toEqual(f32(json.outputs[1]!.data));
      }
    }
  });

  it('refuses a tensor whose shape or size does not fit [1, 8, 8]', async () => {
    const I = status.INVALID_ARGUMENT;
    const shape = await refused(cnnRequest([n, 1, 8, 9], 'raw'), I, 'INVALID_INPUT');
    expect(shape.details).toBe(
      `inputs[0].shape: expected [N, 1, 8, 8] or [N, 64], got [${n}, 1, 8, 9]`,
    );
    const short = await refused(
      { ...cnnRequest([n, 1, 8, 8], 'raw'), raw_input_contents: [f32Bytes(flat).subarray(4)] },
      I,
    );
    expect(short.details).toBe(
      `raw_input_contents[0]: shape [${n}, 1, 8, 8] of FP32 is ${n * 256} bytes, got ${n * 256 - 4}`,
    );
    const typed = await refused(
      {
        model_name: 'digits-cnn',
        inputs: [input([n, 1, 8, 8], { contents: { fp32_contents: flat.slice(1) } })],
      },
      I,
    );
    expect(typed.details).toMatch(
      /^inputs\[0\]\.contents\.fp32_contents: shape \[30, 1, 8, 8\] needs 1920 values, got 1919/,
    );
  });

  it('with dynamic batching, concurrent calls of either shape and contents get their own rows', async () => {
    const batched = await startGrpc(t, { batchMaxDelayUs: 20_000 });
    try {
      const replies = await Promise.all(
        rows.slice(0, 12).map((row, i) =>
          batched.client.call<InferReply>('ModelInfer', {
            model_name: 'digits-cnn',
            inputs: [
              input(
                i % 2 === 0 ? [1, 1, 8, 8] : [1, 64],
                i % 3 === 0 ? { contents: { fp32_contents: row } } : {},
              ),
            ],
            ...(i % 3 === 0 ? {} : { raw_input_contents: [f32Bytes(row)] }),
            outputs: [{ name: 'logits' }],
          }),
        ),
      );
      replies.forEach((res, i) => {
        expect(res.ok).toBe(true);
        const logits = rawFloat32((res as { value: InferReply }).value.raw_output_contents[0]!);
        expect(logits).toEqual(f32((json.outputs[1]!.data as number[]).slice(i * 10, i * 10 + 10)));
      });
    } finally {
      await batched.stop();
    }
  });
});

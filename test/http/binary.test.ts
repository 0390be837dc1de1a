/**
 * Binary bodies on the prediction routes: the TF-style float32 rows on :predict (JSON or float32
 * answers) and the Open Inference Protocol's binary tensor data extension on /infer (Triton's
 * docs/protocol/extension_binary_data.md). Results equal the JSON forms bit for bit (the JSON
 * numbers are the float32 values the engine computed); every malformed body is a 4xx problem.
 * A convolutional model ([1, 8, 8]) takes the same bytes: rows of 64 float32 on :predict, tensors
 * of shape [N, 1, 8, 8] or [N, 64] on /infer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsImage, digitsTestRows } from '../helpers/digits.js';
import {
  binaryInfer,
  digitsRow,
  expectInvalid,
  expectProblem,
  f32Bytes,
  type InferResponse,
  inferBody,
  readBinaryResponse,
} from './http-helpers.js';

let t: TestApp;
const rows = digitsTestRows().x.slice(0, 40);
const flat = rows.flat();
const PREDICT = '/v1/models/digits:predict';
const INFER = '/v2/models/digits/infer';

beforeAll(async () => {
  t = await makeTestApp({ models: ['digits', 'digits-cnn'], env: { MAX_BATCH_SIZE: '64' } });
});
afterAll(async () => {
  await t.close();
});

const octet = (payload: Buffer, url = PREDICT, headers: Record<string, string> = {}) =>
  t.app.inject({
    method: 'POST',
    url,
    payload,
    headers: { 'content-type': 'application/octet-stream', ...headers },
  });
const asFloat32 = (bytes: Buffer) =>
  new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));

describe('TF-style :predict with application/octet-stream float32 rows', () => {
  it('answers the same JSON, byte for byte, as the JSON body with the same rows', async () => {
    const json = await t.app.inject({ method: 'POST', url: PREDICT, payload: { instances: rows } });
    const binary = await octet(f32Bytes(flat));
    expect(binary.statusCode, binary.body).toBe(200);
    expect(binary.headers['content-type']).toBe(json.headers['content-type']);
    expect(binary.body).toBe(json.body);
    expect(binary.headers['x-model-version']).toBe('1');
  });

  it('with Accept: application/octet-stream answers the float32 probabilities, bit for bit', async () => {
    const json = (
      await t.app.inject({ method: 'POST', url: PREDICT, payload: { instances: rows } })
    ).json<{ predictions: number[][] }>();
    for (const request of [
      () => octet(f32Bytes(flat), PREDICT, { accept: 'application/octet-stream' }),
      () =>
        t.app.inject({
          method: 'POST',
          url: PREDICT,
          payload: { instances: rows },
          headers: { accept: 'application/octet-stream' },
        }),
    ]) {
      const res = await request();
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(res.headers['x-output-shape']).toBe(`${rows.length},10`);
      expect(Array.from(asFloat32(res.rawPayload))).toEqual(
        Array.from(Float32Array.from(json.predictions.flat())),
      );
    }
  });

  it('answers float32 only when Accept prefers it to JSON (q-values)', async () => {
    const cases: [string, string][] = [
      ['application/octet-stream', 'application/octet-stream'],
      ['application/json;q=0.5, application/octet-stream', 'application/octet-stream'],
      ['Application/Octet-Stream', 'application/octet-stream'],
      ['application/octet-stream;q=0, application/json', 'application/json; charset=utf-8'],
      ['application/json, application/octet-stream;q=0.9', 'application/json; charset=utf-8'],
      ['*/*', 'application/json; charset=utf-8'],
      ['text/html', 'application/json; charset=utf-8'],
    ];
    for (const [accept, answered] of cases) {
      const res = await octet(f32Bytes(flat), PREDICT, { accept });
      expect(res.statusCode, accept).toBe(200);
      expect(res.headers['content-type'], accept).toBe(answered);
    }
  });

  it('refuses malformed bodies with 4xx problems', async () => {
    expectInvalid(await octet(Buffer.alloc(0)), [
      { path: 'body', message: 'at least one row is required' },
    ]);
    expectInvalid(await octet(Buffer.alloc(64 * 4 + 2)), [
      { path: 'body', message: /258 bytes is not a whole number of rows \(64 float32 values/ },
    ]);
    const nan = f32Bytes(flat.slice(0, 128));
    nan.writeFloatLE(Number.NaN, 4 * 70);
    nan.writeFloatLE(Number.POSITIVE_INFINITY, 4 * 3);
    expectInvalid(await octet(nan), [
      { path: 'body[3]', message: 'expected a finite number, got Infinity' },
      { path: 'body[70]', message: 'expected a finite number, got NaN' },
    ]);
    const big = await octet(Buffer.alloc(65 * 64 * 4));
    expectProblem(big, 413, 'BATCH_TOO_LARGE');
    expectProblem(
      await octet(f32Bytes(digitsRow()), '/v1/models/nope:predict'),
      404,
      'MODEL_NOT_FOUND',
    );
    expectProblem(
      await octet(f32Bytes(digitsRow()), `${PREDICT}?fused=maybe`),
      400,
      'INVALID_INPUT',
    );
  });

  it('?fused=false runs the reference path on binary rows too', async () => {
    const res = await octet(f32Bytes(digitsRow()), `${PREDICT}?fused=false`);
    expect(res.statusCode).toBe(200);
  });
});

describe('Open Inference Protocol binary tensor data extension on /infer', () => {
  const header = (outputs: unknown[], extra: Record<string, unknown> = {}) => ({
    id: 'b1',
    inputs: [
      {
        name: 'input',
        shape: [rows.length, 64],
        datatype: 'FP32',
        parameters: { binary_data_size: flat.length * 4 },
      },
    ],
    outputs,
    ...extra,
  });
  let json: InferResponse;
  beforeAll(async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: INFER,
      payload: inferBody(rows, { outputs: ['probabilities', 'logits', 'label'], id: 'b1' }),
    });
    json = res.json<InferResponse>();
  });

  it('binary input and binary outputs equal the JSON results bit for bit', async () => {
    const { payload, headers } = binaryInfer(
      header([
        { name: 'probabilities', parameters: { binary_data: true } },
        { name: 'logits', parameters: { binary_data: true } },
        { name: 'label', parameters: { binary_data: true } },
      ]),
      [f32Bytes(flat)],
    );
    const res = await t.app.inject({ method: 'POST', url: INFER, payload, headers });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    const { header: h, bytes } = readBinaryResponse(res);
    expect(h).toMatchObject({ model_name: 'digits', model_version: '1', id: 'b1' });
    const sizes = h.outputs.map((o) => o.parameters!.binary_data_size);
    expect(h.outputs.map((o) => [o.name, o.datatype, o.shape, o.data])).toEqual([
      ['probabilities', 'FP32', [40, 10], undefined],
      ['logits', 'FP32', [40, 10], undefined],
      ['label', 'BYTES', [40], undefined],
    ]);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(bytes.length);
    const probabilities = asFloat32(bytes.subarray(0, sizes[0]));
    const logits = asFloat32(bytes.subarray(sizes[0], sizes[0]! + sizes[1]!));
    expect(Array.from(probabilities)).toEqual(
      Array.from(Float32Array.from(json.outputs[0]!.data as number[])),
    );
    expect(Array.from(logits)).toEqual(
      Array.from(Float32Array.from(json.outputs[1]!.data as number[])),
    );
    // BYTES: a 4-byte little-endian length before each element.
    const labels: string[] = [];
    let at = sizes[0]! + sizes[1]!;
    while (at < bytes.length) {
      const n = bytes.readUInt32LE(at);
      labels.push(bytes.toString('utf8', at + 4, at + 4 + n));
      at += 4 + n;
    }
    expect(labels).toEqual(json.outputs[2]!.data);
  });

  it('binary input with JSON outputs answers exactly the JSON response', async () => {
    const { payload, headers } = binaryInfer(
      header([{ name: 'probabilities' }, { name: 'logits' }, { name: 'label' }]),
      [f32Bytes(flat)],
    );
    const res = await t.app.inject({ method: 'POST', url: INFER, payload, headers });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual(json);
  });

  it('a JSON request may ask for binary outputs (binary_data_output for all of them)', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: INFER,
      payload: {
        ...inferBody(rows, { outputs: ['logits', 'label'] }),
        parameters: { binary_data_output: true },
      },
    });
    expect(res.statusCode, res.body).toBe(200);
    const { header: h, bytes } = readBinaryResponse(res);
    expect(h.outputs.map((o) => o.name)).toEqual(['logits', 'label']);
    expect(Array.from(asFloat32(bytes.subarray(0, 40 * 10 * 4)))).toEqual(
      Array.from(Float32Array.from(json.outputs[1]!.data as number[])),
    );
  });

  it('is recognised by Inference-Header-Content-Length without a Content-Type (tritonclient)', async () => {
    const { payload, headers } = binaryInfer(header([{ name: 'probabilities' }]), [f32Bytes(flat)]);
    const res = await t.app.inject({
      method: 'POST',
      url: INFER,
      payload,
      headers: { 'inference-header-content-length': headers['inference-header-content-length']! },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<InferResponse>().outputs[0]!.data).toEqual(json.outputs[0]!.data);
  });

  it("serves Triton's raw binary request (Inference-Header-Content-Length: 0): every output as bytes, equal to the JSON results bit for bit", async () => {
    const raw = (payload: Buffer, headers: Record<string, string> = {}) =>
      t.app.inject({
        method: 'POST',
        url: INFER,
        payload,
        headers: {
          'content-type': 'application/octet-stream',
          'inference-header-content-length': '0',
          ...headers,
        },
      });
    // Triton's batch-1 request: one sample; and more, their count from the length.
    for (const count of [1, rows.length]) {
      const res = await raw(f32Bytes(rows.slice(0, count).flat()));
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers['content-type']).toBe('application/octet-stream');
      const { header: h, bytes } = readBinaryResponse(res);
      expect(h.outputs.map((o) => [o.name, o.datatype, o.shape, o.data])).toEqual([
        ['probabilities', 'FP32', [count, 10], undefined],
        ['logits', 'FP32', [count, 10], undefined],
        ['label', 'BYTES', [count], undefined],
      ]);
      const size = count * 10 * 4;
      expect(Array.from(asFloat32(bytes.subarray(0, size)))).toEqual(
        Array.from(Float32Array.from(json.outputs[0]!.data as number[]).subarray(0, count * 10)),
      );
      expect(Array.from(asFloat32(bytes.subarray(size, 2 * size)))).toEqual(
        Array.from(Float32Array.from(json.outputs[1]!.data as number[]).subarray(0, count * 10)),
      );
    }
    // Not whole samples, none, or not finite: 400s naming the body.
    for (const payload of [f32Bytes(flat).subarray(4), Buffer.alloc(0)]) {
      const res = await raw(payload);
      expectProblem(res, 400, 'INVALID_INPUT');
      expect(res.json<{ detail: string }>().detail).toMatch(
        /^body: a raw binary request \(Inference-Header-Content-Length: 0\) is the input's FP32 samples/,
      );
    }
    // More samples than MAX_BATCH_SIZE (64 here): its 413, naming the body too.
    const tooMany = await raw(f32Bytes(Array.from({ length: 65 }, () => flat.slice(0, 64)).flat()));
    expect(tooMany.statusCode).toBe(413);
    expect(tooMany.json<{ detail: string }>().detail).toMatch(/^body: at most 64 rows/);
    const nan = f32Bytes(flat.slice(0, 64));
    nan.writeFloatLE(Number.NaN, 8);
    expectInvalid(await raw(nan), [
      { path: 'body[2]', message: 'expected a finite number, got NaN' },
    ]);
  });

  it('reads tensor bytes at an odd offset (a header of odd length)', async () => {
    const text = `${JSON.stringify(header([{ name: 'logits' }]))}   `;
    expect(Buffer.byteLength(text) % 4).not.toBe(0);
    const { payload, headers } = binaryInfer(undefined, [f32Bytes(flat)], text);
    const res = await t.app.inject({ method: 'POST', url: INFER, payload, headers });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<InferResponse>().outputs[0]!.data).toEqual(json.outputs[1]!.data);
  });

  it('refuses every malformed binary body with a 4xx problem', async () => {
    const send = (payload: Buffer, headers: Record<string, string>) =>
      t.app.inject({ method: 'POST', url: INFER, payload, headers });
    const good = binaryInfer(header([{ name: 'probabilities' }]), [f32Bytes(flat)]);
    const HL = 'headers.inference-header-content-length';
    // The header length: not a number, beyond the body, empty.
    expectInvalid(
      await send(good.payload, { ...good.headers, 'inference-header-content-length': 'x' }),
      [{ path: HL, message: 'expected the byte length of the JSON header, got "x"' }],
    );
    expectInvalid(
      await send(good.payload, { ...good.headers, 'inference-header-content-length': '999999' }),
      [{ path: HL, message: /said to be 999999 bytes but the body has/ }],
    );
    const blank = binaryInfer(undefined, [f32Bytes(flat)], '   ');
    expectInvalid(await send(blank.payload, blank.headers), [
      { path: HL, message: 'the JSON header is empty' },
    ]);
    // 0 is Triton's raw binary request: the whole body the input's samples, whole ones only.
    expectInvalid(
      await send(good.payload, { ...good.headers, 'inference-header-content-length': '0' }),
      [
        {
          path: 'body',
          message: `a raw binary request (Inference-Header-Content-Length: 0) is the input's FP32 samples, 64 values (256 bytes) each, so a multiple of 256 bytes; got ${good.payload.length}`,
        },
      ],
    );
    // No header length: the whole body is read as JSON, and the refusal says the header is missing:
    // tensor bytes that happen to be UTF-8 are no JSON; others are not even UTF-8.
    const hint =
      '(no Inference-Header-Content-Length header: a binary body is a JSON header of that many bytes followed by the tensor bytes)';
    const textTail = Buffer.concat([
      good.payload.subarray(0, -flat.length * 4),
      Buffer.from('abcd'),
    ]);
    const unheaded = expectProblem(
      await send(textTail, { 'content-type': 'application/octet-stream' }),
      400,
      'INVALID_JSON',
    );
    expect(unheaded.detail).toMatch(/^malformed JSON at .* \(no Inference-Header-Content-Length/s);
    expect(unheaded.detail.endsWith(hint)).toBe(true);
    const notText = expectProblem(
      await send(good.payload, { 'content-type': 'application/octet-stream' }),
      400,
      'INVALID_INPUT',
    );
    expect(notText.detail).toBe(`the request body is not valid UTF-8 ${hint}`);
    // With the header, a header that is not JSON is refused as before, without the hint.
    const notJson = expectProblem(
      await send(good.payload, { ...good.headers, 'inference-header-content-length': '5' }),
      400,
      'INVALID_JSON',
    );
    expect(notJson.detail).not.toMatch(/no Inference-Header-Content-Length/);
    // A header that is not JSON, or not an infer request.
    expectProblem(
      await send(good.payload, { ...good.headers, 'inference-header-content-length': '5' }),
      400,
      'INVALID_JSON',
    );
    const notRequest = binaryInfer({ inputs: 'x' }, []);
    expectProblem(await send(notRequest.payload, notRequest.headers), 400, 'INVALID_INPUT');
    // Wrong lengths: bytes missing, bytes left over, sizes that do not fit the shape.
    const short = binaryInfer(header([]), [f32Bytes(flat).subarray(4)]);
    expectInvalid(await send(short.payload, short.headers), [
      { path: 'inputs', message: /add up to 10240 bytes, but 10236 bytes follow/ },
    ]);
    const extra = binaryInfer(header([]), [f32Bytes(flat), Buffer.alloc(3)]);
    expectInvalid(await send(extra.payload, extra.headers), [
      { path: 'inputs', message: /add up to 10240 bytes, but 10243 bytes follow/ },
    ]);
    const misaligned = header([]);
    misaligned.inputs[0]!.parameters.binary_data_size = 10238;
    const mis = binaryInfer(misaligned, [f32Bytes(flat).subarray(2)]);
    expectInvalid(await send(mis.payload, mis.headers), [
      {
        path: 'inputs[0].parameters.binary_data_size',
        message: 'shape [40, 64] of FP32 is 10240 bytes, got 10238',
      },
    ]);
    const negative = header([]);
    (negative.inputs[0]!.parameters as Record<string, unknown>).binary_data_size = -4;
    const neg = binaryInfer(negative, []);
    expectInvalid(await send(neg.payload, neg.headers), [
      {
        path: 'inputs[0].parameters.binary_data_size',
        message: 'expected a byte count (an integer ≥ 0)',
      },
    ]);
    // Bytes after a header whose inputs claim none.
    const unclaimed = binaryInfer(inferBody([digitsRow()]), [Buffer.alloc(8)]);
    expectInvalid(await send(unclaimed.payload, unclaimed.headers), [
      { path: 'inputs', message: /add up to 0 bytes, but 8 bytes follow/ },
    ]);
    // Both data and binary_data_size.
    const both = header([]);
    (both.inputs[0] as Record<string, unknown>).data = flat;
    const b = binaryInfer(both, [f32Bytes(flat)]);
    expectInvalid(await send(b.payload, b.headers), [
      {
        path: 'inputs[0].data',
        message: 'give either data or parameters.binary_data_size, not both',
      },
    ]);
    // NaN and Infinity in the tensor bytes.
    const bad = f32Bytes(flat);
    bad.writeFloatLE(Number.NaN, 8);
    bad.writeFloatLE(Number.NEGATIVE_INFINITY, 4 * 100);
    const nan = binaryInfer(header([]), [bad]);
    expectInvalid(await send(nan.payload, nan.headers), [
      { path: 'inputs[0].binary_data[2]', message: 'expected a finite number, got NaN' },
      { path: 'inputs[0].binary_data[100]', message: 'expected a finite number, got -Infinity' },
    ]);
    // Finite bytes whose outputs overflow inside the network: the binary data is named, not data.
    const overflowing = f32Bytes(flat);
    for (let i = 64; i < 128; i++) overflowing.writeFloatLE(3e38, 4 * i);
    const over = binaryInfer(header([]), [overflowing]);
    expectInvalid(await send(over.payload, over.headers), [
      {
        path: 'inputs[0].binary_data (row 1)',
        message: "the model's outputs overflow float32 for this row (values too large)",
      },
    ]);
    // Unknown output names and non-boolean binary_data.
    const unknown = binaryInfer(header([{ name: 'nope', parameters: { binary_data: true } }]), [
      f32Bytes(flat),
    ]);
    expectInvalid(await send(unknown.payload, unknown.headers), [
      { path: 'outputs[0].name', message: /unknown output "nope"/ },
    ]);
    const flag = binaryInfer(header([{ name: 'logits', parameters: { binary_data: 'yes' } }]), [
      f32Bytes(flat),
    ]);
    expectInvalid(await send(flag.payload, flag.headers), [
      { path: 'outputs[0].parameters.binary_data', message: 'expected a boolean' },
    ]);
    // A JSON body cannot point at binary data.
    const jsonOnly = await t.app.inject({
      method: 'POST',
      url: INFER,
      payload: header([]),
    });
    expectProblem(jsonOnly, 400, 'INVALID_INPUT');
    // Too many rows, unknown model.
    const many = header([]);
    many.inputs[0]!.shape = [65, 64];
    many.inputs[0]!.parameters.binary_data_size = 65 * 64 * 4;
    const m = binaryInfer(many, [Buffer.alloc(65 * 64 * 4)]);
    expectProblem(await send(m.payload, m.headers), 413, 'BATCH_TOO_LARGE');
    expectProblem(
      await t.app.inject({ method: 'POST', url: '/v2/models/nope/infer', ...good }),
      404,
      'MODEL_NOT_FOUND',
    );
  });
});

describe('a convolutional model ([1, 8, 8]): the binary forms equal the JSON forms bit for bit', () => {
  const CNN_PREDICT = '/v1/models/digits-cnn:predict';
  const CNN_INFER = '/v2/models/digits-cnn/infer';
  const n = rows.length;
  const images = rows.map(digitsImage);
  const float32Of = (values: unknown[]) => Array.from(Float32Array.from(values as number[]));

  it(':predict float32 rows of 64 values (the image row-major) answer what nested instances answer', async () => {
    const nested = await t.app.inject({
      method: 'POST',
      url: CNN_PREDICT,
      payload: { instances: images },
    });
    expect(nested.statusCode, nested.body).toBe(200);
    const binary = await octet(f32Bytes(flat), CNN_PREDICT);
    expect(binary.statusCode, binary.body).toBe(200);
    expect(binary.body).toBe(nested.body);
    const raw = await octet(f32Bytes(flat), CNN_PREDICT, { accept: 'application/octet-stream' });
    expect(raw.headers['x-output-shape']).toBe(`${n},10`);
    expect(Array.from(asFloat32(raw.rawPayload))).toEqual(
      float32Of(nested.json<{ predictions: number[][] }>().predictions.flat()),
    );
    expectInvalid(await octet(f32Bytes(flat.slice(0, 100)), CNN_PREDICT), [
      { path: 'body', message: /400 bytes is not a whole number of rows \(64 float32 values/ },
    ]);
  });

  it('/infer binary tensors of shape [N, 1, 8, 8] and [N, 64] equal the nested JSON tensor', async () => {
    const json = (
      await t.app.inject({
        method: 'POST',
        url: CNN_INFER,
        payload: {
          inputs: [{ name: 'input', shape: [n, 1, 8, 8], datatype: 'FP32', data: images }],
          outputs: [{ name: 'probabilities' }, { name: 'logits' }, { name: 'label' }],
        },
      })
    ).json<InferResponse>();
    for (const shape of [
      [n, 1, 8, 8],
      [n, 64],
    ]) {
      const { payload, headers } = binaryInfer(
        {
          inputs: [
            {
              name: 'input',
              shape,
              datatype: 'FP32',
              parameters: { binary_data_size: flat.length * 4 },
            },
          ],
          outputs: [
            { name: 'probabilities', parameters: { binary_data: true } },
            { name: 'logits', parameters: { binary_data: true } },
            { name: 'label' },
          ],
        },
        [f32Bytes(flat)],
      );
      const res = await t.app.inject({ method: 'POST', url: CNN_INFER, payload, headers });
      expect(res.statusCode, res.body).toBe(200);
      const { header: h, bytes } = readBinaryResponse(res);
      expect(h.outputs.map((o) => [o.name, o.shape])).toEqual([
        ['probabilities', [n, 10]],
        ['logits', [n, 10]],
        ['label', [n]],
      ]);
      const size = n * 10 * 4;
      expect(bytes.length).toBe(2 * size);
      expect(Array.from(asFloat32(bytes.subarray(0, size)))).toEqual(
        float32Of(json.outputs[0]!.data),
      );
      expect(Array.from(asFloat32(bytes.subarray(size)))).toEqual(float32Of(json.outputs[1]!.data));
      expect(h.outputs[2]!.data).toEqual(json.outputs[2]!.data);
    }
  });

  it('refuses a binary tensor whose shape or size does not fit [1, 8, 8]', async () => {
    const send = (shape: number[], size: number, bytes: Buffer) => {
      const { payload, headers } = binaryInfer(
        {
          inputs: [
            { name: 'input', shape, datatype: 'FP32', parameters: { binary_data_size: size } },
          ],
        },
        [bytes],
      );
      return t.app.inject({ method: 'POST', url: CNN_INFER, payload, headers });
    };
    expectInvalid(await send([n, 1, 8, 7], flat.length * 4, f32Bytes(flat)), [
      {
        path: 'inputs[0].shape',
        message: `expected [N, 1, 8, 8] or [N, 64], got [${n}, 1, 8, 7]`,
      },
    ]);
    const short = f32Bytes(flat).subarray(4);
    expectInvalid(await send([n, 1, 8, 8], short.length, short), [
      {
        path: 'inputs[0].parameters.binary_data_size',
        message: `shape [${n}, 1, 8, 8] of FP32 is ${n * 256} bytes, got ${n * 256 - 4}`,
      },
    ]);
    const nan = f32Bytes(flat);
    nan.writeFloatLE(Number.NaN, 4 * 65);
    expectInvalid(await send([n, 1, 8, 8], nan.length, nan), [
      { path: 'inputs[0].binary_data[65]', message: 'expected a finite number, got NaN' },
    ]);
  });
});

/**
 * Triton's classification extension (docs/protocol/extension_classification.md) on the three
 * infer forms: REST JSON, the binary tensor data extension, and gRPC ModelInfer. An output asked
 * for with `parameters.classification: <count>` comes back as BYTES [rows, min(count, classes)]
 * of "<value>:<index>:<label>"; the strings are checked against the FP32 output of the same
 * request, and equal on every form. Counts that are not positive integers, the BYTES label output
 * and regression models are refused before any compute.
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { digitsTestRows } from '../helpers/digits.js';
import { type GrpcError, startGrpc } from '../helpers/grpc.js';
import {
  binaryInfer,
  expectInvalid,
  f32Bytes,
  type InferResponse,
  type InferTensor,
  inferBody,
  readBinaryResponse,
} from './http-helpers.js';

const rows = digitsTestRows().x.slice(0, 12);
const flat = rows.flat();
const INFER = '/v2/models/digits/infer';
let repository: string;
let t: TestApp;
let g: Awaited<ReturnType<typeof startGrpc>>;
let labels: readonly string[];

/** digits, plus `regressor`: digits/1 re-labelled as a 10-output regression model. */
function withRegressor(): string {
  const root = makeRepository(['digits']);
  const dir = join(root, 'regressor', '1');
  cpSync(bundledVersionDir('digits'), dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  config.name = 'regressor';
  config.task = 'regression';
  delete config.labels;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return root;
}

beforeAll(async () => {
  repository = withRegressor();
  t = await makeTestApp({ repository });
  g = await startGrpc(t);
  labels = t.registry.resolve('digits').checkpoint.config.labels!;
});
afterAll(async () => {
  await g.stop();
  await t.close();
  rmSync(repository, { recursive: true, force: true });
});

const infer = (payload: unknown, url = INFER) =>
  t.app.inject({ method: 'POST', url, payload: payload as Record<string, unknown> });

/** A JSON infer body over `rows` asking for these outputs (name and parameters). */
const body = (outputs: { name: string; parameters?: Record<string, unknown> }[]) => ({
  ...inferBody(rows),
  outputs,
});

/**
 * The classes of one row as the extension defines them, from the FP32 values the same request
 * answered: indices by value descending, equal values by index, the value as printf "%f" writes
 * it. toFixed(6) is printf's "%f" but for exact ties at the sixth decimal (odd multiples of
 * 1/128), which the test asserts it does not meet.
 */
function expectedClasses(values: readonly number[], count: number): string[] {
  const order = values.map((_, k) => k).sort((a, b) => values[b]! - values[a]! || a - b);
  return order.slice(0, count).map((k) => {
    const v = values[k]!;
    expect(Number.isInteger(v * 128) && (v * 128) % 2 !== 0, `a tie: ${v}`).toBe(false);
    return `${v.toFixed(6)}:${k}:${labels[k]}`;
  });
}

function expectedTensor(data: readonly number[], count: number): string[] {
  const out: string[] = [];
  for (let r = 0; r < rows.length; r++)
    out.push(...expectedClasses(data.slice(r * 10, (r + 1) * 10), count));
  return out;
}

interface GrpcReply {
  outputs: { name: string; datatype: string; shape: number[] }[];
  raw_output_contents: Buffer[];
}

/** The elements of a BYTES tensor's bytes: a 4-byte little-endian length before each. */
function bytesElements(bytes: Uint8Array): string[] {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: string[] = [];
  let at = 0;
  while (at < buffer.length) {
    const n = buffer.readUInt32LE(at);
    out.push(buffer.toString('utf8', at + 4, at + 4 + n));
    at += 4 + n;
  }
  expect(at).toBe(buffer.length);
  return out;
}

describe('classification on /infer and gRPC ModelInfer', () => {
  // An output is asked for at most once per request: one request classifies the probabilities
  // and answers the logits' values, the other the reverse; the rows are the same, and so are
  // their outputs, bit for bit (binary.test.ts).
  let first: InferResponse;
  let second: InferResponse;
  let json: { probabilities: InferTensor; logits: InferTensor };
  let values: { probabilities: number[]; logits: number[] };
  beforeAll(async () => {
    const answer = async (classified: string, plain: string) => {
      const res = await infer(
        body([{ name: classified, parameters: { classification: 3 } }, { name: plain }]),
      );
      expect(res.statusCode, res.body).toBe(200);
      return res.json<InferResponse>();
    };
    first = await answer('probabilities', 'logits');
    second = await answer('logits', 'probabilities');
    json = { probabilities: first.outputs[0]!, logits: second.outputs[0]! };
    values = {
      probabilities: second.outputs[1]!.data as number[],
      logits: first.outputs[1]!.data as number[],
    };
  });

  it('JSON: BYTES [rows, 3] of "<value>:<index>:<label>", highest first, from the FP32 values', () => {
    expect([json.probabilities, json.logits].map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ['probabilities', 'BYTES', [rows.length, 3]],
      ['logits', 'BYTES', [rows.length, 3]],
    ]);
    expect(json.probabilities.data).toEqual(expectedTensor(values.probabilities, 3));
    expect(json.logits.data).toEqual(expectedTensor(values.logits, 3));
    // Within one request: the classes of the probabilities are in the order of its logits
    // (softmax keeps the order), each value what the logits' softmax gives to six decimals.
    const logits = first.outputs[1]!.data as number[];
    (json.probabilities.data as string[]).forEach((text, i) => {
      const [value, index] = text.split(':').map(Number) as [number, number];
      const row = logits.slice(Math.floor(i / 3) * 10, Math.floor(i / 3) * 10 + 10);
      const max = Math.max(...row);
      const sum = row.reduce((a, v) => a + Math.exp(v - max), 0);
      expect(Math.abs(value - Math.exp(row[index]! - max) / sum)).toBeLessThan(2e-6);
      if (i % 3 === 0) expect(index).toBe(row.indexOf(max));
    });
  });

  it('JSON: the first class of each row is what the label output answers', async () => {
    const res = await infer(
      body([{ name: 'label' }, { name: 'probabilities', parameters: { classification: 1 } }]),
    );
    expect(res.statusCode, res.body).toBe(200);
    const [label, classes] = res.json<InferResponse>().outputs;
    expect(classes!.shape).toEqual([rows.length, 1]);
    expect((classes!.data as string[]).map((s) => s.split(':')[2])).toEqual(label!.data);
  });

  it('binary: the same strings as BYTES bytes (4-byte lengths) with binary_data', async () => {
    const { payload, headers } = binaryInfer(
      {
        inputs: [
          {
            name: 'input',
            shape: [rows.length, 64],
            datatype: 'FP32',
            parameters: { binary_data_size: flat.length * 4 },
          },
        ],
        outputs: [
          { name: 'probabilities', parameters: { classification: 3, binary_data: true } },
          { name: 'logits', parameters: { classification: 3, binary_data: true } },
        ],
      },
      [f32Bytes(flat)],
    );
    const res = await t.app.inject({ method: 'POST', url: INFER, payload, headers });
    expect(res.statusCode, res.body).toBe(200);
    const { header, bytes } = readBinaryResponse(res);
    expect(header.outputs.map((o) => [o.name, o.datatype, o.shape, o.data])).toEqual([
      ['probabilities', 'BYTES', [rows.length, 3], undefined],
      ['logits', 'BYTES', [rows.length, 3], undefined],
    ]);
    const size = header.outputs[0]!.parameters!.binary_data_size;
    expect(size + header.outputs[1]!.parameters!.binary_data_size).toBe(bytes.length);
    expect(bytesElements(bytes.subarray(0, size))).toEqual(json.probabilities.data);
    expect(bytesElements(bytes.subarray(size))).toEqual(json.logits.data);
  });

  it('binary_data_output: true sends the classes as bytes too', async () => {
    const res = await infer({
      ...body([{ name: 'logits', parameters: { classification: 3 } }]),
      parameters: { binary_data_output: true },
    });
    expect(res.statusCode, res.body).toBe(200);
    const { header, bytes } = readBinaryResponse(res);
    expect(header.outputs[0]!.datatype).toBe('BYTES');
    expect(bytesElements(bytes)).toEqual(json.logits.data);
  });

  it('gRPC: int64_param classification answers the same strings in raw_output_contents', async () => {
    const res = await g.client.call<GrpcReply>('ModelInfer', {
      model_name: 'digits',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [rows.length, 64] }],
      raw_input_contents: [f32Bytes(flat)],
      outputs: [
        { name: 'probabilities', parameters: { classification: { int64_param: 3 } } },
        { name: 'logits', parameters: { classification: { int64_param: 3 } } },
      ],
    });
    if (!res.ok) throw new Error(res.error.details);
    const value = res.value;
    expect(value.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ['probabilities', 'BYTES', [rows.length, 3]],
      ['logits', 'BYTES', [rows.length, 3]],
    ]);
    expect(bytesElements(value.raw_output_contents[0]!)).toEqual(json.probabilities.data);
    expect(bytesElements(value.raw_output_contents[1]!)).toEqual(json.logits.data);
  });

  it('a count past the number of classes answers every class, as Triton clamps it', async () => {
    // However large: past 2^53 (an int64 rounded to a double), 1e300.
    for (const count of [25, 2 ** 53 + 2, 1e300]) {
      const res = await infer(body([{ name: 'logits', parameters: { classification: count } }]));
      expect(res.statusCode, res.body).toBe(200);
      const classes = res.json<InferResponse>().outputs[0]!;
      expect(classes.shape).toEqual([rows.length, 10]);
      expect(classes.data).toEqual(expectedTensor(values.logits, 10));
    }
    // gRPC: int64's largest value.
    const res = await g.client.call<GrpcReply>('ModelInfer', {
      model_name: 'digits',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [rows.length, 64] }],
      raw_input_contents: [f32Bytes(flat)],
      outputs: [
        {
          name: 'logits',
          parameters: { classification: { int64_param: '9223372036854775807' } },
        },
      ],
    });
    if (!res.ok) throw new Error(res.error.details);
    expect(res.value.outputs[0]!.shape).toEqual([rows.length, 10]);
    expect(bytesElements(res.value.raw_output_contents[0]!)).toEqual(
      expectedTensor(values.logits, 10),
    );
  });

  it('other output parameters are still accepted (the protocol allows extensions)', async () => {
    const res = await infer(body([{ name: 'logits', parameters: { something_else: 3 } }]));
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<InferResponse>().outputs[0]!.data).toEqual(values.logits);
  });
});

describe('refused classifications', () => {
  const path = 'outputs[0].parameters.classification';
  const count = /^expected a positive integer: how many classes to return/;

  it('REST: a count that is not a positive integer is a 400 naming the parameter', async () => {
    for (const bad of [0, -1, 2.5, '3', true, null, {}, Number.POSITIVE_INFINITY]) {
      expectInvalid(await infer(body([{ name: 'logits', parameters: { classification: bad } }])), [
        { path, message: count },
      ]);
    }
    // The place of the output in the request is named.
    expectInvalid(
      await infer(
        body([{ name: 'label' }, { name: 'probabilities', parameters: { classification: 0 } }]),
      ),
      [{ path: 'outputs[1].parameters.classification', message: count }],
    );
  });

  it('REST: the label output (BYTES) and a regression model have no classes', async () => {
    expectInvalid(await infer(body([{ name: 'label', parameters: { classification: 2 } }])), [
      { path, message: /^output "label" is BYTES; classification applies to an FP32 output/ },
    ]);
    expectInvalid(
      await infer(
        {
          ...inferBody(rows),
          outputs: [{ name: 'predictions', parameters: { classification: 2 } }],
        },
        '/v2/models/regressor/infer',
      ),
      [
        {
          path,
          message: '"regressor" is a regression model: its outputs have no classes to return',
        },
      ],
    );
  });

  it('gRPC: INVALID_ARGUMENT for a count that is not a positive int64_param, a BYTES output, a regression model', async () => {
    const request = (parameter: unknown, name = 'logits', model = 'digits') => ({
      model_name: model,
      inputs: [{ name: 'input', datatype: 'FP32', shape: [rows.length, 64] }],
      raw_input_contents: [f32Bytes(flat)],
      outputs: [{ name, parameters: { classification: parameter } }],
    });
    const cases: [unknown, RegExp, string?, string?][] = [
      [{ int64_param: 0 }, count],
      [{ int64_param: -2 }, count],
      [{ uint64_param: 3 }, /^expected an int64_param/],
      [{ string_param: '3' }, /^expected an int64_param/],
      [{ bool_param: true }, /^expected an int64_param/],
      [{}, /^expected an int64_param/],
      [{ int64_param: 2 }, /^output "label" is BYTES/, 'label'],
      [{ int64_param: 2 }, /is a regression model/, 'predictions', 'regressor'],
    ];
    for (const [parameter, message, name, model] of cases) {
      const res = await g.client.call('ModelInfer', request(parameter, name, model));
      expect(res.ok, JSON.stringify(parameter)).toBe(false);
      const error = (res as { error: GrpcError }).error;
      expect(error.code, error.details).toBe(status.INVALID_ARGUMENT);
      expect(error.details.startsWith(`${path}: `), error.details).toBe(true);
      expect(error.details.slice(path.length + 2)).toMatch(message);
    }
  });
});

/**
 * wire-merge.ts through the request deserializers proto.ts builds, and a ModelInfer end to end:
 * a singular embedded message sent twice (an input's `contents`, a `parameters` entry's value)
 * is merged as protobuf parses it, where protobufjs kept the last instance alone, and of a
 * oneof's members only the last sent is kept, where protobufjs kept them all and named the last
 * declared.
 */
import { type ServiceError, status } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { inferenceServiceDefinition, PROTO_FILE } from '../../src/grpc/proto.js';
import { useRecordedGrpc } from '../helpers/grpc.js';

// keepCase: the .proto's field names (fp32_contents), as the server's decode uses.
const root = new protobuf.Root().loadSync(PROTO_FILE, { keepCase: true });
const Input = root.lookupType('inference.ModelInferRequest.InferInputTensor');
const Contents = root.lookupType('inference.InferTensorContents');
const Param = root.lookupType('inference.InferParameter');
const deserialize = inferenceServiceDefinition().ModelInfer!.requestDeserialize;

/** A length-delimited field of number `n` (below 16) holding `body`. */
const field = (n: number, body: Uint8Array) =>
  Buffer.concat([Buffer.from([n * 8 + 2]), varint(body.length), body]);
const varint = (value: number) => {
  const bytes: number[] = [];
  for (; value >= 0x80; value >>>= 7) bytes.push((value & 0x7f) | 0x80);
  bytes.push(value);
  return Buffer.from(bytes);
};
const MODEL = field(1, Buffer.from('digits'));
const floats = (n: number, from: number) => Array.from({ length: n }, (_, i) => (from + i) / 256);

/** A ModelInferRequest whose one input sends `contents` once per part (`fp32_contents`). */
function inferWithContents(parts: number[][], rows: number): Buffer {
  const input = Buffer.concat([
    Input.encode({ name: 'input', datatype: 'FP32', shape: [rows, 64] }).finish(),
    // Each part is one serialised InferTensorContents, as field 5 of the same input.
    ...parts.map((values) => field(5, Contents.encode({ fp32_contents: values }).finish())),
  ]);
  return Buffer.concat([MODEL, field(5, input)]);
}

/** A ModelInferRequest with one `parameters` entry, key "k", whose value fields are `values`. */
function inferWithParameter(values: Uint8Array[]): Buffer {
  const entry = Buffer.concat([field(1, Buffer.from('k')), ...values.map((v) => field(2, v))]);
  return Buffer.concat([MODEL, field(4, entry)]);
}

describe('wire-merge: instances merged as protobuf parses them', () => {
  it("an input's contents sent twice are merged: the repeated values of both, in order", () => {
    const bytes = inferWithContents([floats(3, 0), floats(2, 3)], 1);
    const request = deserialize(bytes) as { inputs: { contents: { fp32_contents: number[] } }[] };
    expect(request.inputs[0]!.contents.fp32_contents).toEqual(floats(5, 0));
  });

  it("a parameters entry's value sent twice is merged: the first's member stays when the second sets none", () => {
    const request = deserialize(
      inferWithParameter([Param.encode({ int64_param: 5 }).finish(), new Uint8Array()]),
    ) as { parameters: Record<string, unknown> };
    expect(request.parameters.k).toEqual({ int64_param: 5, parameter_choice: 'int64_param' });
  });

  it("a oneof's members: only the last sent is kept, and named", () => {
    // int64_param = 5, then bool_param = true, in one InferParameter.
    const value = Buffer.concat([
      Param.encode({ int64_param: 5 }).finish(),
      Param.encode({ bool_param: true }).finish(),
    ]);
    const request = deserialize(inferWithParameter([value])) as {
      parameters: Record<string, unknown>;
    };
    expect(request.parameters.k).toEqual({ bool_param: true, parameter_choice: 'bool_param' });
    // And across two instances of the value: the second's member replaces the first's.
    const twice = deserialize(
      inferWithParameter([
        Param.encode({ string_param: 'a' }).finish(),
        Param.encode({ double_param: 2 }).finish(),
      ]),
    ) as { parameters: Record<string, unknown> };
    expect(twice.parameters.k).toEqual({ double_param: 2, parameter_choice: 'double_param' });
  });
});

describe('wire-merge: ModelInfer end to end', () => {
  const grpc = useRecordedGrpc();
  const infer = (bytes: Buffer) =>
    new Promise<{ code: number; details: string; reply?: Buffer }>((resolve) => {
      grpc.raw.makeUnaryRequest(
        '/inference.GRPCInferenceService/ModelInfer',
        (b: Buffer) => b,
        (b: Buffer) => b,
        bytes,
        (error: ServiceError | null, reply?: Buffer) =>
          resolve({
            code: error?.code ?? status.OK,
            details: error?.details ?? '',
            ...(reply ? { reply } : {}),
          }),
      );
    });

  it('two rows sent as two contents of one input answer as the same rows sent as one', async () => {
    const split = await infer(inferWithContents([floats(64, 0), floats(64, 64)], 2));
    expect(split).toMatchObject({ code: status.OK, details: '' });
    const whole = await infer(inferWithContents([floats(128, 0)], 2));
    expect(whole.code).toBe(status.OK);
    expect(split.reply).toEqual(whole.reply);
  });
});

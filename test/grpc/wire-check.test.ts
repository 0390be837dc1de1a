/**
 * wire-check.ts on its own: unknown groups are skipped up to their own end tag, nested ones
 * included, at most MAX_GROUP_DEPTH deep; a known field is never read as a group.
 */
import { gzipSync } from 'node:zlib';
import { loadSync } from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import {
  inferenceServiceDefinition,
  PROTO_FILE,
  PROTO_OPTIONS,
  UndecodableRequest,
} from '../../src/grpc/proto.js';
import {
  checkWire,
  MAX_FIELDS,
  MAX_GROUP_DEPTH,
  type MessageDescriptor,
  MIN_PACKED_VALUES,
  messageRule,
  wireProblem,
} from '../../src/grpc/wire-check.js';
import { mergeInstances } from '../../src/grpc/wire-merge.js';

const loaded = loadSync(PROTO_FILE, PROTO_OPTIONS);
const rule = messageRule(
  'ModelInferRequest',
  'inference',
  (name) => (loaded[`inference.${name}`] as { type?: MessageDescriptor } | undefined)?.type,
);
/** Tags of fields below 16 fit one byte: number * 8 + wire. */
const start = (n: number) => [n * 8 + 3];
const stop = (n: number) => [n * 8 + 4];
const check = (bytes: number[]) => wireProblem(Uint8Array.from(bytes), rule);
/** `depth` unknown groups of field 15, each in the previous one. */
const nested = (depth: number) => [
  ...Array.from({ length: depth }, () => start(15)).flat(),
  ...Array.from({ length: depth }, () => stop(15)).flat(),
];

describe('wireProblem: groups', () => {
  it('skips an unknown group, its fields and nested groups, and reads on after it', () => {
    // Field 15 group: a varint, a fixed32, a string, a nested group of 14; then model_name "A".
    const group = [...start(15), 0x08, 0x07, 0x15, 1, 2, 3, 4, 0x1a, 1, 0x41];
    const inner = [...start(14), 0x08, 0x01, ...stop(14)];
    expect(check([...group, ...inner, ...stop(15), 0x0a, 0x01, 0x41])).toBeUndefined();
    // What follows the group is still checked: model_name with bad UTF-8.
    expect(check([...start(15), ...stop(15), 0x0a, 0x01, 0xff])).toMatch(/not valid UTF-8/);
  });

  it(`skips groups nested ${MAX_GROUP_DEPTH} deep, refuses ${MAX_GROUP_DEPTH + 1}`, () => {
    expect(check(nested(MAX_GROUP_DEPTH))).toBeUndefined();
    expect(check(nested(MAX_GROUP_DEPTH + 1))).toMatch(
      new RegExp(`groups nested more than ${MAX_GROUP_DEPTH} deep`),
    );
  });

  it('refuses a known field as a group, an unmatched end tag, a missing end tag', () => {
    expect(check([...start(1), ...stop(1)])).toMatch(/model_name \(field 1\): group start/);
    expect(check(stop(15))).toMatch(/field 15: a group end with no group started/);
    expect(check(start(15))).toMatch(/field 15 \(a group\): the message ends before/);
    expect(check([...start(15), ...stop(14)])).toMatch(/ended by the end tag of field 14/);
    // Inside a group, values are still bounded by the message.
    expect(check([...start(15), 0x0a, 0x05, 0x41, ...stop(15)])).toMatch(/announces 5 bytes/);
    expect(check([...start(15), 0x0e])).toMatch(/wire type 6 does not exist/);
  });
});

/** A varint's bytes. */
const varintBytes = (n: number): number[] => {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  return [...out, n];
};
/** Field `n` length-delimited (tags of fields below 16 fit one byte). */
const delimited = (n: number, body: number[]) => [n * 8 + 2, ...varintBytes(body.length), ...body];

describe('wireProblem: what a request may make protobufjs build', () => {
  // review44: 7 million empty bytes entries (14 MB) held the event loop 6.7 s and took 1.7 GB in
  // protobufjs's decode; a budget of fields is checked before it runs, as HTTP's JSON budget is.
  it(`more than MAX_FIELDS (${MAX_FIELDS}) fields: refused; as many: read`, () => {
    const entries = (count: number) => Array.from({ length: count }, () => [0x3a, 0x00]).flat();
    expect(check(entries(MAX_FIELDS))).toBeUndefined();
    expect(check(entries(MAX_FIELDS + 1))).toMatch(
      /^ModelInferRequest: more than 65536 fields in the request/,
    );
  });

  it('packed numbers: at most one per 4 bytes of the request, and at least MIN_PACKED_VALUES', () => {
    // One input whose shape holds `count` one-byte varints (16 MB of them decoded to 16 million
    // numbers: 2.4 s).
    const shape = (count: number) => delimited(5, delimited(3, Array(count).fill(1)));
    expect(check(shape(MIN_PACKED_VALUES))).toBeUndefined();
    expect(check(shape(MIN_PACKED_VALUES + 1))).toMatch(
      /InferInputTensor\.shape \(field 3\): more than 4096 packed values in a request of \d+ bytes/,
    );
    // float32 contents fill 4 bytes a value: any number of them within the message size is read.
    const fp32 = (count: number) =>
      delimited(5, delimited(5, delimited(6, Array(4 * count).fill(0))));
    expect(check(fp32(3 * MIN_PACKED_VALUES))).toBeUndefined();
  });
});

describe('wireProblem: a gzip-compressed message sent as plain (gRPC attacker review of 2026-12-04, finding 5)', () => {
  it('names the missing grpc-encoding header after the wire error', () => {
    const gzipped = [...gzipSync(Buffer.from('{"model_name":"digits"}'))];
    const problem = check(gzipped);
    expect(problem).toMatch(
      /; the message starts as gzip data does: a compressed message needs the grpc-encoding: gzip header$/,
    );
    // Any other malformed message says only what is wrong with it.
    expect(check([0x0f])).not.toMatch(/gzip/);
  });
});

describe('wireProblem: map entries', () => {
  /** ModelInferRequest.parameters (field 4) holding one entry: its key, and its value or not. */
  const entry = (withValue: boolean) => {
    const key = [0x0a, 1, 0x78]; // key (1): "x"
    const value = withValue ? [0x12, 2, 0x08, 1] : []; // value (2): InferParameter { bool_param: true }
    const body = [...key, ...value];
    return [0x22, body.length, ...body];
  };

  it('an entry with its value is read; one without it is refused by name, not a TypeError', () => {
    expect(check(entry(true))).toBeUndefined();
    expect(check(entry(false))).toBe(
      'ModelInferRequest.parameters (field 4): a map entry without its value',
    );
  });
});

describe('wireProblem: varints protobufjs reads as 32 bits (gRPC attacker review of 2026-12-06, finding 1)', () => {
  /** `value` as a varint of exactly `size` bytes (padded with continuation bytes). */
  const padded = (value: number, size: number): number[] => {
    const bytes = varintBytes(value);
    while (bytes.length < size) {
      bytes[bytes.length - 1]! |= 0x80;
      bytes.push(0);
    }
    return bytes;
  };
  const text = (s: string) => [...Buffer.from(s)];
  /** An input named "input" whose contents (InferTensorContents) are `contents`. */
  const input = (contents: number[]) =>
    delimited(5, [...delimited(1, text('input')), ...delimited(5, contents)]);

  it('refuses a tag or a length of 6 to 9 bytes; reads one of 1 to 5, or 10', () => {
    for (const size of [1, 5, 10]) {
      expect(check([...padded(1 * 8 + 2, size), 1, 0x61])).toBeUndefined();
      expect(check([0x0a, ...padded(1, size), 0x61])).toBeUndefined();
    }
    for (const size of [6, 7, 8, 9]) {
      expect(check([...padded(1 * 8 + 2, size), 1, 0x61])).toBe(
        `ModelInferRequest: a ${size}-byte varint where a 32-bit one is read (1 to 5 bytes, or 10)`,
      );
      expect(check([0x0a, ...padded(1, size), 0x61])).toMatch(`a ${size}-byte varint`);
    }
  });

  it('refuses an int32 value of 6 to 9 bytes, packed or not; reads a 10-byte one (negative) and a 6-byte int64', () => {
    const minusOne = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    expect(check(input([0x10, ...minusOne]))).toBeUndefined(); // int_contents (2)
    expect(check(input(delimited(2, minusOne)))).toBeUndefined();
    expect(check(input([0x18, ...padded(7, 6)]))).toBeUndefined(); // int64_contents (3)
    expect(check(input([0x10, ...padded(7, 6)]))).toMatch(
      /int_contents \(field 2\): a 6-byte varint/,
    );
    expect(check(input(delimited(2, padded(7, 9))))).toMatch(/int_contents \(field 2\): a 9-byte/);
    expect(check(input([0x08, ...padded(1, 7)]))).toMatch(/bool_contents \(field 1\): a 7-byte/);
  });

  it('refuses a bool beyond 32 bits, which protobufjs would read as false (protobuf: true)', () => {
    expect(check(input([0x08, 0x01]))).toBeUndefined();
    expect(check(input([0x08, ...padded(1, 10)]))).toBeUndefined();
    const twoTo32 = [0x80, 0x80, 0x80, 0x80, 0x10];
    expect(check(input([0x08, ...twoTo32]))).toMatch(
      /bool_contents \(field 1\): a bool beyond 32 bits/,
    );
    expect(check(input(delimited(1, twoTo32)))).toMatch(/a bool beyond 32 bits/);
  });

  it('a field hidden from the check behind a 6-byte tag is never decoded', () => {
    // Unknown field 100 (tag 802) in 6 bytes, its body: a 1-byte length, then 3 bytes and a 0 that
    // protobufjs read as a zero length once it had jumped 10 bytes on, then model_name "digits-cnn".
    const hidden = delimited(1, text('digits-cnn'));
    const body = [0, 0, 0, 0, ...hidden];
    const bytes = [
      ...delimited(1, text('digits')),
      ...[0xa2, 0x86, 0x80, 0x80, 0x80, 0x00],
      body.length,
      ...body,
    ];
    const decoded = inferenceServiceDefinition().ModelInfer!.requestDeserialize(Buffer.from(bytes));
    expect(decoded).toBeInstanceOf(UndecodableRequest);
    expect((decoded as UndecodableRequest).reason).toMatch(/a 6-byte varint/);
  });
});

describe('checkWire and mergeInstances: a rewrite only where protobuf merges', () => {
  const bytesOf = (...fields: number[][]) => Uint8Array.from(fields.flat());
  const model = delimited(1, [...Buffer.from('digits')]);
  /** An input named "input" with one InferTensorContents per body in `contents`. */
  const input = (...contents: number[][]) =>
    delimited(5, [
      ...delimited(1, [...Buffer.from('input')]),
      ...contents.flatMap((c) => delimited(5, c)),
    ]);
  const fp32 = (value: number) =>
    delimited(6, [...new Uint8Array(new Float32Array([value]).buffer)]);

  it('a request holding each singular message once is checked as needing no merge, and handed back as it came', () => {
    const bytes = bytesOf(model, input(fp32(1)), input(fp32(2)));
    expect(checkWire(bytes, rule)).toEqual({ merge: false });
    expect(mergeInstances(bytes, rule)).toBe(bytes);
  });

  it("an input's contents sent twice needs a merge: one contents holding both values, the rest as it came", () => {
    const bytes = bytesOf(model, input(fp32(1), fp32(2)));
    expect(checkWire(bytes, rule)).toEqual({ merge: true });
    const merged = mergeInstances(bytes, rule);
    expect([...merged]).toEqual([...bytesOf(model, input([...fp32(1), ...fp32(2)]))]);
  });
});

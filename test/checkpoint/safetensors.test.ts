import { describe, expect, it, vi } from 'vitest';
import {
  MAX_HEADER_BYTES,
  MAX_METADATA_CHARS,
  MAX_METADATA_ENTRIES,
  type RawTensor,
  rawToBigInt,
  rawToFloat32,
  readSafetensors,
  safetensorsToStateDict,
  stateDictToSafetensors,
  writeSafetensors,
} from '../../src/checkpoint/safetensors.js';
import { NormserveError } from '../../src/errors/index.js';
import type { StateDict } from '../../src/nn/module.js';
import { Tensor } from '../../src/nn/tensor.js';

const FILE = 'bad.safetensors';

/** A file with the given header bytes (length prefix = their length unless overridden). */
function fileFromHeaderBytes(
  header: Uint8Array,
  dataLength = 0,
  declaredLength = BigInt(header.length),
): Uint8Array {
  const out = new Uint8Array(8 + header.length + dataLength);
  new DataView(out.buffer).setBigUint64(0, declaredLength, true);
  out.set(header, 8);
  return out;
}

function fileFromHeader(header: string, dataLength = 0): Uint8Array {
  return fileFromHeaderBytes(new TextEncoder().encode(header), dataLength);
}

function entry(dtype: string, shape: number[], offsets: [number, number]): string {
  return JSON.stringify({ dtype, shape, data_offsets: offsets });
}

/** Asserts reading fails with SAFETENSORS_INVALID, the file name first, and the rule's text. */
function expectInvalid(bytes: Uint8Array, rule: RegExp): void {
  const read = () => readSafetensors(bytes, FILE);
  expect(read).toThrow(/^bad\.safetensors: /);
  expect(read).toThrow(rule);
  let error: unknown;
  try {
    read();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(NormserveError);
  expect((error as NormserveError).code).toBe('SAFETENSORS_INVALID');
}

function le16(values: number[]): Uint8Array {
  const bytes = new Uint8Array(values.length * 2);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => {
    view.setUint16(i * 2, v, true);
  });
  return bytes;
}

function f32Bytes(values: number[]): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => {
    view.setFloat32(i * 4, v, true);
  });
  return bytes;
}

function sampleState(): StateDict {
  return new Map<string, Tensor | bigint>([
    ['scale', Tensor.from([3.5], [])],
    ['empty', Tensor.zeros([0])],
    ['bias', Tensor.from([0.1, -2, 1e-30], [3])],
    [
      'weight',
      Tensor.fromRows([
        [1, 2, 3],
        [-4, 5.25, Number.NEGATIVE_INFINITY],
      ]),
    ],
    ['num_batches_tracked', 7n],
  ]);
}

describe('safetensors round trip', () => {
  it('writes and reads back a state dict with F32 tensors of shapes [], [0], [3], [2,3] and an I64 scalar', () => {
    const state = sampleState();
    const bytes = stateDictToSafetensors(state, { format: 'pt' });
    const file = readSafetensors(bytes, 'model.safetensors');
    expect({ ...file.metadata }).toEqual({ format: 'pt' });
    expect([...file.tensors.keys()]).toEqual([...state.keys()]);
    expect(file.tensors.get('scale')).toMatchObject({ dtype: 'F32', shape: [] });
    expect(file.tensors.get('num_batches_tracked')).toMatchObject({ dtype: 'I64', shape: [] });

    const back = safetensorsToStateDict(file, 'model.safetensors');
    expect([...back.keys()]).toEqual([...state.keys()]);
    for (const [name, value] of state) {
      const got = back.get(name);
      if (typeof value === 'bigint') {
        expect(got).toBe(value);
      } else {
        expect(got).toBeInstanceOf(Tensor);
        expect((got as Tensor).shape).toEqual(value.shape);
        expect((got as Tensor).data).toEqual(value.data);
      }
    }
  });

  it('returns an empty metadata object when the file has none', () => {
    const file = readSafetensors(stateDictToSafetensors(sampleState()), 'model.safetensors');
    expect(Object.keys(file.metadata)).toEqual([]);
  });

  it('round-trips an empty state dict', () => {
    const file = readSafetensors(stateDictToSafetensors(new Map()), 'empty.safetensors');
    expect(file.tensors.size).toBe(0);
  });

  it('round-trips I64 extremes', () => {
    const state: StateDict = new Map([
      ['min', -(2n ** 63n)],
      ['max', 2n ** 63n - 1n],
    ]);
    const back = safetensorsToStateDict(
      readSafetensors(stateDictToSafetensors(state), 'x.safetensors'),
      'x.safetensors',
    );
    expect(back).toEqual(state);
  });

  it('rejects writing an integer outside I64', () => {
    expect(() => stateDictToSafetensors(new Map([['n', 2n ** 63n]]))).toThrow(
      /"n" = 9223372036854775808 does not fit in I64/,
    );
  });
});

describe('safetensors writer layout', () => {
  it('is byte-exact deterministic: same input, same bytes; metadata key order does not matter', () => {
    const a = stateDictToSafetensors(sampleState(), { format: 'pt', b: '2' });
    const b = stateDictToSafetensors(sampleState(), { b: '2', format: 'pt' });
    expect(b).toEqual(a);
    expect(stateDictToSafetensors(sampleState(), { format: 'pt', b: '2' })).toEqual(a);
  });

  it('writes a compact header, __metadata__ first, padded with spaces so data is 8-byte aligned', () => {
    const bytes = writeSafetensors(
      [
        ['b', { dtype: 'F32', shape: [1], bytes: f32Bytes([1]) }],
        ['a', { dtype: 'I64', shape: [], bytes: new Uint8Array(8) }],
      ],
      { format: 'pt' },
    );
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    const json =
      '{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"I64","shape":[],"data_offsets":[4,12]}}';
    expect(header).toBe(json.padEnd(n, ' '));
    expect(n - json.length).toBeLessThan(8);
    expect(bytes.length).toBe(8 + n + 12);
  });

  it('rejects duplicate names, the reserved __metadata__ name and byte lengths that do not match the shape', () => {
    const t: RawTensor = { dtype: 'F32', shape: [1], bytes: f32Bytes([1]) };
    expect(() =>
      writeSafetensors([
        ['a', t],
        ['a', t],
      ]),
    ).toThrow(/duplicate tensor name "a"/);
    expect(() => writeSafetensors([['__metadata__', t]])).toThrow(/reserved/);
    expect(() => writeSafetensors([['a', { ...t, shape: [2] }]])).toThrow(/needs 8 bytes, has 4/);
  });
});

describe('reference implementation compatibility', () => {
  // What safetensors' Python `save_file({"a": torch.tensor([1.0, -2.0])})` writes: serde_json's
  // compact header, padded with spaces to a multiple of 8, then the data.
  const header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const padded = header.padEnd(Math.ceil(header.length / 8) * 8, ' ');
  const reference = new Uint8Array([
    ...fileFromHeader(padded).subarray(0, 8 + padded.length),
    ...f32Bytes([1, -2]),
  ]);

  it('reads a file laid out as the reference writer lays it out', () => {
    expect(padded.length).toBe(56);
    const file = readSafetensors(reference, 'reference.safetensors');
    expect([...file.tensors.keys()]).toEqual(['a']);
    const a = file.tensors.get('a')!;
    expect(a.dtype).toBe('F32');
    expect(a.shape).toEqual([2]);
    expect(Array.from(rawToFloat32(a))).toEqual([1, -2]);
  });

  it('writes exactly the bytes the reference writer would', () => {
    const bytes = writeSafetensors([['a', { dtype: 'F32', shape: [2], bytes: f32Bytes([1, -2]) }]]);
    expect(bytes).toEqual(reference);
  });
});

describe('dtype conversions', () => {
  it('F16 converts exactly: 1, -2, 65504, 2^-24 subnormal, ±Inf, NaN, -0, smallest normal', () => {
    const t: RawTensor = {
      dtype: 'F16',
      shape: [10],
      bytes: le16([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0xfc00, 0x7e00, 0x8000, 0x0400, 0x03ff]),
    };
    const v = Array.from(rawToFloat32(t));
    expect(v.slice(0, 4)).toEqual([1, -2, 65504, 2 ** -24]);
    expect(v[4]).toBe(Number.POSITIVE_INFINITY);
    expect(v[5]).toBe(Number.NEGATIVE_INFINITY);
    expect(v[6]).toBeNaN();
    expect(Object.is(v[7], -0)).toBe(true);
    expect(v[8]).toBe(2 ** -14);
    expect(v[9]).toBe(1023 * 2 ** -24);
  });

  it('BF16 converts exactly: 1.5, -0.25', () => {
    const v = rawToFloat32({ dtype: 'BF16', shape: [2], bytes: le16([0x3fc0, 0xbe80]) });
    expect(Array.from(v)).toEqual([1.5, -0.25]);
  });

  it('F32 reads little-endian values unchanged', () => {
    const v = rawToFloat32({ dtype: 'F32', shape: [2, 1], bytes: f32Bytes([0.1, -3]) });
    expect(Array.from(v)).toEqual([Math.fround(0.1), -3]);
  });

  it('F64 rounds to float32 with Math.fround', () => {
    const bytes = new Uint8Array(24);
    const view = new DataView(bytes.buffer);
    [0.1, -3.5, 1e300].forEach((x, i) => {
      view.setFloat64(i * 8, x, true);
    });
    const v = Array.from(rawToFloat32({ dtype: 'F64', shape: [3], bytes }));
    expect(v).toEqual([Math.fround(0.1), -3.5, Number.POSITIVE_INFINITY]);
  });

  it('I32 and I64 convert to float32', () => {
    const i32 = new Uint8Array(8);
    new DataView(i32.buffer).setInt32(0, -7, true);
    new DataView(i32.buffer).setInt32(4, 2147483647, true);
    expect(Array.from(rawToFloat32({ dtype: 'I32', shape: [2], bytes: i32 }))).toEqual([
      -7, 2147483648,
    ]);
    const i64 = new Uint8Array(16);
    new DataView(i64.buffer).setBigInt64(0, -5n, true);
    new DataView(i64.buffer).setBigInt64(8, 2n ** 40n, true);
    expect(Array.from(rawToFloat32({ dtype: 'I64', shape: [2], bytes: i64 }))).toEqual([
      -5,
      2 ** 40,
    ]);
  });

  it('reads values at any byte offset (unaligned views)', () => {
    const buffer = new Uint8Array(5);
    buffer.set(f32Bytes([2.5]), 1);
    expect(
      Array.from(rawToFloat32({ dtype: 'F32', shape: [], bytes: buffer.subarray(1) })),
    ).toEqual([2.5]);
  });

  it('rawToBigInt reads I64 and I32 scalars of shape [] or [1]', () => {
    const i64 = new Uint8Array(8);
    new DataView(i64.buffer).setBigInt64(0, -3n, true);
    expect(rawToBigInt({ dtype: 'I64', shape: [], bytes: i64 }, 'n', FILE)).toBe(-3n);
    const i32 = new Uint8Array(4);
    new DataView(i32.buffer).setInt32(0, 42, true);
    expect(rawToBigInt({ dtype: 'I32', shape: [1], bytes: i32 }, 'n', FILE)).toBe(42n);
  });

  it('rawToBigInt rejects float dtypes and non-scalar shapes', () => {
    expect(() => rawToBigInt({ dtype: 'F32', shape: [], bytes: f32Bytes([1]) }, 'n', FILE)).toThrow(
      /^bad\.safetensors: tensor "n" must be an integer scalar .* got F32 of shape \[\]/,
    );
    expect(() =>
      rawToBigInt({ dtype: 'I64', shape: [2], bytes: new Uint8Array(16) }, 'n', FILE),
    ).toThrow(/got I64 of shape \[2\]/);
  });

  it('safetensorsToStateDict converts F16 to a float32 Tensor and an I32 scalar to a bigint', () => {
    const i32 = new Uint8Array(4);
    new DataView(i32.buffer).setInt32(0, 9, true);
    const bytes = writeSafetensors([
      ['h', { dtype: 'F16', shape: [2], bytes: le16([0x3c00, 0xc000]) }],
      ['n', { dtype: 'I32', shape: [], bytes: i32 }],
    ]);
    const state = safetensorsToStateDict(readSafetensors(bytes, FILE), FILE);
    expect(Array.from((state.get('h') as Tensor).data)).toEqual([1, -2]);
    expect(state.get('n')).toBe(9n);
  });

  it('safetensorsToStateDict rejects integer tensors that are not scalars', () => {
    const bytes = writeSafetensors([
      ['idx', { dtype: 'I64', shape: [2], bytes: new Uint8Array(16) }],
    ]);
    expect(() => safetensorsToStateDict(readSafetensors(bytes, FILE), FILE)).toThrow(
      /^bad\.safetensors: tensor "idx" is I64 of shape \[2\]; integer tensors are only supported as scalars/,
    );
  });
});

describe('reader rule 1: header length prefix', () => {
  it('rejects a file shorter than 8 bytes', () => {
    expectInvalid(new Uint8Array(4), /file is 4 bytes, too short for the 8-byte header length/);
  });

  it('reads a header of exactly MAX_HEADER_BYTES (8 MiB) and refuses one byte more', () => {
    expect(MAX_HEADER_BYTES).toBe(8 * 1024 * 1024);
    const header = new TextEncoder().encode(`{}${' '.repeat(MAX_HEADER_BYTES - 2)}`);
    expect(readSafetensors(fileFromHeaderBytes(header), FILE).tensors.size).toBe(0);
    const over = fileFromHeaderBytes(new TextEncoder().encode('{}'), 0, 8_388_609n);
    expectInvalid(over, /header length 8388609 exceeds the limit of 8388608 bytes/);
  });

  it('refuses the 100,000,000-byte header the reference implementation would read', () => {
    const bytes = fileFromHeaderBytes(new TextEncoder().encode('{}'), 0, 100_000_000n);
    expectInvalid(bytes, /header length 100000000 exceeds the limit of 8388608 bytes/);
  });

  it('rejects a huge u64 header length without losing precision', () => {
    const bytes = fileFromHeaderBytes(new Uint8Array(0), 0, 2n ** 64n - 1n);
    expectInvalid(bytes, /header length 18446744073709551615 exceeds the limit/);
  });

  it('rejects a header length that runs past the end of the file', () => {
    const bytes = fileFromHeaderBytes(new TextEncoder().encode('{}'), 0, 100n);
    expectInvalid(
      bytes,
      /header length 100 exceeds the 2 bytes after the length prefix \(file is 10 bytes\)/,
    );
  });
});

describe('reader rule 2: UTF-8 JSON object header', () => {
  it('rejects a header that is not valid UTF-8', () => {
    const header = new Uint8Array([
      ...new TextEncoder().encode('{"'),
      0xff,
      ...new TextEncoder().encode('":1}'),
    ]);
    expectInvalid(fileFromHeaderBytes(header), /header is not valid UTF-8/);
  });

  it('rejects a header that is not valid JSON', () => {
    expectInvalid(fileFromHeader('{"a":'), /header is not valid JSON/);
  });

  it("rejects a header that does not start with '{' (array, leading space, byte order mark, empty)", () => {
    expectInvalid(fileFromHeader('[1, 2]  '), /header must start with '\{', first byte is 0x5b/);
    expectInvalid(fileFromHeader(' {}'), /header must start with '\{', first byte is 0x20/);
    expectInvalid(
      fileFromHeaderBytes(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])),
      /header must start with '\{', first byte is 0xef/,
    );
    expectInvalid(fileFromHeader(''), /header is empty, expected a JSON object/);
  });

  it('accepts a header padded with trailing spaces', () => {
    expect(readSafetensors(fileFromHeader('{}      '), FILE).tensors.size).toBe(0);
  });
});

describe('reader rule 3: __metadata__', () => {
  const metadataOf = (entries: number, value = '') =>
    `{"__metadata__":{${Array.from({ length: entries }, (_, i) => `"k${i}":${JSON.stringify(value)}`).join(',')}}}`;

  it('reads 1,024 metadata entries and refuses 1,025 before JSON.parse sees the header', () => {
    expect(MAX_METADATA_ENTRIES).toBe(1024);
    expect(
      Object.keys(readSafetensors(fileFromHeader(metadataOf(1024)), FILE).metadata),
    ).toHaveLength(1024);
    const parse = vi.spyOn(JSON, 'parse');
    try {
      expectInvalid(
        fileFromHeader(metadataOf(1025)),
        /__metadata__ has more than the limit of 1024 entries/,
      );
      expect(parse).not.toHaveBeenCalled();
    } finally {
      parse.mockRestore();
    }
  });

  it('counts a __metadata__ key spelled with escapes, and nothing in nested values or tensors', () => {
    const escaped = metadataOf(1025).replace('"__metadata__"', '"\\u005f_metadata__"');
    expect(escaped.startsWith('{"\\u005f_metadata__"')).toBe(true);
    expectInvalid(fileFromHeader(escaped), /more than the limit of 1024 entries/);
    // 2,000 keys inside a tensor entry's object are not metadata (refused as unexpected keys).
    const keys = Array.from({ length: 2000 }, (_, i) => `"x${i}":1`).join(',');
    expectInvalid(
      fileFromHeader(`{"__metadata__":{"a":"b"},"t":{${keys}}}`),
      /tensor "t" is missing dtype, shape, data_offsets/,
    );
  });

  it('refuses metadata longer than 1 MiB, and an unterminated one is invalid JSON', () => {
    expect(MAX_METADATA_CHARS).toBe(1024 * 1024);
    expectInvalid(
      fileFromHeader(metadataOf(2, 'x'.repeat(MAX_METADATA_CHARS / 2))),
      /__metadata__ is 1048593 characters long, more than the limit of 1048576/,
    );
    expectInvalid(fileFromHeader('{"__metadata__":{"a":"b'), /header is not valid JSON/);
  });

  it('rejects __metadata__ that is not an object', () => {
    expectInvalid(
      fileFromHeader('{"__metadata__":["pt"]}'),
      /__metadata__ must be an object mapping strings to strings, got an array/,
    );
  });

  it('rejects a non-string __metadata__ value', () => {
    expectInvalid(
      fileFromHeader('{"__metadata__":{"epoch":3}}'),
      /__metadata__ value of "epoch" must be a string, got 3$/,
    );
  });
});

describe('reader rule 4: tensor entries', () => {
  it('rejects known safetensors dtypes that are not supported (U8, BOOL, F8_E4M3)', () => {
    for (const dtype of ['U8', 'BOOL', 'F8_E4M3']) {
      expectInvalid(
        fileFromHeader(`{"t":${entry(dtype, [1], [0, 1])}}`, 1),
        new RegExp(`unsupported dtype ${dtype} for tensor "t"`),
      );
    }
  });

  it('rejects an unknown dtype', () => {
    expectInvalid(
      fileFromHeader(`{"t":${entry('F128', [], [0, 16])}}`, 16),
      /unknown dtype "F128" for tensor "t"/,
    );
  });

  it('rejects an entry that is not an object', () => {
    expectInvalid(
      fileFromHeader('{"t":[1]}'),
      /tensor "t" must be an object with dtype, shape and data_offsets, got an array/,
    );
  });

  it('rejects a missing field and an unexpected field', () => {
    expectInvalid(
      fileFromHeader('{"t":{"dtype":"F32","shape":[]}}'),
      /tensor "t" is missing data_offsets/,
    );
    expectInvalid(
      fileFromHeader('{"t":{"dtype":"F32","shape":[],"data_offsets":[0,4],"stride":[1]}}', 4),
      /tensor "t" has unexpected key\(s\) "stride"/,
    );
  });

  it('rejects shapes that are not arrays of non-negative safe integers', () => {
    expectInvalid(
      fileFromHeader(`{"t":${entry('F32', [-1], [0, 0])}}`),
      /shape of tensor "t" must be an array of non-negative integers, got \[-1\]/,
    );
    expectInvalid(
      fileFromHeader('{"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', 4),
      /shape of tensor "t" .* got \[1.5\]/,
    );
    expectInvalid(
      fileFromHeader('{"t":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,4]}}', 4),
      /shape of tensor "t"/,
    );
    expectInvalid(
      fileFromHeader('{"t":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}', 8),
      /shape of tensor "t" .* got "2"/,
    );
  });

  it('rejects data_offsets that are not [begin, end] with 0 ≤ begin ≤ end', () => {
    const rule = /data_offsets of tensor "t" must be \[begin, end\] with integers 0 ≤ begin ≤ end/;
    expectInvalid(fileFromHeader(`{"t":${entry('F32', [0], [4, 0])}}`), rule);
    expectInvalid(
      fileFromHeader('{"t":{"dtype":"F32","shape":[],"data_offsets":[0,4,8]}}', 4),
      rule,
    );
    expectInvalid(fileFromHeader('{"t":{"dtype":"F32","shape":[],"data_offsets":[-4,0]}}'), rule);
  });
});

describe('reader rule 5: byte length matches shape and dtype', () => {
  it('rejects data_offsets spanning the wrong number of bytes', () => {
    expectInvalid(
      fileFromHeader(`{"t":${entry('F32', [2, 3], [0, 20])}}`, 20),
      /tensor "t" has data_offsets \[0, 20\] spanning 20 bytes, but F32 of shape \[2,3\] needs 24 bytes \(6 elements × 4\)/,
    );
  });

  it('does not overflow on absurd shapes', () => {
    expectInvalid(
      fileFromHeader(`{"t":${entry('F64', [2 ** 40, 2 ** 40], [0, 0])}}`),
      /needs 9671406556917033397649408 bytes/,
    );
  });
});

describe('reader: what the file wrote is echoed short, on one line', () => {
  /** The message of reading `bytes`, checked to be one printable line of bounded length. */
  function boundedMessage(bytes: Uint8Array): string {
    let message = '';
    try {
      readSafetensors(bytes, FILE);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^bad\.safetensors: /);
    expect(message).not.toMatch(/[\n\r\u2028\u2029]/);
    expect(message.length).toBeLessThan(400);
    return message;
  }

  const long = 'n'.repeat(100_000);
  const cut = `"${'n'.repeat(64)}…"`;

  it('a 100 KB tensor name, in every message that names a tensor', () => {
    const name = JSON.stringify(long);
    const named = [
      [`{${name}:[1]}`, `tensor ${cut} must be an object`],
      [`{${name}:{"dtype":"F32"}}`, `tensor ${cut} is missing shape, data_offsets`],
      [`{${name}:{"dtype":"F32","shape":[],"data_offsets":[0,4],"x":1}}`, `tensor ${cut} has`],
      [`{${name}:${entry('F128', [], [0, 16])}}`, `unknown dtype "F128" for tensor ${cut}`],
      [`{${name}:${entry('U8', [1], [0, 1])}}`, `unsupported dtype U8 for tensor ${cut}`],
      [`{${name}:${entry('F32', [-1], [0, 0])}}`, `shape of tensor ${cut}`],
      [`{${name}:${entry('F32', [], [4, 0])}}`, `data_offsets of tensor ${cut}`],
      [`{${name}:${entry('F32', [2], [0, 4])}}`, `tensor ${cut} has data_offsets [0, 4]`],
      [`{${name}:${entry('F32', [1], [4, 8])}}`, `the first tensor ${cut} begins`],
      [
        `{"a":${entry('F32', [1], [0, 4])},${name}:${entry('F32', [1], [8, 12])}}`,
        `and tensor ${cut}`,
      ],
      [
        `{"a":${entry('F32', [2], [0, 8])},${name}:${entry('F32', [1], [4, 8])}}`,
        `overlap: tensor ${cut}`,
      ],
      [`{${name}:${entry('F32', [2], [0, 8])}}`, `(last tensor ${cut} ends at 8)`],
      [`{"__metadata__":{${name}:1}}`, `__metadata__ value of ${cut} must be a string`],
    ] as const;
    for (const [header, expected] of named) {
      const dataLength = header.includes('[8,12]')
        ? 12
        : header.includes('"U8"')
          ? 1
          : header.includes('[4,8]')
            ? 8
            : 4;
      expect(boundedMessage(fileFromHeader(header, dataLength))).toContain(expected);
    }
  });

  it('a newline, a quote and a line separator in a name are escaped', () => {
    const name = JSON.stringify('a\nb"c\u2028d');
    expect(boundedMessage(fileFromHeader(`{${name}:${entry('F32', [1], [4, 8])}}`, 8))).toContain(
      'the first tensor "a\\nb\\"c\\u2028d" begins',
    );
  });

  it('a shape of 10,000 sizes, a long dtype, long keys and long offsets', () => {
    const sizes = Array.from({ length: 10_000 }, () => 1);
    const shape = JSON.stringify(sizes);
    expect(boundedMessage(fileFromHeader(`{"t":${entry('F32', sizes, [0, 8])}}`, 8))).toContain(
      `but F32 of shape ${shape.slice(0, 64)}… needs 4 bytes (1 elements × 4)`,
    );
    expect(
      boundedMessage(fileFromHeader(`{"t":${entry('F32', [...sizes, -1], [0, 8])}}`, 8)),
    ).toContain(`non-negative integers, got ${shape.slice(0, 64)}…`);
    expect(
      boundedMessage(fileFromHeader(`{"t":{"dtype":"F32","shape":[],"data_offsets":${shape}}}`, 4)),
    ).toContain(`got ${shape.slice(0, 64)}…`);
    expect(boundedMessage(fileFromHeader(`{"t":${entry(long, [], [0, 4])}}`, 4))).toContain(
      `unknown dtype ${cut} for tensor "t"`,
    );
    const keys = Array.from({ length: 50 }, (_, i) => `${JSON.stringify(long + i)}:1`);
    expect(
      boundedMessage(
        fileFromHeader(
          `{"t":{"dtype":"F32","shape":[],"data_offsets":[0,4],${keys.join(',')}}}`,
          4,
        ),
      ),
    ).toMatch(/has unexpected key\(s\) "n+…", … and \d+ more \(allowed: /);
  });

  it('a shape of 400,000 sizes near 2^53 is refused without multiplying it out', () => {
    // Multiplied out, the product grew a digit a size: 31 s for 100,000 sizes, minutes for these.
    const sizes = Array.from({ length: 400_000 }, () => Number.MAX_SAFE_INTEGER);
    const started = performance.now();
    expect(boundedMessage(fileFromHeader(`{"t":${entry('F32', sizes, [0, 4])}}`, 4))).toContain(
      `needs more than ${Number.MAX_SAFE_INTEGER} bytes`,
    );
    expect(performance.now() - started).toBeLessThan(5000);
    // A zero among them makes an empty tensor, whatever the others.
    expect(() =>
      readSafetensors(fileFromHeader(`{"t":${entry('F32', [...sizes, 0], [0, 0])}}`), FILE),
    ).not.toThrow();
  });
});

describe('reader rule 6: contiguous data offsets', () => {
  it('rejects a gap before the first tensor', () => {
    expectInvalid(
      fileFromHeader(`{"t":${entry('F32', [1], [4, 8])}}`, 8),
      /gap: the first tensor "t" begins at data offset 4, expected 0/,
    );
  });

  it('rejects a gap between two tensors, naming both', () => {
    expectInvalid(
      fileFromHeader(`{"b":${entry('F32', [1], [8, 12])},"a":${entry('F32', [1], [0, 4])}}`, 12),
      /gap of 4 bytes between tensor "a" \(ends at 4\) and tensor "b" \(begins at 8\)/,
    );
  });

  it('rejects overlapping tensors, naming both', () => {
    expectInvalid(
      fileFromHeader(`{"a":${entry('F32', [2], [0, 8])},"b":${entry('F32', [1], [4, 8])}}`, 8),
      /overlap: tensor "b" \[4, 8\] overlaps tensor "a" \[0, 8\]/,
    );
  });

  it('allows zero-size tensors to share an offset and keeps data-offset order', () => {
    const file = readSafetensors(
      fileFromHeader(
        `{"c":${entry('F32', [1], [4, 8])},"e":${entry('F32', [0], [4, 4])},"a":${entry('F32', [1], [0, 4])}}`,
        8,
      ),
      FILE,
    );
    expect([...file.tensors.keys()]).toEqual(['a', 'e', 'c']);
  });
});

describe('reader rule 7: data section ends at the last tensor', () => {
  it('rejects trailing bytes', () => {
    expectInvalid(
      fileFromHeader(`{"t":${entry('F32', [1], [0, 4])}}`, 6),
      /2 trailing bytes after the last tensor \(tensors need 4 bytes of data, 6 follow the header\)/,
    );
  });

  it('rejects a truncated file', () => {
    expectInvalid(
      fileFromHeader(`{"t":${entry('F32', [2], [0, 8])}}`, 5),
      /truncated: tensors need 8 bytes of data \(last tensor "t" ends at 8\), but only 5 bytes follow the header/,
    );
  });

  it('rejects data after a header with no tensors', () => {
    expectInvalid(fileFromHeader('{}', 3), /3 trailing bytes after the last tensor/);
  });
});

describe('reader rule 8: unique names', () => {
  it('rejects a duplicate tensor name', () => {
    expectInvalid(
      fileFromHeader(`{"a":${entry('F32', [1], [0, 4])},"a":${entry('F32', [1], [4, 8])}}`, 8),
      /duplicate tensor name "a" in header/,
    );
  });

  it('rejects a duplicate written with a JSON escape', () => {
    expectInvalid(
      fileFromHeader(
        `{"a":${entry('F32', [1], [0, 4])},"\\u0061":${entry('F32', [1], [4, 8])}}`,
        8,
      ),
      /duplicate tensor name "a"/,
    );
  });

  it('finds a duplicate 100,000 objects deep in one pass and names its path briefly', () => {
    // The scan copied the path into every nested object: quadratic (10,000 levels took 2 s,
    // 30,000 exhausted a 4 GB heap); each object now links to its parent.
    const depth = 100_000;
    const header = `${'{"a":'.repeat(depth)}{"b":1,"b":2}${'}'.repeat(depth)}`;
    expectInvalid(
      fileFromHeader(header),
      /^bad\.safetensors: duplicate key "b" in "a\.a\.a\.…\.a\.a\.a" \(100000 objects deep\)$/,
    );
  });

  it('rejects duplicate __metadata__ and duplicate keys inside an entry', () => {
    expectInvalid(
      fileFromHeader('{"__metadata__":{},"__metadata__":{}}'),
      /duplicate key "__metadata__" in header/,
    );
    expectInvalid(
      fileFromHeader('{"t":{"dtype":"F32","dtype":"F64","shape":[],"data_offsets":[0,8]}}', 8),
      /duplicate key "dtype" in "t"/,
    );
  });

  it('does not mistake string values or escaped quotes for keys', () => {
    const file = readSafetensors(
      fileFromHeader(
        `{"__metadata__":{"x":"a\\",\\"x","y":"{\\"x\\":1}"},"x":${entry('F32', [], [0, 4])}}`,
        4,
      ),
      FILE,
    );
    expect(file.metadata['x']).toBe('a","x');
    expect([...file.tensors.keys()]).toEqual(['x']);
  });
});

describe('reader safety', () => {
  it('treats __proto__ as an ordinary name without polluting prototypes', () => {
    const bytes = fileFromHeader(
      `{"__metadata__":{"__proto__":"m"},"__proto__":${entry('F32', [], [0, 4])}}`,
      4,
    );
    const file = readSafetensors(bytes, FILE);
    expect(Object.hasOwn(file.metadata, '__proto__')).toBe(true);
    expect(Object.getOwnPropertyDescriptor(file.metadata, '__proto__')?.value).toBe('m');
    expect(Object.getPrototypeOf(file.metadata)).toBeNull();
    expect([...file.tensors.keys()]).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>)['dtype']).toBeUndefined();
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
  });

  it('checks a __proto__ tensor and __proto__ metadata like any other (a zod record would skip them)', () => {
    expectInvalid(
      fileFromHeader(`{"__proto__":${entry('U8', [1], [0, 1])}}`, 1),
      /unsupported dtype U8 for tensor "__proto__"/,
    );
    expectInvalid(
      fileFromHeader('{"__metadata__":{"__proto__":{"format":"pt"}}}'),
      /__metadata__ value of "__proto__" must be a string, got an object/,
    );
  });

  it('reads a size written -0 as 0', () => {
    const header = '{"t":{"dtype":"F32","shape":[1,-0],"data_offsets":[0,0]}}';
    const file = readSafetensors(fileFromHeader(header), FILE);
    expect(Object.is(file.tensors.get('t')!.shape[1], 0)).toBe(true);
  });
});

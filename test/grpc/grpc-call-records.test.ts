/**
 * Every gRPC call is logged and counted exactly once, whatever ends it, and bad bytes are a client
 * error: a message that is no well-formed request (not protobuf, a field longer than the message,
 * a field sent with the wrong wire type) is INVALID_ARGUMENT with a message saying why, never
 * grpc-js's INTERNAL "Error deserializing request"; a message over the size limit is
 * RESOURCE_EXHAUSTED, counted; a call cancelled before its handler ran (grpc-js then never runs
 * it) is CANCELLED, counted. Real clients: @grpc/grpc-js sending raw bytes, and a bare HTTP/2
 * client for the call that is cancelled after its headers arrive and before its message does.
 */
import http2 from 'node:http2';
import { type Metadata, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { DEADLINE_SLACK_MS, endedStatus } from '../../src/grpc/call-recorder.js';
import { waitFor } from '../helpers/admin.js';
import { useRecordedGrpc } from '../helpers/grpc.js';

const LIMIT_BYTES = 65_536;
const grpc = useRecordedGrpc({ env: { BODY_LIMIT_BYTES: String(LIMIT_BYTES) } });
const { records, lines } = grpc;

/** Sends `bytes` as the request message of `method`, unencoded. */
const send = (method: string, bytes: Buffer) =>
  new Promise<{
    code: number;
    details: string;
    normserveCode?: string;
    requestId?: unknown;
    reply?: Buffer;
  }>((resolve) => {
    grpc.raw.makeUnaryRequest(
      `/inference.GRPCInferenceService/${method}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      (error: (Error & { code: number; details: string; metadata: Metadata }) | null, reply) => {
        if (!error) resolve({ code: status.OK, details: '', reply: reply as Buffer });
        else {
          const normserveCode = error.metadata.get('normserve-code')[0];
          resolve({
            code: error.code,
            details: error.details,
            requestId: error.metadata.get('x-request-id')[0],
            ...(normserveCode === undefined ? {} : { normserveCode: String(normserveCode) }),
          });
        }
      },
    );
  });

/** One protobuf field: its tag (number, wire type) and its encoded value. */
const varint = (n: number): number[] => {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  out.push(n);
  return out;
};
const field = (number: number, wire: number, value: Buffer | number): Buffer =>
  typeof value === 'number'
    ? Buffer.from([...varint(number * 8 + wire), ...varint(value)])
    : Buffer.concat([Buffer.from([...varint(number * 8 + wire), ...varint(value.length)]), value]);

describe('bytes that are no well-formed request', () => {
  it('not protobuf, or the single byte 0x0c (an end-group tag): INVALID_ARGUMENT, logged and counted, on every method', async () => {
    const garbage = Buffer.from('this is not protobuf at all \xff\xff\xff', 'latin1');
    const methods = ['ModelInfer', 'ModelMetadata', 'ModelReady', 'ServerMetadata', 'ServerLive'];
    for (const method of methods) {
      for (const bytes of [garbage, Buffer.from([0x0c])]) {
        const res = await send(method, bytes);
        expect(res.code, `${method}: ${res.details}`).toBe(status.INVALID_ARGUMENT);
        expect(res.normserveCode).toBe('INVALID_INPUT');
        expect(res.details).toMatch(/^request: not a well-formed \w+ request message: /);
      }
    }
    const expected = methods.flatMap((method) =>
      Array(2).fill({ method, code: 'INVALID_ARGUMENT', model: '' }),
    );
    expect(records).toEqual(expected);
    expect(lines.map((l) => [l.level, l.grpcMethod, l.code])).toEqual(
      expected.map((r) => ['info', r.method, r.code]),
    );
    expect(lines.every((l) => l.error?.startsWith('request: not a well-formed'))).toBe(true);
  });

  it('reads strictly: a field longer than the message, a wrong wire type, a group, an 11-byte varint, bad UTF-8', async () => {
    const cases: [Buffer, RegExp][] = [
      // 127 bytes announced, one sent: was read as model "A".
      [Buffer.from([0x0a, 0x7f, 0x41]), /model_name \(field 1\): announces 127 bytes, .* 1 left/],
      // Field 1 (a string) as fixed32: was read as a string.
      [
        Buffer.from([0x0d, 1, 2, 3, 4]),
        /model_name \(field 1\): sent as fixed32, its type is length-delimited/,
      ],
      [Buffer.from([0x0b, 0x0b]), /group start/],
      // An unknown field 15, a varint of 11 bytes.
      [Buffer.from([0x78, ...Array(10).fill(0xff), 0x01]), /varint longer than 10 bytes/],
      [Buffer.from([0x0a, 0x02, 0xc3, 0x28]), /model_name \(field 1\): not valid UTF-8/],
      // A field of a nested message: inputs[].shape (int64) as length-delimited bytes that are
      // no whole varints.
      [field(5, 2, field(3, 2, Buffer.from([0xff]))), /InferInputTensor\.shape \(field 3\)/],
    ];
    for (const [bytes, message] of cases) {
      const res = await send('ModelInfer', bytes);
      expect(res.code, res.details).toBe(status.INVALID_ARGUMENT);
      expect(res.details).toMatch(message);
    }
    expect(records.map((r) => r.code)).toEqual(cases.map(() => 'INVALID_ARGUMENT'));
  });

  it('still reads what protobuf allows: a repeated number packed or not, unknown fields', async () => {
    const values = new Float32Array(64).fill(0.5);
    const tensor = (shape: Buffer) =>
      field(
        5,
        2,
        Buffer.concat([field(1, 2, Buffer.from('input')), field(2, 2, Buffer.from('FP32')), shape]),
      );
    const unpacked = Buffer.concat([field(3, 0, 1), field(3, 0, 64)]);
    const packed = field(3, 2, Buffer.from([1, 64]));
    const replies: number[][] = [];
    for (const shape of [unpacked, packed]) {
      const res = await send(
        'ModelInfer',
        Buffer.concat([
          field(1, 2, Buffer.from('digits')),
          tensor(shape),
          field(7, 2, Buffer.from(values.buffer)),
          field(99, 0, 5), // unknown
        ]),
      );
      expect(res.code, res.details).toBe(status.OK);
      replies.push([...res.reply!]);
    }
    expect(replies[0]).toEqual(replies[1]);
    expect(records).toEqual([
      { method: 'ModelInfer', code: 'OK', model: 'digits' },
      { method: 'ModelInfer', code: 'OK', model: 'digits' },
    ]);
  });

  it('skips an unknown field sent as a group (groups nested in it included), as protobuf does', async () => {
    const values = new Float32Array(64).fill(0.5);
    const tensor = field(
      5,
      2,
      Buffer.concat([
        field(1, 2, Buffer.from('input')),
        field(2, 2, Buffer.from('FP32')),
        field(3, 2, Buffer.from([1, 64])),
      ]),
    );
    const base = [
      field(1, 2, Buffer.from('digits')),
      tensor,
      field(7, 2, Buffer.from(values.buffer)),
    ];
    // Field 103: start (wire 3), a varint of field 1, a nested group of field 2 holding a string,
    // its end (wire 4), the end of 103.
    const group = Buffer.concat([
      Buffer.from(varint(103 * 8 + 3)),
      field(1, 0, 7),
      Buffer.from(varint(2 * 8 + 3)),
      field(1, 2, Buffer.from('x')),
      Buffer.from(varint(2 * 8 + 4)),
      Buffer.from(varint(103 * 8 + 4)),
    ]);
    const plain = await send('ModelInfer', Buffer.concat(base));
    const grouped = await send('ModelInfer', Buffer.concat([base[0]!, group, ...base.slice(1)]));
    expect(plain.code, plain.details).toBe(status.OK);
    expect(grouped.code, grouped.details).toBe(status.OK);
    expect([...grouped.reply!]).toEqual([...plain.reply!]);
  });

  it('refuses a group of a known field, and an unknown group without its own end tag', async () => {
    const start = (n: number) => Buffer.from(varint(n * 8 + 3));
    const stop = (n: number) => Buffer.from(varint(n * 8 + 4));
    const cases: [Buffer, RegExp][] = [
      // model_name (field 1) as a group, well formed: still no string.
      [Buffer.concat([start(1), stop(1)]), /model_name \(field 1\): group start/],
      [stop(103), /field 103: a group end with no group started/],
      [Buffer.concat([start(103), field(1, 0, 7)]), /field 103 \(a group\): the message ends/],
      [
        Buffer.concat([start(103), stop(104)]),
        /field 103 \(a group\): ended by the end tag of field 104/,
      ],
      // The inner group's end is missing: 103's end tag ends it with the wrong number.
      [Buffer.concat([start(103), start(2), stop(103)]), /ended by the end tag of field 103/],
    ];
    for (const [bytes, message] of cases) {
      const res = await send('ModelInfer', bytes);
      expect(res.code, res.details).toBe(status.INVALID_ARGUMENT);
      expect(res.details).toMatch(message);
    }
  });
});

describe('calls grpc-js ends without the handler', () => {
  it('a message over the size limit: RESOURCE_EXHAUSTED, logged and counted', async () => {
    const res = await send('ModelInfer', Buffer.alloc(LIMIT_BYTES + 1));
    expect(res.code).toBe(status.RESOURCE_EXHAUSTED);
    await waitFor(() => (records.length > 0 ? true : undefined), 'the call recorded');
    expect(records).toEqual([{ method: 'ModelInfer', code: 'RESOURCE_EXHAUSTED', model: '' }]);
    expect(lines.map((l) => [l.level, l.code])).toEqual([['info', 'RESOURCE_EXHAUSTED']]);
    // grpc-js's own status carries the call's request id too, as the log line has it.
    expect(res.requestId).toEqual(expect.any(String));
    expect(lines[0]!.request_id).toBe(res.requestId);
  });

  it('a call cancelled after its headers arrive, before its message does: CANCELLED, logged and counted once', async () => {
    const session = http2.connect(`http://127.0.0.1:${grpc.server.port}`);
    await new Promise((resolve) => session.once('connect', resolve));
    try {
      const stream = session.request({
        ':method': 'POST',
        ':path': '/inference.GRPCInferenceService/ModelInfer',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      stream.on('error', () => {});
      // A message of 10 bytes announced, none sent: the handler waits for them.
      stream.write(Buffer.from([0, 0, 0, 0, 10]));
      // The server answers a PING after reading every frame sent before it: the call has begun.
      await new Promise<void>((resolve, reject) =>
        session.ping((error) => (error ? reject(error) : resolve())),
      );
      // RST_STREAM with no END_STREAM before it (close() would end the stream first: a request
      // ended without its message, which grpc-js answers UNIMPLEMENTED).
      stream.destroy();
      await waitFor(() => (records.length > 0 ? true : undefined), 'the call recorded');
    } finally {
      session.close();
    }
    // Any second record would come from the same turn of events; one more round of them.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(records).toEqual([{ method: 'ModelInfer', code: 'CANCELLED', model: '' }]);
    expect(lines.map((l) => [l.level, l.code])).toEqual([['info', 'CANCELLED']]);
  });
});

describe('endedStatus: a call that ended without a status', () => {
  const deadlineMs = 1_000_000;
  it('past its deadline, or within DEADLINE_SLACK_MS before it (the client cancels first), ran out of time', () => {
    expect(endedStatus(new Date(deadlineMs), deadlineMs + 1)).toBe(status.DEADLINE_EXCEEDED);
    expect(endedStatus(deadlineMs, deadlineMs - DEADLINE_SLACK_MS)).toBe(status.DEADLINE_EXCEEDED);
  });
  it('earlier, or without a deadline, was cancelled', () => {
    expect(endedStatus(deadlineMs, deadlineMs - DEADLINE_SLACK_MS - 1)).toBe(status.CANCELLED);
    expect(endedStatus(Number.POSITIVE_INFINITY, deadlineMs)).toBe(status.CANCELLED);
  });
});

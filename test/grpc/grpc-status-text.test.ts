/**
 * A status message quoting a client's string is one grpc-js can send: grpc-js percent-encodes
 * the message with encodeURI, which throws on a lone surrogate. A client's emoji cut in half by
 * the quote (`value.slice(0, 40)`) made a synchronous handler's answer UNKNOWN "Unknown error"
 * while the log line and the metrics said INVALID_ARGUMENT, and killed the process when the
 * message was sent from ModelInfer's compute-lane turn (gRPC attacker review of 2026-12-06).
 */
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { statusMessage } from '../../src/grpc/grpc-status.js';
import { grpcClient, useRecordedGrpc } from '../helpers/grpc.js';

const grpc = useRecordedGrpc();
/** 39 characters and an emoji: a quote cut at 40 UTF-16 units splits the emoji's pair. */
const cutInHalf = (filler: string) => `${filler.repeat(39)}😀`;

describe('a status message quoting a client string with an emoji where a cut would fall', () => {
  const cases: {
    method: string;
    request: unknown;
    code: status;
    recorded: string;
    service?: 'health';
  }[] = [
    {
      method: 'ModelInfer',
      request: {
        model_name: 'digits',
        model_version: cutInHalf('x'),
        inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64] }],
        raw_input_contents: [Buffer.alloc(256)],
      },
      code: status.INVALID_ARGUMENT,
      recorded: 'INVALID_ARGUMENT',
    },
    {
      method: 'ModelReady',
      request: { name: 'digits', version: cutInHalf('x') },
      code: status.INVALID_ARGUMENT,
      recorded: 'INVALID_ARGUMENT',
    },
    {
      method: 'ModelMetadata',
      request: { name: 'digits', version: cutInHalf('9') },
      code: status.INVALID_ARGUMENT,
      recorded: 'INVALID_ARGUMENT',
    },
  ];
  for (const c of cases) {
    it(`${c.method}: the client gets the status that is logged and counted, and the server answers on`, async () => {
      const client = grpcClient(grpc.server.port);
      try {
        const answer = await client.call(c.method, c.request);
        expect(answer.ok).toBe(false);
        if (answer.ok) return;
        expect(answer.error.code).toBe(c.code);
        expect(answer.error.details).toMatch(/expected a positive integer, got "x{39}|9{39}/);
        expect(grpc.records.map((r) => r.code)).toEqual([c.recorded]);
        expect((await client.call('ServerLive', {})).ok).toBe(true);
      } finally {
        client.close();
      }
    });
  }

  it('health Check of an unknown service: NOT_FOUND, as logged and counted', async () => {
    const answer = await new Promise<{ code: number; details: string }>((resolve) => {
      grpc.raw.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        (b: Buffer) => b,
        (b: Buffer) => b,
        // HealthCheckRequest { service (1): 199 characters and an emoji }
        (() => {
          const service = Buffer.from(`${'s'.repeat(199)}😀`);
          return Buffer.concat([Buffer.from([0x0a, 0xcb, 0x01]), service]);
        })(),
        (error: { code: number; details: string } | null) =>
          resolve(error ?? { code: status.OK, details: '' }),
      );
    });
    expect(answer.code).toBe(status.NOT_FOUND);
    expect(answer.details).toMatch(/^unknown health service "s{60,}…"/);
    expect(grpc.records.map((r) => r.code)).toEqual(['NOT_FOUND']);
  });
});

describe('statusMessage', () => {
  it('replaces a lone surrogate and never cuts a pair at its bound', () => {
    expect(statusMessage('a\ud83db')).toBe('a\ufffdb');
    expect(statusMessage('a\ude00')).toBe('a\ufffd');
    expect(statusMessage('ok 😀')).toBe('ok 😀');
    const long = `${'x'.repeat(1022)}😀 and more`;
    const sent = statusMessage(long);
    expect(sent).toBe(`${'x'.repeat(1022)}…`);
    expect(() => encodeURI(sent)).not.toThrow();
  });
});

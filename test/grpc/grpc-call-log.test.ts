/**
 * A gRPC call's log line carries what HTTP's request line does: the request id (from
 * `x-request-id` metadata when well-formed, else a new UUID; sent back in `x-request-id`), the
 * trace of a `traceparent`, the model, version and rows, the status and the duration. A call to a
 * method no service has is answered UNIMPLEMENTED and is logged and counted like any other, under
 * the method `unknown` (bounded metric labels). Real @grpc/grpc-js clients, and a node:http2 one
 * for how the id's header is encoded (HPACK: never indexed).
 */
import http2 from 'node:http2';
import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/admin.js';
import { useRecordedGrpc } from '../helpers/grpc.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const grpc = useRecordedGrpc();
const { records, lines } = grpc;

const until = (ok: () => boolean, what: string) =>
  waitFor(() => (ok() ? true : undefined), what, 30_000);

const digitsRows = (rows: number) => ({
  model_name: 'digits',
  inputs: [
    {
      name: 'input',
      datatype: 'FP32',
      shape: [rows, 64],
      contents: { fp32_contents: new Array(rows * 64).fill(1) },
    },
  ],
});

/** A raw call of `path` (any bytes), with its error and both metadata sets. */
const rawCall = (path: string, metadata = new Metadata()) =>
  new Promise<{ code: number; details: string; requestId: unknown }>((resolve) => {
    grpc.raw.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.alloc(0),
      metadata,
      (error: ServiceError | null) =>
        resolve({
          code: error?.code ?? status.OK,
          details: error?.details ?? '',
          requestId: error?.metadata.get('x-request-id')[0],
        }),
    );
  });

describe('the log line of a gRPC call', () => {
  it("has HTTP's request-line fields: request id, trace, model, version, rows, status, duration", async () => {
    const reply = await grpc.server.client.call('ModelInfer', digitsRows(3), {
      'x-request-id': 'grpc-edge-1',
      traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`,
    });
    expect(reply.ok).toBe(true);
    await until(() => lines.length === 1, 'the ModelInfer line');
    expect(lines[0]).toMatchObject({
      level: 'info',
      msg: 'grpc request',
      request_id: 'grpc-edge-1',
      trace_id: TRACE_ID,
      parent_id: PARENT_ID,
      grpcMethod: 'ModelInfer',
      code: 'OK',
      model: 'digits',
      version: 1,
      rows: 3,
    });
    expect(lines[0]!.durationMs).toEqual(expect.any(Number));
  });

  it('names the version a ModelMetadata asks for', async () => {
    expect(
      (await grpc.server.client.call('ModelMetadata', { name: 'digits', version: '1' })).ok,
    ).toBe(true);
    await until(() => lines.length === 1, 'the ModelMetadata line');
    expect(lines[0]).toMatchObject({ grpcMethod: 'ModelMetadata', model: 'digits', version: 1 });
    expect(lines[0]).not.toHaveProperty('rows');
  });

  it('gives a call without a well-formed x-request-id a new UUID, sent back in x-request-id', async () => {
    for (const given of [undefined, 'has spaces', 'x'.repeat(129)]) {
      const metadata = new Metadata();
      if (given !== undefined) metadata.set('x-request-id', given);
      // ModelReady with no name: refused (INVALID_ARGUMENT), the id in its trailers.
      const answer = await rawCall('/inference.GRPCInferenceService/ModelReady', metadata);
      expect(answer.code).toBe(status.INVALID_ARGUMENT);
      expect(String(answer.requestId)).toMatch(UUID);
      await until(() => lines.length === 1, 'the ModelReady line');
      expect(lines[0]!.request_id).toBe(answer.requestId);
      expect(lines[0]).not.toHaveProperty('trace_id');
      lines.length = 0;
    }
  });

  it('sends the id back on a successful call too (response headers)', async () => {
    const metadata = new Metadata();
    metadata.set('x-request-id', 'live-1');
    const headers = await new Promise<Metadata>((resolve) => {
      const call = grpc.raw.makeUnaryRequest(
        '/inference.GRPCInferenceService/ServerLive',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        metadata,
        () => {},
      );
      call.on('metadata', resolve);
    });
    expect(headers.get('x-request-id')).toEqual(['live-1']);
  });

  it('sends the id as a header HPACK never indexes, in response headers and in a trailers-only answer', async () => {
    const session = http2.connect(`http://127.0.0.1:${grpc.server.port}`);
    try {
      // ServerLive's empty request message (OK: headers, then trailers); ModelReady's, which names
      // no model (INVALID_ARGUMENT, trailers only).
      const trailers: http2.IncomingHttpHeaders[] = [];
      const answers = await Promise.all(
        ['ServerLive', 'ModelReady'].map(
          (method) =>
            new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
              const stream = session.request({
                ':method': 'POST',
                ':path': `/inference.GRPCInferenceService/${method}`,
                'content-type': 'application/grpc',
                te: 'trailers',
                'x-request-id': `never-indexed-${method}`,
              });
              let headers: http2.IncomingHttpHeaders | undefined;
              stream.on('response', (h) => {
                headers = h;
              });
              stream.on('trailers', (t) => trailers.push(t));
              stream.on('error', reject);
              stream.on('data', () => {});
              stream.on('end', () => resolve(headers!));
              stream.end(Buffer.from([0, 0, 0, 0, 0]));
            }),
        ),
      );
      // ServerLive's trailers: its status, and no second id (the headers carried it).
      expect(trailers).toHaveLength(1);
      expect(trailers[0]!['grpc-status']).toBe(String(status.OK));
      expect(trailers[0]!['x-request-id']).toBeUndefined();
      for (const [i, headers] of answers.entries()) {
        expect(headers['x-request-id']).toBe(`never-indexed-${['ServerLive', 'ModelReady'][i]}`);
        expect((headers as Record<symbol, unknown>)[http2.sensitiveHeaders]).toEqual([
          'x-request-id',
        ]);
      }
      expect(answers.map((h) => h['grpc-status'])).toEqual([
        undefined,
        String(status.INVALID_ARGUMENT),
      ]);
    } finally {
      session.close();
    }
  });
});

describe('a call of a method no service has', () => {
  it('is answered UNIMPLEMENTED, logged and counted as method `unknown`', async () => {
    const inService = await rawCall('/inference.GRPCInferenceService/Bogus1');
    const otherService = await rawCall('/bogus1.Svc/M');
    expect([inService.code, otherService.code]).toEqual([
      status.UNIMPLEMENTED,
      status.UNIMPLEMENTED,
    ]);
    expect(inService.details).toBe(
      'The server does not implement the method /inference.GRPCInferenceService/Bogus1',
    );
    await until(() => records.length === 2 && lines.length === 2, 'two records');
    expect(records).toEqual([
      { method: 'unknown', code: 'UNIMPLEMENTED', model: '' },
      { method: 'unknown', code: 'UNIMPLEMENTED', model: '' },
    ]);
    expect(lines.map((l) => [l.grpcMethod, l.path, l.code])).toEqual([
      ['unknown', '/inference.GRPCInferenceService/Bogus1', 'UNIMPLEMENTED'],
      ['unknown', '/bogus1.Svc/M', 'UNIMPLEMENTED'],
    ]);
  });

  it('is answered at once when its client streams and never half-closes', async () => {
    const outcome = await new Promise<number>((resolve) => {
      const call = grpc.raw.makeBidiStreamRequest(
        '/bogus.Svc/Stream',
        (b: Buffer) => b,
        (b: Buffer) => b,
      );
      call.on('error', (e: ServiceError) => resolve(e.code));
      call.on('data', () => {});
      call.write(Buffer.from([1, 2, 3]));
    });
    expect(outcome).toBe(status.UNIMPLEMENTED);
  });
});

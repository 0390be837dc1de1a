/**
 * Compressed request bodies (Content-Encoding gzip or deflate, as Triton's HTTP endpoint takes
 * them) are read decoded by every body reader; other encodings are refused with a 415, never read
 * as they are.
 */

import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Agent, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { brotliCompressSync, createGunzip, createInflate, deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NormserveError } from '../../src/errors/index.js';
import { decodedBody } from '../../src/http/content-encoding.js';
import { ADMIN, ndjsonBody } from '../helpers/admin.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import {
  binaryInfer,
  digitsRow,
  expectProblem,
  f32Bytes,
  type PredictResponse,
} from './http-helpers.js';

let t: TestApp;
const BODY_LIMIT_BYTES = 64 * 1024;

beforeAll(async () => {
  t = await makeTestApp({
    models: ['digits'],
    env: { BODY_LIMIT_BYTES: String(BODY_LIMIT_BYTES) },
  });
});
afterAll(async () => {
  await t.close();
});

const PREDICT = '/v1/models/digits:predict';
const rows = [digitsRow(0), digitsRow(1), digitsRow(2)];

function post(payload: Buffer | string, headers: Record<string, string>, url = PREDICT) {
  return t.app.inject({ method: 'POST', url, payload, headers });
}

describe('Content-Encoding of request bodies', () => {
  it('a gzip JSON body and a deflate float32 body answer exactly as the plain ones', async () => {
    const json = JSON.stringify({ instances: rows });
    const plain = await post(json, { 'content-type': 'application/json' });
    expect(plain.statusCode).toBe(200);
    const gzipped = await post(gzipSync(json), {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    });
    expect(gzipped.statusCode).toBe(200);
    expect(gzipped.json<PredictResponse>()).toEqual(plain.json<PredictResponse>());

    const binary = {
      'content-type': 'application/octet-stream',
      accept: 'application/octet-stream',
    };
    const f32 = f32Bytes(rows.flat());
    const plainBinary = await post(f32, binary);
    const deflated = await post(deflateSync(f32), { ...binary, 'content-encoding': 'Deflate' });
    expect(deflated.statusCode).toBe(200);
    expect(deflated.rawPayload.equals(plainBinary.rawPayload)).toBe(true);
  });

  it('the binary tensor extension reads its header length in the decoded body', async () => {
    const { payload, headers } = binaryInfer(
      {
        inputs: [
          {
            name: 'input',
            shape: [3, 64],
            datatype: 'FP32',
            parameters: { binary_data_size: 3 * 64 * 4 },
          },
        ],
      },
      [f32Bytes(rows.flat())],
    );
    const url = '/v2/models/digits/infer';
    const plain = await post(payload, headers, url);
    expect(plain.statusCode).toBe(200);
    const gzipped = await post(gzipSync(payload), { ...headers, 'content-encoding': 'gzip' }, url);
    expect(gzipped.statusCode).toBe(200);
    expect(gzipped.json()).toEqual(plain.json());
  });

  it('an encoding it does not decode is a 415 naming it and the ones it takes', async () => {
    const json = JSON.stringify({ instances: rows });
    const res = await post(brotliCompressSync(json), {
      'content-type': 'application/json',
      'content-encoding': 'br',
    });
    const body = expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE', PREDICT);
    expect(body.detail).toBe(
      'unsupported Content-Encoding "br"; send the body as gzip, deflate, identity',
    );
    // Raw float32 bytes labelled gzip are not taken for values.
    const f32 = f32Bytes(rows.flat());
    const labelled = await post(f32, {
      'content-type': 'application/octet-stream',
      'content-encoding': 'gzip',
    });
    expectProblem(labelled, 400, 'INVALID_INPUT', PREDICT);
    expect(labelled.json<{ detail: string }>().detail).toMatch(
      /^the body is not valid gzip data \(Content-Encoding\): /,
    );
  });

  it('bytes after the compressed data are refused alike for gzip and deflate (400)', async () => {
    const json = JSON.stringify({ instances: rows });
    const headers = { 'content-type': 'application/json' };
    const details: string[] = [];
    for (const [encoding, compress] of [
      ['gzip', gzipSync],
      ['deflate', deflateSync],
    ] as const) {
      // The whole body is valid compressed data: accepted.
      const whole = await post(compress(json), { ...headers, 'content-encoding': encoding });
      expect(whole.statusCode, whole.body).toBe(200);
      for (const trailing of [Buffer.from('garbage!'), Buffer.from('{"more":1}')]) {
        const res = await post(Buffer.concat([compress(json), trailing]), {
          ...headers,
          'content-encoding': encoding,
        });
        const body = expectProblem(res, 400, 'INVALID_INPUT', PREDICT);
        expect(body.detail).toMatch(
          new RegExp(`^the body is not valid ${encoding} data \\(Content-Encoding\\): `),
        );
        details.push(body.detail);
      }
    }
    // inflate drops what follows its stream: the message says what was left.
    expect(details.slice(2)).toEqual([
      'the body is not valid deflate data (Content-Encoding): 8 bytes after the end of the compressed data',
      'the body is not valid deflate data (Content-Encoding): 10 bytes after the end of the compressed data',
    ]);
  });

  it('a route decodes after its guards: without the token, its 401 whatever the encoding', async () => {
    const body = brotliCompressSync(ndjsonBody(rows));
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:recalibrate',
      headers: { 'content-type': 'application/x-ndjson', 'content-encoding': 'br' },
      payload: body,
    });
    expect(res.statusCode, res.body).toBe(401);
    // With the token, the encoding's 415.
    const admitted = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:recalibrate',
      headers: { ...ADMIN, 'content-type': 'application/x-ndjson', 'content-encoding': 'br' },
      payload: body,
    });
    expect(admitted.statusCode, admitted.body).toBe(415);
  });

  it('a request without a body is not refused for its Content-Encoding', async () => {
    const res = await t.app.inject({
      method: 'GET',
      url: '/v1/models/digits',
      headers: { 'content-encoding': 'br' },
    });
    expect(res.statusCode).toBe(200);
  });

  it('identity is no encoding', async () => {
    const res = await post(JSON.stringify({ instances: rows }), {
      'content-type': 'application/json',
      'content-encoding': 'identity',
    });
    expect(res.statusCode).toBe(200);
  });

  it('a small body that expands beyond BODY_LIMIT_BYTES is a 413, not read whole', async () => {
    const bomb = gzipSync(Buffer.alloc(64 * BODY_LIMIT_BYTES));
    expect(bomb.length).toBeLessThan(BODY_LIMIT_BYTES);
    const res = await post(bomb, {
      'content-type': 'application/octet-stream',
      'content-encoding': 'gzip',
    });
    expectProblem(res, 413, 'BODY_TOO_LARGE', PREDICT);
  });

  it('a gzip NDJSON recalibration upload gives the rows and statistics of the plain upload', async () => {
    const night = nightShift(digitsTestRows().x);
    const url = '/v1/models/digits:recalibrate?activate=false';
    const headers = { ...ADMIN, 'content-type': 'application/x-ndjson' };
    const body = ndjsonBody(night);
    const plain = await post(body, headers, url);
    expect(plain.statusCode, plain.body).toBe(201);
    const gzipped = await post(gzipSync(body), { ...headers, 'content-encoding': 'gzip' }, url);
    expect(gzipped.statusCode, gzipped.body).toBe(201);
    type Outcome = { samples: number; data_sha256: string; layers: unknown[] };
    const [a, b] = [plain.json<Outcome>(), gzipped.json<Outcome>()];
    expect(b.samples).toBe(night.length);
    expect({ data_sha256: b.data_sha256, layers: b.layers }).toEqual({
      data_sha256: a.data_sha256,
      layers: a.layers,
    });
  });
});

describe('decoding stops when no more is needed', () => {
  /** A gzip stream of `bytes` zeros, fed in 16 KiB pieces, and a decoder that counts its output. */
  function bomb(bytes: number) {
    const gz = gzipSync(Buffer.alloc(bytes));
    const pieces = Array.from({ length: Math.ceil(gz.length / 16384) }, (_, i) =>
      gz.subarray(i * 16384, (i + 1) * 16384),
    );
    const payload = Readable.from(pieces, { objectMode: false });
    const consumed = new Promise((resolve) => payload.on('close', resolve));
    const decoder = createGunzip();
    const counted = { bytes: 0 };
    decoder.on('data', (chunk: Buffer) => {
      counted.bytes += chunk.length;
    });
    return { payload, consumed, decoder, counted };
  }
  const limit = { bytes: 256 * 1024, name: 'BODY_LIMIT_BYTES' };

  it('past the decoded limit: a 413 error, and the decoder stopped within a chunk of it', async () => {
    const { payload, consumed, decoder, counted } = bomb(256 * 1024 * 1024);
    const out = decodedBody(payload, decoder, 'gzip', limit);
    const failed = once(out, 'error');
    out.on('data', () => {});
    const [error] = (await failed) as [NormserveError];
    expect(error.code).toBe('BODY_TOO_LARGE');
    expect(error.message).toBe(
      'the decoded request body is larger than the limit (BODY_LIMIT_BYTES: 262144 bytes)',
    );
    await consumed;
    expect(counted.bytes).toBeLessThan(limit.bytes + 4 * 65536);
  });

  it('when the reader lets go (as Fastify after its own 413), the rest is not decoded', async () => {
    const { payload, consumed, decoder, counted } = bomb(256 * 1024 * 1024);
    const out = decodedBody(payload, decoder, 'gzip', { bytes: 2 ** 40, name: 'X' });
    const first = (chunk: Buffer) => {
      expect(chunk.length).toBeGreaterThan(0);
      out.removeListener('data', first);
    };
    out.on('data', first);
    await consumed;
    expect(counted.bytes).toBeLessThan(1024 * 1024);
  });

  it('bytes after a deflate stream that arrive after it ended are refused too', async () => {
    const deflated = deflateSync(Buffer.from('{"instances":[]}'));
    // The stream's end arrives whole in the first piece; the stray byte comes later.
    const payload = Readable.from([deflated, Buffer.from([0])], { objectMode: false });
    const out = decodedBody(payload, createInflate(), 'deflate', limit);
    out.on('data', () => {});
    const [error] = (await once(out, 'error')) as [NormserveError];
    expect(error.code).toBe('INVALID_INPUT');
    expect(error.message).toBe(
      'the body is not valid deflate data (Content-Encoding): 1 byte after the end of the compressed data',
    );
  });

  it('a body nobody reads, not valid gzip: no unheard error (it would end the process)', async () => {
    const payload = Readable.from([Buffer.from('not gzip at all')], { objectMode: false });
    const out = decodedBody(payload, createGunzip(), 'gzip', limit);
    await new Promise((resolve) => out.on('close', resolve));
    expect(out.destroyed).toBe(true);
  });
});

describe('a compressed body answered before it is read', () => {
  // Answered before its body was read whole, the connection is closed (app.ts's onSend hook): the
  // unread rest never holds it, and the client's next request goes on a new connection.
  it('does not hold its connection: it is closed after the answer and the next request is answered', async () => {
    const served = await makeTestApp({ models: ['digits'] });
    try {
      await served.app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = served.app.server.address() as AddressInfo;
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const send = (path: string, headers: Record<string, string>, body?: Buffer) =>
        new Promise<{ status: number; connection: string | undefined; socket: unknown }>(
          (resolve, reject) => {
            const req = httpRequest(
              { host: '127.0.0.1', port, path, method: body ? 'POST' : 'GET', headers, agent },
              (res) => {
                res.resume();
                res.on('end', () =>
                  resolve({
                    status: res.statusCode!,
                    connection: res.headers.connection,
                    socket: req.socket,
                  }),
                );
              },
            );
            req.on('error', reject);
            req.end(body);
          },
        );
      // 4 MiB that gzip cannot shrink: far more than the socket buffers hold unread.
      const body = gzipSync(randomBytes(4 * 1024 * 1024));
      const refused = await send(
        PREDICT,
        { 'content-type': 'text/csv', 'content-encoding': 'gzip' },
        body,
      );
      expect(refused.status).toBe(415);
      expect(refused.connection).toBe('close');
      const next = await send('/v1/models/digits', {});
      expect(next.status).toBe(200);
      expect(next.socket).not.toBe(refused.socket);
      agent.destroy();
    } finally {
      await served.close();
    }
  });
});

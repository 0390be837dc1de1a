/**
 * What HTTP/1.1 refuses in a request's head (src/http/request-target.ts), answered as problem
 * documents with a request id like every other refusal (review48): an HTTP/1.1 request without
 * Host (RFC 9112 §3.2; Node's own check answered a bodiless 400), and a fragment in the target
 * (read by the router as an unknown query parameter). Raw sockets: inject and Node's client both
 * add a Host header.
 */
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
let port: number;
beforeAll(async () => {
  t = await makeTestApp({ models: ['digits'] });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  port = (t.app.server.address() as { port: number }).port;
});
afterAll(async () => {
  await t.close();
});

/** Sends `head` (and nothing else), reads until the server closes; status, headers, body. */
function raw(head: string): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(head));
    let text = '';
    socket.setEncoding('utf8').on('data', (d: string) => {
      text += d;
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const end = text.indexOf('\r\n\r\n');
      resolve({
        status: Number(text.slice(9, 12)),
        headers: text.slice(0, end).toLowerCase(),
        body: text.slice(end + 4),
      });
    });
  });
}

describe('the request target and Host', () => {
  it('an HTTP/1.1 request without Host is a 400 problem document with its request id', async () => {
    const res = await raw('GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n');
    expect(res.status).toBe(400);
    expect(res.headers).toContain('content-type: application/problem+json');
    expect(res.headers).toMatch(/x-request-id: [0-9a-f-]{36}/);
    const problem = JSON.parse(res.body.replace(/^[0-9a-f]+\r\n|\r\n0\r\n\r\n$/g, ''));
    expect(problem).toMatchObject({
      status: 400,
      code: 'INVALID_INPUT',
      detail: 'the request has no Host header, which HTTP/1.1 requires (RFC 9112 §3.2)',
    });
  });

  it('two Host lines are a 400 saying so (review51)', async () => {
    const res = await raw(
      'GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n',
    );
    expect(res.status).toBe(400);
    expect(res.body).toContain(
      'the request has more than one Host header; HTTP/1.1 allows one (RFC 9112 §3.2)',
    );
  });

  it('two Content-Type lines are a 400 saying so, not the first one read silently', async () => {
    const res = await raw(
      'POST /v1/models/digits:predict HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Type: text/csv\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}',
    );
    expect(res.status).toBe(400);
    expect(res.body).toContain(
      'the request has more than one Content-Type header; a body has one type (RFC 9110 §8.3)',
    );
  });

  it('a transfer coding other than chunked is a 400 saying so, not compressed bytes read as the body', async () => {
    const body = gzipSync(Buffer.from('{"instances": [[1]]}'));
    const res = await raw(
      `POST /v1/models/digits:predict HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n${body.length.toString(16)}\r\n${body.toString('latin1')}\r\n0\r\n\r\n`,
    );
    expect(res.status).toBe(400);
    expect(res.body).toContain('"code":"INVALID_INPUT"');
    expect(res.body).toContain(
      'Transfer-Encoding \\"gzip, chunked\\" is not supported: only chunked is (RFC 9112 §6.1)',
    );
    // Chunked alone is served.
    const text =
      '{"instances": [[0,0,5,13,9,1,0,0,0,0,13,15,10,15,5,0,0,3,15,2,0,11,8,0,0,4,12,0,0,8,8,0,0,5,8,0,0,9,8,0,0,4,11,0,1,12,7,0,0,2,14,5,10,12,0,0,0,0,6,13,10,0,0,0]]}';
    const chunked = await raw(
      `POST /v1/models/digits:predict HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${text.length.toString(16)}\r\n${text}\r\n0\r\n\r\n`,
    );
    expect(chunked.status).toBe(200);
  });

  it('an HTTP/1.0 request without Host is served', async () => {
    const res = await raw('GET /healthz HTTP/1.0\r\n\r\n');
    expect(res.status).toBe(200);
  });

  it('a fragment in the target is a 400 saying so, not an unknown query parameter', async () => {
    const res = await raw(
      'GET /v1/models/digits#frag HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    );
    expect(res.status).toBe(400);
    expect(res.body).toContain(
      "the request target has a fragment ('#…'): a client sends the path and query only (RFC 9112 §3.2)",
    );
    expect(res.body).not.toContain('query parameter');
  });

  it("'*' as the target of a method other than OPTIONS is a 400 saying so, not the index page", async () => {
    const res = await raw('GET * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    expect(res.status).toBe(400);
    expect(res.body).toContain(
      "the request target '*' is for OPTIONS only (RFC 9112 §3.2.4); GET takes a path",
    );
  });

  it('a request with Host and no fragment is served', async () => {
    const res = await raw(
      'GET /v1/models/digits HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    );
    expect(res.status).toBe(200);
  });
});

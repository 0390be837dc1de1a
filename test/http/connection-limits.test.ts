/**
 * Limits that only a listening server has: REQUEST_TIMEOUT_MS reaches slow request bodies and
 * slow headers (Node's headersTimeout/requestTimeout interplay), and MAX_CONNECTIONS caps the
 * connections open at once. Timing assertions are bounds far from the behaviour they exclude
 * (Node's defaults gave a 10 s timeout's body 60 s + a 30 s sweep), so a loaded machine passes.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { REQUEST_DISCARDED } from '../../src/http/callers.js';
import { httpServerOptions } from '../../src/http/connection-limits.js';
import { parseServerConfig } from '../../src/service/index.js';
import { ADMIN_TOKEN, waitFor } from '../helpers/admin.js';
import { makeDigitsVersionsRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { clearFsFaults, injectFsFaults } from '../helpers/fs-faults.mjs';
import { digitsRow } from './http-helpers.js';

let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

async function listen(env: Record<string, string>): Promise<number> {
  t = await makeTestApp({ env });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const address = t.app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** A listening app whose log lines (parsed) are collected in `lines`. */
async function listenLogged<Line>(repository?: string): Promise<{ port: number; lines: Line[] }> {
  const lines: Line[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  t = await makeTestApp({ logger, ...(repository ? { repository } : {}) });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as { port: number };
  return { port, lines };
}

/** A socket and everything it receives until the server closes it. */
function open(port: number): {
  socket: Socket;
  received: Promise<string>;
  connected: Promise<void>;
} {
  const socket = connect(port, '127.0.0.1');
  let data = '';
  socket.setEncoding('utf8').on('data', (d: string) => {
    data += d;
  });
  const received = new Promise<string>((resolve) => {
    socket.on('close', () => resolve(data));
    socket.on('error', () => undefined);
  });
  const connected = new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, received, connected };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The problem of a raw answer, in problem+json, or in `application/json` exactly (varying with
 * Accept) where the request reached a protocol route (problem-media-type.ts).
 */
function problemOf(
  raw: string,
  status = 408,
  media: 'problem' | 'protocol' = 'problem',
): { status: number; code: string; type: string; request_id?: string } {
  const [head, body] = raw.split('\r\n\r\n');
  expect(head, raw).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
  if (media === 'problem') expect(head).toMatch(/^content-type: application\/problem\+json/im);
  else {
    expect(head).toMatch(/^content-type: application\/json\r?$/im);
    expect(head).toMatch(/^vary: accept\r?$/im);
  }
  return JSON.parse(body!) as { status: number; code: string; type: string };
}

describe('REQUEST_TIMEOUT_MS', () => {
  it('sets headersTimeout ≤ requestTimeout and a sweep of a quarter of it (Node swaps them otherwise), and leaves Host to the app (request-target.ts)', () => {
    const of = (v: string) =>
      httpServerOptions(parseServerConfig({ REQUEST_TIMEOUT_MS: v, MODEL_REPOSITORY: 'x' }));
    expect(of('10000')).toEqual({
      requireHostHeader: false,
      requestTimeout: 10_000,
      headersTimeout: 10_000,
      connectionsCheckingInterval: 2_500,
    });
    expect(of('120000')).toEqual({
      requireHostHeader: false,
      requestTimeout: 120_000,
      headersTimeout: 60_000,
      connectionsCheckingInterval: 30_000,
    });
    // 0 = no limit on the request; the headers keep Node's 60 s (no slowloris on headers).
    expect(of('0')).toEqual({
      requireHostHeader: false,
      requestTimeout: 0,
      headersTimeout: 60_000,
      connectionsCheckingInterval: 15_000,
    });
  });

  it('cuts a body that trickles in: 408 REQUEST_TIMEOUT problem, long before 60 s, in its route’s media type', async () => {
    const port = await listen({ REQUEST_TIMEOUT_MS: '1000' });
    const { socket, received } = open(port);
    const started = performance.now();
    socket.write(
      'POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nX-Request-Id: trickle-1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
    );
    const row = JSON.stringify(digitsRow(1));
    socket.write(`${(15).toString(16)}\r\n{"instances":[ \r\n`);
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write(`${(row.length + 1).toString(16)}\r\n${row},\r\n`);
    }, 100);
    const raw = await received;
    clearInterval(drip);
    const elapsed = performance.now() - started;
    // The route is known (the request reached Fastify): TF Serving's, whose errors are JSON.
    const problem = problemOf(raw, 408, 'protocol');
    expect(problem).toMatchObject({
      status: 408,
      code: 'REQUEST_TIMEOUT',
      instance: '/v1/models/digits:predict',
      // The id the request was given when it reached Fastify (the client's here), as on every answer.
      request_id: 'trickle-1',
    });
    expect(raw).toMatch(/^X-Request-Id: trickle-1\r$/m);
    // Counted as the 408 it got, not as a client's abort (499). The count lands when Fastify sees
    // the request close, a turn or so after the answer.
    let exposition = '';
    for (let i = 0; i < 500 && !/status="408"/.test(exposition); i++) {
      exposition = (await t!.app.inject({ url: '/metrics' })).body;
      if (!/status="408"/.test(exposition)) await sleep(20);
    }
    expect(exposition).toMatch(/^normserve_http_requests_total\{.*status="408".*\} 1$/m);
    expect(exposition).not.toMatch(/^normserve_http_requests_total\{.*status="499"/m);
    // Node's defaults answered after 60 s + up to one 30 s sweep; 1 s + a 250 ms sweep here.
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(30_000);
  });

  it("headers over Node's limit get a 431 problem with a request id, header and body alike", async () => {
    const { port, lines } = await listenLogged<Record<string, unknown>>();
    const { socket, received } = open(port);
    socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    const raw = await received;
    const problem = problemOf(raw, 431);
    expect(problem).toMatchObject({ status: 431, code: 'HEADERS_TOO_LARGE' });
    expect(problem.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(raw).toMatch(new RegExp(`^X-Request-Id: ${problem.request_id}\\r$`, 'm'));
    // review59: refused by the parser, it was in no series of the request counter.
    const malformed = open(port);
    malformed.socket.write('GARBAGE /x HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(problemOf(await malformed.received, 400)).toMatchObject({ code: 'INVALID_INPUT' });
    const exposition = (await t!.app.inject({ url: '/metrics' })).body;
    for (const status of [400, 431])
      expect(exposition).toContain(
        `normserve_http_requests_total{method="",route="unmatched",status="${status}",model="",version=""} 1`,
      );
    // Their log lines carry the catalogue's code, as the answer does (Node's parser code was
    // logged as `code`, so a search for the catalogue's codes missed them); Node's is the cause.
    expect(lines.filter((l) => l.status === 431 || l.status === 400)).toEqual([
      expect.objectContaining({
        status: 431,
        code: 'HEADERS_TOO_LARGE',
        cause: 'HPE_HEADER_OVERFLOW',
        request_id: problem.request_id,
      }),
      expect.objectContaining({ status: 400, code: 'INVALID_INPUT', cause: 'HPE_INVALID_METHOD' }),
    ]);
  });

  it('a malformed request pipelined behind a whole one: the first is answered, then the 400, each with its own id, line and count', async () => {
    const { port, lines } = await listenLogged<Record<string, unknown>>();
    const { socket, received } = open(port);
    const body = JSON.stringify({ instances: [digitsRow(0)] });
    // One write: the parser fails in the second request while the first is being answered.
    socket.write(
      `POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}GARBAGE\r\n\r\n`,
    );
    const raw = await received;
    // The 400 used to take the first request's place: its URL, its id, and no answer for it.
    expect(raw).toMatch(/^HTTP\/1\.1 200 /);
    const second = raw.indexOf('HTTP/1.1 400 ');
    expect(second).toBeGreaterThan(0);
    const firstId = /^x-request-id: (\S+)\r$/im.exec(raw.slice(0, second))![1];
    const problem = problemOf(raw.slice(second), 400) as { request_id: string; instance?: string };
    expect(problem).toMatchObject({ code: 'INVALID_INPUT' });
    expect(problem.instance).toBeUndefined();
    expect(problem.request_id).not.toBe(firstId);
    expect(lines.filter((l) => l.request_id === firstId)).toEqual([
      expect.objectContaining({ status: 200 }),
    ]);
    expect(lines.filter((l) => l.request_id === problem.request_id)).toEqual([
      expect.objectContaining({ status: 400, code: 'INVALID_INPUT', cause: 'HPE_INVALID_METHOD' }),
    ]);
    const exposition = (await t!.app.inject({ url: '/metrics' })).body;
    expect(exposition).toContain(
      'normserve_http_requests_total{method="",route="unmatched",status="400",model="",version=""} 1',
    );
    expect(exposition).toMatch(
      /^normserve_http_requests_total\{method="POST",.*status="200".*\} 1$/m,
    );
  });

  it.each([
    ['exact', ''],
    ['running', '&batch_size=2'],
  ])(
    'a recalibration upload cut by it is recorded as REQUEST_TIMEOUT in its job, not as a client abort (mode=%s)',
    async (mode, extra) => {
      const port = await listen({ REQUEST_TIMEOUT_MS: '1000', ADMIN_TOKEN });
      const { socket, received } = open(port);
      const jobs = join(t!.repository, '.jobs');
      const jobRecord = () => {
        const files = existsSync(jobs) ? readdirSync(jobs).filter((f) => f.endsWith('.json')) : [];
        return files.length === 1
          ? (JSON.parse(readFileSync(join(jobs, files[0]!), 'utf8')) as {
              state: string;
              error?: { code: string; message: string };
            })
          : undefined;
      };
      // Whether the model's lock is held when the 408's first byte arrives: a client that retries
      // on it must find the model free.
      const lock = join(t!.repository, 'digits', '.recalibration.lock');
      const lockedAtAnswer = new Promise<boolean>((resolve) =>
        socket.once('data', () => resolve(existsSync(lock))),
      );
      socket.write(
        `POST /v1/models/digits:recalibrate?mode=${mode}${extra} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n`,
      );
      const line = `${JSON.stringify(digitsRow(1))}\n`;
      const drip = setInterval(() => {
        if (!socket.destroyed) socket.write(`${line.length.toString(16)}\r\n${line}\r\n`);
      }, 100);
      const raw = await received;
      clearInterval(drip);
      expect(problemOf(raw)).toMatchObject({ status: 408, code: 'REQUEST_TIMEOUT' });
      expect(await lockedAtAnswer).toBe(false);
      // The record other processes read follows (written behind the answer).
      let job = jobRecord();
      for (let i = 0; i < 200 && job?.state !== 'failed'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        job = jobRecord();
      }
      expect(job).toMatchObject({ state: 'failed', error: { code: 'REQUEST_TIMEOUT' } });
      // A retry right away is taken, not refused 409 for the upload that timed out.
      const retry = await t!.app.inject({
        method: 'POST',
        url: `/v1/models/digits:recalibrate?mode=${mode}${extra}&activate=false`,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/x-ndjson' },
        payload: Array.from({ length: 8 }, (_, i) => JSON.stringify(digitsRow(i))).join('\n'),
      });
      expect(retry.statusCode, retry.body).toBe(201);
      const message = job!.error!.message;
      expect(message).toMatch(
        /^the upload did not arrive within REQUEST_TIMEOUT_MS \(1000 ms\); ([1-9]\d*) rows had been read/,
      );
      // Running mode reads as fast as it computes: the message says the server may be the slow side.
      if (mode === 'running')
        expect(message).toMatch(/mode=running reads an upload only as fast as .* at batch_size 2/);
      else expect(message).not.toMatch(/mode=running/);
    },
  );

  it('a request pipelined behind a whole upload is cut as any other, not handed to the upload', async () => {
    const port = await listen({ REQUEST_TIMEOUT_MS: '1000', ADMIN_TOKEN });
    // The upload job's first record is slowed, and the records after it queue behind it: the
    // upload's answer comes seconds after it was received, later than the second request's cut.
    injectFsFaults([{ op: 'mkdir', path: '.jobs', delayMs: 3000, times: 1 }]);
    try {
      const { socket, received } = open(port);
      const rows = Array.from({ length: 8 }, (_, i) => JSON.stringify(digitsRow(i))).join('\n');
      socket.write(
        `POST /v1/models/digits:recalibrate?activate=false HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Type: application/x-ndjson\r\nContent-Length: ${rows.length}\r\n\r\n${rows}`,
      );
      // A second request on the same connection whose headers never end.
      socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
      const drip = setInterval(() => {
        if (!socket.destroyed) socket.write('X-Slow: 1\r\n');
      }, 100);
      // Cut: the connection gets a 408 and is closed. Handed to the upload's route, the cut was
      // lost once the upload was answered: the connection stayed open, headers trickling. The
      // upload, received whole, is answered first (responses in request order), then the 408.
      const raw = await Promise.race([received, sleep(20_000).then(() => 'still open')]);
      clearInterval(drip);
      expect(raw).toMatch(/^HTTP\/1\.1 201 /);
      expect(raw).toMatch(/}HTTP\/1\.1 408 Request Timeout\r\n/);
    } finally {
      clearFsFaults();
    }
  });

  it('cuts headers that trickle in the same way', async () => {
    const port = await listen({ REQUEST_TIMEOUT_MS: '1000' });
    const { socket, received } = open(port);
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write('X-Slow: 1\r\n');
    }, 100);
    const raw = await received;
    clearInterval(drip);
    const problem = problemOf(raw);
    expect(problem).toMatchObject({ status: 408, code: 'REQUEST_TIMEOUT' });
    // No request line was read to completion: no instance, rather than an empty one.
    expect(problem).not.toHaveProperty('instance');
  });
});

describe('a client that closes the connection before its body arrived', () => {
  it('is logged at info and counted as 499, never as a server error', async () => {
    const { port, lines } = await listenLogged<{
      level: number;
      msg: string;
      status?: number;
      route?: string;
    }>();
    const { socket, received } = open(port);
    socket.write(
      'POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"instances":[[1,2',
    );
    for (let i = 0; i < 200 && !lines.some((l) => l.status === 499); i++) {
      if (i === 5) socket.destroy();
      await sleep(20);
    }
    await received;
    const aborted = lines.filter((l) => l.status === 499);
    expect(aborted).toEqual([
      expect.objectContaining({
        level: 30,
        msg: 'request aborted by the client',
        route: '/v1/models/{name}:predict',
      }),
    ]);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    const metrics = (await t!.app.inject({ url: '/metrics' })).body;
    expect(metrics).toContain(
      'normserve_http_requests_total{method="POST",route="/v1/models/{name}:predict",status="499"',
    );
  });
});

describe('requests pipelined on a connection that is to close', () => {
  type Line = { msg: string; status?: number; url?: string; cause?: string };
  const predict = () => {
    const body = JSON.stringify({ instances: [digitsRow(0)] });
    return `POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  };
  // A response's status line follows the previous body with no line break.
  const responses = (raw: string) => raw.match(/HTTP\/1\.1 \d+/g) ?? [];

  it("behind the client's own Connection: close: nothing more is sent, logged as discarded, not as a malformed request", async () => {
    const { port, lines } = await listenLogged<Line>();
    const { socket, received } = open(port);
    socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n${predict()}`);
    const raw = await received;
    expect(responses(raw)).toEqual(['HTTP/1.1 200']);
    const discarded = await waitFor(
      () => lines.find((l) => l.msg === REQUEST_DISCARDED),
      "the discarded request's line",
    );
    // It used to be logged and counted as a 400 malformed HTTP request that was never sent.
    expect(discarded).toMatchObject({ cause: 'HPE_CLOSED_CONNECTION' });
    expect(lines.filter((l) => l.status !== undefined && l.status !== 200)).toEqual([]);
    const exposition = (await t!.app.inject({ url: '/metrics' })).body;
    expect(exposition).not.toMatch(/status="(400|499)"/);
  });

  it('behind a response the server closed the connection with (lame duck): not processed, and logged as discarded, not as a client abort', async () => {
    const { port, lines } = await listenLogged<Line>(makeDigitsVersionsRepository());
    t!.app.deps.phase.enter('lame-duck');
    const { socket, received } = open(port);
    // One write: a target with a fragment is refused by the first onRequest hook, its 400
    // written (with Connection: close) before the request behind it is parsed.
    socket.write(
      `GET /healthz#x HTTP/1.1\r\nHost: x\r\n\r\n` +
        `DELETE /v1/models/digits/versions/2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\n\r\n`,
    );
    const raw = await received;
    expect(responses(raw)).toEqual(['HTTP/1.1 400']);
    expect(raw).toMatch(/^connection: close\r$/im);
    const discarded = await waitFor(
      () => lines.find((l) => l.msg === REQUEST_DISCARDED),
      "the discarded request's line",
    );
    // It used to be processed (the version deleted, its client told nothing), then logged and
    // counted as its client's 499.
    // Its deletion would have run after the connection closed: none within a generous while (a
    // loaded machine only makes this pass when it should not, never fail).
    const deleted = await waitFor(
      () => (lines.some((l) => l.msg === 'version deleted') ? true : undefined),
      'a deletion',
      2_000,
    ).catch(() => false);
    expect(deleted).toBe(false);
    expect(existsSync(join(t!.repository, 'digits', '2'))).toBe(true);
    expect(discarded).toMatchObject({ url: '/v1/models/digits/versions/2' });
    expect(discarded.status).toBeUndefined();
    expect(lines.filter((l) => l.status === 499)).toEqual([]);
    const exposition = (await t!.app.inject({ url: '/metrics' })).body;
    expect(exposition).not.toContain('status="499"');
  });

  it('in the lame duck, a request received behind one still being answered is answered too, and the connection closes after it', async () => {
    const { port, lines } = await listenLogged<Line>();
    t!.app.deps.phase.enter('lame-duck');
    const { socket, received } = open(port);
    // The predict reads its body first: the /healthz behind it has arrived by its answer.
    socket.write(`${predict()}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
    const raw = await received;
    expect(responses(raw)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200']);
    const second = raw.lastIndexOf('HTTP/1.1 200');
    // Before, the predict's answer closed the connection and /healthz was never answered.
    expect(raw.slice(0, second)).not.toMatch(/^connection: close\r$/im);
    expect(raw.slice(second)).toMatch(/^connection: close\r$/im);
    expect(raw.slice(0, second)).toContain('"predictions"');
    await waitFor(() => (lines.length >= 2 ? true : undefined), 'both lines');
    expect(lines.filter((l) => l.msg === REQUEST_DISCARDED)).toEqual([]);
  });

  it('in the lame duck, a client that always keeps a request in flight still meets the close, after what it had sent', async () => {
    const { port, lines } = await listenLogged<Line>();
    t!.app.deps.phase.enter('lame-duck');
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    const CAP = 30;
    // Each predict is sent in two parts: its head and half its body, then the rest once the
    // answer before it arrives. So whenever an answer is written, the next request has been
    // received (its head), and the client never stops sending by itself until CAP.
    const part = (whole: string) => whole.slice(0, whole.length - 10);
    const rest = (whole: string) => whole.slice(whole.length - 10);
    const request = predict();
    let raw = '';
    let sent = 2;
    socket.setEncoding('utf8').on('data', (d: string) => {
      const before = responses(raw).length;
      raw += d;
      if (responses(raw).length === before) return;
      socket.write(sent < CAP ? `${rest(request)}${part(request)}` : rest(request));
      sent++;
    });
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write(`${request}${part(request)}`);
    await closed;
    const answered = responses(raw);
    // Before, no answer closed the connection until the client stopped sending (CAP answers).
    expect(answered).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200']);
    const last = raw.lastIndexOf('HTTP/1.1 200');
    expect(raw.slice(0, last)).not.toMatch(/^connection: close\r$/im);
    expect(raw.slice(last)).toMatch(/^connection: close\r$/im);
    // The one it sent after the close was decided is not processed, and is logged as such.
    await waitFor(
      () => lines.find((l) => l.msg === REQUEST_DISCARDED),
      "the discarded request's line",
    );
  });
  it('in the drain, a request received behind one being answered gets its own 503, and the connection closes after it', async () => {
    const { port } = await listenLogged<Line>();
    const { socket, received, connected } = open(port);
    await connected;
    const closed = t!.close();
    // Both arrive after the drain began, in one write: the first's answer is written when the
    // second has been received. Fastify sets `Connection: close` on every response it routes
    // once closing (route.js closeRoutes): the second went unanswered, its client told nothing.
    socket.write(
      'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    const raw = await received;
    await closed;
    t = undefined;
    expect(responses(raw)).toEqual(['HTTP/1.1 503', 'HTTP/1.1 503']);
    const second = raw.lastIndexOf('HTTP/1.1 503');
    expect(raw.slice(0, second)).not.toMatch(/^connection: close\r$/im);
    expect(raw.slice(second)).toMatch(/^connection: close\r$/im);
    expect(raw.slice(second)).toContain('SHUTTING_DOWN');
  });
  it('in the drain, an HTTP/1.0 keep-alive client is told the connection stays for the answer behind', async () => {
    const { port } = await listenLogged<Line>();
    const { socket, received, connected } = open(port);
    await connected;
    const closed = t!.close();
    const request = 'GET /healthz HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n';
    socket.write(`${request}${request}`);
    const raw = await received;
    await closed;
    t = undefined;
    expect(responses(raw)).toEqual(['HTTP/1.1 503', 'HTTP/1.1 503']);
    const answers = raw.match(/HTTP\/1\.1 \d+[\s\S]*?\r\n\r\n/g) ?? [];
    expect(answers).toHaveLength(2);
    // Without `keep-alive`, an HTTP/1.0 answer says the connection closes after it.
    expect(answers[0]).toMatch(/^connection: keep-alive\r$/im);
    expect(answers[1]).toMatch(/^connection: close\r$/im);
  });
  it('in the lame duck, a router error at the closing place (no hook runs for it) still closes the connection', async () => {
    const { port } = await listenLogged<Line>();
    t!.app.deps.phase.enter('lame-duck');
    const { socket, received } = open(port);
    // A malformed percent-encoding is answered by Fastify's router (frameworkErrors), not onSend:
    // its 400 went without the close, and the client's next request was left unanswered on a
    // connection that never closed (the second reader of 4d7b0d9).
    socket.write(`${predict()}GET /v1/models/%zz HTTP/1.1\r\nHost: x\r\n\r\n`);
    const raw = await received;
    expect(responses(raw)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 400']);
    expect(raw.slice(raw.lastIndexOf('HTTP/1.1 400'))).toMatch(/^connection: close\r$/im);
  });
});

describe('MAX_CONNECTIONS', () => {
  it('closes connections beyond the limit on arrival, counts them, and serves again once one closes', async () => {
    const port = await listen({ MAX_CONNECTIONS: '2' });
    const held = [open(port), open(port)];
    await Promise.all(held.map((c) => c.connected));
    // Both are served (keep-alive: they stay open afterwards).
    for (const c of held) c.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await sleep(100);

    const third = open(port);
    third.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await third.received).toBe('');

    held[0]!.socket.destroy();
    await held[0]!.received;
    // The server notices the close on its next turn; poll until a new connection is served.
    let answer = '';
    for (let i = 0; i < 100 && !answer.startsWith('HTTP/1.1 200'); i++) {
      const next = open(port);
      next.socket.end('GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      answer = await next.received;
      if (!answer) await sleep(50);
    }
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect(answer).toMatch(/^normserve_connections_dropped_total [1-9]/m);
    held[1]!.socket.destroy();
  });
});

/**
 * A response sent before its request's body was read whole (a bad cell on line 2 of a 50 MB
 * upload) closes the connection: kept open, the unread rest held the connection, and a SIGTERM
 * waited SHUTDOWN_TIMEOUT_MS for it.
 */
describe('a request answered before its body was read whole', () => {
  /** Head and the whole message received on a socket, once the server has closed it. */
  async function refused(
    port: number,
    head: string,
    first: Buffer | string,
  ): Promise<{ head: string; body: string; socket: Socket }> {
    const { socket, received } = open(port);
    socket.write(head);
    socket.write(first);
    // The rest of the body is never sent: only the server can end the connection. (Bounded by
    // the test's timeout; the server answers without waiting for more bytes.)
    const raw = await received;
    const [responseHead, body] = raw.split('\r\n\r\n');
    return { head: responseHead!, body: body!, socket };
  }

  const upload = (type: string, contentLength: number) =>
    `POST /v1/models/digits:recalibrate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Type: ${type}\r\nContent-Length: ${contentLength}\r\n\r\n`;
  const row = (seed: number) => digitsRow(seed);
  const rows = (n: number, first = 0) => Array.from({ length: n }, (_, i) => row(first + i));
  const UPLOAD_BYTES = 50 * 1024 * 1024;

  it.each([
    [
      'text/csv',
      `${Array.from({ length: 64 }, (_, i) => `p${i}`).join(',')}\n${['x', ...row(1).slice(1)].join(',')}\n${rows(
        200,
      )
        .map((r) => r.join(','))
        .join('\n')}\n`,
      /line 2, column "p0"/,
    ],
    [
      'application/x-ndjson',
      `${JSON.stringify(row(0))}\n[1,2]\n${rows(200)
        .map((r) => JSON.stringify(r))
        .join('\n')}\n`,
      /line 2/,
    ],
    [
      // A whole reader chunk (4,096 rows) with a NaN: refused once the chunk is read.
      'application/octet-stream',
      (() => {
        const body = Buffer.alloc(4_200 * 64 * 4);
        for (let r = 0; r < 4_200; r++)
          for (let c = 0; c < 64; c++) body.writeFloatLE(row(r)[c]!, (r * 64 + c) * 4);
        body.writeFloatLE(Number.NaN, (1 * 64 + 3) * 4);
        return body;
      })(),
      /row 1, column 3/,
    ],
  ])(
    'a refused %s upload gets its 400 with Connection: close, and the server closes the connection',
    async (type, first, detail) => {
      const port = await listen({
        ADMIN_TOKEN,
        RECALIBRATION_BODY_LIMIT_BYTES: String(2 * UPLOAD_BYTES),
      });
      const { head, body } = await refused(port, upload(type, UPLOAD_BYTES), first);
      expect(head).toMatch(/^HTTP\/1\.1 400 /);
      expect(head).toMatch(/^connection: close$/im);
      expect(head).toMatch(/^content-type: application\/problem\+json/im);
      const problem = JSON.parse(body) as { code: string; detail: string };
      expect(problem.code).toBe('INVALID_INPUT');
      expect(problem.detail).toMatch(detail);
    },
  );

  it('an upload whose Content-Length is over RECALIBRATION_BODY_LIMIT_BYTES gets its 413 before it takes the model', async () => {
    // The recalibration attacker of 2026-12-04: it took the model's lock and held it, with a 409
    // for every other recalibration, until REQUEST_TIMEOUT_MS cut the upload.
    const port = await listen({ ADMIN_TOKEN, RECALIBRATION_BODY_LIMIT_BYTES: '1000000' });
    const { head, body } = await refused(
      port,
      upload('application/octet-stream', 30_000_000),
      Buffer.alloc(64 * 4),
    );
    expect(head).toMatch(/^HTTP\/1\.1 413 /);
    expect(head).toMatch(/^connection: close$/im);
    expect(JSON.parse(body)).toMatchObject({
      code: 'BODY_TOO_LARGE',
      detail: 'upload larger than 1000000 bytes (RECALIBRATION_BODY_LIMIT_BYTES)',
    });
    expect(existsSync(join(t!.repository, 'digits', '.recalibration.lock'))).toBe(false);
    expect(existsSync(join(t!.repository, '.jobs'))).toBe(false);
  });

  it('a predict body over BODY_LIMIT_BYTES gets its 413 with Connection: close, and the connection is closed', async () => {
    const port = await listen({ BODY_LIMIT_BYTES: '4096' });
    const { head, body } = await refused(
      port,
      'POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n',
      `{"instances":[${JSON.stringify(row(0))}`,
    );
    expect(head).toMatch(/^HTTP\/1\.1 413 /);
    expect(head).toMatch(/^connection: close$/im);
    expect((JSON.parse(body) as { code: string }).code).toBe('BODY_TOO_LARGE');
  });

  it('a request without a body keeps its connection when answered at once (404, 405)', async () => {
    const port = await listen({});
    const { socket, received } = open(port);
    let data = '';
    socket.on('data', (d: string) => {
      data += d;
    });
    const answers = () => data.match(/HTTP\/1\.1 \d{3} /g) ?? [];
    // A wrong URL and a wrong method: answered inside the request's parse, before Node marks a
    // bodyless request complete.
    socket.write('GET /no-such-route HTTP/1.1\r\nHost: x\r\n\r\n');
    for (let i = 0; i < 500 && answers().length < 1; i++) await sleep(20);
    socket.write('GET /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\n\r\n');
    for (let i = 0; i < 500 && answers().length < 2; i++) await sleep(20);
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    for (let i = 0; i < 500 && answers().length < 3; i++) await sleep(20);
    expect(answers()).toEqual(['HTTP/1.1 404 ', 'HTTP/1.1 405 ', 'HTTP/1.1 200 ']);
    expect(data).not.toMatch(/^connection: close$/im);
    expect(socket.destroyed).toBe(false);
    socket.destroy();
    await received;
  });

  it('a request whose body was read whole keeps its connection, refused or not', async () => {
    const port = await listen({});
    const { socket, received } = open(port);
    const bad = '{"instances": [[1, 2]]}';
    const good = JSON.stringify({ instances: [row(0)] });
    const request = (body: string) =>
      `POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    let data = '';
    socket.on('data', (d: string) => {
      data += d;
    });
    socket.write(request(bad));
    for (let i = 0; i < 500 && !/^HTTP\/1\.1 400 [\s\S]*\r\n\r\n\{[\s\S]*\}$/.test(data); i++)
      await sleep(20);
    socket.write(request(good));
    for (let i = 0; i < 500 && !/HTTP\/1\.1 200 /.test(data); i++) await sleep(20);
    expect(data).toMatch(/^HTTP\/1\.1 400 /);
    expect(data).toMatch(/HTTP\/1\.1 200 /);
    expect(data).not.toMatch(/^connection: close$/im);
    expect(socket.destroyed).toBe(false);
    socket.destroy();
    await received;
  });
});

describe('CONNECT', () => {
  it('is answered with a 400 problem, logged and counted, not a connection closed in silence', async () => {
    const { port, lines } = await listenLogged<{ msg: string; status?: number; code?: string }>();
    // A client that keeps its side open after the answer: the server closes the connection.
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let raw = '';
    socket.setEncoding('utf8').on('data', (d: string) => {
      raw += d;
    });
    socket.on('error', () => undefined);
    const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()));
    socket.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    await ended;
    const connections = () =>
      new Promise<number>((resolve) => t!.app.server.getConnections((_e, n) => resolve(n)));
    for (let i = 0; i < 500 && (await connections()) > 0; i++) await sleep(20);
    expect(await connections()).toBe(0);
    socket.destroy();
    expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    const problem = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
    expect(problem).toMatchObject({
      status: 400,
      code: 'INVALID_INPUT',
      detail: 'CONNECT is not served: normserve is not a proxy',
    });
    expect(lines).toContainEqual(
      expect.objectContaining({ msg: 'CONNECT refused', status: 400, code: 'INVALID_INPUT' }),
    );
    const metrics = (await t!.app.inject({ url: '/metrics' })).body;
    expect(metrics).toContain(
      'normserve_http_requests_total{method="",route="unmatched",status="400",model="",version=""} 1',
    );
  });
});

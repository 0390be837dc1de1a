/**
 * What a gRPC call must pass before its request is read whole (call-admission.ts), and the reset
 * of a stream answered before its client finished sending (request-reset.ts), with a node:http2
 * client that writes raw gRPC frames — part of a message, and never the end of its stream — as
 * an attacker would:
 * - API_TOKEN: a ModelInfer without the token is answered UNAUTHENTICATED from its headers, its
 *   message unfinished, and its stream reset (RST_STREAM NO_ERROR);
 * - GRPC_MAX_CONCURRENT_STREAMS: one connection holds at most that many calls;
 * - REQUEST_TIMEOUT_MS: a request that has not arrived ends DEADLINE_EXCEEDED (REQUEST_TIMEOUT),
 *   reset; a health Watch, whose request arrived, streams on past it;
 * - the drain: a request still arriving ends UNAVAILABLE (SHUTTING_DOWN) within the drain, which
 *   finishes without being forced.
 */
import { type ClientHttp2Session, constants } from 'node:http2';
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_CONCURRENT_STREAMS, inferMessageLimit } from '../../src/grpc/grpc-server.js';
import { SMALL_MESSAGE_BYTES } from '../../src/grpc/receive-limits.js';
import { InferenceService, parseServerConfig } from '../../src/service/index.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { modelInferFrame, startGrpc } from '../helpers/grpc.js';
import {
  codeOf,
  messageOf,
  openRawCall,
  type RawCall,
  rawSession,
  statusOf,
} from '../helpers/raw-grpc.js';

const TOKEN = 'grpc-admission-token-0123456789';
const INFER = '/inference.GRPCInferenceService/ModelInfer';
const WATCH = '/grpc.health.v1.Health/Watch';
/** Generous bounds for what must happen on a busy 2-core machine (polls, not deadlines). */
const POLL = { timeout: 20_000, interval: 20 };

let t: TestApp | undefined;
let stops: (() => Promise<void>)[] = [];
let sessions: ClientHttp2Session[] = [];
afterEach(async () => {
  for (const s of sessions) s.destroy();
  for (const stop of stops) await stop();
  await t?.close();
  sessions = [];
  stops = [];
  t = undefined;
});

async function serve(options: Parameters<typeof startGrpc>[1] = {}) {
  t = await makeTestApp();
  const g = await startGrpc(t, options);
  stops.push(g.stop);
  return g;
}

async function session(port: number): Promise<ClientHttp2Session> {
  const s = await rawSession(port);
  sessions.push(s);
  return s;
}

const open = openRawCall;

/** The first `bytes` of a message announced as `announced` bytes: the stream is left open. */
function sendPartial(call: RawCall, announced: number, bytes: number): void {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(announced, 1);
  call.stream.write(prefix);
  call.stream.write(Buffer.alloc(bytes, 1));
}

/** Resolves once the server has answered a PING sent now: it has read every frame sent before. */
const roundTrip = (s: ClientHttp2Session) =>
  new Promise<void>((resolve, reject) => {
    s.ping((error) => (error ? reject(error) : resolve()));
  });

describe('gRPC admission', () => {
  it('API_TOKEN: a ModelInfer without it is answered UNAUTHENTICATED from its headers, its message unfinished, and its stream reset', async () => {
    const g = await serve({ apiToken: TOKEN });
    const s = await session(g.port);
    // 16 MiB announced, 64 KiB sent (within the stream's window), never finished.
    const call = open(s, INFER);
    sendPartial(call, 16 * 1024 * 1024 - 100, 64 * 1024);
    await expect.poll(() => call.closed, POLL).toBe(true);
    expect(statusOf(call)).toBe(status.UNAUTHENTICATED);
    expect(codeOf(call)).toBe('UNAUTHORIZED');
    // Closed though its client never ended it: reset by the server without error (RFC 9113 §8.1).
    expect(call.stream.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
    // A wrong token too; the connection serves on.
    const wrong = open(s, INFER, { authorization: 'Bearer not-the-token-0123456789' });
    sendPartial(wrong, 1024, 10);
    await expect.poll(() => wrong.closed, POLL).toBe(true);
    expect(statusOf(wrong)).toBe(status.UNAUTHENTICATED);
    // With the token, the same call is read (and refused for what it is, once whole).
    const client = g.client;
    const ok = await client.call(
      'ModelInfer',
      { model_name: 'nope', inputs: [] },
      { authorization: `Bearer ${TOKEN}` },
    );
    expect(ok.ok ? 0 : ok.error.code).toBe(status.NOT_FOUND);
  });

  it('GRPC_MAX_CONCURRENT_STREAMS: a connection is offered that many calls, and the next waits for one to end', async () => {
    const plain = await serve();
    expect((await session(plain.port)).remoteSettings.maxConcurrentStreams).toBe(
      DEFAULT_MAX_CONCURRENT_STREAMS,
    );
    await t!.close();
    t = undefined;
    const g = await serve({ maxConcurrentStreams: 3 });
    const s = await session(g.port);
    expect(s.remoteSettings.maxConcurrentStreams).toBe(3);
    const watch = () => {
      const call = open(s, WATCH);
      // An empty HealthCheckRequest ("": the server), then the end of the request.
      call.stream.end(Buffer.alloc(5));
      return call;
    };
    const watches = [watch(), watch(), watch()];
    await expect.poll(() => watches.every((w) => w.dataBytes > 0), POLL).toBe(true);
    const fourth = watch();
    await roundTrip(s);
    await roundTrip(s);
    expect(fourth.headers).toBeUndefined();
    // One watch ends: the fourth is taken and answered.
    watches[0]!.stream.close(constants.NGHTTP2_CANCEL);
    await expect.poll(() => fourth.dataBytes > 0, POLL).toBe(true);
    expect(fourth.headers?.[':status']).toBe(200);
  });

  it('GRPC_MAX_CONCURRENT_STREAMS: unset is the server default; at least 1', () => {
    const base = { MODEL_REPOSITORY: '/tmp' };
    expect(parseServerConfig(base).GRPC_MAX_CONCURRENT_STREAMS).toBeUndefined();
    expect(
      parseServerConfig({ ...base, GRPC_MAX_CONCURRENT_STREAMS: '500' })
        .GRPC_MAX_CONCURRENT_STREAMS,
    ).toBe(500);
    expect(() => parseServerConfig({ ...base, GRPC_MAX_CONCURRENT_STREAMS: '0' })).toThrow();
  });

  it('REQUEST_TIMEOUT_MS: a request not arrived whole ends DEADLINE_EXCEEDED (REQUEST_TIMEOUT) and is reset; a Watch streams on past it', async () => {
    const g = await serve({ receiveTimeoutMs: 300 });
    const s = await session(g.port);
    const watch = open(s, WATCH);
    watch.stream.end(Buffer.alloc(5));
    await expect.poll(() => watch.dataBytes > 0, POLL).toBe(true);
    // Part of a message; and a whole message with no end of stream (a unary call waits for it).
    const partial = open(s, INFER);
    sendPartial(partial, 1024 * 1024, 4096);
    const unended = open(s, INFER);
    unended.stream.write(Buffer.alloc(5));
    await expect.poll(() => partial.closed && unended.closed, POLL).toBe(true);
    for (const call of [partial, unended]) {
      expect(statusOf(call)).toBe(status.DEADLINE_EXCEEDED);
      expect(codeOf(call)).toBe('REQUEST_TIMEOUT');
      expect(call.stream.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
    }
    // The watch, open longer than the timeout, is still open and unanswered.
    await roundTrip(s);
    expect(watch.closed).toBe(false);
    expect(watch.trailers).toBeUndefined();
    // A whole request is not cut: answered for what it is.
    const whole = await g.client.call('ModelReady', { name: 'digits', version: '' });
    expect(whole.ok).toBe(true);
  });

  it('shutdown: a request still arriving ends UNAVAILABLE (SHUTTING_DOWN) within the drain, which is not forced', async () => {
    // No receive timeout: only the drain ends it.
    const g = await serve({ receiveTimeoutMs: 0 });
    const s = await session(g.port);
    const partial = open(s, INFER);
    sendPartial(partial, 1024 * 1024, 4096);
    await roundTrip(s);
    // Half of it is the partial call's grace; forced at its end (the call would see no status).
    const closing = g.close(4_000);
    await expect.poll(() => partial.closed, POLL).toBe(true);
    expect(statusOf(partial)).toBe(status.UNAVAILABLE);
    expect(codeOf(partial)).toBe('SHUTTING_DOWN');
    expect((partial.trailers ?? partial.headers)?.['grpc-retry-pushback-ms']).toBe('1000');
    await closing;
  });
});

describe('gRPC message limits per method (receive-limits.ts; gRPC attacker review of 2026-12-04, findings 1 and 3)', () => {
  it('every method but ModelInfer takes a message of at most 64 KiB: one announcing more is refused RESOURCE_EXHAUSTED from its length prefix, and reset', async () => {
    const g = await serve({ apiToken: TOKEN });
    const s = await session(g.port);
    const paths = [
      '/inference.GRPCInferenceService/ServerLive',
      '/inference.GRPCInferenceService/ModelMetadata',
      '/grpc.health.v1.Health/Check',
      WATCH,
    ];
    // BODY_LIMIT_BYTES (16 MiB) allowed each such call 15 MB held, with no token needed.
    const calls = paths.map((path) => {
      const call = open(s, path);
      sendPartial(call, SMALL_MESSAGE_BYTES + 1, 16);
      return call;
    });
    await expect.poll(() => calls.every((c) => c.closed), POLL).toBe(true);
    for (const call of calls) {
      expect(statusOf(call)).toBe(status.RESOURCE_EXHAUSTED);
      expect(call.stream.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
    }
    // The connection serves on.
    const live = await g.client.call('ServerLive', {});
    expect(live.ok).toBe(true);
  });

  it('ModelInfer takes at most MAX_BATCH_SIZE rows of the widest served input, 8 bytes a value, and 64 KiB more', async () => {
    const g = await serve();
    const limit = inferMessageLimit(t!.registry, t!.config.MAX_BATCH_SIZE);
    expect(limit).toBe(64 * 1024 + 8 * t!.config.MAX_BATCH_SIZE * 64);
    const s = await session(g.port);
    const over = open(s, INFER);
    sendPartial(over, limit + 1, 16);
    const under = open(s, INFER);
    sendPartial(under, limit, 16);
    await expect.poll(() => over.closed, POLL).toBe(true);
    expect(statusOf(over)).toBe(status.RESOURCE_EXHAUSTED);
    await roundTrip(s);
    expect(under.closed).toBe(false);
  });

  it('valid calls sent in parallel on one connection are all answered, however many bytes they hold together', async () => {
    const g = await serve();
    // 20 calls of 4,096 rows (1 MiB each) at once on one channel: a budget of 16 MiB per
    // connection, tried and taken out, refused 5 of them.
    const rows = t!.config.MAX_BATCH_SIZE;
    const request = {
      model_name: 'digits',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [rows, 64] }],
      raw_input_contents: [Buffer.alloc(rows * 64 * 4)],
    };
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => g.client.call('ModelInfer', request)),
    );
    expect(answers.map((a) => (a.ok ? 'OK' : a.error.code))).toEqual(Array(20).fill('OK'));
  });
});

describe('a unary call without exactly one message (gRPC attacker review of 2026-12-04, finding 4)', () => {
  it('none, a truncated one or two: INVALID_ARGUMENT saying which, not UNIMPLEMENTED', async () => {
    const g = await serve();
    const s = await session(g.port);
    const LIVE = '/inference.GRPCInferenceService/ServerLive';
    const none = open(s, LIVE);
    none.stream.end();
    const truncated = open(s, LIVE);
    sendPartial(truncated, 100, 10);
    truncated.stream.end();
    const two = open(s, LIVE);
    two.stream.end(Buffer.alloc(10));
    await expect.poll(() => none.closed && truncated.closed && two.closed, POLL).toBe(true);
    for (const [call, what] of [
      [none, 'the request ended without its message'],
      [truncated, 'the request ended without its message'],
      [two, 'a second request message arrived'],
    ] as const) {
      expect(statusOf(call)).toBe(status.INVALID_ARGUMENT);
      expect(codeOf(call)).toBe('INVALID_INPUT');
      expect(messageOf(call)).toBe(
        `${what}: a call of this method carries exactly one request message, then the end of its stream`,
      );
    }
    // One message, then the end: answered.
    expect((await g.client.call('ServerLive', {})).ok).toBe(true);
  });
});

describe('a ModelInfer whose deadline has passed when its turn comes (gRPC attacker review of 2026-12-04, finding 6)', () => {
  it('is not computed: DEADLINE_EXCEEDED, and the engine never sees it', async () => {
    t = await makeTestApp();
    let computes = 0;
    class Counted extends InferenceService {
      override infer(...args: Parameters<InferenceService['infer']>) {
        computes++;
        return super.infer(...args);
      }
    }
    const inference = new Counted(t.registry, { batchMaxDelayUs: 0, batchMaxRows: 256 });
    const g = await startGrpc(t, { inference });
    stops.push(g.stop);
    const frame = modelInferFrame();
    const s = await session(g.port);
    const late = open(s, INFER, { 'grpc-timeout': '1n' });
    late.stream.end(frame);
    await expect.poll(() => late.closed, POLL).toBe(true);
    expect(statusOf(late)).toBe(status.DEADLINE_EXCEEDED);
    expect(late.dataBytes).toBe(0);
    expect(computes).toBe(0);
    // With time to spare, the same call is computed and answered.
    const onTime = open(s, INFER, { 'grpc-timeout': '30S' });
    onTime.stream.end(frame);
    await expect.poll(() => onTime.closed, POLL).toBe(true);
    expect(statusOf(onTime)).toBe(status.OK);
    expect(computes).toBe(1);
  });
});

/**
 * `npx tsx bench/grpc-interceptors.ts [calls] [rounds] [tree…]`: the JavaScript cost per call of
 * the gRPC server's interceptors (request-reset, receive-limits, call-recorder, call-admission),
 * without a connection: grpc-js 1.14's own call object (BaseServerInterceptingCall, from
 * getServerInterceptingCall, as its server makes it) on a stand-in HTTP/2 stream, driven as
 * grpc-js drives a unary call (metadata, one message, the half-close, the reply, the status and
 * the trailers, then the stream's close). The ways: `none` (no interceptor), and for each source
 * tree given (default: this one; a tree from before issue 11's twenty-eighth round has four
 * interceptors, a later one the one interceptor over the four layers) its interceptors, with the
 * recorder's callback building and serializing the server's log line with pino into a discarding
 * destination, and with a no-op callback. Each way runs in a process of its own (as a server runs
 * one: in one process, grpc-js's call sites saw every way's shapes, and each way ran 2–4 times
 * slower than alone), interleaved, `rounds` (5) rounds; in each, `calls` (20,000) calls of warm-up,
 * then `calls` calls measured: the process's CPU µs per call (its GC threads included).
 * bench/README.md, issue 11's twenty-eighth round, has the figures.
 */
import { spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { sensitiveHeaders } from 'node:http2';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ServerInterceptor } from '@grpc/grpc-js';
import { getServerInterceptingCall } from '@grpc/grpc-js/build/src/server-interceptors.js';
import pino from 'pino';
import type { CallEnded } from '../src/grpc/call-recorder.js';

const calls = Number(process.argv[2] ?? 20_000);
const rounds = Number(process.argv[3] ?? 5);
const trees = process.argv.slice(4).map((tree) => resolve(tree));
if (trees.length === 0) trees.push(resolve('.'));

/** The parts of a ServerHttp2Stream grpc-js's call and the layers use; it answers at once. */
class StandInStream extends EventEmitter {
  closed = false;
  destroyed = false;
  headersSent = false;
  readableEnded = false;
  writableLength = 0;
  rstCode = 0;
  readonly session = undefined;
  private sent = false;
  constructor(private readonly request: Buffer) {
    super();
  }
  pause() {}
  resume() {
    if (this.sent) return;
    this.sent = true;
    this.emit('data', this.request);
    this.readableEnded = true;
    this.emit('end');
  }
  respond(headers: Record<string | symbol, unknown>, options?: { endStream?: boolean }) {
    this.headersSent = true;
    void headers[sensitiveHeaders];
    if (options?.endStream) this.finish();
  }
  write(_chunk: Buffer, done: (error?: Error) => void) {
    queueMicrotask(() => done());
    return true;
  }
  end() {
    process.nextTick(() => this.emit('wantTrailers'));
  }
  sendTrailers(_trailers: Record<string, unknown>) {
    this.finish();
  }
  close() {
    this.finish();
  }
  private finish() {
    if (this.closed) return;
    this.closed = true;
    process.nextTick(() => this.emit('close'));
  }
}

const PATH = '/inference.GRPCInferenceService/ModelInfer';
const request = Buffer.alloc(5 + 64);
request.writeUInt32BE(64, 1);
const reply = Buffer.alloc(10 * 4 * 256);
const handler = {
  path: PATH,
  type: 'unary',
  serialize: (value: Buffer) => value,
  deserialize: (bytes: Buffer) => bytes,
};
const headers = {
  ':method': 'POST',
  ':path': PATH,
  ':authority': '127.0.0.1',
  'content-type': 'application/grpc',
  te: 'trailers',
  'x-request-id': 'bench-request-0001',
};
const options = { 'grpc.max_receive_message_length': 4 << 20, 'grpc.max_send_message_length': -1 };

/** One unary call through `interceptors`, as grpc-js's handleUnary drives it; resolves when over. */
function oneCall(interceptors: ServerInterceptor[]): Promise<void> {
  return new Promise((resolve) => {
    const stream = new StandInStream(request);
    const call = getServerInterceptingCall(
      interceptors,
      stream as never,
      headers as never,
      null,
      handler as never,
      options,
    );
    call.start({
      onReceiveMetadata: () => call.startRead(),
      onReceiveMessage: () => call.startRead(),
      onReceiveHalfClose: () =>
        call.sendMessage(reply, () => call.sendStatus({ code: 0, details: 'OK' })),
      onCancel: () => resolve(),
    });
  });
}

const log = pino({ level: 'info' }, { write: () => {} });
const logged: CallEnded = (record, code) => {
  const line: Record<string, unknown> = {};
  line['request_id'] = record.requestId;
  line['grpcMethod'] = record.method;
  line['code'] = code === 0 ? 'OK' : String(code);
  line['durationMs'] = Math.round((performance.now() - record.startedMs) * 1000) / 1000;
  line['model'] = 'digits';
  line['version'] = 1;
  line['rows'] = 256;
  log.info(line, 'grpc request');
};
/**
 * The server's interceptors as the tree at `tree` builds them, with `ended` as the recorder's
 * callback: its one interceptor over the four layers (call-interceptor.ts), or, in a tree from
 * before issue 11's twenty-eighth round, its four interceptors.
 */
async function interceptorsOf(tree: string, ended: CallEnded): Promise<ServerInterceptor[]> {
  const load = (file: string) => import(pathToFileURL(join(tree, 'src/grpc', file)).href);
  const [reset, limits, recorder, admission] = await Promise.all([
    load('request-reset.ts'),
    load('receive-limits.ts'),
    load('call-recorder.ts'),
    load('call-admission.ts'),
  ]);
  const unsupported = (what: string) => () => {
    throw new Error(`${what}: not grpc-js 1.14's internals`);
  };
  const layers = [
    reset.resetUnfinishedRequests(unsupported('request-reset'), new reset.UnreadAnswers()),
    limits.limitReceiving({
      messageLimit: () => 1 << 20,
      unsupported: unsupported('receive-limits'),
    }),
    recorder.callRecorder(ended),
  ];
  const calls = new admission.CallAdmission({ receiveTimeoutMs: 60_000 });
  if (!existsSync(join(tree, 'src/grpc/call-interceptor.ts')))
    return [...layers, calls.interceptor];
  const { callInterceptor } = await load('call-interceptor.ts');
  return [callInterceptor([...layers, calls.layer])];
}

/** The ways measured: none, and each tree's interceptors with the log line and without. */
const ways: Record<string, { tree?: string; log?: boolean }> = { none: {} };
for (const tree of trees) {
  const name = trees.length > 1 ? basename(tree) : 'interceptors';
  ways[name] = { tree, log: true };
  ways[`${name}, no log line`] = { tree, log: false };
}

/** One way in this process: `calls` calls of warm-up, then `calls` measured; CPU µs per call. */
async function measure(way: string): Promise<number> {
  const chosen = ways[way];
  if (!chosen) throw new Error(`no way ${way}`);
  const interceptors = chosen.tree
    ? await interceptorsOf(chosen.tree, chosen.log ? logged : () => {})
    : [];
  for (let i = 0; i < calls; i++) await oneCall(interceptors);
  const cpu = process.cpuUsage();
  for (let i = 0; i < calls; i++) await oneCall(interceptors);
  const used = process.cpuUsage(cpu);
  return (used.user + used.system) / calls;
}

const only = process.env['BENCH_WAY'];
if (only !== undefined) {
  console.log(JSON.stringify(await measure(only)));
} else {
  // Each way in a process of its own, as a server has one: in one process, grpc-js's call sites
  // see every way's shapes, and each way ran 2–4 times slower than alone.
  const results = new Map<string, number[]>(Object.keys(ways).map((k) => [k, []]));
  for (let round = 0; round < rounds; round++) {
    const order = Object.keys(ways);
    if (round % 2) order.reverse();
    for (const way of order) {
      const child = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
        env: { ...process.env, BENCH_WAY: way },
        encoding: 'utf8',
      });
      if (child.status !== 0) throw new Error(`${way}: ${child.stderr}`);
      results.get(way)!.push(Number(child.stdout.trim().split('\n').pop()));
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  for (const [way, us] of results)
    console.log(
      `${way}: ${median(us).toFixed(2)} µs per call (median; rounds ${us.map((u) => u.toFixed(2)).join(', ')})`,
    );
}

/**
 * A server with GRPC_PORT is not ready until gRPC listens too: HTTP listens first and grpc-js
 * (loaded then) binds a fraction of a second later. In between /readyz, /v2/health/ready and
 * /v2 (server ready) answered ready, and a load balancer that probed then sent gRPC clients to a
 * port that refused them. The gRPC listen is held (test/helpers/hold-grpc-listen.mjs) so that the
 * test sees that interval whatever the machine's speed.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { grpcClient } from '../helpers/grpc.js';
import {
  digitsRepositoryCopy,
  exitWithin,
  freePort,
  freshGet,
  killServersAfterEach,
  listeningPort,
  type Reply,
  servingEnv,
  startServer,
  until,
} from '../helpers/server-process.js';
import { makeTempDir } from '../helpers/temp-files.js';

const HOLD_GRPC_LISTEN = fileURLToPath(new URL('../helpers/hold-grpc-listen.mjs', import.meta.url));

killServersAfterEach();

/** Wall-clock log times against a monotonic timer: how early a timer's end may read. */
const CLOCK_SLACK_MS = 50;

describe('readiness while gRPC is not yet listening', () => {
  it('is 503 "starting" until the gRPC port listens, then ready; requests are served meanwhile', async () => {
    const hold = makeTempDir('hold-grpc-listen');
    const grpcPort = await freePort();
    const server = startServer(
      servingEnv(digitsRepositoryCopy('ready-after-grpc'), 1, {
        GRPC_PORT: String(grpcPort),
        NODE_OPTIONS: `--import ${HOLD_GRPC_LISTEN}`,
        NORMSERVE_TEST_HOLD_DIR: hold,
      }),
    );
    const port = await listeningPort(server);
    await until(
      () => readdirSync(hold).some((name) => name.startsWith('held-grpc-')),
      'the gRPC listen held',
    );

    const ready = (await freshGet(port, '/readyz')) as Reply;
    expect(ready.status, ready.body).toBe(503);
    expect(JSON.parse(ready.body)).toMatchObject({ status: 'not_ready', reason: 'starting' });
    const v2 = (await freshGet(port, '/v2/health/ready')) as Reply;
    expect(v2.status, v2.body).toBe(503);
    expect(JSON.parse(v2.body)).toMatchObject({ ready: false, reason: 'starting' });
    // Alive and serving: only readiness waits for the other transport.
    expect(((await freshGet(port, '/healthz')) as Reply).status).toBe(200);
    expect(((await freshGet(port, '/v1/models/digits')) as Reply).status).toBe(200);

    writeFileSync(join(hold, 'go'), '');
    await server.waitForLog((l) => l.msg === 'gRPC server listening', 'gRPC server listening');
    await until(
      async () => ((await freshGet(port, '/readyz')) as Reply).status === 200,
      '/readyz 200 once gRPC listens',
    );
    const client = grpcClient(grpcPort);
    try {
      expect(await client.call('ServerReady', {})).toEqual({ ok: true, value: { ready: true } });
    } finally {
      client.close();
    }
    server.child.kill('SIGTERM');
    const { code } = await exitWithin(server, 30_000);
    expect(code, server.stderr()).toBe(0);
  });

  it('WORKERS=2: one SIGTERM while starting is one signal: the lame duck lasts SHUTDOWN_DELAY_MS', async () => {
    // The primary replays the signals so far to a worker that says it is ready (once gRPC
    // listens); a worker that had counted the SIGTERM while starting counted it twice and ended
    // the lame-duck phase at once, as a second signal does (review of 2026-12-04).
    const hold = makeTempDir('hold-grpc-listen-2');
    const grpcPort = await freePort();
    const delayMs = 2_000;
    const server = startServer(
      servingEnv(digitsRepositoryCopy('ready-after-grpc-2'), 2, {
        GRPC_PORT: String(grpcPort),
        SHUTDOWN_DELAY_MS: String(delayMs),
        NODE_OPTIONS: `--import ${HOLD_GRPC_LISTEN}`,
        NORMSERVE_TEST_HOLD_DIR: hold,
      }),
    );
    await until(
      () => readdirSync(hold).filter((name) => name.startsWith('held-grpc-')).length === 2,
      'both workers’ gRPC listens held',
    );
    server.child.kill('SIGTERM');
    const lameDuck = 'shutting down: serving on while readiness answers 503, then draining';
    await server.waitForLog((l) => l.msg === lameDuck, lameDuck, { count: 2 });
    writeFileSync(join(hold, 'go'), '');
    const { code } = await exitWithin(server, 60_000);
    expect(code, server.stderr()).toBe(0);
    expect(server.logs.some((l) => l.msg === 'repeated signal: draining now')).toBe(false);
    // Each worker drained no sooner than SHUTDOWN_DELAY_MS after its lame duck began.
    const drain = 'shutting down: no new connections, finishing requests in flight';
    const workers = new Set(server.logs.filter((l) => l.msg === lameDuck).map((l) => l.pid));
    expect(workers.size).toBe(2);
    for (const pid of workers) {
      const began = server.logs.find((l) => l.pid === pid && l.msg === lameDuck)!;
      const drained = server.logs.find((l) => l.pid === pid && l.msg === drain);
      expect(drained, `worker ${pid} drained`).toBeDefined();
      // A lower bound only (a busy machine drains later, never sooner); the log's wall-clock
      // milliseconds may read a timer's end a few ms early (Node times it on a monotonic clock).
      expect(Number(drained!.time) - Number(began.time)).toBeGreaterThanOrEqual(
        delayMs - CLOCK_SLACK_MS,
      );
    }
  });
});

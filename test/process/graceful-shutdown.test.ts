/**
 * The real server process (src/cli/server.ts): graceful shutdown on SIGTERM with a request in
 * flight, with one process and with a cluster primary, and the start-up refusal of an invalid
 * configuration.
 */
import { cpSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { digitsTestRows } from '../helpers/digits.js';
import { grpcClient } from '../helpers/grpc.js';
import {
  digitsRepositoryCopy,
  exitWithin,
  freePort,
  freshGet,
  killServersAfterEach,
  LISTENING,
  listeningPort,
  type Reply,
  readClosingReply,
  servingEnv,
  slowUpload,
  startServer,
} from '../helpers/server-process.js';
import { makeTempDir } from '../helpers/temp-files.js';

/** Bound on the time from SIGTERM to exit (SHUTDOWN_TIMEOUT_MS is 10 s by default). */
const EXIT_WITHIN_MS = 10_000;

killServersAfterEach();

/** Adds model `name` whose only version is models/digits/1 with model.safetensors truncated. */
function addBrokenModel(root: string, name: string): void {
  const dir = join(root, name, '1');
  cpSync(bundledVersionDir('digits'), dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { name: string };
  config.name = name;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const weights = readFileSync(join(dir, 'model.safetensors'));
  writeFileSync(join(dir, 'model.safetensors'), weights.subarray(0, weights.length >> 1));
}

/**
 * New connections after shutdown began are refused. In the instant before the listening socket
 * closes some may still be accepted: they must then be answered 503, never left hanging until the
 * drain ends nor reset (queued on the socket as it closed: the drain closes it once accepts are
 * quiet, src/http/connection-drain.ts; with WORKERS > 1 the primary does,
 * src/cli/cluster-listener.ts). A burst of connections is opened first (the instant is short),
 * then one is tried every 50 ms until one is refused (within 5 s).
 */
async function expectNewConnectionsRefused(port: number): Promise<void> {
  const outcome = async () => {
    const o = await freshGet(port, '/healthz', 2_000);
    return 'error' in o ? o.error : String(o.status);
  };
  const burst: Promise<string>[] = [];
  for (let i = 0; i < 8; i++) {
    burst.push(outcome());
    await new Promise((r) => setTimeout(r, 5));
  }
  const seen = await Promise.all(burst);
  const deadline = Date.now() + 5_000;
  while (!seen.includes('ECONNREFUSED') && Date.now() < deadline) {
    seen.push(await outcome());
    await new Promise((r) => setTimeout(r, 50));
  }
  const context = `connections made during shutdown: ${seen.join(' ')}`;
  for (const o of seen) expect(['ECONNREFUSED', '503'], context).toContain(o);
  expect(seen, context).toContain('ECONNREFUSED');
}

const rows = digitsTestRows().x.slice(0, 32);
const predictBody = JSON.stringify({ instances: rows });

describe('graceful shutdown of the real server process', () => {
  for (const workers of ['1', '2']) {
    it(`WORKERS=${workers}: SIGTERM finishes the request in flight (200), refuses new connections and exits 0 within 10 s`, async () => {
      const server = startServer(servingEnv(digitsRepositoryCopy(), workers));
      const port = await listeningPort(server, Number(workers));
      expect((await freshGet(port, '/readyz')) as Reply).toMatchObject({ status: 200 });

      const upload = slowUpload(port, '/v1/models/digits:predict', predictBody);
      await upload.started;

      const signalled = Date.now();
      server.child.kill('SIGTERM');
      await server.waitForLog(
        (l) => typeof l.msg === 'string' && l.msg.startsWith('shutting down'),
        'shutting down',
        { count: Number(workers) },
      );
      try {
        await expectNewConnectionsRefused(port);
      } finally {
        upload.finish();
      }
      const reply = await upload.response;
      expect(reply.status, reply.body).toBe(200);
      expect(reply.headers['x-model-version']).toBe('1');
      const body = JSON.parse(reply.body) as { predictions: number[][]; labels: string[] };
      expect(body.predictions).toHaveLength(rows.length);
      expect(body.labels).toHaveLength(rows.length);

      const { code, signal } = await exitWithin(server, EXIT_WITHIN_MS);
      expect(Date.now() - signalled).toBeLessThanOrEqual(EXIT_WITHIN_MS);
      expect({ code, signal }, server.stderr()).toEqual({ code: 0, signal: null });
      expect(server.logs.some((l) => l.msg === 'stopped')).toBe(true);
      expect(
        server.logs.filter((l) => (l.level ?? 0) >= 50),
        'error logs',
      ).toEqual([]);
    });
  }
});

/** One request of a keep-alive loop: on a connection it had used before, and what came of it. */
interface LoopOutcome {
  reused: boolean;
  afterSignal: boolean;
  status?: number;
  code?: string;
  connectionClose?: boolean;
  error?: string;
}

/**
 * A client that posts `body` again and again on its own kept-alive connection (an agent of one
 * socket) until the server answers with `Connection: close` (it does while shutting down) or a
 * request fails.
 */
async function keepAliveLoop(
  port: number,
  body: string,
  signalled: () => boolean,
  outcomes: LoopOutcome[],
  served: () => void,
): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (;;) {
      const afterSignal = signalled();
      const outcome = await new Promise<LoopOutcome>((resolve) => {
        const request = http.request(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: '/v1/models/digits:predict',
            agent,
            headers: { 'content-type': 'application/json' },
          },
          (response) => {
            readClosingReply(response).then(
              (reply) => resolve({ reused: request.reusedSocket, afterSignal, ...reply }),
              (e: NodeJS.ErrnoException) =>
                resolve({ reused: request.reusedSocket, afterSignal, error: `response ${e.code}` }),
            );
          },
        );
        request.on('error', (e: NodeJS.ErrnoException) =>
          resolve({ reused: request.reusedSocket, afterSignal, error: e.code ?? e.message }),
        );
        request.end(body);
      });
      outcomes.push(outcome);
      if (outcome.status === 200) served();
      if (outcome.error !== undefined || outcome.connectionClose) return;
    }
  } finally {
    agent.destroy();
  }
}

describe('graceful shutdown with keep-alive clients sending', () => {
  for (const workers of ['1', '2']) {
    it(`WORKERS=${workers}: every request sent on an open connection is answered (200 or SHUTTING_DOWN with Connection: close), none reset`, async () => {
      const server = startServer(servingEnv(digitsRepositoryCopy(), workers));
      const port = await listeningPort(server, Number(workers));
      const body = JSON.stringify({ instances: rows.slice(0, 1) });
      const loops = 8;
      const outcomes: LoopOutcome[][] = Array.from({ length: loops }, () => []);
      let signalled = false;
      let answered = 0;
      let onAnswered = () => {};
      const running = outcomes.map((mine) =>
        keepAliveLoop(
          port,
          body,
          () => signalled,
          mine,
          () => {
            answered++;
            onAnswered();
          },
        ),
      );
      // Every loop is sending on its connection (at least 10 answers each, on average) before
      // the signal, so some requests are on their way whenever it comes.
      await new Promise<void>((resolve) => {
        onAnswered = () => {
          if (answered >= loops * 10) resolve();
        };
      });
      signalled = true;
      server.child.kill('SIGTERM');
      await Promise.all(running);
      const { code, signal } = await exitWithin(server, EXIT_WITHIN_MS);
      expect({ code, signal }, server.stderr()).toEqual({ code: 0, signal: null });

      const all = outcomes.flat();
      const context = JSON.stringify(all.filter((o) => o.afterSignal));
      // A request sent on an open connection (or before the signal) got an answer; only a new
      // connection, made after the server had closed the loop's own, may be refused — never
      // reset (queued on the listening socket as it closed: see expectNewConnectionsRefused).
      for (const o of all)
        if (o.reused || !o.afterSignal) {
          expect(o.error, context).toBeUndefined();
          if (o.status !== 200)
            expect(o, context).toMatchObject({
              status: 503,
              code: 'SHUTTING_DOWN',
              connectionClose: true,
            });
        } else if (o.error !== undefined) expect(o.error, context).toBe('ECONNREFUSED');
      // The signal came while the clients were sending on their connections.
      expect(
        all.some((o) => o.afterSignal && o.reused),
        context,
      ).toBe(true);
      // Each loop ended on an answer that closed its connection, or (the server closed it once
      // idle) on a new connection refused.
      for (const mine of outcomes) {
        const last = mine.at(-1)!;
        expect(last.connectionClose === true || (!last.reused && last.afterSignal), context).toBe(
          true,
        );
      }
      // Each answer the clients got was a request the server read and logged.
      const received = all.filter((o) => o.status !== undefined).length;
      const logged = server.logs.filter(
        (l) => l.msg === 'request' && l.route === '/v1/models/{name}:predict',
      ).length;
      expect(logged).toBe(received);
      expect(
        server.logs.filter((l) => (l.level ?? 0) >= 50),
        'error logs',
      ).toEqual([]);
    });
  }
});

describe('gRPC in the real server process', () => {
  it('WORKERS=2: every worker serves GRPC_PORT (one shared socket), calls on several channels succeed, SIGTERM drains and exits 0', async () => {
    const grpcPort = await freePort();
    const server = startServer(
      servingEnv(digitsRepositoryCopy(), '2', { GRPC_PORT: String(grpcPort) }),
    );
    await listeningPort(server, 2);
    await server.waitForLog((l) => l.msg === 'gRPC server listening', 'gRPC server listening', {
      count: 2,
    });
    const bound = server.logs.filter((l) => l.msg === 'gRPC server listening').map((l) => l.port);
    expect(bound).toEqual([grpcPort, grpcPort]);
    // Channels with different options get connections of their own, which the kernel hands to
    // whichever worker accepts; every call must succeed whichever worker serves it.
    const clients = Array.from({ length: 6 }, (_, i) => grpcClient(grpcPort, { channel: i }));
    try {
      const row = Buffer.from(Float32Array.from(rows[0]!).buffer);
      const replies = await Promise.all(
        clients.map((c) =>
          c.call('ModelInfer', {
            model_name: 'digits',
            inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64] }],
            raw_input_contents: [row],
            outputs: [{ name: 'label' }],
          }),
        ),
      );
      for (const reply of replies) expect(reply.ok, JSON.stringify(reply)).toBe(true);
    } finally {
      for (const c of clients) c.close();
    }
    server.child.kill('SIGTERM');
    const { code, signal } = await exitWithin(server, EXIT_WITHIN_MS);
    expect({ code, signal }, server.stderr()).toEqual({ code: 0, signal: null });
  });
});

describe('the real server process', () => {
  it('counts a model that fails to load in normserve_model_load_failures_total and keeps serving the others', async () => {
    const repository = digitsRepositoryCopy();
    addBrokenModel(repository, 'broken');
    const server = startServer(servingEnv(repository, '1'));
    const port = await listeningPort(server);
    const metrics = (await freshGet(port, '/metrics')) as Reply;
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^normserve_model_load_failures_total\{model="broken"\} 1$/m);
    expect(metrics.body).toMatch(/^normserve_model_active_version\{model="digits"\} 1$/m);
    expect(((await freshGet(port, '/readyz')) as Reply).status).toBe(503);
    expect(((await freshGet(port, '/v2/models/digits/ready')) as Reply).status).toBe(200);
    const failed = server.logs.find((l) => l.msg === 'version failed to load');
    expect(failed).toMatchObject({ model: 'broken', version: 1, level: 50 });
    // The start's warning names the model without a version, not every model (review59).
    const warning = server.logs.find((l) => l.msg === 'not every model has an available version');
    expect(warning).toMatchObject({ models: ['broken'], level: 40 });
    server.child.kill('SIGTERM');
    expect(await exitWithin(server, EXIT_WITHIN_MS)).toEqual({ code: 0, signal: null });
  });

  it('an empty repository starts, is not ready and says why in a warning', async () => {
    const repository = makeTempDir('empty-repository');
    const server = startServer(servingEnv(repository, '1'));
    const port = await listeningPort(server);
    expect(((await freshGet(port, '/readyz')) as Reply).status).toBe(503);
    expect(
      server.logs.find((l) => l.msg?.startsWith('the model repository holds no model')),
    ).toMatchObject({
      repository,
      level: 40,
    });
    server.child.kill('SIGTERM');
    expect(await exitWithin(server, EXIT_WITHIN_MS)).toEqual({ code: 0, signal: null });
  });
});

describe('an invalid configuration', () => {
  for (const [variable, value] of [
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['LOG_LEVEL', 'loud'],
    ['MAX_BATCH_SIZE', '0'],
    ['ADMIN_TOKEN', 'short'],
    ['ENGINE', 'gpu'],
    ['ENGINE_THREADS', '0'],
  ] as const) {
    it(`${variable}=${value} stops the start with exit code 1 and one stderr line naming ${variable}`, async () => {
      const server = startServer({
        PORT: '0',
        MODEL_REPOSITORY: digitsRepositoryCopy(),
        WORKERS: '1',
        [variable]: value,
      });
      const { code } = await exitWithin(server, 30_000);
      expect(code).toBe(1);
      const lines = server.stderr().trimEnd().split('\n');
      expect(lines, server.stderr()).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^normserve: invalid configuration: ${variable}: `));
      expect(server.logs).toEqual([]);
    });
  }
});

describe('a port that is taken', () => {
  for (const workers of [1, 2]) {
    for (const transport of ['HTTP', 'gRPC'] as const) {
      it(`WORKERS=${workers}, ${transport}: one stderr line naming the address and the variable, exit code 1, before any model loads or worker starts`, async () => {
        const holder = createServer();
        await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
        const taken = (holder.address() as { port: number }).port;
        try {
          const server = startServer({
            MODEL_REPOSITORY: digitsRepositoryCopy(),
            WORKERS: String(workers),
            ...(transport === 'HTTP'
              ? { PORT: String(taken) }
              : { PORT: '0', GRPC_PORT: String(taken) }),
          });
          const { code } = await exitWithin(server, 60_000);
          expect(code).toBe(1);
          const lines = server.stderr().trimEnd().split('\n');
          expect(lines, server.stderr()).toHaveLength(1);
          // Node's bind error: `listen EADDRINUSE: address already in use <address>` in a single
          // process, `bind EADDRINUSE <address>` in a cluster worker.
          const error = `(listen EADDRINUSE: address already in use|bind EADDRINUSE) 127\\.0\\.0\\.1:${taken}`;
          expect(lines[0]).toMatch(
            new RegExp(
              transport === 'HTTP'
                ? `^normserve: ${error}; set PORT to a free port$`
                : `^normserve: gRPC: ${error}; set GRPC_PORT to a free port \\(0 = no gRPC server\\)$`,
            ),
          );
          // Said before anything slow (port-preflight.ts): no worker forked, no model loaded.
          expect(server.logs).toEqual([]);
        } finally {
          holder.close();
        }
      });
    }
  }
});

describe('a HOST that does not resolve', () => {
  for (const workers of [1, 2]) {
    it(`WORKERS=${workers}: one stderr line naming HOST (not PORT), exit code 1`, async () => {
      const server = startServer({
        MODEL_REPOSITORY: digitsRepositoryCopy(),
        WORKERS: String(workers),
        PORT: '0',
        HOST: 'foo.invalid',
      });
      const { code } = await exitWithin(server, 60_000);
      expect(code).toBe(1);
      const lines = server.stderr().trimEnd().split('\n');
      expect(lines, server.stderr()).toHaveLength(1);
      // ENOTFOUND, or EAI_AGAIN where no name server answers.
      expect(lines[0]).toMatch(
        /^normserve: getaddrinfo (ENOTFOUND|EAI_AGAIN) foo\.invalid; set HOST to an address of this machine/,
      );
    });
  }
});

describe('a replacement worker that cannot start', () => {
  it('WORKERS=2: after a crash, a replacement that fails as it starts is replaced (the other worker keeps serving), not a full stop', async () => {
    const repository = digitsRepositoryCopy();
    const server = startServer(servingEnv(repository, '2', { MODEL_POLL_INTERVAL_MS: '0' }));
    const port = await listeningPort(server, 2);
    const pids = server.logs.filter((l) => LISTENING.test(l.msg ?? '')).map((l) => Number(l.pid));
    // The repository goes away, so a new worker cannot start; a ready worker is killed.
    const away = `${repository}-away`;
    renameSync(repository, away);
    let restored = false;
    try {
      process.kill(pids[0]!, 'SIGKILL');
      const reason = await server.waitForLog(
        (l) => l.msg === 'a worker could not start',
        'a worker could not start',
      );
      expect(String(reason.reason)).toContain('does not exist (MODEL_REPOSITORY)');
      renameSync(away, repository);
      restored = true;
      // The other worker served throughout; a later replacement starts.
      expect(((await freshGet(port, '/healthz')) as Reply).status).toBe(200);
      await listeningPort(server, 3);
    } finally {
      if (!restored) renameSync(away, repository);
    }
    expect(server.logs.filter((l) => l.msg === 'a worker could not start; stopping')).toEqual([]);
    expect(server.stderr()).toBe('');
    server.child.kill('SIGTERM');
    const { code, signal } = await exitWithin(server, EXIT_WITHIN_MS);
    expect({ code, signal }, server.stderr()).toEqual({ code: 0, signal: null });
  });
});

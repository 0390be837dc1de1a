/**
 * Real server processes for tests (`src/cli/server.ts`, bundled: see entries.ts): each is the leader of
 * its own process group, so killServers() (call it from afterEach) takes cluster workers down too,
 * even when the primary was killed with SIGKILL; log lines are parsed as they come; plain HTTP
 * requests on fresh connections.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, expect } from 'vitest';
import { ADMIN_TOKEN } from './app.js';
import { copyBundledModel } from './bundled-models.js';
import { nodeArgs } from './entries.js';
import { makeTempDir, removeTempDirs } from './temp-files.js';

const SERVER = 'src/cli/server.ts' as const;
const children: ChildProcess[] = [];

/** SIGKILLs every server process group started by startServer (and not yet killed). */
export function killServers(): void {
  for (const child of children.splice(0)) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the group is gone already
    }
  }
}

/**
 * Registers a server-process suite's hooks: the servers a test started are killed after it (a
 * failed test must not leave its server nor its cluster workers running), the temp directories
 * (makeTempDir, digitsRepositoryCopy) removed after the suite.
 */
export function killServersAfterEach(): void {
  afterEach(killServers);
  afterAll(removeTempDirs);
}

/** A new repository (a temp directory named after `label`) holding a copy of the bundled digits. */
export function digitsRepositoryCopy(label = 'process'): string {
  const root = makeTempDir(label);
  copyBundledModel('digits', root);
  return root;
}

export interface LogLine {
  msg?: string;
  level?: number;
  [key: string]: unknown;
}

export interface Server {
  child: ChildProcess;
  logs: LogLine[];
  stderr: () => string;
  /** Resolves with the `count`-th log line matching (default the first), waiting if needed. */
  waitForLog(
    match: (line: LogLine) => boolean,
    what: string,
    options?: { count?: number; timeoutMs?: number },
  ): Promise<LogLine>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * The environment of a server that serves `repository` on a free port of 127.0.0.1 with `workers`
 * processes, info logs (the tests read them) and the tests' admin token; `more` adds or overrides.
 */
export function servingEnv(
  repository: string,
  workers: number | string,
  more: Record<string, string> = {},
): Record<string, string> {
  return {
    PORT: '0',
    HOST: '127.0.0.1',
    MODEL_REPOSITORY: repository,
    LOG_LEVEL: 'info',
    ADMIN_TOKEN,
    WORKERS: String(workers),
    ...more,
  };
}

export function startServer(env: Record<string, string>): Server {
  const child = spawn(process.execPath, nodeArgs(SERVER), {
    cwd: process.cwd(),
    // gRPC off (GRPC_PORT=0) unless a test gives a port, so parallel servers need no free port.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', GRPC_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  children.push(child);
  const logs: LogLine[] = [];
  const waiters: { done: () => boolean }[] = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { msg: text };
    }
    logs.push(line);
    for (const w of waiters.splice(0)) if (!w.done()) waiters.push(w);
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    logs,
    stderr: () => stderr,
    exited,
    waitForLog(match, what, { count = 1, timeoutMs = 30_000 } = {}) {
      const nth = () => logs.filter(match)[count - 1];
      const found = nth();
      if (found) return Promise.resolve(found);
      return new Promise<LogLine>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `no log line "${what}" within ${timeoutMs} ms; stdout: ${JSON.stringify(logs).slice(0, 2000)}; stderr: ${stderr.slice(0, 2000)}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({
          done: () => {
            const line = nth();
            if (line === undefined) return false;
            clearTimeout(timer);
            resolve(line);
            return true;
          },
        });
        void exited.then(({ code, signal }) => {
          clearTimeout(timer);
          reject(
            new Error(
              `the server exited (code ${code}, signal ${signal}) before "${what}"; stderr: ${stderr.slice(0, 2000)}`,
            ),
          );
        });
      });
    },
  };
}

export const LISTENING = /^Server listening at http:\/\/127\.0\.0\.1:(\d+)$/;

/**
 * The port from pino's "Server listening at http://127.0.0.1:NNNNN" line, once `processes`
 * server processes (cluster workers share the port) have logged it.
 */
export async function listeningPort(server: Server, processes = 1): Promise<number> {
  const line = await server.waitForLog(
    (l) => typeof l.msg === 'string' && LISTENING.test(l.msg),
    'Server listening at http://127.0.0.1:NNNNN',
    { count: processes },
  );
  const ports = server.logs
    .filter((l) => LISTENING.test(l.msg ?? ''))
    .map((l) => LISTENING.exec(l.msg!)![1]);
  expect(new Set(ports).size, 'every process listens on the same port').toBe(1);
  return Number(LISTENING.exec(line.msg!)![1]);
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A reply read to its end, as a client sees a server that may be shutting down. */
export interface ClosingReply {
  status: number;
  /** The server closes the connection after this reply (it does while shutting down). */
  connectionClose: boolean;
  /** The problem document's code of a reply other than 200. */
  code?: string;
}

/** Reads `response` to its end; rejects with the response's error. */
export function readClosingReply(response: http.IncomingMessage): Promise<ClosingReply> {
  return new Promise((resolve, reject) => {
    let text = '';
    response.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
    });
    response.on('end', () => {
      const status = response.statusCode ?? 0;
      resolve({
        status,
        connectionClose: response.headers.connection === 'close',
        ...(status === 200 ? {} : { code: (JSON.parse(text) as { code?: string }).code }),
      });
    });
    response.on('error', reject);
  });
}

/**
 * A GET on a new connection: its reply, or the connection error code (e.g. ECONNREFUSED), or
 * `HUNG` when nothing happened within `timeoutMs`.
 */
export function freshGet(
  port: number,
  path: string,
  timeoutMs = 30_000,
): Promise<Reply | { error: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    req.setTimeout(timeoutMs, () => {
      resolve({ error: 'HUNG' });
      req.destroy();
    });
  });
}

/** A request on a new connection (any method, optional body); rejects on a connection error. */
export function freshRequest(
  port: number,
  method: string,
  path: string,
  options: { body?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method,
        agent: false,
        headers: {
          ...(options.body !== undefined
            ? {
                'content-type': 'application/json',
                'content-length': Buffer.byteLength(options.body),
              }
            : {}),
          ...options.headers,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(options.timeoutMs ?? 60_000, () => {
      req.destroy(
        new Error(`${method} ${path}: no answer within ${options.timeoutMs ?? 60_000} ms`),
      );
    });
    req.end(options.body);
  });
}

/**
 * A POST whose body is sent in two parts. The request carries `Expect: 100-continue`, so the
 * server answers "100 Continue" once it has parsed the headers and started the request: when
 * `started` resolves, the request is in flight on the server (deterministically, no sleep).
 */
export function slowUpload(
  port: number,
  path: string,
  body: string,
  headers: Record<string, string> = { 'content-type': 'application/json' },
) {
  const req = http.request({
    host: '127.0.0.1',
    port,
    path,
    method: 'POST',
    agent: false,
    headers: {
      ...headers,
      'content-length': Buffer.byteLength(body),
      expect: '100-continue',
    },
  });
  const half = Math.floor(body.length / 2);
  const started = new Promise<void>((resolve, reject) => {
    req.once('continue', () => {
      req.write(body.slice(0, half), () => resolve());
    });
    req.once('error', reject);
  });
  const response = new Promise<Reply>((resolve, reject) => {
    req.once('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.once('error', reject);
  });
  // A failed test may leave these unawaited: keep their rejections handled.
  started.catch(() => undefined);
  response.catch(() => undefined);
  return {
    started,
    response,
    finish: () => {
      req.end(body.slice(half));
    },
  };
}

export async function exitWithin(server: Server, ms: number) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the server did not exit within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([server.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A TCP port nobody listens on (bound once, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** Polls `done` every 20 ms; a generous bound, so that a loaded machine does not fail it. */
export async function until(
  done: () => boolean | Promise<boolean>,
  what: string,
  boundMs = 60_000,
): Promise<void> {
  const start = Date.now();
  while (!(await done())) {
    if (Date.now() - start > boundMs) throw new Error(`not within ${boundMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

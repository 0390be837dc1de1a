/**
 * HTTP throughput with autocannon against real server processes: normserve's predict next to the
 * bare parse-and-validate route (bench/bare-server.ts), and normserve with WORKERS=1 vs 2, all in
 * the same run so the ratios compare like with like.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';

export interface HttpRow {
  name: string;
  rowsPerRequest: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
}

interface Server {
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts a process and waits for `readyLines` listening lines (one per worker); reads the port. */
function start(args: string[], env: Record<string, string>, readyLines = 1): Promise<Server> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    const timer = setTimeout(
      () => reject(new Error(`no listening line from ${args.join(' ')}: ${output.slice(-500)}`)),
      30_000,
    );
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const matches = [...output.matchAll(/[Ll]istening (?:at http:\/\/127\.0\.0\.1:)?(\d+)/g)];
      const match = matches[0];
      if (match && matches.length >= readyLines) {
        clearTimeout(timer);
        resolve({
          port: Number(match[1]),
          process: child,
          stop: () =>
            new Promise((done) => {
              child.once('exit', () => done());
              child.kill('SIGTERM');
            }),
        });
      }
      if (output.length > 100_000) output = output.slice(-10_000);
    });
    child.once('exit', (code) =>
      reject(new Error(`${args.join(' ')} exited ${code}: ${output.slice(-500)}`)),
    );
  });
}

function load(
  url: string,
  body: string,
  durationSeconds: number,
  connections: number,
): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        duration: durationSeconds,
        connections,
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
  });
}

function row(name: string, rowsPerRequest: number, r: autocannon.Result): HttpRow {
  return {
    name,
    rowsPerRequest,
    requestsPerSecond: r.requests.average,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    errors: r.errors,
    non2xx: r.non2xx,
  };
}

export async function benchHttp(
  options: { durationSeconds?: number; connections?: number } = {},
): Promise<HttpRow[]> {
  const duration = options.durationSeconds ?? 8;
  const connections = options.connections ?? 8;
  const repository = mkdtempSync(join(tmpdir(), 'normserve-bench-'));
  cpSync('models/digits', join(repository, 'digits'), { recursive: true });
  const env = {
    MODEL_REPOSITORY: repository,
    MODEL_POLL_INTERVAL_MS: '0',
    ADMIN_TOKEN: 'bench-admin-token-0123456789',
  };
  const digitsRow = [
    0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0,
    8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6,
    13, 10, 0, 0, 0,
  ];
  const bodies = [1, 256].map((n) => ({
    n,
    body: JSON.stringify({ instances: Array.from({ length: n }, () => digitsRow) }),
  }));
  const rows: HttpRow[] = [];
  const tsx = ['--import', 'tsx'];
  try {
    const serve = (workers: number) =>
      start(
        [...tsx, 'src/cli/server.ts'],
        {
          ...env,
          WORKERS: String(workers),
          PORT: String(20000 + Math.floor(Math.random() * 20000)),
          LOG_LEVEL: 'info',
        },
        workers,
      );
    const bare = await start([...tsx, 'bench/bare-server.ts'], { PORT: '0' });
    const single = await serve(1);
    for (const { n, body } of bodies) {
      rows.push(
        row(
          'bare parse+validate',
          n,
          await load(
            `http://127.0.0.1:${bare.port}/v1/models/digits:predict`,
            body,
            duration,
            connections,
          ),
        ),
      );
      rows.push(
        row(
          'normserve predict (WORKERS=1)',
          n,
          await load(
            `http://127.0.0.1:${single.port}/v1/models/digits:predict`,
            body,
            duration,
            connections,
          ),
        ),
      );
    }
    await bare.stop();
    await single.stop();
    const double = await serve(2);
    rows.push(
      row(
        'normserve predict (WORKERS=2)',
        1,
        await load(
          `http://127.0.0.1:${double.port}/v1/models/digits:predict`,
          bodies[0]!.body,
          duration,
          connections,
        ),
      ),
    );
    rows.push(
      row(
        'normserve predict (WORKERS=2)',
        256,
        await load(
          `http://127.0.0.1:${double.port}/v1/models/digits:predict`,
          bodies[1]!.body,
          duration,
          connections,
        ),
      ),
    );
    await double.stop();
  } finally {
    rmSync(repository, { recursive: true, force: true });
  }
  return rows;
}

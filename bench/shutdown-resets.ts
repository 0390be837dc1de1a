/**
 * Reproduction of connections reset by a graceful shutdown: starts the built server
 * (`node dist/cli/server.js`, run `npm run build` first) with WORKERS (default 2), runs clients
 * that open a NEW connection for every request (`FRESH`, default 8) and keep-alive loops
 * (`KEEPALIVE`, default 4), sends SIGTERM to the primary once they are all busy, and counts what
 * the clients saw after the signal: 200s, 503s, connections refused (ECONNREFUSED: the port had
 * closed, which clients retry) and connections the OS had accepted that were then reset
 * (ECONNRESET, EPIPE, "socket hang up"). Repeats RUNS times (default 5).
 *
 *   npm run build && npx tsx bench/shutdown-resets.ts            # WORKERS=2, 5 runs
 *   WORKERS=1 RUNS=3 npx tsx bench/shutdown-resets.ts
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { copyBundledModel } from '../test/helpers/bundled-models.js';

const WORKERS = process.env.WORKERS ?? '2';
const RUNS = Number(process.env.RUNS ?? 5);
const FRESH = Number(process.env.FRESH ?? 8);
const KEEPALIVE = Number(process.env.KEEPALIVE ?? 4);
/** Requests answered (all clients together) before the signal. */
const WARMUP = Number(process.env.WARMUP ?? 200);

type Outcome = '200' | '503' | 'refused' | 'reset' | 'other';

interface Counts {
  '200': number;
  '503': number;
  refused: number;
  reset: number;
  other: number;
  resets: string[];
}

/** One request: on a fresh connection (agent false) or on `agent`'s kept-alive one. */
function request(
  port: number,
  agent: http.Agent | false,
): Promise<{ outcome: Outcome; detail: string; close: boolean }> {
  return new Promise((resolve) => {
    let connected = false;
    const req = http.request(
      { host: '127.0.0.1', port, method: 'GET', path: '/healthz', agent },
      (res) => {
        res.resume();
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          resolve({
            outcome: status === 200 ? '200' : status === 503 ? '503' : 'other',
            detail: String(status),
            close: res.headers.connection === 'close',
          });
        });
        res.on('error', (e: NodeJS.ErrnoException) =>
          resolve({ outcome: 'reset', detail: `response ${e.code ?? e.message}`, close: true }),
        );
      },
    );
    req.on('socket', (socket) => {
      if (!socket.connecting) connected = true;
      else socket.once('connect', () => (connected = true));
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      const code = e.code ?? e.message;
      if (code === 'ECONNREFUSED') resolve({ outcome: 'refused', detail: code, close: true });
      else if (code === 'ECONNRESET' || code === 'EPIPE' || /hang up/.test(e.message))
        resolve({
          outcome: 'reset',
          detail: `${code} (${connected ? 'after connect' : 'before connect'}, ${agent === false ? 'new' : req.reusedSocket ? 'reused' : 'new keep-alive'} connection)`,
          close: true,
        });
      else resolve({ outcome: 'other', detail: code, close: true });
    });
    req.end();
  });
}

async function run(index: number): Promise<Counts> {
  const repository = mkdtempSync(join(tmpdir(), 'normserve-resets-'));
  copyBundledModel('digits', repository);
  const child = spawn(process.execPath, ['dist/cli/server.js'], {
    env: {
      PATH: process.env.PATH ?? '',
      PORT: '0',
      HOST: '127.0.0.1',
      GRPC_PORT: '0',
      WORKERS,
      LOG_LEVEL: 'info',
      MODEL_REPOSITORY: repository,
      ADMIN_TOKEN: 'a-reproduction-token-of-32-characters-x',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  // The server's log lines after the signal, printed (level warn and over, and the primary's
  // hand-over line) when a run saw a reset.
  const shutdownLog: string[] = [];
  let signalled = false;
  const port = await new Promise<number>((resolve, reject) => {
    let listening = 0;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (signalled) shutdownLog.push(line);
      const m = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
      if (m && ++listening === Number(WORKERS)) resolve(Number(m[1]));
    });
    void exited.then(() => reject(new Error('the server exited before listening')));
  });

  const counts: Counts = { '200': 0, '503': 0, refused: 0, reset: 0, other: 0, resets: [] };
  let answered = 0;
  let warm: () => void = () => {};
  const warmed = new Promise<void>((resolve) => {
    warm = resolve;
  });
  const record = (o: { outcome: Outcome; detail: string }) => {
    if (!signalled) {
      if (o.outcome === '200' && ++answered === WARMUP) warm();
      else if (o.outcome !== '200') counts.resets.push(`before the signal: ${o.detail}`);
      return;
    }
    counts[o.outcome]++;
    if (o.outcome === 'reset' || o.outcome === 'other') counts.resets.push(o.detail);
  };
  // A fresh-connection client stops once refused after the signal (the port has closed).
  const fresh = async () => {
    for (;;) {
      const o = await request(port, false);
      record(o);
      if (signalled && o.outcome === 'refused') return;
    }
  };
  // A keep-alive loop goes on with a new connection when its own is closed, until refused.
  const keepAlive = async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (;;) {
        const o = await request(port, agent);
        record(o);
        if (signalled && o.outcome === 'refused') return;
      }
    } finally {
      agent.destroy();
    }
  };
  const clients = [
    ...Array.from({ length: FRESH }, fresh),
    ...Array.from({ length: KEEPALIVE }, keepAlive),
  ];
  await warmed;
  signalled = true;
  child.kill('SIGTERM');
  await Promise.all(clients);
  const code = await exited;
  rmSync(repository, { recursive: true, force: true });
  process.stdout.write(
    `run ${index + 1}: exit ${code}; after SIGTERM: 200 ${counts['200']}, 503 ${counts['503']}, refused ${counts.refused}, reset ${counts.reset}, other ${counts.other}${counts.resets.length ? `; ${counts.resets.join('; ')}` : ''}\n`,
  );
  if (counts.reset + counts.other > 0)
    for (const line of shutdownLog)
      if (/"level":[4-6]\d|handing|stopping workers|all workers/.test(line))
        process.stdout.write(`  ${line.slice(0, 300)}\n`);
  return counts;
}

let resets = 0;
let runsWithResets = 0;
for (let i = 0; i < RUNS; i++) {
  const c = await run(i);
  resets += c.reset + c.other;
  if (c.reset + c.other > 0) runsWithResets++;
}
process.stdout.write(
  `WORKERS=${WORKERS}: ${resets} reset(s) in ${runsWithResets} of ${RUNS} runs (${FRESH} new-connection clients, ${KEEPALIVE} keep-alive loops)\n`,
);

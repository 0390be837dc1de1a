/**
 * What the HTTP client costs in the recalibration section's float32 upload (issue 16): one
 * WORKERS=1 server, 200,000 night-shifted digits rows (48.8 MiB) posted to
 * `POST /v1/models/digits:recalibrate` by fetch() (undici), by node:http (Content-Length, one
 * write) and by curl (`--data-binary @file`), alternated round by round; the request's wall time,
 * the server's duration_ms and this process's CPU time (curl's own is not counted).
 *
 *   npx tsx bench/recalibration-clients.ts [ROWS] [ROUNDS]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyBundledModel } from '../test/helpers/bundled-models.js';
import { start } from './http.js';
import { recalibrationServerEnv, TOKEN } from './recalibration-setup.js';

const rows = Number(process.argv[2] ?? 200_000);
const rounds = Number(process.argv[3] ?? 3);

const lines = readFileSync('data/digits/digits.csv', 'utf8').trim().split('\n').slice(1);
const data = new Float32Array(rows * 64);
for (let r = 0; r < rows; r++) {
  const cells = lines[r % lines.length]!.split(',').map(Number);
  for (let c = 0; c < 64; c++) data[r * 64 + c] = 16 * (0.35 * (cells[c]! / 16) + 0.1);
}
const body = Buffer.from(data.buffer);
const dir = mkdtempSync(join(tmpdir(), 'normserve-bench-clients-'));
const file = join(dir, 'rows.f32');
writeFileSync(file, body);
copyBundledModel('digits', join(dir, 'repository'));
const server = await start(
  ['--import', 'tsx', 'src/cli/server.ts'],
  await recalibrationServerEnv(join(dir, 'repository')),
  join(dir, 'server.log'),
);
const url = `http://127.0.0.1:${server.port}/v1/models/digits:recalibrate?mode=exact`;
const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/octet-stream' };
const clients: Record<string, () => Promise<number>> = {
  fetch: async () => {
    const response = await fetch(url, { method: 'POST', headers, body });
    return ((await response.json()) as { duration_ms: number }).duration_ms;
  },
  'node:http': () =>
    new Promise((resolve, reject) => {
      const req = request(
        url,
        { method: 'POST', headers: { ...headers, 'content-length': body.length } },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (part: string) => {
            text += part;
          });
          response.on('end', () => resolve(JSON.parse(text).duration_ms));
        },
      );
      req.on('error', reject);
      req.end(body);
    }),
  curl: async () =>
    JSON.parse(
      execFileSync(
        'curl',
        [
          '-sS',
          '-X',
          'POST',
          ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]),
        ].concat(['--data-binary', `@${file}`, url]),
        { encoding: 'utf8' },
      ),
    ).duration_ms,
};
try {
  process.stdout.write(
    `load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
  for (let round = 0; round < rounds; round++) {
    for (const [name, post] of Object.entries(clients)) {
      const cpu = process.cpuUsage();
      const started = performance.now();
      const durationMs = await post();
      const wallMs = performance.now() - started;
      const used = process.cpuUsage(cpu);
      process.stdout.write(
        `${name.padEnd(10)} wall ${wallMs.toFixed(0).padStart(5)} ms  duration_ms ${durationMs.toFixed(0).padStart(5)}  client CPU ${((used.user + used.system) / 1000).toFixed(0).padStart(4)} ms\n`,
      );
    }
  }
  process.stdout.write(
    `load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}

/**
 * What GET /v1/models/digits-cnn/drift/layers costs the other requests of a running server
 * (docs/drift.md, Pictures): 256 rows of digits-cnn traffic, then per call one fresh row (so the
 * pictures are drawn, not answered again) and the pictures, while a one-at-a-time client sends
 * 1-row digits predicts; prints each pictures call's time and the worst predict latency that
 * overlapped it (after --warmup such calls, which build the version's prefix executors and let
 * the JIT settle). With --rss-pid, instead 300 loops of a 4-row digits-cnn predict and the pictures,
 * with that process's RSS after every 100.
 *
 *   PORT=18181 GRPC_PORT=0 WORKERS=1 npx tsx src/cli/server.ts &
 *   npx tsx bench/pictures-latency.ts --port 18181 [--calls 10] [--warmup 5] [--rss-pid <pid>]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8080' },
    calls: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '5' },
    'rss-pid': { type: 'string' },
  },
});
const base = `http://127.0.0.1:${values.port}`;
const rows = readFileSync('data/digits/digits.csv', 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((line) => line.split(',').slice(0, 64).map(Number));
const image = (row: number[]) => [Array.from({ length: 8 }, (_, h) => row.slice(h * 8, h * 8 + 8))];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function post(path: string, body: unknown): Promise<void> {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
}

async function pictures(): Promise<void> {
  const res = await fetch(`${base}/v1/models/digits-cnn/drift/layers`);
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`drift/layers: ${res.status}`);
}

const rssMiB = (pid: string) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

for (let r = 0; r < 256; r += 64)
  await post('/v1/models/digits-cnn:predict', { instances: rows.slice(r, r + 64).map(image) });

const pid = values['rss-pid'];
if (pid !== undefined) {
  const read = [`before: ${rssMiB(pid).toFixed(0)}`];
  for (let i = 1; i <= 300; i++) {
    const instances = [0, 1, 2, 3].map((k) => image(rows[(4 * i + k) % rows.length]!));
    await post('/v1/models/digits-cnn:predict', { instances });
    await pictures();
    if (i % 100 === 0) read.push(`${i}: ${rssMiB(pid).toFixed(0)}`);
  }
  console.log(`RSS MiB after pictures calls: ${read.join(', ')}`);
} else {
  let stop = false;
  const predicts: [number, number][] = [];
  const client = (async () => {
    for (let i = 0; !stop; i++) {
      const start = performance.now();
      await post('/v1/models/digits:predict', { instances: [rows[i % 1000]] });
      predicts.push([start, performance.now()]);
    }
  })();
  const calls: [number, number][] = [];
  const warmup = Number(values.warmup);
  for (let k = 0; k < warmup + Number(values.calls); k++) {
    await post('/v1/models/digits-cnn:predict', { instances: [image(rows[500 + k]!)] });
    await sleep(50);
    const start = performance.now();
    await pictures();
    const end = performance.now();
    // A predict held by the drawing is answered after it: wait for it before looking.
    await sleep(300);
    const worst = Math.max(
      0,
      ...predicts.filter(([s, e]) => e > start && s < end).map(([s, e]) => e - s),
    );
    if (k >= warmup) calls.push([end - start, worst]);
  }
  stop = true;
  await client;
  console.log(`pictures ms: ${calls.map(([t]) => t.toFixed(0)).join(' ')}`);
  console.log(
    `worst digits predict during each, ms: ${calls.map(([, w]) => w.toFixed(0)).join(' ')}`,
  );
}

/**
 * Interleaved A/B of the float32 recalibration upload between two checkouts (issue 16): one
 * WORKERS=1 server started from each tree (e.g. `git worktree add --detach /tmp/base main`, with
 * node_modules linked), the same N night-shifted digits rows posted with node:http to each in
 * turn (ABBA order), R rounds; medians of the request's wall time, the server's CPU time
 * (/proc, user + system) and duration_ms, the ratio B/A, and a check that both published the same
 * statistics (the layer report of each round). A_ENV / B_ENV (JSON) add environment variables to
 * one server, e.g. B_ENV='{"RECALIBRATION_MEMORY_BYTES":"0"}' to compare a setting on one tree.
 * A_NODE_ARGS / B_NODE_ARGS (space-separated) go to one server's node, e.g.
 * A_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' for a CPU profile written when it stops.
 * BODY=ndjson posts the rows as NDJSON (two decimals a value, as the bench's NDJSON upload).
 *
 *   npx tsx bench/recalibration-ab.ts TREE_A TREE_B [ROWS] [ROUNDS] [MODE]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyBundledModel } from '../test/helpers/bundled-models.js';
import { type Server, start } from './http.js';
import { postRecalibration, recalibrationServerEnv } from './recalibration-setup.js';

const [treeA, treeB, rowsArg, roundsArg, modeArg] = process.argv.slice(2);
if (!treeA || !treeB) throw new Error('usage: recalibration-ab.ts TREE_A TREE_B [ROWS] [ROUNDS]');
const rows = Number(rowsArg ?? 200_000);
const rounds = Number(roundsArg ?? 8);
const mode = modeArg ?? 'exact';

const lines = readFileSync('data/digits/digits.csv', 'utf8').trim().split('\n').slice(1);
const data = new Float32Array(rows * 64);
for (let r = 0; r < rows; r++) {
  const cells = lines[r % lines.length]!.split(',').map(Number);
  for (let c = 0; c < 64; c++) data[r * 64 + c] = 16 * (0.35 * (cells[c]! / 16) + 0.1);
}
const ndjson = process.env.BODY === 'ndjson';
const body = ndjson
  ? Buffer.from(
      Array.from({ length: rows }, (_, r) => {
        const row = Array.from(data.subarray(r * 64, (r + 1) * 64), (v) => Number(v.toFixed(2)));
        return `${JSON.stringify(row)}\n`;
      }).join(''),
    )
  : Buffer.from(data.buffer);
const dirs: string[] = [];

async function serverOf(
  tree: string,
  extra: Record<string, string>,
  nodeArgs: string[],
): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), 'normserve-bench-ab-'));
  dirs.push(dir);
  copyBundledModel('digits', join(dir, 'repository'), { checkout: tree });
  const here = process.cwd();
  process.chdir(tree); // tsx resolves the tree's own tsconfig and node_modules
  try {
    return await start(
      [...nodeArgs, '--import', 'tsx', join(tree, 'src/cli/server.ts')],
      { ...(await recalibrationServerEnv(join(dir, 'repository'))), ...extra },
      join(dir, 'server.log'),
    );
  } finally {
    process.chdir(here);
  }
}

function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

const post = (port: number) =>
  postRecalibration<{ duration_ms: number; layers: unknown }>(
    port,
    mode,
    ndjson ? 'application/x-ndjson' : 'application/octet-stream',
    body,
  );

const median = (values: number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function nodeArgsOf(side: 'A' | 'B'): string[] {
  return (process.env[`${side}_NODE_ARGS`] ?? '').split(' ').filter((a) => a !== '');
}

const load0 = loadavg()[0]!;
const servers = {
  A: await serverOf(treeA, JSON.parse(process.env.A_ENV ?? '{}'), nodeArgsOf('A')),
  B: await serverOf(treeB, JSON.parse(process.env.B_ENV ?? '{}'), nodeArgsOf('B')),
};
const figures = {
  A: { wall: [] as number[], cpu: [] as number[], duration: [] as number[] },
  B: { wall: [] as number[], cpu: [] as number[], duration: [] as number[] },
};
const reports: string[] = [];
try {
  for (let round = 0; round < rounds; round++) {
    for (const side of round % 2 ? (['B', 'A'] as const) : (['A', 'B'] as const)) {
      const server = servers[side];
      const cpu0 = cpuMs(server.pid);
      const started = performance.now();
      const outcome = await post(server.port);
      figures[side].wall.push(performance.now() - started);
      figures[side].cpu.push(cpuMs(server.pid) - cpu0);
      figures[side].duration.push(outcome.duration_ms);
      // Both servers publish the same chain of versions, so round r's reports must agree.
      const report = JSON.stringify(outcome.layers);
      if (reports[round] === undefined) reports[round] = report;
      else if (reports[round] !== report) process.stdout.write(`round ${round}: A and B differ\n`);
    }
  }
  for (const side of ['A', 'B'] as const) {
    const f = figures[side];
    process.stdout.write(
      `${side} ${side === 'A' ? treeA : treeB}: wall median ${median(f.wall).toFixed(0)} ms, server CPU median ${median(f.cpu)} ms, duration_ms median ${median(f.duration).toFixed(0)}\n`,
    );
  }
  process.stdout.write(
    `B/A wall ${(median(figures.B.wall) / median(figures.A.wall)).toFixed(3)}, server CPU ${(median(figures.B.cpu) / median(figures.A.cpu)).toFixed(3)} (${rows} rows, ${ndjson ? 'NDJSON' : 'float32'}, ${mode}, ${rounds} rounds; load average ${load0.toFixed(2)} -> ${loadavg()[0]!.toFixed(2)})\n`,
  );
} finally {
  await servers.A.stop();
  await servers.B.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}

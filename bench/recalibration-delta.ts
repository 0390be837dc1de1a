/**
 * What the recalibration section's "Δ" measures (issue 16): exact-mode statistics of normserve
 * (`recalibrate`) and of PyTorch 1.13 in float32 (`torch-recalibration.py`), each against the same
 * procedure run by PyTorch in float64 (`--dtype float64`), on the first N night-shifted digits
 * rows — and, to show what the bench compared until 2026-12-01, normserve on BIG rows against
 * PyTorch on N. Each figure is the largest |Δμ|/σ or |Δσ²|/σ² over every channel of every
 * BatchNorm.
 *
 *   npx tsx bench/recalibration-delta.ts models/digits-cnn/1 10000 200000
 *   npx tsx bench/recalibration-delta.ts models/digits/1 200000 200000
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchNorm, namedModules } from '../src/nn/index.js';
import { recalibrate } from '../src/recalibration/index.js';
import { prepareWasmRuntime } from '../src/service/index.js';
import { bundledVersionDir } from '../test/helpers/bundled-models.js';
import { torchInterpreter, torchUnavailable } from './peer-engines.js';
import { loadNetwork, nightRows } from './recalibration-setup.js';

// The engine as the server and the CLI run it (their model registry prepares V8 before the first
// model loads): relaxed-SIMD FMA in the GEMM, WebAssembly compiled optimized up front. Until
// 2026-12-01 (h28) the library figures ran without it, unlike the HTTP figures of the same run.
prepareWasmRuntime();

type Statistics = Map<string, { mean: ArrayLike<number>; var: ArrayLike<number> }>;

const model = process.argv[2] ?? bundledVersionDir('digits-cnn');
const n = Number(process.argv[3] ?? 10_000);
const big = Number(process.argv[4] ?? n);

const why = torchUnavailable();
if (why !== undefined) throw new Error(`PyTorch is needed: ${why}`);
const dir = mkdtempSync(join(tmpdir(), 'normserve-recal-delta-'));
const data = nightRows(big);
const file = join(dir, 'rows.f32');
writeFileSync(file, new Uint8Array(data.buffer));

async function normserve(rows: number): Promise<Statistics> {
  const { config, network } = loadNetwork(model);
  await recalibrate(
    network,
    config.input_transform,
    config.input_shape,
    data.subarray(0, rows * 64),
    {
      mode: 'exact',
    },
  );
  return new Map(
    namedModules(network)
      .filter((e): e is [string, BatchNorm] => e[1] instanceof BatchNorm)
      .map(([path, bn]) => [path, { mean: bn.runningMean.data, var: bn.runningVar.data }]),
  );
}

function torch(rows: number, dtype: 'float32' | 'float64'): Statistics {
  const out = join(dir, `torch-${dtype}-${rows}.json`);
  const args = ['bench/torch-recalibration.py', model, file, String(rows), '--repeats', '1'];
  const run = spawnSync(torchInterpreter()!, [...args, '--dtype', dtype, '--out', out], {
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(run.stderr);
  return new Map(Object.entries(JSON.parse(readFileSync(out, 'utf8'))));
}

function delta(stats: Statistics, reference: Statistics): string {
  let mean = 0;
  let variance = 0;
  for (const [path, ref] of reference) {
    const s = stats.get(path)!;
    for (let i = 0; i < ref.mean.length; i++) {
      const sigma = Math.sqrt(ref.var[i]!);
      mean = Math.max(mean, Math.abs(s.mean[i]! - ref.mean[i]!) / Math.max(sigma, 1e-6));
      variance = Math.max(
        variance,
        Math.abs(s.var[i]! - ref.var[i]!) / Math.max(ref.var[i]!, 1e-12),
      );
    }
  }
  return `|Δμ|/σ ${mean.toExponential(2)}  |Δσ²|/σ² ${variance.toExponential(2)}`;
}

try {
  const oursN = await normserve(n);
  const oursBig = big === n ? oursN : await normserve(big);
  const torch32 = torch(n, 'float32');
  const exactN = torch(n, 'float64');
  const exactBig = big === n ? exactN : torch(big, 'float64');
  const lines = [
    [`normserve (${n} rows) vs float64 (${n})`, delta(oursN, exactN)],
    [`PyTorch float32 (${n}) vs float64 (${n})`, delta(torch32, exactN)],
    [`normserve (${n}) vs PyTorch float32 (${n})`, delta(oursN, torch32)],
    [`normserve (${big}) vs PyTorch float32 (${n}): the old bench`, delta(oursBig, torch32)],
    [`normserve (${big}) vs float64 (${big})`, delta(oursBig, exactBig)],
    [`float64 (${n}) vs float64 (${big}): the rows differ`, delta(exactN, exactBig)],
  ];
  process.stdout.write(`${model}\n`);
  for (const [what, figure] of lines) process.stdout.write(`${what!.padEnd(62)}${figure}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

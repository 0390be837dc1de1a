/**
 * In-process A/B of the library's exact-mode recalibration between two checkouts (issue 16):
 * `recalibrate` imported from TREE_A's and TREE_B's sources into one process, run on the same N
 * night-shifted digits rows in alternating order (ABBA), R rounds; each side's median and best
 * seconds, rows/s, the ratio B/A, and a check that both stored the same statistics (largest
 * relative difference of any running mean or variance).
 *
 *   npx tsx bench/recalibration-library-ab.ts TREE_A TREE_B [ROWS] [ROUNDS] [MODEL_DIR]
 * (NO_ENGINE_RUNTIME=1: V8's defaults, without the engine's runtime flags)
 */
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { prepareWasmRuntime } from '../src/service/index.js';
import { bundledVersionDir } from '../test/helpers/bundled-models.js';
import { nightRows } from './recalibration-setup.js';

// The engine as the server and the CLI prepare it (relaxed-SIMD FMA, eager compilation), as
// bench/recalibration.ts runs the library; NO_ENGINE_RUNTIME=1 leaves V8's defaults.
if (process.env.NO_ENGINE_RUNTIME !== '1') prepareWasmRuntime();

const [treeA, treeB, rowsArg, roundsArg, modelArg] = process.argv.slice(2);
if (!treeA || !treeB)
  throw new Error('usage: recalibration-library-ab.ts TREE_A TREE_B [ROWS] [ROUNDS] [MODEL_DIR]');
const rows = Number(rowsArg ?? 200_000);
const rounds = Number(roundsArg ?? 8);
const model = modelArg ?? bundledVersionDir('digits');

/** A tree's own modules: its network classes are not the other tree's (instanceof). */
interface Side {
  recalibrate: typeof import('../src/recalibration/index.js').recalibrate;
  nn: typeof import('../src/nn/index.js');
  setup: typeof import('./recalibration-setup.js');
}
const from = async <T>(tree: string, path: string): Promise<T> =>
  (await import(pathToFileURL(resolve(tree, path)).href)) as T;
const load = async (tree: string): Promise<Side> => ({
  recalibrate: (
    await from<typeof import('../src/recalibration/index.js')>(tree, 'src/recalibration/index.ts')
  ).recalibrate,
  nn: await from(tree, 'src/nn/index.ts'),
  setup: await from(tree, 'bench/recalibration-setup.ts'),
});
const sides = { A: await load(treeA), B: await load(treeB) };

const { config } = sides.A.setup.loadNetwork(model);
const width = (config.input_shape as number[]).reduce((a, b) => a * b, 1);
const data = nightRows(rows).subarray(0, rows * width);

async function once(side: 'A' | 'B'): Promise<{ seconds: number; stats: number[] }> {
  const { nn, setup, recalibrate } = sides[side];
  const { network } = setup.loadNetwork(model);
  const started = performance.now();
  await recalibrate(network, config.input_transform, config.input_shape, data, { mode: 'exact' });
  const seconds = (performance.now() - started) / 1000;
  const stats = nn
    .namedModules(network)
    .filter((e): e is [string, InstanceType<typeof nn.BatchNorm>] => e[1] instanceof nn.BatchNorm)
    .flatMap(([, bn]) => [...bn.runningMean.data, ...bn.runningVar.data]);
  return { seconds, stats };
}

const before = loadavg();
const times = { A: [] as number[], B: [] as number[] };
let largest = 0;
// One warm-up each (module compilation, first touch of the engines' memory).
await once('A');
await once('B');
for (let r = 0; r < rounds; r++) {
  const order: ('A' | 'B')[] = r % 2 === 0 ? ['A', 'B'] : ['B', 'A'];
  const got: Record<string, number[]> = {};
  for (const side of order) {
    const { seconds, stats } = await once(side);
    times[side].push(seconds);
    got[side] = stats;
  }
  got.A!.forEach((a, i) => {
    const b = got.B![i]!;
    largest = Math.max(largest, Math.abs(a - b) / Math.max(Math.abs(a), 1e-12));
  });
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
for (const side of ['A', 'B'] as const) {
  const m = median(times[side]);
  const best = Math.min(...times[side]);
  console.log(
    `${side} ${side === 'A' ? treeA : treeB}: median ${(m * 1000).toFixed(0)} ms (${fmt(rows / m)} rows/s), best ${(best * 1000).toFixed(0)} ms (${fmt(rows / best)} rows/s)`,
  );
}
// Each round's B/A (its two runs back to back): robust against load that drifts between rounds.
const paired = times.B.map((b, i) => b / times.A[i]!);
console.log(
  `B/A time: median ${(median(times.B) / median(times.A)).toFixed(3)}, median of the rounds' ratios ${median(paired).toFixed(3)}, best ${(Math.min(...times.B) / Math.min(...times.A)).toFixed(3)}; ${rows} rows of ${model}, ${rounds} rounds ABBA; largest relative difference of the statistics ${largest.toExponential(1)}; load average ${before.map((l) => l.toFixed(1)).join(' ')} -> ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);

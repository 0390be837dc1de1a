/**
 * The JS reference executor's convolution scratch and speed, this tree against another:
 * `npx tsx bench/conv-blocks.ts [BASE_TREE] [rounds] [batch,batch…]` (BASE_TREE: a checkout of another commit's
 * src/, e.g. `git archive main src | tar -x -C /tmp/base`; this tree alone without it).
 *
 * - scratch: the ArrayBuffer bytes a PlanExecutor allocates at construction (its im2col rows and
 *   GEMM output) for one 3×3 conv (padding 1, 64 → 64 channels) on a [64, 512, 512] input, from
 *   process.memoryUsage().arrayBuffers before and after;
 * - speed: rows per CPU-second of the bundled digits-cnn's fused plan on each tree's PlanExecutor
 *   (ENGINE=js's executor) at batch 1, 32 and 256, rounds of 0.5 s alternated between the trees
 *   (the median), with a check that both trees' outputs are the same bits.
 */
import { resolve } from 'node:path';
import { buildSequential } from '../src/checkpoint/index.js';
import { compileNetwork } from '../src/inference/index.js';
import { Rng } from '../src/nn/index.js';
import { loadModelDirectory } from '../src/repository/index.js';
import { bundledVersionDir } from '../test/helpers/bundled-models.js';
import { benchInput } from './models.js';

type Executor = { run(input: Float32Array, rows: number): Float32Array };
type ExecutorClass = new (plan: unknown, maxBatchSize: number) => Executor;

const [baseArg, roundsArg, batchesArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 7);
const trees: Record<string, string> = { this: process.cwd() };
if (baseArg) trees.base = resolve(baseArg);
const executors: Record<string, ExecutorClass> = {};
for (const [name, tree] of Object.entries(trees)) {
  const mod = (await import(`${tree}/src/inference/plan-executor.ts`)) as {
    PlanExecutor: ExecutorClass;
  };
  executors[name] = mod.PlanExecutor;
}

// Scratch: one conv at the window limit's scale.
const big = compileNetwork(
  buildSequential(
    [
      {
        type: 'conv2d',
        in_channels: 64,
        out_channels: 64,
        kernel_size: 3,
        stride: 1,
        padding: 1,
        dilation: 1,
        groups: 1,
        bias: true,
        padding_mode: 'zeros',
      },
    ],
    { init: new Rng(1) },
  ).eval(),
  undefined,
  [64, 512, 512],
);
const MiB = 2 ** 20;
for (const [name, Executor] of Object.entries(executors)) {
  const before = process.memoryUsage().arrayBuffers;
  const executor = new Executor(big, 1);
  const bytes = process.memoryUsage().arrayBuffers - before;
  console.log(
    `scratch ${name}: ${(bytes / MiB).toFixed(1)} MiB for conv 3×3 64→64 on [64, 512, 512]`,
  );
  void executor;
}

// Speed: digits-cnn.
const cnn = (await loadModelDirectory(bundledVersionDir('digits-cnn'))).checkpoint;
const plan = compileNetwork(cnn.network.eval(), cnn.config.input_transform, cnn.config.input_shape);
const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
for (const batch of (batchesArg ?? '1,32,256').split(',').map(Number)) {
  const input = benchInput(batch, 64);
  const runs = Object.fromEntries(
    Object.entries(executors).map(([name, E]) => [name, new E(plan, 256)]),
  );
  const outputs = Object.values(runs).map((e) => Buffer.from(e.run(input, batch).buffer));
  if (outputs.some((o) => !o.equals(outputs[0]!))) throw new Error('the trees disagree');
  const names = Object.keys(runs);
  const figures: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? names.toReversed() : names;
    for (const name of order) {
      const e = runs[name]!;
      // Rows per CPU-second of this process (the machine is shared: wall time counts the waits).
      const start = performance.now();
      const cpu = process.cpuUsage();
      let done = 0;
      while (performance.now() - start < 500) {
        e.run(input, batch);
        done += batch;
      }
      const used = process.cpuUsage(cpu);
      figures[name]!.push((done * 1e6) / (used.user + used.system));
    }
  }
  const line = names.map((n) => `${n} ${Math.round(median(figures[n]!))} rows/CPU-s`).join(', ');
  const ratio =
    figures.base !== undefined
      ? ` (this/base ${(median(figures.this!) / median(figures.base)).toFixed(3)})`
      : '';
  console.log(`digits-cnn batch ${batch}: ${line}${ratio}`);
}

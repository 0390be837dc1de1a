/**
 * digits-cnn's training, this tree against another: `npx tsx bench/conv-training.ts BASE_TREE
 * [wasm|js] [rounds]` (BASE_TREE: a checkout of another commit's src/, e.g. `git archive main src
 * | tar -x -C /tmp/base`). Per tree, rounds alternated: the CPU seconds of a 2-epoch run (the
 * median), whether both trees' trained weights are the same bits, and on wasm the WebAssembly
 * memory the run grew to next to what the tree's estimate (training/wasm-memory.ts) said.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';

const [baseArg, engineArg, roundsArg] = process.argv.slice(2);
if (!baseArg) throw new Error('usage: tsx bench/conv-training.ts BASE_TREE [wasm|js] [rounds]');
const engine = engineArg === 'js' ? 'js' : 'wasm';
const rounds = Number(roundsArg ?? 3);
const trees: Record<string, string> = { this: process.cwd(), base: resolve(baseArg) };

// biome-ignore lint/suspicious/noExplicitAny: two trees' modules, typed by neither
type Module = any;
const modules: Record<string, { training: Module; memory: Module }> = {};
for (const [name, tree] of Object.entries(trees)) {
  modules[name] = {
    training: await import(`${tree}/src/training/index.ts`),
    memory: await import(`${tree}/src/training/wasm-memory.ts`),
  };
}

const grow = WebAssembly.Memory.prototype.grow;
let peak = 0;
WebAssembly.Memory.prototype.grow = function (this: WebAssembly.Memory, pages: number) {
  const before = grow.call(this, pages);
  peak = Math.max(peak, this.buffer.byteLength);
  return before;
};

const seconds: Record<string, number[]> = { this: [], base: [] };
const weights: Record<string, string> = {};
const memory: Record<string, string> = {};
const MiB = 2 ** 20;
for (let round = 0; round < rounds; round++) {
  for (const name of round % 2 ? ['base', 'this'] : ['this', 'base']) {
    const { training: t, memory: m } = modules[name]!;
    const loaded = await t.loadTrainingConfig('configs/digits-cnn.json');
    const parsed = { ...loaded, training: { ...loaded.training, epochs: 2 } };
    const { data, sha256 } = await t.loadCsvDataset(
      parsed.data.path,
      parsed.data.label_column,
      'classification',
    );
    const config = t.resolveTrainingConfig(parsed, data);
    let rows = { validation: 0, test: 0 };
    peak = 0;
    const cpu = process.cpuUsage();
    const result = await t.train({
      config,
      data,
      dataSha256: sha256,
      engine,
      onStart: (info: { rows: typeof rows }) => {
        rows = info.rows;
      },
    });
    const used = process.cpuUsage(cpu);
    seconds[name]!.push((used.user + used.system) / 1e6);
    const hash = createHash('sha256');
    for (const [key, value] of result.state as Map<string, { data: Float32Array } | bigint>) {
      hash.update(key);
      hash.update(
        typeof value === 'bigint'
          ? String(value)
          : new Uint8Array(value.data.buffer, value.data.byteOffset, value.data.byteLength),
      );
    }
    weights[name] = hash.digest('hex');
    const estimate = m.wasmTrainingMemory(config.layers, config.input_shape, {
      batchSize: config.training.batch_size,
      optimizer: config.training.optimizer,
      // Before h80 the option was validationRows (one number), since the rows of each evaluation.
      validationRows: rows.validation,
      evaluationRows: [rows.validation, rows.test],
    });
    memory[name] =
      `estimate ${(estimate.total / MiB).toFixed(2)} MiB, grew to ${(peak / MiB).toFixed(2)} MiB`;
  }
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
for (const name of ['this', 'base']) {
  console.log(
    `${name}: ${median(seconds[name]!).toFixed(2)} CPU s per 2 epochs (${engine})${engine === 'wasm' ? `, ${memory[name]}` : ''}`,
  );
}
console.log(
  `this/base CPU ${(median(seconds.this!) / median(seconds.base!)).toFixed(3)}; same weights: ${weights.this === weights.base}`,
);

/**
 * Engine throughput: samples/s of the fused plan (BatchNorm folded, activations in the kernel)
 * and of the unfused reference (every layer's eval forward) at several batch sizes.
 */
import { CompiledModel } from '../src/inference/index.js';
import { Rng } from '../src/nn/index.js';
import { loadModelDirectory } from '../src/repository/index.js';
import { wideNetwork } from './wide-model.js';

export interface EngineRow {
  model: string;
  batch: number;
  fusedSamplesPerSecond: number;
  unfusedSamplesPerSecond: number;
  ratio: number;
}

/** Runs fn until `budgetMs` has passed (at least twice), returns calls per second. */
function rate(fn: () => void, budgetMs: number): number {
  fn(); // warm-up (JIT, buffer allocation)
  let calls = 0;
  const start = performance.now();
  let elapsed = 0;
  while (calls < 2 || elapsed < budgetMs) {
    fn();
    calls++;
    elapsed = performance.now() - start;
  }
  return (calls * 1000) / elapsed;
}

export async function benchEngine(
  options: { budgetMs?: number; batches?: number[] } = {},
): Promise<EngineRow[]> {
  const budgetMs = options.budgetMs ?? 400;
  const batches = options.batches ?? [1, 32, 256, 4096];
  const digits = (await loadModelDirectory('models/digits/1')).checkpoint;
  const models: { name: string; model: CompiledModel; width: number }[] = [
    {
      name: 'digits 64-128-64-10',
      model: new CompiledModel(digits.network, digits.config.input_transform, 4096),
      width: 64,
    },
    {
      name: 'wide 784-1024-1024-10',
      model: new CompiledModel(wideNetwork(), undefined, 4096),
      width: 784,
    },
  ];
  const rows: EngineRow[] = [];
  const rng = new Rng(1);
  for (const { name, model, width } of models) {
    for (const batch of batches) {
      const input = Float32Array.from({ length: batch * width }, () => rng.uniform(0, 16));
      const fused = rate(() => model.forward(input, batch, true), budgetMs) * batch;
      const unfused = rate(() => model.forward(input, batch, false), budgetMs) * batch;
      rows.push({
        model: name,
        batch,
        fusedSamplesPerSecond: fused,
        unfusedSamplesPerSecond: unfused,
        ratio: fused / unfused,
      });
    }
  }
  return rows;
}

/**
 * Engine throughput: samples/s of the fused plan (BatchNorm folded, activations in the kernel)
 * and of the unfused reference (every layer's eval forward) at several batch sizes.
 */
import { benchInput, benchModels } from './models.js';

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
  const models = await benchModels();
  const rows: EngineRow[] = [];
  for (const { name, model, inputWidth } of models) {
    for (const batch of batches) {
      const input = benchInput(batch, inputWidth);
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

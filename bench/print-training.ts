import type { TrainingBench } from './training.js';

/** Goals of issue 14: normserve wasm / PyTorch eager training samples/s, one thread each. */
const GOALS: Record<string, number> = { digits: 1, MLP: 0.5 };

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** The training section's table and ratios, as `npm run bench` and `npm run bench:train` print them. */
export function printTraining(bench: TrainingBench, write: (line: string) => void): void {
  write(
    `\ntraining (samples/s, forward + backward + optimizer step, one thread each, median of ${bench.rows[0]?.runs.length ?? 0} interleaved rounds)`,
  );
  write(`${'model'.padEnd(36)}${'engine'.padEnd(20)}${'samples/s'.padStart(12)}  runs`);
  for (const r of bench.rows) {
    write(
      `${r.model.padEnd(36)}${r.engine.padEnd(20)}${fmt(r.samplesPerSecond).padStart(12)}  ${r.runs.map((v) => fmt(v)).join(', ')}`,
    );
  }
  for (const [model, ratio] of Object.entries(bench.ratios)) {
    const goal = Object.entries(GOALS).find(([prefix]) => model.startsWith(prefix))?.[1];
    const verdict =
      goal === undefined ? '' : ` (≥ ${goal}: ${ratio >= goal ? 'meets goal' : 'BELOW GOAL'})`;
    write(
      `normserve wasm / PyTorch (median of the rounds' ratios), ${model}: ${fmt(ratio, 2)}${verdict}`,
    );
  }
  if (bench.skipped) write(`skipped PyTorch: ${bench.skipped}`);
}

/**
 * `npm run bench:train`: training throughput of configs/digits-mlp.json (samples/s over all
 * epochs, forward + backward + AdamW), median of 3 runs, no files written.
 */
import { cpus, hostname } from 'node:os';
import { loadCsvDataset, loadTrainingConfig, train } from '../src/training/index.js';

const configPath = process.argv[2] ?? 'configs/digits-mlp.json';
const config = await loadTrainingConfig(configPath);
const { data, sha256 } = await loadCsvDataset(
  config.data.path,
  config.data.label_column,
  config.task,
);
const runs: { samplesPerSecond: number; wallMs: number; accuracy: number | null }[] = [];
for (let i = 0; i < 3; i++) {
  const out = await train({ config, data, dataSha256: sha256 });
  runs.push({
    samplesPerSecond: out.metrics.samples_per_second,
    wallMs: out.metrics.wall_time_ms,
    accuracy: out.metrics.test?.accuracy ?? null,
  });
  process.stdout.write(
    `run ${i + 1}: ${Math.round(out.metrics.samples_per_second)} samples/s, ${(out.metrics.wall_time_ms / 1000).toFixed(2)} s\n`,
  );
}
const sorted = [...runs].sort((a, b) => a.samplesPerSecond - b.samplesPerSecond);
const median = sorted[1]!;
process.stdout.write(
  `${configPath}: median ${Math.round(median.samplesPerSecond)} samples/s (${config.training.epochs} epochs, batch ${config.training.batch_size}, ${(median.wallMs / 1000).toFixed(2)} s per run, test accuracy ${median.accuracy}) on ${cpus()[0]?.model ?? 'unknown CPU'} (${hostname()}), node ${process.version}\n`,
);

/**
 * The training section of `npm run bench` (and `npm run bench:train`): training samples/s of
 * normserve's trainer on its two kernel sets (wasm, the js reference) next to PyTorch 1.13 eager
 * (bench/torch-train.py, when a python3 with torch is found), one thread each, in interleaved
 * rounds of the same run, on
 *
 * - digits: configs/digits-mlp.json as committed (64-128-64-10, BatchNorm, Dropout, AdamW, label
 *   smoothing, cosine schedule, batch 32, 40 epochs, a validation pass per epoch);
 * - wide MLP: 784-1024-1024-10 with BatchNorm1d and ReLU, AdamW, batch 32, random data (normal
 *   features, uniform labels), one epoch of `wideRows` rows, no validation.
 *
 * samples/s is the trainer's own figure (TrainingMetrics.samples_per_second: samples over the
 * time from the first batch to the end of the last epoch); PyTorch's is timed the same way.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Rng } from '../src/nn/index.js';
import {
  type LabeledDataset,
  loadCsvDataset,
  loadTrainingConfig,
  parseTrainingConfig,
  type TrainingConfig,
  train,
} from '../src/training/index.js';
import { torchInterpreter, torchUnavailable } from './peer-engines.js';

const run = promisify(execFile);

export interface TrainingRow {
  model: string;
  engine: 'normserve wasm' | 'normserve js' | 'PyTorch 1 thread';
  /** Median over the rounds. */
  samplesPerSecond: number;
  runs: number[];
}

export interface TrainingBench {
  rows: TrainingRow[];
  /**
   * normserve wasm / PyTorch per model: the median of the rounds' ratios (each round runs the two
   * back to back, so a ratio compares figures taken under the same load); absent without PyTorch.
   */
  ratios: Record<string, number>;
  skipped?: string;
  torch?: string;
}

interface Workload {
  model: string;
  config: TrainingConfig;
  data: LabeledDataset;
  /** The data description bench/torch-train.py builds the same amount of data from. */
  torchData: Record<string, unknown>;
  engines: ('wasm' | 'js')[];
}

const WIDE = [784, 1024, 1024, 10];

function wideWorkload(rows: number): Workload {
  const layers: unknown[] = [];
  for (let i = 0; i + 1 < WIDE.length; i++) {
    layers.push({ type: 'linear', in_features: WIDE[i], out_features: WIDE[i + 1], bias: true });
    if (i + 2 < WIDE.length) {
      layers.push({ type: 'batchnorm1d', num_features: WIDE[i + 1] }, { type: 'relu' });
    }
  }
  const config = parseTrainingConfig(
    {
      name: 'wide-mlp',
      task: 'classification',
      seed: 7,
      data: {
        path: '(random)',
        test_split: { fraction: 0 },
        validation_fraction: 0,
        input_scaling: 'none',
      },
      layers,
      training: {
        epochs: 1,
        batch_size: 32,
        optimizer: { type: 'adamw', lr: 0.001, weight_decay: 0.01 },
        label_smoothing: 0,
      },
    },
    'bench wide MLP',
  );
  const width = WIDE[0]!;
  const classes = WIDE.at(-1)!;
  const rng = new Rng(7);
  const features = new Float32Array(rows * width);
  for (let i = 0; i < features.length; i++) features[i] = rng.normal();
  const targets = Float32Array.from({ length: rows }, () => Math.floor(rng.uniform(0, classes)));
  return {
    model: `MLP ${WIDE.join('-')}`,
    config,
    data: {
      featureNames: Array.from({ length: width }, (_, i) => `x${i}`),
      features,
      rows,
      width,
      targets,
      labels: Array.from({ length: classes }, (_, i) => String(i)),
    },
    torchData: { random: { width, classes } },
    engines: ['wasm'],
  };
}

async function digitsWorkload(): Promise<Workload> {
  const config = await loadTrainingConfig('configs/digits-mlp.json');
  const { data } = await loadCsvDataset(config.data.path, config.data.label_column, config.task);
  return {
    model: 'digits (configs/digits-mlp.json)',
    config,
    data,
    torchData: { csv: config.data.path, label_column: config.data.label_column },
    engines: ['wasm', 'js'],
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export async function benchTraining(
  options: { rounds?: number; wideRows?: number; log?: (line: string) => void } = {},
): Promise<TrainingBench> {
  const rounds = options.rounds ?? 5;
  const log = options.log ?? (() => {});
  const noTorch = torchUnavailable();
  const python = torchInterpreter();
  const workloads = [await digitsWorkload(), wideWorkload(options.wideRows ?? 2048)];
  const rows: TrainingRow[] = [];
  const ratios: Record<string, number> = {};
  let torchVersion: string | undefined;
  for (const w of workloads) {
    const runs = new Map<TrainingRow['engine'], number[]>();
    const add = (engine: TrainingRow['engine'], value: number) =>
      runs.set(engine, [...(runs.get(engine) ?? []), value]);
    let split = { train: w.data.rows, validation: 0 };
    const roundRatios: number[] = [];
    const normserve = async (engine: 'wasm' | 'js') => {
      const out = await train({ config: w.config, data: w.data, dataSha256: 'bench', engine });
      split = { train: out.metrics.rows.train, validation: out.metrics.rows.validation };
      add(`normserve ${engine}`, out.metrics.samples_per_second);
      log(
        `${w.model}: normserve ${engine} ${Math.round(out.metrics.samples_per_second)} samples/s`,
      );
      return out.metrics.samples_per_second;
    };
    for (let r = 0; r < rounds; r++) {
      // normserve wasm and PyTorch back to back, so that a round's ratio sees the same load.
      const wasm = await normserve('wasm');
      if (python !== undefined) {
        const spec = {
          layers: w.config.layers,
          training: w.config.training,
          seed: w.config.seed,
          train_rows: split.train,
          val_rows: split.validation,
          data: w.torchData,
        };
        // One thread: torch.set_num_threads(1) in the script covers PyTorch's own pool; Debian's
        // torch calls OpenBLAS (pthreads) for its matrix products, which has its own.
        const { stdout } = await run(python, ['bench/torch-train.py', JSON.stringify(spec)], {
          maxBuffer: 1 << 20,
          env: {
            ...process.env,
            OPENBLAS_NUM_THREADS: '1',
            OMP_NUM_THREADS: '1',
            MKL_NUM_THREADS: '1',
          },
        });
        const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
          samples_per_second: number;
          torch: string;
        };
        torchVersion = result.torch;
        add('PyTorch 1 thread', result.samples_per_second);
        roundRatios.push(wasm / result.samples_per_second);
        log(`${w.model}: PyTorch ${Math.round(result.samples_per_second)} samples/s`);
      }
      for (const engine of w.engines) if (engine !== 'wasm') await normserve(engine);
    }
    for (const [engine, values] of runs) {
      rows.push({ model: w.model, engine, samplesPerSecond: median(values), runs: values });
    }
    if (roundRatios.length > 0) ratios[w.model] = median(roundRatios);
  }
  return {
    rows,
    ratios,
    ...(noTorch !== undefined ? { skipped: noTorch } : {}),
    ...(torchVersion !== undefined ? { torch: torchVersion } : {}),
  };
}

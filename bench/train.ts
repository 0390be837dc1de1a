/**
 * `npm run bench:train`: the training section of `npm run bench` alone (bench/training.ts):
 * normserve's training samples/s on the wasm and js kernels next to PyTorch eager, one thread
 * each, on configs/digits-mlp.json and a 784-1024-1024-10 BatchNorm MLP. Flags: --quick.
 */
import { cpus, hostname, loadavg } from 'node:os';
import { printTraining } from './print-training.js';
import { benchTraining } from './training.js';

const quick = process.argv.includes('--quick');
process.stdout.write(
  `normserve training bench on ${cpus()[0]?.model ?? 'unknown CPU'} (${hostname()}), node ${process.version}, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}\n`,
);
const bench = await benchTraining({
  ...(quick ? { rounds: 1, wideRows: 512 } : {}),
  log: (line) => process.stderr.write(`${line}\n`),
});
printTraining(bench, (line) => process.stdout.write(`${line}\n`));
process.stdout.write(
  `load average at the end ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}\n`,
);

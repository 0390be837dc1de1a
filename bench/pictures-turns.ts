/**
 * The pictures of digits-cnn's first 256 rows in process (docs/drift.md, Pictures): the CPU time
 * of one layerPictures call (the event loop's whole work for them), and how long each turn of
 * layerPicturesInTurns holds the event loop (the gaps between setImmediate callbacks meanwhile).
 *
 *   npx tsx bench/pictures-turns.ts [--calls 200] [--rounds 5] [--engine wasm|js]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { compileNetwork } from '../src/inference/index.js';
import { loadModelDirectory } from '../src/repository/index.js';
import { layerPictures, layerPicturesInTurns } from '../src/service/index.js';
import { bundledVersionDir } from '../test/helpers/bundled-models.js';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '5' },
    engine: { type: 'string', default: 'wasm' },
  },
});
const { checkpoint } = await loadModelDirectory(bundledVersionDir('digits-cnn'));
const network = checkpoint.network.eval();
const { input_transform: inputTransform, input_shape: inputShape } = checkpoint.config;
const source = {
  network,
  inputTransform,
  inputShape,
  plan: compileNetwork(network, inputTransform, inputShape),
  engine: values.engine === 'js' ? ('js' as const) : ('wasm' as const),
};
const input = Float32Array.from(
  readFileSync('data/digits/digits.csv', 'utf8')
    .trim()
    .split('\n')
    .slice(1, 257)
    .flatMap((line) => line.split(',').slice(0, 64).map(Number)),
);

for (let i = 0; i < 20; i++) layerPictures(source, input, 256);
const cpu: number[] = [];
for (let i = 0; i < Number(values.calls); i++) {
  const before = process.cpuUsage();
  layerPictures(source, input, 256);
  const used = process.cpuUsage(before);
  cpu.push((used.user + used.system) / 1000);
}
cpu.sort((a, b) => a - b);
console.log(
  `layerPictures CPU ms, ${cpu.length} calls: min ${cpu[0]!.toFixed(1)}, median ${cpu[cpu.length >> 1]!.toFixed(1)}`,
);

for (let round = 0; round < Number(values.rounds); round++) {
  const turns: number[] = [];
  let last = performance.now();
  let drawing = true;
  const tick = () => {
    const now = performance.now();
    turns.push(now - last);
    last = now;
    if (drawing) setImmediate(tick);
  };
  setImmediate(tick);
  const start = performance.now();
  await layerPicturesInTurns(source, input, 256);
  drawing = false;
  console.log(
    `in turns: ${(performance.now() - start).toFixed(1)} ms, ${turns.length} turns, longest ${Math.max(...turns).toFixed(1)} ms`,
  );
}
process.exit(0);

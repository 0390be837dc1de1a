/**
 * The served softmax in process: `npx tsx bench/softmax.ts` times nn's float64 softmaxRows (the
 * JavaScript executor's, and the served one before the engine had its own) and the WebAssembly
 * engine's `softmax` (WasmExecutor.softmax, its copies in and out included) on 256 rows of 10
 * classes, 4,000 calls each, four alternated rounds, in µs per call (bench/README.md, issue 11's
 * seventh round).
 */
import { buildSequential } from '../src/checkpoint/index.js';
import { compileNetwork, detectWasmSupport, WasmExecutor } from '../src/inference/index.js';
import { Rng, softmaxRows } from '../src/nn/index.js';
import { prepareWasmRuntime } from '../src/service/index.js';

prepareWasmRuntime();
const rows = 256;
const classes = 10;
const calls = 4000;
const plan = compileNetwork(
  buildSequential(
    [
      { type: 'linear', in_features: 64, out_features: 128, bias: true },
      { type: 'relu' },
      { type: 'linear', in_features: 128, out_features: classes, bias: true },
    ],
    { init: new Rng(3) },
  ).eval(),
  undefined,
  [64],
);
const wasm = new WasmExecutor(plan, {
  maxBatchSize: rows,
  threads: 1,
  relaxedSimd: detectWasmSupport().relaxedSimd,
});
const rng = new Rng(1);
const logits = Float32Array.from({ length: rows * classes }, () => rng.normal() * 5);
const time = (f: () => unknown) => {
  const started = performance.now();
  for (let i = 0; i < calls; i++) f();
  return ((performance.now() - started) * 1000) / calls;
};
for (let round = 0; round < 4; round++) {
  const js = time(() => softmaxRows(logits, rows, classes));
  const engine = time(() => wasm.softmax(logits, rows, classes));
  console.log(
    `round ${round + 1}: float64 softmaxRows ${js.toFixed(1)} µs, engine softmax ${engine.toFixed(1)} µs per ${rows}×${classes} call`,
  );
}

/**
 * How the arithmetic of recalibration's prefix plans moves the statistics (issue 16): exact
 * recalibration of digits-torch on the 360 night rows of the recalibration golden
 * (test/fixtures/torch-model/recalibration.json, PyTorch in float64), layer by layer, with
 *   float64   every dense step on gemm64 (the arithmetic before issue 16's second round),
 *   float32   the float32 GEMM as it is,
 *   shipped   the first BatchNorm's plan on the float32 GEMM, the later ones centred
 *             (centredPlan) — what LayerwiseRecalibrator does,
 * and for each the worst relative error of every running mean and variance against the golden
 * (STATS_RTOL 1e-4) and the worst |Δ| of the recalibrated model's unfused logits against
 * PyTorch's float64 ones (OUTPUT_ATOL 1e-5), as test/recalibration/torch-exact.test.ts checks.
 * `golden` loads PyTorch's statistics themselves: what the unfused float32 forward costs alone.
 *
 *   npx tsx bench/recalibration-precision.ts
 */
import { readFileSync } from 'node:fs';
import {
  networkFromCheckpoint,
  parseModelConfig,
  readSafetensors,
  safetensorsToStateDict,
} from '../src/checkpoint/index.js';
import { CompiledModel } from '../src/inference/index.js';
import { batchNormLayers } from '../src/recalibration/batch-norm-layers.js';
import {
  LayerInputStatistics,
  type PrefixArithmetic,
} from '../src/recalibration/layer-input-statistics.js';

interface TensorJson {
  data: number[];
}
const fixture = (name: string) =>
  JSON.parse(readFileSync(`test/fixtures/torch-model/${name}`, 'utf8')) as {
    batchnorms: { running_mean: TensorJson; running_var: TensorJson }[];
    recalibrated: { logits: TensorJson };
  };
const golden = fixture('recalibration.json');
const float64Logits = fixture('reference-float64.json').recalibrated.logits.data;

const dir = 'test/fixtures/torch-model/digits-torch/1';
const config = parseModelConfig(JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')));
const file = readSafetensors(new Uint8Array(readFileSync(`${dir}/model.safetensors`)), 'm');
const load = () => networkFromCheckpoint(config, safetensorsToStateDict(file, 'm'));
const transform = config.input_transform;

// The test rows 1437..1796 of the digits data, night-shifted as the tests do.
const lines = readFileSync('data/digits/digits.csv', 'utf8').trim().split('\n').slice(1438, 1798);
const night = new Float32Array(lines.length * 64);
lines.forEach((line, r) => {
  const cells = line.split(',').map(Number);
  for (let c = 0; c < 64; c++) night[r * 64 + c] = 16 * (0.35 * (cells[c]! / 16) + 0.1);
});
const n = lines.length;

function report(label: string, network: ReturnType<typeof load>): void {
  const parts: string[] = [];
  batchNormLayers(network).forEach(({ path, bn }, k) => {
    const g = golden.batchnorms[k]!;
    const worst = (ours: Float32Array, theirs: number[]) =>
      Math.max(...theirs.map((v, i) => Math.abs(ours[i]! - v) / Math.max(Math.abs(v), 1e-6)));
    parts.push(
      `BN ${path} mean ${worst(bn.runningMean.data, g.running_mean.data).toExponential(1)} var ${worst(bn.runningVar.data, g.running_var.data).toExponential(1)}`,
    );
  });
  const logits = new CompiledModel(network, transform, n, config.input_shape).reference(night, n);
  const off = Math.max(...logits.map((v, i) => Math.abs(v - float64Logits[i]!)));
  process.stdout.write(`${label.padEnd(9)}${parts.join('; ')}; logits ${off.toExponential(2)}\n`);
}

for (const variant of ['float64', 'float32', 'shipped'] as const) {
  const network = load();
  const layers = batchNormLayers(network);
  const source = {
    network,
    inputTransform: transform,
    inputShape: [64],
    engine: {},
    batchRows: 4096,
  };
  let later: PrefixArithmetic = { kind: variant === 'float64' ? 'float64' : 'float32' };
  layers.forEach((layer, k) => {
    const first = k === 0;
    const inputs = new LayerInputStatistics(
      source,
      layer,
      undefined,
      first ? { kind: variant === 'float64' ? 'float64' : 'float32' } : later,
      first,
    );
    const { count, mean, m2 } = inputs.measure(night, n);
    if (first && variant === 'shipped') later = { kind: 'centred', centre: inputs.centre() };
    inputs.close();
    layer.bn.runningMean.data.set(mean);
    layer.bn.runningVar.data.set(m2.map((v) => v / (count - 1)));
  });
  report(variant, network);
}
const network = load();
batchNormLayers(network).forEach(({ bn }, k) => {
  bn.runningMean.data.set(golden.batchnorms[k]!.running_mean.data);
  bn.runningVar.data.set(golden.batchnorms[k]!.running_var.data);
});
report('golden', network);

/**
 * How long loading a large model version holds a server's event loop. A WORKERS=1 server serves
 * the bundled `digits` (repository polled every 100 ms); a client loop of 1-row `digits` predicts
 * (one in flight, keep-alive) runs while a model `big` — a BatchNorm MLP of the given widths,
 * random weights, written once per machine under the system's temporary directory — appears in
 * the repository (its directory renamed into place, as a publisher does), and the poll loads it.
 * Printed per round: the load's time (the rename to the server's `version loaded` line), the
 * worst predict latency whose request overlaps it against the worst of the same loop before it,
 * and the server's longest event-loop turn during the load (bench/stall-hook.cjs: wall and CPU
 * ms; `STALL_TRACE=1`: every turn over 4 ms, timed from the rename). Trees given as arguments are
 * alternated round by round (each a source tree with node_modules, run with tsx).
 *
 *   npx tsx bench/load-stall.ts [ROUNDS] [WIDTHS] [TREE...]
 *     (default: 3 rounds, 784-4096-4096-4096-10 — 40 M parameters, 147 MB —, this tree)
 *   npx tsx bench/load-stall.ts --steps [WIDTHS]
 *     (in process: each synchronous step of a load, run whole, timed alone; then loadModel with
 *     a 1 ms timer measuring its longest turn)
 */
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  buildSequential,
  type LayerSpec,
  MODEL_FORMAT,
  modelConfigSchema,
} from '../src/checkpoint/index.js';
import { Rng } from '../src/nn/index.js';
import { publishCheckpoint } from '../src/service/index.js';
import { copyBundledModel } from '../test/helpers/bundled-models.js';
import { startTree } from './http.js';
import { predictLoop, STALL_HOOK, sleep, turnsIn, worst } from './stall-probe.js';

const args = process.argv.slice(2);
const stepsMode = args[0] === '--steps';
if (stepsMode) args.shift();
const rounds = stepsMode ? 0 : Number(args.shift() ?? 3);
const widthsArg = args.shift() ?? '784-4096-4096-4096-10';
const widths = widthsArg.split('-').map(Number);
const trees = args.length > 0 ? args.map((t) => resolve(t)) : ['.'];

/** Linear, BatchNorm1d and ReLU per hidden width; a Linear to the last. */
function layersOf(w: readonly number[]): LayerSpec[] {
  const layers: LayerSpec[] = [];
  for (let i = 0; i + 1 < w.length; i++) {
    layers.push({ type: 'linear', in_features: w[i]!, out_features: w[i + 1]!, bias: true });
    if (i + 2 < w.length) {
      layers.push(
        {
          type: 'batchnorm1d',
          num_features: w[i + 1]!,
          eps: 1e-5,
          momentum: 0.1,
          affine: true,
          track_running_stats: true,
        },
        { type: 'relu' },
      );
    }
  }
  return layers;
}

/** The version directory of `big` (written once: its random weights are seeded). */
async function bigVersion(): Promise<string> {
  const cache = join(tmpdir(), `normserve-load-stall-${widthsArg}`);
  const version = join(cache, 'big', '1');
  if (existsSync(version)) return version;
  const layers = layersOf(widths);
  const network = buildSequential(layers, { init: new Rng(3) });
  const rng = new Rng(4);
  for (const [name, value] of network.stateDict()) {
    if (typeof value === 'bigint') continue;
    const d = value.data;
    if (name.endsWith('running_mean')) for (let i = 0; i < d.length; i++) d[i] = rng.normal() * 0.1;
    if (name.endsWith('running_var')) for (let i = 0; i < d.length; i++) d[i] = 0.5 + rng.next();
  }
  const config = modelConfigSchema.parse({
    format: MODEL_FORMAT,
    name: 'big',
    task: 'classification',
    input_shape: [widths[0]],
    labels: Array.from({ length: widths.at(-1)! }, (_, i) => String(i)),
    description: `benchmark model: ${widthsArg}, random weights`,
    layers,
  });
  mkdirSync(cache, { recursive: true });
  await publishCheckpoint(cache, { config, state: network.stateDict() });
  return version;
}

/** The time (epoch ms) of the server's `version loaded` line for big/1, once written. */
function loadedAt(serverLog: string): number | undefined {
  for (const line of readFileSync(serverLog, 'utf8').split('\n')) {
    if (!line.includes('"version loaded"') || !line.includes('"model":"big"')) continue;
    return (JSON.parse(line) as { time: number }).time;
  }
  return undefined;
}

interface Round {
  loadMs: number;
  before: number;
  during: number;
  turn: [number, number];
  turnsOver4: number;
}

async function round(tree: string, version: string): Promise<Round> {
  const dir = mkdtempSync(join(tmpdir(), 'normserve-bench-load-'));
  const repository = join(dir, 'repository');
  copyBundledModel('digits', repository);
  // Staged next to the repository (one file system), renamed in: the poll never sees it half-copied.
  const staged = join(dir, 'staged-big');
  cpSync(version, join(staged, '1'), { recursive: true });
  const stallLog = join(dir, 'stalls.txt');
  const serverLog = join(dir, 'server.log');
  const server = await startTree(
    tree,
    repository,
    serverLog,
    { GRPC_PORT: '0', STALL_LOG: stallLog, MODEL_POLL_INTERVAL_MS: '100' },
    ['--require', STALL_HOOK],
  );
  try {
    const warm = predictLoop(server.port);
    await sleep(1500);
    await warm.stop();
    const loop = predictLoop(server.port);
    await sleep(1000);
    const from = Date.now();
    renameSync(staged, join(repository, 'big'));
    let to: number | undefined;
    for (let waited = 0; to === undefined; waited += 20) {
      if (waited > 600_000) throw new Error('big/1 was not loaded within 10 minutes');
      await sleep(20);
      to = loadedAt(serverLog);
    }
    await sleep(500);
    const samples = await loop.stop();
    const turns = turnsIn(stallLog, from, to);
    if (process.env.STALL_TRACE) {
      const listed = turns.map(
        ([end, wall, cpu]) => `+${(end - wall - from).toFixed(0)}: ${wall} (${cpu})`,
      );
      console.log(`  load ${to - from} ms; turns > 4 ms: ${listed.join(', ')}`);
    }
    let turn: [number, number] = [0, 0];
    for (const [, wall, cpu] of turns) if (wall > turn[0]) turn = [wall, cpu];
    return {
      loadMs: to - from,
      before: worst(samples, 0, from),
      during: worst(samples, from, to),
      turn,
      turnsOver4: turns.length,
    };
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** In process: each synchronous step of a load timed alone, then loadModel's longest turn. */
async function steps(version: string): Promise<void> {
  const { loadModel } = await import('../src/service/index.js');
  const {
    CONFIG_FILE,
    WEIGHTS_FILE,
    parseConfigFile,
    weightsExpectation,
    networkForWeights,
    loadWeights,
  } = await import('../src/checkpoint/index.js');
  const { safetensorsLayout } = await import('../src/checkpoint/safetensors.js');
  const { compileNetwork, createExecutor } = await import('../src/inference/index.js');
  const { nodeEngineOptions } = await import('../src/service/engine-runtime.js');
  const config = parseConfigFile(readFileSync(join(version, CONFIG_FILE)), 'config.json');
  const bytes = readFileSync(join(version, WEIGHTS_FILE));
  let t = performance.now();
  let cpu = process.cpuUsage();
  let stepsCpuMs = 0;
  const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;
  const lap = (what: string) => {
    const now = performance.now();
    const used = cpuMs(process.cpuUsage(cpu));
    stepsCpuMs += used;
    console.log(`  ${what}: ${(now - t).toFixed(1)} ms (cpu ${used.toFixed(1)})`);
    t = now;
    cpu = process.cpuUsage();
  };
  const layout = safetensorsLayout(bytes, bytes.length, 'w', weightsExpectation(config, 'c'));
  lap('header parsed and checked');
  const network = networkForWeights(config, layout, 'w');
  lap('network built (zeros)');
  loadWeights(network, layout, bytes.subarray(layout.dataStart), 'w');
  lap('weights decoded, checked, copied in (loadWeights)');
  const plan = compileNetwork(network, config.input_transform, config.input_shape);
  lap('plan compiled, BatchNorm folded (compileNetwork)');
  const executor = createExecutor(plan, {
    ...nodeEngineOptions({ engine: 'wasm', threads: 1 }),
    maxBatchSize: 4096,
  });
  lap(`executor built, weights packed (createExecutor: ${executor.engine})`);
  executor.run(new Float32Array(plan.inputWidth), 1);
  lap('first 1-row call');
  executor.close();
  // loadModel with a 1 ms timer: the longest stretch between its firings is the longest turn.
  let longest = 0;
  let last = performance.now();
  let ticking = true;
  const tick = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (ticking) setTimeout(tick, 1);
  };
  setTimeout(tick, 1);
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  const model = await loadModel(join(version, '..'));
  const loadCpuMs = cpuMs(process.cpuUsage(cpu0));
  ticking = false;
  longest = Math.max(longest, performance.now() - last); // the stretch that ended the load
  console.log(
    `  steps above, all: cpu ${stepsCpuMs.toFixed(0)} ms (files read synchronously beforehand, not counted)`,
  );
  console.log(
    `  loadModel (files read, then the same steps in slices): ${(performance.now() - started).toFixed(0)} ms (cpu ${loadCpuMs.toFixed(0)}), longest turn ${longest.toFixed(1)} ms`,
  );
  model.close();
}

const version = await bigVersion();
console.log(
  `${new Date().toISOString()} load of ${widthsArg} (${version}); load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
if (stepsMode) await steps(version);
for (let r = 0; r < rounds; r++) {
  for (const tree of trees) {
    const { loadMs, before, during, turn, turnsOver4 } = await round(tree, version);
    console.log(
      `round ${r + 1} ${tree}: load ${loadMs} ms; worst predict before ${before.toFixed(1)} ms, during the load ${during.toFixed(1)} ms; server's longest turn ${turn[0].toFixed(1)} ms (cpu ${turn[1].toFixed(1)}), ${turnsOver4} turns > 4 ms (load ${loadavg()[0]!.toFixed(2)})`,
    );
  }
}

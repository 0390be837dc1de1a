/**
 * What a version's first predict costs against the next ones (TF Serving's warm-up records,
 * Triton's `model_warmup`: the first client request should not pay first-touch and JIT costs).
 *
 * Server mode (default): ROUNDS fresh WORKERS=1 servers (`node <tree>/dist/cli/server.js`, built
 * beforehand with `npm run build`; default engine threads, gRPC off) on a repository holding the
 * bundled digits and digits-cnn as versions 1 and 2 (the same files; 2, the highest, is the
 * served one). Once `/readyz` answers 200 (on the keep-alive connection the requests then use,
 * so no request pays the connection), each server gets, per model, 20 one-row JSON predicts
 * (`POST /v1/models/<m>:predict`) then 20 of 256 rows, one at a time, and then the same on each
 * model's version 1 (`/v1/models/<m>/versions/1:predict`). The models' order alternates server by
 * server, so each model's version 2 is measured both as the process's first predicts (the
 * route's own first-call costs in them) and after the other model's, and version 1 is a version's
 * first call on a warm route and a warm model (a publish or a recalibration switch). Printed per
 * model, version, place and rows: the median over servers of the 1st call's latency and of the
 * median of the 2nd–20th. Trees given as arguments alternate round by round.
 *
 *   npm run build && npx tsx bench/first-call.ts [ROUNDS] [TREE...]   (default: 8 rounds, .)
 *
 * Executor mode: each bundled model loaded by a ModelRegistry (the server's load path, default
 * engine threads, or ENGINE_THREADS) in a fresh process per round, then the same 1- and 256-row calls straight on
 * its executor, without HTTP: the engine's share of the first call. Latency, and the calling
 * process's CPU time per call (steadier on a busy machine).
 *
 *   npm run build && npx tsx bench/first-call.ts --executor [ROUNDS] [TREE...]
 *
 * App mode: the same sequence as the server mode on the tree's app in a fresh process per round
 * (test/helpers/app.ts: buildApp over a ModelRegistry, the server's engine threads; `app.inject`, no
 * sockets), measured as this process's CPU time per request — what a busy machine's scheduling
 * leaves out of the latencies above.
 *
 *   npx tsx bench/first-call.ts --app [ROUNDS] [TREE...]
 *
 * Warm-up turns: each model directory given (default: the bundled ones) read and built as the
 * registry builds it, then its warm-up (CompiledModel.warmingUp, with the live-drift taps) driven
 * turn by turn in this process: each turn's wall and CPU time, the longest turn a warm-up adds
 * to a load (bench/load-stall.ts measures the load's own).
 *
 *   npx tsx bench/first-call.ts --turns [MODEL_DIR...]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  BUNDLED_MODEL_NAMES,
  bundledVersionDir,
  copyBundledModel,
} from '../test/helpers/bundled-models.js';
import { benchServerEnv, DIGITS_ROW, type Server, start } from './http.js';
import { sleep } from './stall-probe.js';

const CALLS = 20;
const ROW_COUNTS = [1, 256] as const;

const args = process.argv.slice(2);
const executorMode = args[0] === '--executor';
if (executorMode) args.shift();
const appMode = args[0] === '--app';
if (appMode) args.shift();
const turnsMode = args[0] === '--turns';
if (turnsMode) args.shift();
/** `--child executor` or `--child app-<order>`: one round in this fresh process, as JSON. */
const child = args[0] === '--child' ? args.splice(0, 2)[1] : undefined;
const rounds = turnsMode ? 0 : Number(args.shift() ?? 8);
const trees = args.length > 0 ? args.map((t) => resolve(t)) : [resolve('.')];

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Per row count, the CALLS measurements in ms, the first call first. */
type Calls = Record<(typeof ROW_COUNTS)[number], number[]>;

/** A repository in a new temporary directory: every bundled model, as `versions`. */
function repositoryOf(versions: readonly number[]): { dir: string; repository: string } {
  const dir = mkdtempSync(join(tmpdir(), 'normserve-bench-first-call-'));
  const repository = join(dir, 'repository');
  for (const model of BUNDLED_MODEL_NAMES)
    for (const version of versions) copyBundledModel(model, repository, { version });
  return { dir, repository };
}

const rowsOf = (rows: number) => Array.from({ length: rows }, () => DIGITS_ROW);

/** CALLS predicts of each row count, one at a time, on `route` (`digits`, `digits/versions/1`). */
async function predicts(port: number, route: string): Promise<Calls> {
  const calls = {} as Calls;
  for (const rows of ROW_COUNTS) {
    const body = JSON.stringify({ instances: rowsOf(rows) });
    const times: number[] = [];
    for (let i = 0; i < CALLS; i++) {
      const t = performance.now();
      const response = await fetch(`http://127.0.0.1:${port}/v1/models/${route}:predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      await response.arrayBuffer();
      times.push(performance.now() - t);
      if (response.status !== 200) throw new Error(`${route} predict answered ${response.status}`);
    }
    calls[rows] = times;
  }
  return calls;
}

async function ready(server: Server): Promise<void> {
  for (let waited = 0; ; waited += 20) {
    // fetch, not server.get: the predicts reuse this keep-alive connection.
    const response = await fetch(`http://127.0.0.1:${server.port}/readyz`);
    await response.arrayBuffer();
    if (response.status === 200) return;
    if (waited > 60_000) throw new Error('not ready within 60 s');
    await sleep(20);
  }
}

/** One fresh server: label → calls, the models in `order`. */
async function serverRound(tree: string, order: readonly string[]): Promise<Map<string, Calls>> {
  const { dir, repository } = repositoryOf([1, 2]);
  const server = await start(
    [join(tree, 'dist/cli/server.js')],
    { ...(await benchServerEnv(repository)), GRPC_PORT: '0' },
    join(dir, 'server.log'),
  );
  try {
    await ready(server);
    const results = new Map<string, Calls>();
    for (const [i, model] of order.entries()) {
      const place = i === 0 ? 'the first model' : 'after the other';
      results.set(`${model} v2, ${place}`, await predicts(server.port, model));
    }
    for (const model of order)
      results.set(`${model} v1, after v2`, await predicts(server.port, `${model}/versions/1`));
    return results;
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * In this fresh process (--child): each bundled model loaded by the tree's ModelRegistry, then
 * its calls on the executor; label → calls (latency, and this process's CPU time).
 */
async function executorCalls(tree: string): Promise<Record<string, Calls>> {
  const { ModelRegistry } = (await import(
    join(tree, 'dist/service/index.js')
  )) as typeof import('../src/service/index.js');
  const { defaultEngineThreads } = (await import(
    join(tree, 'dist/service/engine-runtime.js')
  )) as typeof import('../src/service/engine-runtime.js');
  const { dir, repository } = repositoryOf([1]);
  const registry = new ModelRegistry(repository, {
    maxBatchSize: 4096,
    engineThreads: Number(process.env.ENGINE_THREADS ?? defaultEngineThreads(1)),
  });
  const out: Record<string, Calls> = {};
  try {
    await registry.refresh();
    for (const model of BUNDLED_MODEL_NAMES) {
      const { executor } = registry.resolve(model).compiled;
      const wall = {} as Calls;
      const cpu = {} as Calls;
      for (const rows of ROW_COUNTS) {
        const input = Float32Array.from(rowsOf(rows).flat());
        wall[rows] = [];
        cpu[rows] = [];
        for (let i = 0; i < CALLS; i++) {
          const c = process.cpuUsage();
          const t = performance.now();
          executor.run(input, rows);
          wall[rows].push(performance.now() - t);
          const used = process.cpuUsage(c);
          cpu[rows].push((used.user + used.system) / 1000);
        }
      }
      out[`${model}, latency`] = wall;
      out[`${model}, CPU time`] = cpu;
    }
  } finally {
    registry.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

/**
 * In this fresh process (--child app-…): serverRound's sequence on the tree's app through
 * app.inject; label → calls, in CPU ms of this process per request.
 */
async function appCalls(tree: string, order: readonly string[]): Promise<Record<string, Calls>> {
  const { defaultEngineThreads } = (await import(
    join(tree, 'src/service/engine-runtime.js')
  )) as typeof import('../src/service/engine-runtime.js');
  const { makeTestApp } = (await import(
    join(tree, 'test/helpers/app.js')
  )) as typeof import('../test/helpers/app.js');
  const { dir, repository } = repositoryOf([1, 2]);
  process.chdir(tree);
  const threads = String(defaultEngineThreads(1)); // the server's, with WORKERS=1
  const t = await makeTestApp({ repository, env: { ENGINE: 'wasm', ENGINE_THREADS: threads } });
  const out: Record<string, Calls> = {};
  const run = async (route: string): Promise<Calls> => {
    const calls = {} as Calls;
    for (const rows of ROW_COUNTS) {
      const payload = JSON.stringify({ instances: rowsOf(rows) });
      calls[rows] = [];
      for (let i = 0; i < CALLS; i++) {
        const c = process.cpuUsage();
        const response = await t.app.inject({
          method: 'POST',
          url: `/v1/models/${route}:predict`,
          headers: { 'content-type': 'application/json' },
          payload,
        });
        const used = process.cpuUsage(c);
        if (response.statusCode !== 200) throw new Error(`${route}: ${response.statusCode}`);
        calls[rows].push((used.user + used.system) / 1000);
      }
    }
    return calls;
  };
  try {
    for (const [i, model] of order.entries())
      out[`${model} v2, ${i === 0 ? 'the first model' : 'after the other'}`] = await run(model);
    for (const model of order) out[`${model} v1, after v2`] = await run(`${model}/versions/1`);
  } finally {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

function report(label: string, all: readonly Calls[]): void {
  for (const rows of ROW_COUNTS) {
    const firsts = all.map((c) => c[rows][0]!);
    const first = median(firsts);
    const steady = median(all.map((c) => median(c[rows].slice(1))));
    console.log(
      `  ${label.padEnd(32)} ${String(rows).padStart(3)} rows: 1st ${first.toFixed(2).padStart(7)} ms, 2nd–${CALLS}th ${steady.toFixed(2).padStart(6)} ms (×${(first / steady).toFixed(1)}; ${all.length} processes, 1st ${Math.min(...firsts).toFixed(2)}–${Math.max(...firsts).toFixed(2)})`,
    );
  }
}

/** Each model directory's warm-up, turn by turn (wall and CPU ms), in this process. */
async function warmUpTurns(dirs: readonly string[]): Promise<void> {
  const { loadModelDirectory } = await import('../src/repository/index.js');
  const { CompiledModel, planFlopsPerRow } = await import('../src/inference/index.js');
  const { finishYielding } = await import('../src/nn/index.js');
  const { nodeEngineOptions, defaultEngineThreads } = await import(
    '../src/service/engine-runtime.js'
  );
  const { liveDriftTaps } = await import('../src/service/version-drift.js');
  for (const dir of dirs) {
    const { name, checkpoint } = await loadModelDirectory(dir);
    const compiled = await finishYielding(
      CompiledModel.building(
        checkpoint.network,
        checkpoint.config.input_transform,
        4096,
        checkpoint.config.input_shape,
        nodeEngineOptions({ engine: 'wasm', threads: defaultEngineThreads(1) }),
      ),
    );
    const work = compiled.warmingUp(liveDriftTaps(compiled.plan, checkpoint.network).taps);
    const turns: string[] = [];
    for (let done = false; !done; ) {
      const c = process.cpuUsage();
      const t = performance.now();
      done = work.next().done === true;
      const used = process.cpuUsage(c);
      turns.push(
        `${(performance.now() - t).toFixed(2)} (${((used.user + used.system) / 1000).toFixed(2)})`,
      );
      await new Promise((r) => setImmediate(r));
    }
    const flops = planFlopsPerRow(compiled.plan);
    console.log(
      `  ${name}: ${(flops / 1e6).toFixed(2)} MFLOP a row, ${compiled.executor.engine} engine; turns, wall ms (CPU ms): ${turns.join(', ')}`,
    );
    compiled.close();
  }
}

if (turnsMode) {
  console.log(
    `${new Date().toISOString()} warm-up turns; load average ${loadavg()[0]!.toFixed(2)}`,
  );
  await warmUpTurns(args.length > 0 ? args : BUNDLED_MODEL_NAMES.map((m) => bundledVersionDir(m)));
} else if (child !== undefined) {
  const result =
    child === 'executor'
      ? await executorCalls(trees[0]!)
      : await appCalls(trees[0]!, child.slice('app-'.length).split(','));
  process.stdout.write(JSON.stringify(result));
} else {
  const mode = executorMode
    ? 'executor (ModelRegistry load)'
    : appMode
      ? 'app in process (JSON predict, CPU time)'
      : 'server (JSON predict)';
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  console.log(`${new Date().toISOString()} first call vs steady, ${mode}; load average ${load}`);
  const byLabel = new Map<string, Calls[]>();
  const add = (tree: string, label: string, calls: Calls) => {
    const key = `${tree}\t${label}`;
    byLabel.set(key, [...(byLabel.get(key) ?? []), calls]);
  };
  for (let r = 0; r < rounds; r++) {
    for (const tree of trees) {
      const order = r % 2 === 0 ? BUNDLED_MODEL_NAMES : [...BUNDLED_MODEL_NAMES].reverse();
      if (executorMode || appMode) {
        const which = executorMode ? 'executor' : `app-${order.join(',')}`;
        const text = execFileSync(
          process.execPath,
          ['--import', 'tsx', resolve('bench/first-call.ts'), '--child', which, tree],
          { encoding: 'utf8' },
        );
        for (const [label, calls] of Object.entries(JSON.parse(text) as Record<string, Calls>))
          add(tree, label, calls);
        continue;
      }
      for (const [label, calls] of await serverRound(tree, order)) add(tree, label, calls);
    }
  }
  console.log(`load average ${loadavg()[0]!.toFixed(2)} at the end`);
  let shown: string | undefined;
  for (const [key, all] of [...byLabel].sort(([a], [b]) => a.localeCompare(b))) {
    const [tree, label] = key.split('\t') as [string, string];
    if (tree !== shown) console.log(tree);
    shown = tree;
    report(label, all);
  }
}

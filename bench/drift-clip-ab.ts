/**
 * Before/after of the live drift probe in one process: an earlier tree of normserve (its engine
 * and its exact BatchNorm taps, as live drift read them before the clip) against this one (its
 * engine and the clipped taps live drift reads now), CompiledModel.forward with the probe and
 * without, in interleaved rounds (each round in the other order), as CPU µs per call
 * (process.cpuUsage: a shared machine steals wall time more than CPU time).
 *   git archive a9912ed | tar -x -C /tmp/base && ln -s $PWD/node_modules /tmp/base/node_modules
 *   npx tsx bench/drift-clip-ab.ts /tmp/base [rounds]
 * BEFORE_TAPS=clipped: the earlier tree reads the clipped taps too (a tree that has them: an A/B
 * of the engine's taps alone, e.g. the shifted sums against the unshifted ones).
 */
import { resolve } from 'node:path';
import { LIVE_DRIFT_CLIP_SIGMAS } from '../src/drift/index.js';
import * as newInf from '../src/inference/index.js';
import { type BatchNorm, namedModules } from '../src/nn/index.js';
import * as newSvc from '../src/service/index.js';

const baseTree = process.argv[2];
if (!baseTree) throw new Error('usage: npx tsx bench/drift-clip-ab.ts <earlier tree> [rounds]');
// The earlier tree has the same API for what is used here.
const baseInf = (await import(resolve(baseTree, 'src/inference/index.ts'))) as typeof newInf;
const baseSvc = (await import(resolve(baseTree, 'src/service/index.ts'))) as typeof newSvc;
newSvc.prepareWasmRuntime();
baseSvc.prepareWasmRuntime();
const rounds = Number(process.argv[3] ?? 15);
const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
const row = Array.from({ length: 64 }, (_, i) => (i * 7) % 17);

interface Setup {
  tag: 'before' | 'after';
  model: newInf.CompiledModel;
  probe: newInf.StatisticsProbe;
}

for (const name of ['digits', 'digits-cnn']) {
  const setups: Setup[] = [];
  for (const [tag, inf, svc] of [
    ['before', baseInf, baseSvc],
    ['after', newInf, newSvc],
  ] as const) {
    const { checkpoint } = await svc.loadModelDirectory(`models/${name}`);
    const c = checkpoint.config;
    const model = new inf.CompiledModel(checkpoint.network, c.input_transform, 256, c.input_shape);
    const inputs = inf.batchNormInputsOf(model.plan);
    const modules = new Map(namedModules(checkpoint.network));
    const running = inputs.map((b) => {
      const bn = modules.get(b.path) as BatchNorm;
      return { mean: bn.runningMean.data, variance: bn.runningVar.data, eps: bn.eps };
    });
    const taps =
      tag === 'before' && process.env.BEFORE_TAPS !== 'clipped'
        ? inf.batchNormTaps(inputs)
        : inf.clippedBatchNormTaps(inputs, running, LIVE_DRIFT_CLIP_SIGMAS);
    setups.push({ tag, model, probe: model.executor.createProbe(taps) });
  }
  for (const batch of [1, 256]) {
    const input = Float32Array.from(Array.from({ length: batch }, () => row).flat());
    const cpuPerCall = (model: newInf.CompiledModel, probe: newInf.StatisticsProbe | undefined) => {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      let calls = 0;
      while (performance.now() - t0 < 150) {
        for (let i = 0; i < 10; i++) model.forward(input, batch, true, probe);
        calls += 10;
      }
      const c = process.cpuUsage(c0);
      return (c.user + c.system) / calls;
    };
    const runs = new Map<string, number[]>();
    const add = (key: string, v: number) => runs.set(key, [...(runs.get(key) ?? []), v]);
    for (let r = 0; r < rounds; r++) {
      for (const s of r % 2 === 0 ? setups : [...setups].reverse()) {
        add(`${s.tag} off`, cpuPerCall(s.model, undefined));
        add(`${s.tag} on`, cpuPerCall(s.model, s.probe));
        s.probe.reset();
      }
    }
    const m = (key: string) => median(runs.get(key)!);
    const side = (tag: string) =>
      `${tag} off ${m(`${tag} off`).toFixed(2)} on ${m(`${tag} on`).toFixed(2)} (on/off ${(m(`${tag} on`) / m(`${tag} off`)).toFixed(3)})`;
    console.log(
      `${name}, ${batch} rows, CPU µs per call (median of ${rounds}): ${side('before')}; ${side('after')}; after on / before on ${(m('after on') / m('before on')).toFixed(3)}`,
    );
  }
  for (const s of setups) s.model.close();
}

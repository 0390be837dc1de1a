/**
 * `npm run bench`: engine throughput (normserve's executors: wasm, js, unfused), normserve next to its peers
 * (onnxruntime-node, onnxruntime-web, TensorFlow.js WASM, PyTorch) and serving throughput (JSON
 * predict vs a bare parse-and-validate route, binary bodies, gRPC, dynamic batching, WORKERS=1
 * vs 2; bench/http.ts) and training throughput next to PyTorch eager (bench/training.ts), measured
 * side by side in one run. Prints
 * tables and writes bench/results/latest.json. Ratios are what to compare across machines;
 * absolute figures depend on the machine (recorded in the JSON).
 *
 * Recalibration (bench/recalibration.ts): exact mode in the library and through HTTP next to PyTorch's
 * same computation, and a streamed NDJSON upload while predictions are served.
 * Drift (bench/drift.ts): predict throughput with the live drift statistics on vs off.
 *
 * Flags: --quick (shorter run), --only engine,peers,training,http,http-1row,recalibration,drift
 * (some sections; http-1row is the serving section's first pair alone: 1-row JSON predict next to
 * the bare route), --no-peers.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, totalmem } from 'node:os';
import { benchDrift } from './drift.js';
import { benchEngine } from './engine.js';
import { benchHttp } from './http.js';
import { benchPeers } from './peers.js';
import { printTraining } from './print-training.js';
import { benchRecalibration } from './recalibration.js';
import { benchTraining } from './training.js';

const SECTIONS = [
  'engine',
  'peers',
  'training',
  'http',
  'http-1row',
  'recalibration',
  'drift',
] as const;
type Section = (typeof SECTIONS)[number];
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const onlyIndex = argv.indexOf('--only');
const only = onlyIndex >= 0 ? (argv[onlyIndex + 1] ?? '').split(',') : [...SECTIONS];
const unknown = only.filter((s) => !(SECTIONS as readonly string[]).includes(s));
if (unknown.length > 0) {
  process.stderr.write(
    `bench: unknown section(s) ${unknown.join(', ')}; expected ${SECTIONS.join(', ')}\n`,
  );
  process.exit(1);
}
const runs = (section: Section) =>
  only.includes(section) &&
  !(section === 'peers' && argv.includes('--no-peers')) &&
  // The whole serving section includes its 1-row pair: `--only` without a list runs it once.
  !(section === 'http-1row' && only.includes('http'));
const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  host: hostname(),
  /** 1, 5 and 15 minute load averages at the start: figures under load are noisy. */
  loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
};
process.stdout.write(
  `normserve bench on ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, node ${machine.node}, load average ${machine.loadAverage.join(' ')}\n`,
);
const results: Record<string, unknown> = { date: new Date().toISOString(), machine, quick };

if (runs('engine')) {
  const engine = await benchEngine(
    quick ? { budgetMs: 100, rounds: 1, batches: [1, 256, 4096] } : { budgetMs: 300, rounds: 3 },
  );
  process.stdout.write(
    `engine (eval forward; rows/s, median of interleaved rounds; relaxed SIMD ${engine.relaxedSimd ? 'on' : 'unavailable'})\n`,
  );
  const engineNames = [...new Set(engine.rows.map((r) => r.engine))];
  process.stdout.write(
    `${'model'.padEnd(24)}${'batch'.padStart(7)}${engineNames.map((n) => n.padStart(17)).join('')}${'wasm GFLOP/s'.padStart(14)}${'wasm/js'.padStart(9)}\n`,
  );
  for (const model of [...new Set(engine.rows.map((r) => r.model))]) {
    for (const batch of [...new Set(engine.rows.map((r) => r.batch))]) {
      const at = (name: string) =>
        engine.rows.find((r) => r.model === model && r.batch === batch && r.engine === name);
      if (!engine.rows.some((r) => r.model === model && r.batch === batch)) continue;
      const cells = engineNames.map((n) => {
        const r = at(n);
        return (r ? fmt(r.rowsPerSecond) : '—').padStart(17);
      });
      const wasm = at('wasm');
      const js = at('js');
      process.stdout.write(
        `${model.padEnd(24)}${String(batch).padStart(7)}${cells.join('')}${(wasm ? fmt(wasm.gflops, 1) : '—').padStart(14)}${(wasm && js ? fmt(wasm.rowsPerSecond / js.rowsPerSecond, 1) : '—').padStart(9)}\n`,
      );
    }
  }
  const { peak } = engine;
  process.stdout.write(
    `\nWebAssembly SIMD peak, one thread (register-only: ${peak.chains} independent f32x4 chains, no memory; median of rounds, best in brackets): relaxed_madd ${peak.fmaGflops === undefined ? '—' : `${fmt(peak.fmaGflops, 1)} (${fmt(peak.fmaBestGflops ?? 0, 1)})`} GFLOP/s, f32x4.mul + f32x4.add ${fmt(peak.mulAddGflops, 1)} (${fmt(peak.mulAddBestGflops, 1)}) GFLOP/s\n`,
  );
  process.stdout.write(
    '\ndense kernels alone (wasm, GFLOP/s; share of the peak of the same kind)\n',
  );
  process.stdout.write(
    `${'model'.padEnd(24)}${'kernel'.padEnd(18)}${'batch'.padStart(7)}${'FMA'.padStart(9)}${'of peak'.padStart(9)}${'mul+add'.padStart(9)}${'of peak'.padStart(9)}\n`,
  );
  const share = (value: number | undefined, of: number | undefined) =>
    value === undefined || of === undefined ? '—' : `${fmt((100 * value) / of)} %`;
  for (const k of engine.kernels) {
    process.stdout.write(
      `${k.model.padEnd(24)}${k.kernel.padEnd(18)}${String(k.batch).padStart(7)}${(k.gflopsFma === undefined ? '—' : fmt(k.gflopsFma, 1)).padStart(9)}${share(k.gflopsFma, peak.fmaGflops).padStart(9)}${fmt(k.gflopsMulAdd, 1).padStart(9)}${share(k.gflopsMulAdd, peak.mulAddGflops).padStart(9)}\n`,
    );
  }
  const wide = (name: string) =>
    engine.rows.find((r) => r.model.startsWith('wide') && r.batch === 4096 && r.engine === name);
  const [wide1, wide2] = [wide('wasm'), wide('wasm, 2 threads')];
  if (wide1 && wide2) {
    const load = loadavg()
      .map((l) => fmt(l, 1))
      .join(' ');
    const cpuRatio = wide2.cpuMsPerThousandRows / wide1.cpuMsPerThousandRows;
    process.stdout.write(
      `\nwide, batch 4096, 2 threads / 1 thread: ${fmt(wide2.rowsPerSecond / wide1.rowsPerSecond, 2)}× rows/s (goal ≥ 1.7; load average now ${load}); CPU per 1000 rows ${fmt(wide1.cpuMsPerThousandRows, 1)} vs ${fmt(wide2.cpuMsPerThousandRows, 1)} ms (×${fmt(cpuRatio, 2)}): two free cores would allow about ${fmt(Math.min(2, 2 / cpuRatio), 2)}×\n`,
    );
  }
  process.stdout.write(
    `\nload models/digits/1 (fresh process, wasm): median ${fmt(engine.loadMs.median, 1)} ms wall (${engine.loadMs.runs.map((m) => fmt(m, 1)).join(', ')}), ${fmt(engine.loadMs.cpuMedian, 1)} ms CPU; again in the same process ${fmt(engine.loadMs.warm, 1)} ms (goal ≤ 50)\n`,
  );
  const m = engine.memory;
  process.stdout.write(
    `RSS predicting one row at a time: ${fmt(m.afterThousandMiB, 1)} MiB after 1 k, ${fmt(m.afterFiftyThousandMiB, 1)} after 50 k, ${fmt(m.afterHundredThousandMiB, 1)} after 100 k (×${fmt(m.ratio, 3)}; goal ≤ 1.10: ${m.ratio <= 1.1 ? 'meets goal' : 'ABOVE GOAL'}), ${fmt(m.afterTwoHundredThousandMiB, 1)} after 200 k (×${fmt(m.afterTwoHundredThousandMiB / m.afterHundredThousandMiB, 3)} of 100 k); V8's new space ${fmt(m.newSpaceMiB, 1)} MiB reserved at 1 k (${fmt(m.newSpaceUsedAtThousandMiB, 1)} in use), ${fmt(m.newSpaceAtHundredThousandMiB, 1)} at 100 k; heap after a full collection ${fmt(m.liveHeapAtThousandMiB, 1)} MiB at 1 k, ${fmt(m.liveHeapAtHundredThousandMiB, 1)} at 100 k\n\n`,
  );
  results['engine'] = engine;
}

if (runs('peers')) {
  const peers = await benchPeers({
    ...(quick ? { batches: [1, 256], rounds: 2, budgetMs: 80 } : {}),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  results['peers'] = peers;
  process.stdout.write(
    `\npeers (rows/s, median of ${peers.rounds} interleaved rounds of ~${peers.budgetMs} ms; ratio = normserve / peer; max |Δ| against normserve's outputs)\n`,
  );
  process.stdout.write(
    `${'model'.padEnd(24)}${'batch'.padStart(7)}  ${'engine'.padEnd(36)}${'rows/s'.padStart(13)}${'ratio'.padStart(9)}${'max |Δ|'.padStart(10)}\n`,
  );
  let previous = '';
  for (const r of peers.rows) {
    const key = `${r.model} ${r.batch}`;
    const lead =
      key === previous ? ''.padEnd(31) : `${r.model.padEnd(24)}${String(r.batch).padStart(7)}`;
    previous = key;
    process.stdout.write(
      `${lead}  ${r.engine.padEnd(36)}${fmt(r.rowsPerSecond).padStart(13)}${(r.normserveOverPeer === undefined ? '' : fmt(r.normserveOverPeer, 2)).padStart(9)}${r.maxAbsDiff.toExponential(1).padStart(10)}\n`,
    );
  }
  for (const s of peers.skipped) {
    process.stdout.write(`skipped ${s.engine}${s.model ? ` (${s.model})` : ''}: ${s.reason}\n`);
  }
  const engine = results['engine'] as Awaited<ReturnType<typeof benchEngine>> | undefined;
  if (engine) printCeiling(engine, peers.rows);
}

/**
 * The ceiling: what onnxruntime-node achieves in GFLOP/s (flops per row × rows/s) next to the
 * WebAssembly SIMD peak of one thread. Where 0.6× onnxruntime's figure exceeds the peak, the
 * issue's 0.6× goal cannot be met by any 128-bit WebAssembly kernel on this CPU.
 */
function printCeiling(
  engine: Awaited<ReturnType<typeof benchEngine>>,
  rows: Awaited<ReturnType<typeof benchPeers>>['rows'],
): void {
  const peak = engine.peak.fmaGflops ?? engine.peak.mulAddGflops;
  process.stdout.write(
    `\nthe ceiling (GFLOP/s = flops per row × wall-clock rows/s; wasm peak ${fmt(peak, 1)} GFLOP/s per CPU-second of a thread, ×2 for two threads: the two agree only on a quiet machine)\n`,
  );
  process.stdout.write(
    `${'model'.padEnd(24)}${'batch'.padStart(7)}${'threads'.padStart(9)}${'onnxruntime'.padStart(13)}${'0.6× of it'.padStart(12)}${'wasm peak'.padStart(11)}${'normserve'.padStart(11)}${'of peak'.padStart(9)}  0.6× reachable?\n`,
  );
  for (const [model, flops] of Object.entries(engine.flopsPerRow)) {
    for (const batch of [...new Set(rows.filter((r) => r.model === model).map((r) => r.batch))]) {
      if (batch === 1) continue; // batch 1 is a per-call floor, not arithmetic
      for (const threads of [1, 2]) {
        const at = (name: string) =>
          rows.find((r) => r.model === model && r.batch === batch && r.engine === name);
        const ort = at(`onnxruntime-node (${threads} thread${threads > 1 ? 's' : ''})`);
        const own = at(`normserve (wasm, ${threads} thread${threads > 1 ? 's' : ''})`);
        if (!ort || !own) continue;
        const ortGflops = (ort.rowsPerSecond * flops) / 1e9;
        const ownGflops = (own.rowsPerSecond * flops) / 1e9;
        const ceiling = peak * threads;
        process.stdout.write(
          `${model.padEnd(24)}${String(batch).padStart(7)}${String(threads).padStart(9)}${fmt(ortGflops, 1).padStart(13)}${fmt(0.6 * ortGflops, 1).padStart(12)}${fmt(ceiling, 1).padStart(11)}${fmt(ownGflops, 1).padStart(11)}${`${fmt((100 * ownGflops) / ceiling)} %`.padStart(9)}  ${0.6 * ortGflops <= ceiling ? 'yes' : `no: needs ${fmt((0.6 * ortGflops) / ceiling, 2)}× the peak`}\n`,
        );
      }
    }
  }
}

if (runs('training')) {
  const training = await benchTraining({
    ...(quick ? { rounds: 1, wideRows: 512 } : {}),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  results['training'] = training;
  printTraining(training, (line) => process.stdout.write(`${line}\n`));
}

if (runs('http') || runs('http-1row')) {
  const oneRowOnly = !runs('http');
  const { rows: http, wideBatch } = await benchHttp({
    ...(quick ? { durationSeconds: 3, rounds: 2 } : {}),
    oneRowOnly,
  });
  results['http'] = http;
  results['wideBatch'] = wideBatch;
  process.stdout.write(
    '\nserving (autocannon for HTTP, a closed-loop client for gRPC; digits model unless named)\n',
  );
  process.stdout.write(
    `${'server'.padEnd(40)}${'rows'.padStart(6)}${'conns'.padStart(6)}${'req/s'.padStart(10)}${'rows/s'.padStart(11)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'errors'.padStart(8)}${'server µs/req'.padStart(15)}${'client µs/req'.padStart(15)}\n`,
  );
  for (const r of http) {
    process.stdout.write(
      `${r.name.padEnd(40)}${String(r.rowsPerRequest).padStart(6)}${String(r.connections).padStart(6)}${fmt(r.requestsPerSecond).padStart(10)}${fmt(r.rowsPerSecond).padStart(11)}${fmt(r.p50Ms, 1).padStart(9)}${fmt(r.p99Ms, 1).padStart(9)}${String(r.errors + r.non2xx).padStart(8)}${(r.serverCpuUsPerRequest === undefined ? '—' : fmt(r.serverCpuUsPerRequest)).padStart(15)}${fmt(r.clientCpuUsPerRequest).padStart(15)}\n`,
    );
  }
  process.stdout.write(
    `(CPU time per request: the server's threads and workers, from /proc; the load generator's, this process; load average at the end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')})\n`,
  );
  const find = (name: string, rows: number) =>
    http.find((r) => r.name.startsWith(name) && r.rowsPerRequest === rows)!;
  const bare1 = find('bare', 1);
  const json1 = find('predict JSON (WORKERS=1)', 1);
  const goal = (ok: boolean) => (ok ? 'meets goal' : 'BELOW GOAL');
  const oneRowLine = `1-row JSON predict / bare, req/s     ${fmt(json1.requestsPerSecond / bare1.requestsPerSecond, 2)} (≥ 0.9: ${goal(json1.requestsPerSecond / bare1.requestsPerSecond >= 0.9)}); p99 ${fmt(json1.p99Ms, 1)} ms (≤ 5: ${goal(json1.p99Ms <= 5)}); server CPU per request ${fmt(json1.serverCpuUsPerRequest ?? Number.NaN)} / ${fmt(bare1.serverCpuUsPerRequest ?? Number.NaN)} µs = ${fmt((json1.serverCpuUsPerRequest ?? Number.NaN) / (bare1.serverCpuUsPerRequest ?? Number.NaN), 2)}×`;
  if (oneRowOnly) {
    process.stdout.write(`\nratio (the first goal of issue 11)\n${oneRowLine}\n`);
    results['ratios'] = {
      predictOverBare1RowRequestsPerSecond: json1.requestsPerSecond / bare1.requestsPerSecond,
      predict1RowP99Ms: json1.p99Ms,
    };
  } else {
    const json256 = find('predict JSON (WORKERS=1)', 256);
    const wideOff = find('wide, batching off', 1);
    const wideOn = http.find((r) => r.name.startsWith('wide, batching') && r !== wideOff)!;
    const wideBound = wideBatch.delayUs / 1000 + 3 * wideBatch.meanBatchComputeMs;
    const ratios = {
      predictOverBare1RowRequestsPerSecond: json1.requestsPerSecond / bare1.requestsPerSecond,
      predict1RowP99Ms: json1.p99Ms,
      float32OverJson256RowsPerSecond:
        find('predict float32 in/out', 256).rowsPerSecond / json256.rowsPerSecond,
      oipBinaryOverJson256RowsPerSecond:
        find('OIP infer binary', 256).rowsPerSecond / json256.rowsPerSecond,
      grpcRawOverJson256RowsPerSecond:
        find('gRPC ModelInfer raw', 256).rowsPerSecond / json256.rowsPerSecond,
      wideBatchingOnOverOffRequestsPerSecond: wideOn.requestsPerSecond / wideOff.requestsPerSecond,
      wideBatchingP99Ms: wideOn.p99Ms,
      wideBatchingP99BoundMs: wideBound,
      wideMeanBatchRows: wideBatch.meanBatchRows,
      workers2OverWorkers1RequestsPerSecond1Row:
        find('predict JSON (WORKERS=2)', 1).requestsPerSecond / json1.requestsPerSecond,
      workers2OverWorkers1RequestsPerSecond256Rows:
        find('predict JSON (WORKERS=2)', 256).requestsPerSecond / json256.requestsPerSecond,
    };
    process.stdout.write('\nratios (goals of issue 11)\n');
    process.stdout.write(
      [
        oneRowLine,
        `256 rows float32 in/out / JSON, rows/s ${fmt(ratios.float32OverJson256RowsPerSecond, 2)} (≥ 3: ${goal(ratios.float32OverJson256RowsPerSecond >= 3)})`,
        `256 rows OIP binary / JSON, rows/s    ${fmt(ratios.oipBinaryOverJson256RowsPerSecond, 2)} (≥ 3: ${goal(ratios.oipBinaryOverJson256RowsPerSecond >= 3)})`,
        `256 rows gRPC raw / JSON, rows/s      ${fmt(ratios.grpcRawOverJson256RowsPerSecond, 2)} (≥ 2: ${goal(ratios.grpcRawOverJson256RowsPerSecond >= 2)})`,
        `wide, 32 clients, batching on / off   ${fmt(ratios.wideBatchingOnOverOffRequestsPerSecond, 2)} (≥ 2: ${goal(ratios.wideBatchingOnOverOffRequestsPerSecond >= 2)}); p99 ${fmt(wideOn.p99Ms, 1)} ms ≤ ${wideBatch.delayUs / 1000} ms + 3 × ${fmt(wideBatch.meanBatchComputeMs, 1)} ms = ${fmt(wideBound, 1)} ms: ${goal(wideOn.p99Ms <= wideBound)}; mean batch ${fmt(wideBatch.meanBatchRows, 1)} rows`,
        `WORKERS=2 / WORKERS=1, req/s          ${fmt(ratios.workers2OverWorkers1RequestsPerSecond1Row, 2)} (1 row), ${fmt(ratios.workers2OverWorkers1RequestsPerSecond256Rows, 2)} (256 rows)`,
        '',
      ].join('\n'),
    );
    results['ratios'] = ratios;
  }
}
if (runs('recalibration')) {
  const recal = await benchRecalibration(
    quick
      ? { rows: 50_000, ndjsonRows: 200_000, rounds: 1 }
      : { rows: 200_000, ndjsonRows: 1_000_000, rounds: 2 },
  );
  results['recalibration'] = recal;
  const loadNow = loadavg()
    .map((l) => fmt(l, 2))
    .join(' ');
  process.stdout.write(
    `\nrecalibration, exact mode, one thread (rows/s, best of ${recal.library[0]?.normserveSeconds.length ?? 0} alternated rounds; PyTorch: ${recal.torch}; Δ: largest |Δμ|/σ or |Δσ²|/σ² of each side's statistics against the same procedure in float64 (PyTorch, --dtype float64); load average now ${loadNow})\n`,
  );
  process.stdout.write(
    `${'model'.padEnd(22)}${'rows'.padStart(9)}${'normserve'.padStart(12)}${'pytorch'.padStart(12)}${'ratio'.padStart(8)}${'Δ normserve'.padStart(13)}${'Δ pytorch'.padStart(11)}\n`,
  );
  for (const r of recal.library) {
    process.stdout.write(
      `${r.model.padEnd(22)}${fmt(r.rows).padStart(9)}${fmt(r.normserveRowsPerSecond).padStart(12)}${(r.torchRowsPerSecond === undefined ? '—' : fmt(r.torchRowsPerSecond)).padStart(12)}${(r.torchRowsPerSecond === undefined ? '—' : fmt(r.normserveRowsPerSecond / r.torchRowsPerSecond, 2)).padStart(8)}${(r.normserveDelta === undefined ? '—' : r.normserveDelta.toExponential(1)).padStart(13)}${(r.torchDelta === undefined ? '—' : r.torchDelta.toExponential(1)).padStart(11)}\n`,
    );
  }
  for (const h of recal.http) {
    process.stdout.write(
      `HTTP float32 body, digits: ${fmt(h.rows)} rows (${fmt(h.bodyBytes / 2 ** 20, 1)} MiB) in ${fmt(h.wallSeconds, 2)} s wall (duration_ms ${fmt(h.durationMs)}, server CPU ${h.serverCpuSeconds === undefined ? '—' : `${fmt(h.serverCpuSeconds, 2)} s`}) = ${fmt(h.rowsPerSecond)} rows/s, ${fmt(h.ratioToLibrary, 2)}× the library's, ${h.ratioToTorch === undefined ? 'no PyTorch' : `${fmt(h.ratioToTorch, 2)}× PyTorch's (goal ≥ 1.0 for 200,000 rows: ${h.rows < 200_000 ? 'not a 200 k run' : h.ratioToTorch >= 1 ? 'meets goal' : 'BELOW GOAL'})`}\n`,
    );
  }
  if (recal.uploadFloorSeconds.length > 0 && recal.http.length > 0) {
    const floor = Math.min(...recal.uploadFloorSeconds);
    const h = recal.http[0]!;
    const torchSeconds = h.ratioToTorch === undefined ? undefined : h.wallSeconds * h.ratioToTorch;
    process.stdout.write(
      `transfer floor: the same ${fmt(h.bodyBytes / 2 ** 20, 1)} MiB from the same client to a bare node:http server that reads it into reused memory and hashes it: ${recal.uploadFloorSeconds.map((v) => fmt(v, 3)).join(', ')} s wall (best ${fmt(floor, 3)} s${torchSeconds === undefined ? '' : `, ${fmt((100 * floor) / torchSeconds)} % of PyTorch's ${fmt(torchSeconds, 3)} s for the computation alone`})\n`,
    );
  }
  const n = recal.ndjson;
  if (n) {
    process.stdout.write(
      `NDJSON, digits: ${fmt(n.rows)} rows (${fmt(n.bodyBytes / 2 ** 20)} MiB) in ${fmt(n.seconds, 1)} s = ${fmt(n.rowsPerSecond)} rows/s (goal ≤ 15 s for 1 M: ${n.rows >= 1_000_000 ? (n.seconds <= 15 ? 'meets goal' : 'BELOW GOAL') : 'not a 1 M run'}); meanwhile ${fmt(n.predictions)} predictions answered (${n.predictionErrors} errors, p99 ${fmt(n.predictionP99Ms, 1)} ms); RSS ${fmt(n.idleRssMiB)} MiB idle, ${fmt(n.peakRssMiB)} MiB peak (+${fmt(n.peakRssMiB - n.idleRssMiB)} MiB; goal ≤ +200: ${n.peakRssMiB - n.idleRssMiB <= 200 ? 'meets goal' : 'BELOW GOAL'})\n`,
    );
  }
}
if (runs('drift')) {
  const drift = await benchDrift(quick ? { durationSeconds: 3, rounds: 2 } : {});
  results['drift'] = drift;
  process.stdout.write(
    `\nlive drift statistics (DRIFT_SAMPLE_FRACTION=1 vs 0; per second, median of interleaved rounds; load average now ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')})\n`,
  );
  process.stdout.write(
    `${'what'.padEnd(48)}${'rows'.padStart(6)}${'off'.padStart(12)}${'on'.padStart(12)}${'on/off'.padStart(9)}${'CPU µs/req off'.padStart(16)}${'on'.padStart(8)}${'off/on'.padStart(9)}\n`,
  );
  for (const r of drift) {
    const cpu =
      r.cpuRatio === undefined
        ? ''
        : `${fmt(r.cpuOffUs!, 1).padStart(16)}${fmt(r.cpuOnUs!, 1).padStart(8)}${fmt(r.cpuRatio, 3).padStart(9)}`;
    process.stdout.write(
      `${r.what.padEnd(48)}${String(r.rowsPerRequest).padStart(6)}${fmt(r.off).padStart(12)}${fmt(r.on).padStart(12)}${fmt(r.ratio, 3).padStart(9)}${cpu}\n`,
    );
  }
}

mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/latest.json', `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write('\nwrote bench/results/latest.json\n');

/**
 * `npm run bench`: engine throughput (fused vs unfused), normserve next to its peers
 * (onnxruntime-node, onnxruntime-web, TensorFlow.js WASM, PyTorch) and HTTP throughput (predict
 * vs a bare parse-and-validate route; WORKERS=1 vs 2), measured side by side in one run. Prints
 * tables and writes bench/results/latest.json. Ratios are what to compare across machines;
 * absolute figures depend on the machine (recorded in the JSON).
 *
 * Flags: --quick (shorter run), --only engine,peers,http (some sections), --no-peers.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, totalmem } from 'node:os';
import { benchEngine } from './engine.js';
import { benchHttp } from './http.js';
import { benchPeers } from './peers.js';

const SECTIONS = ['engine', 'peers', 'http'] as const;
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
  only.includes(section) && !(section === 'peers' && argv.includes('--no-peers'));
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
  const engine = await benchEngine(quick ? { budgetMs: 100, batches: [1, 256] } : {});
  results['engine'] = engine;
  process.stdout.write('\nengine (eval forward, samples/s)\n');
  process.stdout.write(
    `${'model'.padEnd(24)}${'batch'.padStart(7)}${'fused'.padStart(14)}${'unfused'.padStart(14)}${'fused/unfused'.padStart(15)}\n`,
  );
  for (const r of engine) {
    process.stdout.write(
      `${r.model.padEnd(24)}${String(r.batch).padStart(7)}${fmt(r.fusedSamplesPerSecond).padStart(14)}${fmt(r.unfusedSamplesPerSecond).padStart(14)}${fmt(r.ratio, 2).padStart(15)}\n`,
    );
  }
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
}

if (runs('http')) {
  const http = await benchHttp(quick ? { durationSeconds: 3 } : {});
  results['http'] = http;
  process.stdout.write('\nHTTP (autocannon, 8 connections, POST /v1/models/digits:predict)\n');
  process.stdout.write(
    `${'server'.padEnd(32)}${'rows'.padStart(6)}${'req/s'.padStart(10)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'errors'.padStart(8)}\n`,
  );
  for (const r of http) {
    process.stdout.write(
      `${r.name.padEnd(32)}${String(r.rowsPerRequest).padStart(6)}${fmt(r.requestsPerSecond).padStart(10)}${fmt(r.p50Ms, 1).padStart(9)}${fmt(r.p99Ms, 1).padStart(9)}${String(r.errors + r.non2xx).padStart(8)}\n`,
    );
  }
  const find = (name: string, rows: number) =>
    http.find((r) => r.name.startsWith(name) && r.rowsPerRequest === rows)!;
  const ratios = [1, 256].map((rows) => {
    const bare = find('bare', rows);
    const predict = find('normserve predict (WORKERS=1)', rows);
    const two = find('normserve predict (WORKERS=2)', rows);
    return {
      rows,
      predictOverBareRequestsPerSecond: predict.requestsPerSecond / bare.requestsPerSecond,
      predictOverBareP99: predict.p99Ms / bare.p99Ms,
      workers2OverWorkers1RequestsPerSecond: two.requestsPerSecond / predict.requestsPerSecond,
    };
  });
  process.stdout.write('\nratios\n');
  for (const r of ratios) {
    process.stdout.write(
      `${String(r.rows).padStart(4)} row(s): predict/bare req/s ${fmt(r.predictOverBareRequestsPerSecond, 2)}, p99 ${fmt(r.predictOverBareP99, 2)}; WORKERS=2/WORKERS=1 req/s ${fmt(r.workers2OverWorkers1RequestsPerSecond, 2)}\n`,
    );
  }
  results['ratios'] = ratios;
}
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/latest.json', `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write('\nwrote bench/results/latest.json\n');

/**
 * normserve next to its peers, side by side in one process: rows/s of the same fused model on
 * normserve's executor(s), onnxruntime-node (1 and 2 intra-op threads), onnxruntime-web (WASM,
 * 1 thread), TensorFlow.js (WASM, 1 thread) and PyTorch (CPU, 1 thread, when python3 has torch),
 * for the bench models at each batch size.
 *
 * Method: every engine first runs the batch once and must agree with normserve's fused outputs
 * (else it is reported and not timed); one warm-up measurement each; then `rounds` rounds, each
 * measuring every engine for about `budgetMs` in an order rotated by one per round, so slow
 * drifts of a shared machine spread over all engines; the figure is each engine's median round.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportOnnx } from '../src/inference/index.js';
import { INPUT_TENSOR, rawOutputTensor } from '../src/service/index.js';
import { benchInput, benchModels } from './models.js';
import {
  type BenchEngine,
  type EngineFactory,
  normserveJs,
  normserveWasm,
  onnxruntimeNode,
  onnxruntimeWeb,
  pytorch,
  tfjsWasm,
  torchUnavailable,
} from './peer-engines.js';
import { ensurePeersInstalled, peerVersions } from './peers-install.js';

export interface PeerRow {
  model: string;
  batch: number;
  engine: string;
  /** Median over the rounds. */
  rowsPerSecond: number;
  rounds: number[];
  /** Largest |output − normserve's fused output| on the benchmark input. */
  maxAbsDiff: number;
  /** normserve's rows/s over this engine's (undefined for normserve's own row). */
  normserveOverPeer: number | undefined;
}

export interface PeersResult {
  rounds: number;
  budgetMs: number;
  packages: Record<string, string>;
  /** Engines that could not run, and why. */
  skipped: { engine: string; model?: string; reason: string }[];
  rows: PeerRow[];
}

export interface PeersOptions {
  batches?: number[];
  rounds?: number;
  budgetMs?: number;
  log?: (line: string) => void;
}

/** normserve's engines: the first one (wasm, one thread) is the basis of every ratio. */
export const NORMSERVE_ENGINES: EngineFactory[] = [normserveWasm(1), normserveWasm(2), normserveJs];

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/**
 * Rows/s of back-to-back in-process calls for about budgetMs (at least one call). Synchronous
 * engines are timed in blocks of calls (doubling while a block takes under a millisecond), so the
 * clock read does not weigh on microsecond calls; asynchronous ones call by call.
 */
async function timeLoop(
  engine: BenchEngine,
  input: Float32Array,
  rows: number,
  budgetMs: number,
): Promise<number> {
  let calls = 0;
  let block = 1;
  const start = performance.now();
  let elapsed = 0;
  while (calls < 1 || elapsed < budgetMs) {
    const t = performance.now();
    for (let i = 0; i < block; i++) {
      const out = engine.run(input, rows);
      if (out instanceof Promise) {
        await out;
        block = 1;
      }
    }
    calls += block;
    const now = performance.now();
    if (now - t < 1 && block < 1 << 16) block *= 2;
    elapsed = now - start;
  }
  return (calls * rows * 1000) / elapsed;
}

const measure = (engine: BenchEngine, input: Float32Array, rows: number, budgetMs: number) =>
  engine.measure ? engine.measure(input, rows, budgetMs) : timeLoop(engine, input, rows, budgetMs);

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = d; // NaN propagates as "disagrees"
  }
  return m;
}

/** Agreement bound: float32 rounding of the same fused weights, relative to the outputs' size. */
const agrees = (diff: number, reference: Float32Array): boolean => {
  let scale = 1;
  for (const v of reference) scale = Math.max(scale, Math.abs(v));
  return diff <= 1e-4 * scale;
};

export async function benchPeers(options: PeersOptions = {}): Promise<PeersResult> {
  const batches = options.batches ?? [1, 32, 256, 4096];
  const rounds = options.rounds ?? 5;
  const budgetMs = options.budgetMs ?? 300;
  const log = options.log ?? (() => {});
  const skipped: PeersResult['skipped'] = [];

  const factories: EngineFactory[] = [...NORMSERVE_ENGINES];
  const notInstalled = ensurePeersInstalled(log);
  const npmPeers = [onnxruntimeNode(1), onnxruntimeNode(2), onnxruntimeWeb, tfjsWasm];
  if (notInstalled === undefined) factories.push(...npmPeers);
  else for (const f of npmPeers) skipped.push({ engine: f.name, reason: notInstalled });
  const noTorch = torchUnavailable();
  if (noTorch === undefined) factories.push(pytorch);
  else skipped.push({ engine: pytorch.name, reason: noTorch });

  const scratch = mkdtempSync(join(tmpdir(), 'normserve-peers-'));
  const rows: PeerRow[] = [];
  try {
    for (const bench of await benchModels(Math.max(...batches))) {
      const onnx = exportOnnx(bench.model.plan, {
        graphName: bench.name,
        inputName: INPUT_TENSOR,
        outputName: rawOutputTensor('classification'),
      });
      const engines: BenchEngine[] = [];
      for (const factory of factories) {
        try {
          engines.push(await factory.create(bench, onnx, scratch));
        } catch (e) {
          skipped.push({ engine: factory.name, model: bench.name, reason: (e as Error).message });
        }
      }
      try {
        for (const batch of batches.filter((b) => !bench.batches || bench.batches.includes(b))) {
          const input = benchInput(batch, bench.inputWidth);
          const reference = await engines[0]!.run(input, batch);
          const timed: { engine: BenchEngine; diff: number; rounds: number[] }[] = [];
          for (const engine of engines) {
            const diff = maxAbsDiff(await engine.run(input, batch), reference);
            if (agrees(diff, reference)) timed.push({ engine, diff, rounds: [] });
            else
              skipped.push({
                engine: engine.name,
                model: `${bench.name}, batch ${batch}`,
                reason: `outputs differ from normserve's by up to ${diff}`,
              });
          }
          for (const t of timed) await measure(t.engine, input, batch, budgetMs); // warm-up
          for (let r = 0; r < rounds; r++) {
            for (let k = 0; k < timed.length; k++) {
              const t = timed[(k + r) % timed.length]!;
              t.rounds.push(await measure(t.engine, input, batch, budgetMs));
            }
          }
          const basis = median(timed[0]!.rounds);
          for (const [k, t] of timed.entries()) {
            const rowsPerSecond = median(t.rounds);
            rows.push({
              model: bench.name,
              batch,
              engine: t.engine.name,
              rowsPerSecond,
              rounds: t.rounds,
              maxAbsDiff: t.diff,
              normserveOverPeer: k === 0 ? undefined : basis / rowsPerSecond,
            });
          }
          log(`peers: ${bench.name}, batch ${batch} done`);
        }
      } finally {
        for (const engine of engines) await engine.close?.();
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return { rounds, budgetMs, packages: peerVersions(), skipped, rows };
}

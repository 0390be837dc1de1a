/**
 * Where exact recalibration's time goes on digits (64-128-64-10, issue 16), kernel by kernel: the
 * engine's exports called directly on one thread, on the shapes of the two statistics passes
 * (chunks of 512 rows, as the executor runs them), each timed as the best of 7 runs over N rows.
 * Pass 1 is the input transform (affine 64), Linear 64→128 and the sums of its 128 outputs; pass 2
 * the input transform, Linear 64→128, BatchNorm → ReLU (affine 128), Linear 128→64 and the sums of
 * its 64 outputs; both copy their rows into the engine's memory. Without and with relaxed-SIMD FMA
 * (the server's and the CLI's engine has it).
 *
 *   npx tsx bench/recalibration-kernels.ts [ROWS]
 */
import { loadavg } from 'node:os';
import { engineModule, instantiateEngine } from '../src/inference/wasm/engine-module.js';
import { detectWasmSupport } from '../src/nn/wasm/index.js';
import { prepareWasmRuntime } from '../src/service/index.js';

prepareWasmRuntime();
const rowsTotal = Number(process.argv[2] ?? 200_000);
const M = 512;
const calls = Math.round(rowsTotal / M);
const MiB = 1 << 20;
// Byte offsets in a 32 MiB memory: A (rows), packed B, C, bias, tile scratch, sums, scale, shift,
// the weights before packing, D (the second Linear's output: no kernel's output feeds back into
// its own input, so the values stay those of the first fill, far from overflow and denormals).
const [A, B, C, BIAS, TMP, ACC, SCALE, SHIFT, STAGE, D] = [1, 2, 4, 6, 7, 7.5, 8, 9, 10, 11].map(
  (m) => m * MiB,
) as [number, number, number, number, number, number, number, number, number, number];

function time(f: () => void): number {
  for (let i = 0; i < 20; i++) f();
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < 7; r++) {
    const t = performance.now();
    for (let i = 0; i < calls; i++) f();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

const load = loadavg()[0]!.toFixed(1);
for (const relaxed of detectWasmSupport().relaxedSimd ? [false, true] : [false]) {
  const memory = new WebAssembly.Memory({ initial: 512, maximum: 512, shared: true });
  const x = instantiateEngine(engineModule(relaxed, { elementwise: true, cnn: false }), memory);
  const heap = new Float32Array(memory.buffer);
  for (let i = 0; i < (12 * MiB) / 4; i++) heap[i] = (i % 97) * 0.01 - 0.4;
  new Float64Array(memory.buffer, SCALE, 128).fill(0.5);
  new Float64Array(memory.buffer, SHIFT, 128).fill(0.1);
  x.pack_b(STAGE, 4, 128 * 4, 128, 128, B);
  const rows = new Float32Array(M * 64);
  const t = {
    copy: time(() => heap.set(rows, A >> 2)),
    affine64: time(() => x.affine(A, C, M, 64, SCALE, SHIFT, 0, 0)),
    gemm64to128: time(() => x.gemm(M, 128, 64, A, 256, B, BIAS, C, 512, 1, TMP)),
    affine128relu: time(() => x.affine(C, D, M, 128, SCALE, SHIFT, 1, 0)),
    gemm128to64: time(() => x.gemm(M, 64, 128, D, 512, B, BIAS, D + MiB, 256, 1, TMP)),
    sums128: time(() => x.channel_sums(C, M, 128, 128, ACC, SHIFT)),
    sums64: time(() => x.channel_sums(D + MiB, M, 64, 64, ACC, SHIFT)),
  };
  const pass1 = t.copy + t.affine64 + t.gemm64to128 + t.sums128;
  const pass2 = t.copy + t.affine64 + t.gemm64to128 + t.affine128relu + t.gemm128to64 + t.sums64;
  const gemms = 2 * t.gemm64to128 + t.gemm128to64;
  console.log(
    `${relaxed ? 'FMA   ' : 'no FMA'} ms per ${rowsTotal} rows: ${Object.entries(t)
      .map(([k, v]) => `${k} ${v.toFixed(1)}`)
      .join(
        ', ',
      )}; pass 1 ${pass1.toFixed(0)} + pass 2 ${pass2.toFixed(0)} = ${(pass1 + pass2).toFixed(0)}, GEMMs ${((100 * gemms) / (pass1 + pass2)).toFixed(0)} % (${((rowsTotal * 49_152) / (gemms / 1000) / 1e9).toFixed(1)} GFLOP/s)`,
  );
}
console.log(`load average ${load} -> ${loadavg()[0]!.toFixed(1)}`);

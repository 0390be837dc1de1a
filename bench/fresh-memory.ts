/**
 * What touching fresh memory costs on this machine (issue 16: why recalibration does not cache
 * activations and why recalibrate() reads the caller's rows in place): 51 MiB — 200,000 digits
 * rows of float32 — copied into new memory three ways, and into memory already touched; CPU
 * time of this process (user, system) per round.
 *
 *   npx tsx bench/fresh-memory.ts
 */
const rows = 200_000;
const width = 64;
const data = Float32Array.from({ length: rows * width }, (_, i) => i % 17);
const touched = new Float32Array(rows * width);
touched.set(data);

function measure(label: string, f: () => unknown): unknown {
  const cpu = process.cpuUsage();
  const kept = f();
  const used = process.cpuUsage(cpu);
  process.stdout.write(
    `${label.padEnd(34)}user ${(used.user / 1000).toFixed(0).padStart(4)} ms  system ${(used.system / 1000).toFixed(0).padStart(4)} ms\n`,
  );
  return kept;
}

const kept: unknown[] = [];
for (let round = 0; round < 3; round++) {
  kept.push(
    measure('49 new 1 MiB Float32Arrays', () => {
      const blocks: Float32Array[] = [];
      for (let r = 0; r < rows; r += 4096) {
        const block = new Float32Array(4096 * width);
        block.set(data.subarray(r * width, Math.min(rows, r + 4096) * width));
        blocks.push(block);
      }
      return blocks;
    }),
  );
  kept.push(measure('one new 51 MiB Float32Array', () => new Float32Array(data)));
  kept.push(
    measure('wasm memory.grow by 51 MiB', () => {
      const memory = new WebAssembly.Memory({ initial: 1, maximum: 1024 });
      memory.grow(800);
      new Float32Array(memory.buffer, 0, rows * width).set(data);
      return memory;
    }),
  );
  measure('into memory already touched', () => touched.set(data));
}
process.stdout.write(`(${kept.length} allocations kept alive, so none is reused)\n`);

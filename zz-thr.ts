import { loadModel } from './src/index.js';
import { Rng } from './src/nn/index.js';
const t0 = performance.now();
const one = await loadModel('models/digits', { threads: 1 });
const t1 = performance.now();
const two = await loadModel('models/digits', { threads: 2 });
const t2 = performance.now();
console.log('load 1 thread', (t1 - t0).toFixed(1), 'ms; 2 threads (ready)', (t2 - t1).toFixed(1), 'ms', one.engine);
const rng = new Rng(3);
for (const rows of [1, 7, 300, 4096, 10000]) {
  const x = Float32Array.from({ length: rows * 64 }, () => rng.uniform(0, 16));
  const a = one.run(x, rows); const b = two.run(x, rows);
  let same = a.length === b.length; for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) { same = false; break; }
  console.log(rows, 'bit-identical', same);
}
const x = Float32Array.from({ length: 4096 * 64 }, () => rng.uniform(0, 16));
for (const [m, name] of [[one, 'one'], [two, 'two']] as const) {
  let best = Infinity;
  for (let r = 0; r < 20; r++) { const s = performance.now(); m.run(x, 4096); best = Math.min(best, performance.now() - s); }
  console.log(name, 'rows/s', (4096 / best * 1000).toFixed(0));
}
const b1 = Float32Array.from({ length: 64 }, () => rng.uniform(0, 16));
for (let k = 0; k < 3; k++) { const s = performance.now(); for (let i = 0; i < 200000; i++) one.run(b1, 1); console.log('batch1 rows/s', (200000 / (performance.now() - s) * 1000).toFixed(0)); }
two.close();
console.log('closed; exiting without closing one');

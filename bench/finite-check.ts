/**
 * The finiteness check of a binary request body in process: `npx tsx bench/finite-check.ts` times
 * nn's allFinite (eight float64 sums) against the loop that tested each value (`v − v !== 0`,
 * what checkFinite did before) on a 256-row digits body (16,384 float32 values), 4,000 calls
 * each, four alternated rounds, in µs per call (bench/README.md, issue 11's twelfth round).
 */
import { allFinite, Rng } from '../src/nn/index.js';

const values = new Float32Array(256 * 64);
const rng = new Rng(7);
for (let i = 0; i < values.length; i++) values[i] = rng.normal() * 5;
const calls = 4000;

/** The loop checkFinite ran on every body until this round. */
function eachValue(v: Float32Array): boolean {
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (x - x !== 0) return false;
  }
  return true;
}

const candidates: Record<string, (v: Float32Array) => boolean> = { eachValue, allFinite };
const times: Record<string, number[]> = { eachValue: [], allFinite: [] };
for (let round = 0; round < 4; round++) {
  const names = Object.keys(candidates);
  for (const name of round % 2 === 0 ? names : names.reverse()) {
    const f = candidates[name]!;
    let clean = 0;
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < calls; k++) if (f(values)) clean++;
    const us = Number(process.hrtime.bigint() - t0) / 1e3 / calls;
    if (clean !== calls) throw new Error(`${name} found a non-finite value in a clean body`);
    times[name]!.push(us);
  }
}
for (const [name, t] of Object.entries(times))
  console.log(`${name.padEnd(10)} ${t.map((us) => us.toFixed(1)).join(', ')} µs per call`);

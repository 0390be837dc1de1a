/**
 * `npx tsx bench/json-duplicate-keys.ts`: what refusing a repeated JSON key costs a request body
 * (http/json-body.ts), in µs per body — findDuplicateKey next to JSON.parse of the same text, for
 * the bodies of the serving bench (1 and 256 rows of 64 values; the OIP infer form; TF Serving's
 * named instances, one key per row). In process, best of 5 rounds of 300 calls after a warm-up.
 */
import { findDuplicateKey } from '../src/errors/index.js';

const row = () => Array.from({ length: 64 }, (_, i) => ((i * 0.37) % 16).toFixed(2)).join(',');
const bodies: Record<string, string> = {
  'predict, 1 row': `{"instances":[[${row()}]]}`,
  'predict, 256 rows': `{"instances":[${Array.from({ length: 256 }, () => `[${row()}]`).join(',')}]}`,
  'infer, 256 rows': JSON.stringify({
    id: 'x',
    inputs: [
      {
        name: 'input',
        shape: [256, 64],
        datatype: 'FP32',
        data: Array.from({ length: 256 * 64 }, (_, i) => (i % 17) / 4),
      },
    ],
    outputs: [{ name: 'probabilities' }],
  }),
  'predict, 256 named rows': `{"instances":[${Array.from({ length: 256 }, () => `{"input":[${row()}]}`).join(',')}]}`,
};

/** Best µs per call over 5 rounds of 300 calls, after 200 calls of warm-up. */
function microseconds(f: () => unknown): number {
  for (let i = 0; i < 200; i++) f();
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 5; round++) {
    const started = performance.now();
    for (let i = 0; i < 300; i++) f();
    best = Math.min(best, ((performance.now() - started) * 1000) / 300);
  }
  return best;
}

console.log('body                       chars   JSON.parse µs   findDuplicateKey µs   share');
for (const [name, body] of Object.entries(bodies)) {
  const parse = microseconds(() => JSON.parse(body));
  const scan = microseconds(() => findDuplicateKey(body));
  console.log(
    `${name.padEnd(24)} ${String(body.length).padStart(7)} ${parse.toFixed(1).padStart(15)} ${scan.toFixed(2).padStart(21)} ${`${((100 * scan) / parse).toFixed(1)} %`.padStart(7)}`,
  );
}

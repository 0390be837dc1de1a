import type { Rng } from '../nn/index.js';

/**
 * A uniform sample of the rows one stream offered: `size` rows ([size, width], row-major) drawn
 * uniformly without replacement from the `seen` rows it stands for (a Reservoir's content).
 */
export interface UniformSample {
  rows: Float32Array;
  size: number;
  seen: number;
}

/**
 * How many of `draw` rows each stream contributes when `draw` rows are taken uniformly without
 * replacement from the union of streams of `seen[i]` rows: a multivariate hypergeometric draw,
 * made one row at a time (row j comes from stream i with probability remaining_i / remaining,
 * both counted without the rows already drawn). O(draw · streams).
 */
export function allocateDraw(seen: readonly number[], draw: number, rng: Rng): number[] {
  const remaining = seen.slice();
  let total = remaining.reduce((a, b) => a + b, 0);
  if (!Number.isInteger(draw) || draw < 0 || draw > total || !remaining.every(isCount))
    throw new RangeError(`allocateDraw: cannot draw ${draw} rows from streams of ${seen} rows`);
  const counts = remaining.map(() => 0);
  for (let j = 0; j < draw; j++) {
    // A uniform row of the rows not drawn yet (53 random bits: exact for any realistic total).
    let u = Math.floor(rng.next() * total);
    let i = 0;
    while (u >= remaining[i]!) u -= remaining[i++]!;
    counts[i]!++;
    remaining[i]!--;
    total--;
  }
  return counts;
}

/**
 * One uniform sample of at most `capacity` rows of the union of several streams, from a uniform
 * sample of each: the draw is allocated across the streams by their seen counts (allocateDraw),
 * then each stream's share is drawn uniformly without replacement from its sample (a partial
 * Fisher–Yates shuffle). Each row of the union is then equally likely to be held, as if one
 * reservoir had seen every stream: a uniform k_i-subset of a uniform subset of stream i is a
 * uniform k_i-subset of stream i, and the k_i are those of a uniform k-subset of the union.
 *
 * The draw is min(capacity, Σ size_i); stream i can give k_i ≤ min(seen_i, draw) rows, so each
 * sample must hold at least that many (a Reservoir of capacity ≥ `capacity` does).
 */
export function uniformUnion(
  samples: readonly UniformSample[],
  width: number,
  capacity: number,
  rng: Rng,
): UniformSample {
  for (const s of samples)
    if (s.rows.length < s.size * width || s.size > s.seen || !isCount(s.seen))
      throw new RangeError(`uniformUnion: a sample of ${s.size} rows of ${s.seen} is malformed`);
  const held = samples.reduce((a, s) => a + s.size, 0);
  const draw = Math.min(capacity, held);
  for (const s of samples)
    if (s.size < Math.min(s.seen, draw))
      throw new RangeError(
        `uniformUnion: a sample of ${s.size} rows of ${s.seen} cannot give up to ${Math.min(s.seen, draw)} rows`,
      );
  const counts = allocateDraw(
    samples.map((s) => s.seen),
    draw,
    rng,
  );
  const rows = new Float32Array(draw * width);
  let at = 0;
  samples.forEach((s, i) => {
    const take = counts[i]!;
    const order = new Int32Array(s.size);
    for (let r = 0; r < s.size; r++) order[r] = r;
    for (let r = 0; r < take; r++) {
      const pick = r + rng.int(s.size - r);
      const row = order[pick]!;
      order[pick] = order[r]!;
      order[r] = row;
      rows.set(s.rows.subarray(row * width, (row + 1) * width), at * width);
      at++;
    }
  });
  return { rows, size: draw, seen: samples.reduce((a, s) => a + s.seen, 0) };
}

function isCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

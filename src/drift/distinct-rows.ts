/**
 * The rows of `rows` ([count, width], row-major) with each distinct row once, in first-seen order,
 * and how many copies were dropped. Rows are compared by their float32 bits (−0 and +0 differ; a
 * NaN cannot be in a sample). A traffic sample full of one row — a stuck sensor's blank frame, a
 * client resending one request — describes one input, not a distribution: BatchNorm statistics
 * recalibrated from it would be its values with a variance near 0 (auto-recalibration counts the
 * distinct rows before it acts).
 */
export function distinctRows(
  rows: Float32Array,
  count: number,
  width: number,
): { rows: Float32Array; count: number; duplicates: number } {
  const bytes = new Uint8Array(rows.buffer, rows.byteOffset, count * width * 4);
  const seen = new Set<string>();
  const kept: number[] = [];
  const decoder = new TextDecoder('latin1');
  for (let r = 0; r < count; r++) {
    const key = decoder.decode(bytes.subarray(r * width * 4, (r + 1) * width * 4));
    if (seen.has(key)) continue;
    seen.add(key);
    kept.push(r);
  }
  if (kept.length === count) return { rows, count, duplicates: 0 };
  const out = new Float32Array(kept.length * width);
  kept.forEach((r, i) => {
    out.set(rows.subarray(r * width, (r + 1) * width), i * width);
  });
  return { rows: out, count: kept.length, duplicates: count - kept.length };
}

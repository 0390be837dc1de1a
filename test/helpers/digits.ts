import { readFileSync } from 'node:fs';

/** Rows [from, to) of data/digits/digits.csv: 64 raw pixel values (0..16) and the label. */
export function digitsRows(from: number, to: number): { x: number[][]; y: number[] } {
  const lines = readFileSync('data/digits/digits.csv', 'utf8')
    .trim()
    .split('\n')
    .slice(1 + from, 1 + to);
  const rows = lines.map((l) => l.split(',').map(Number));
  return { x: rows.map((r) => r.slice(0, 64)), y: rows.map((r) => r[64]!) };
}

/** The 360 test rows of the documented split. */
export const digitsTestRows = (): { x: number[][]; y: number[] } => digitsRows(1437, 1797);

/** The "night" domain shift of the recalibration issue: x' = 0.35·x + 0.1 on pixel/16, back in raw units. */
export const nightShift = (x: number[][]): number[][] =>
  x.map((r) => r.map((v) => Math.fround(16 * (0.35 * (v / 16) + 0.1))));

/** Rows of `width` features packed row after row into one Float32Array, as recalibrateRows takes them. */
export function packRows(rows: readonly (readonly number[])[], width = 64): Float32Array {
  const packed = new Float32Array(rows.length * width);
  rows.forEach((row, r) => {
    packed.set(row, r * width);
  });
  return packed;
}

/** A row of 64 pixels as the nested [1][8][8] image a convolutional digits model takes. */
export const digitsImage = (row: readonly number[]): number[][][] => [
  Array.from({ length: 8 }, (_, h) => row.slice(h * 8, h * 8 + 8)),
];

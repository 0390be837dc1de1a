/**
 * Writes the "night" digits test set of the recalibration demo: the 360 test rows (CSV rows
 * 1437..1796) with every pixel shifted as x' = 0.35·x + 0.1 on pixel/16 inputs, i.e. in raw
 * units x' = 16·(0.35·x/16 + 0.1) = 0.35·x + 1.6; the label column is kept.
 *   npx tsx tools/night-shift.ts [--out night.csv] [--clean clean.csv]
 */
import { readFileSync, writeFileSync } from 'node:fs';

const args = process.argv.slice(2);
const known = new Set(['--out', '--clean']);
const unknown = args.filter(
  (a, i) => a.startsWith('-') && !known.has(a) && !known.has(args[i - 1] ?? ''),
);
if (unknown.length > 0 || args.includes('--help')) {
  process.stderr.write('usage: npm run night-shift -- [--out night.csv] [--clean clean.csv]\n');
  process.exit(unknown.some((a) => a !== '--help') ? 1 : 0);
}
const option = (name: string, fallback: string | undefined) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const lines = readFileSync('data/digits/digits.csv', 'utf8').trim().split('\n');
const header = lines[0]!;
const test = lines.slice(1 + 1437, 1 + 1797);
const shift = (v: number) => Math.fround(16 * (0.35 * (v / 16) + 0.1));
const night = test.map((line) => {
  const cells = line.split(',').map(Number);
  return [...cells.slice(0, 64).map(shift), cells[64]].join(',');
});
const out = option('--out', 'night.csv')!;
writeFileSync(out, `${header}\n${night.join('\n')}\n`);
const clean = option('--clean', undefined);
if (clean) writeFileSync(clean, `${header}\n${test.join('\n')}\n`);
process.stdout.write(
  `wrote ${out} (${night.length} rows${clean ? `) and ${clean} (${test.length} rows` : ''})\n`,
);

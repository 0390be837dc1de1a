/**
 * Writes the "night" digits test set of the recalibration demo: the 360 test rows (CSV rows
 * 1437..1796) with every pixel shifted as x' = 0.35·x + 0.1 on pixel/16 inputs, i.e. in raw
 * units x' = 16·(0.35·x/16 + 0.1) = 0.35·x + 1.6; the label column is kept.
 *   npx tsx tools/night-shift.ts [--out night.csv] [--clean clean.csv]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

const args = process.argv.slice(2);
const known = new Set(['--out', '--clean']);
const unknown = args.filter(
  (a, i) => a.startsWith('-') && !known.has(a) && !known.has(args[i - 1] ?? ''),
);
const usage = 'usage: npm run night-shift -- [--out night.csv] [--clean clean.csv]';
const refused = unknown.filter((a) => a !== '--help');
if (refused.length > 0) {
  // The flag named, as the other CLIs name it (h248: only the usage was printed).
  process.stderr.write(`night-shift: unknown option ${JSON.stringify(refused[0])}\n${usage}\n`);
  process.exit(1);
}
if (args.includes('--help')) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const fail = (message: string): never => {
  process.stderr.write(`night-shift: ${message}\n`);
  process.exit(1);
};
const option = (name: string, fallback: string | undefined) => {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const value = args[i + 1];
  if (value === undefined || value.startsWith('-')) return fail(`${name} needs a file name`);
  return value;
};
const out = option('--out', 'night.csv')!;
const clean = option('--clean', undefined);
if (clean !== undefined && resolve(clean) === resolve(out))
  fail(`--out and --clean name the same file (${out}); the second would replace the first`);
// The checkout's data set, wherever the command is run from (npm runs it from the checkout).
const lines = readFileSync(new URL('../data/digits/digits.csv', import.meta.url), 'utf8')
  .trim()
  .split('\n');
const header = lines[0]!;
const test = lines.slice(1 + 1437, 1 + 1797);
const shift = (v: number) => Math.fround(16 * (0.35 * (v / 16) + 0.1));
const night = test.map((line) => {
  const cells = line.split(',').map(Number);
  return [...cells.slice(0, 64).map(shift), cells[64]].join(',');
});
const write = (path: string, text: string) => {
  try {
    writeFileSync(path, text);
  } catch (e) {
    const { code } = e as NodeJS.ErrnoException;
    fail(
      `cannot write ${path}: ${code === 'EISDIR' ? 'it is a directory' : code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'a file is in the way on its path' : (e as Error).message}`,
    );
  }
};
write(out, `${header}\n${night.join('\n')}\n`);
if (clean) write(clean, `${header}\n${test.join('\n')}\n`);
process.stdout.write(
  `wrote ${out} (${night.length} rows${clean ? `) and ${clean} (${test.length} rows` : ''})\n`,
);

/**
 * The offline CLIs' commander exits: `--help` prints the usage on stdout and exits 0 (a shell
 * script or `npm run … -- --help && …` must not see a failure); a missing required flag is one
 * commander line on stderr and exit 1.
 */
import { describe, expect, it } from 'vitest';
import { type Entry, runEntry as run } from '../helpers/entries.js';

const CLIS: readonly [Entry, string][] = [
  ['src/cli/train.ts', 'train'],
  ['src/cli/predict.ts', 'predict'],
  ['src/cli/recalibrate.ts', 'recalibrate'],
  ['src/cli/report.ts', 'report'],
  ['src/cli/export-onnx.ts', 'export-onnx'],
];

describe('the offline CLIs', () => {
  for (const [entry, name] of CLIS) {
    it(`${name} --help prints the usage and exits 0`, () => {
      const result = run(entry, ['--help']);
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^Usage: ${name} \\[options\\]`));
      expect(result.stderr).toBe('');
    });
  }

  // commander's own errors read `<program>: …` like every other error of a CLI (docs/errors.md);
  // they read `error: …`, with no program named.
  for (const [entry, args, line] of [
    [
      'src/cli/predict.ts',
      ['--input', 'x.csv'],
      "predict: required option '--model <dir>' not specified",
    ],
    ['src/cli/train.ts', ['--bogus'], "train: unknown option '--bogus'"],
    [
      'src/cli/recalibrate.ts',
      ['--model', 'x', '--data', 'y', '--mode', 'fast'],
      "recalibrate: option '--mode <mode>' argument 'fast' is invalid. Allowed choices are exact, prior, running.",
    ],
    ['src/cli/report.ts', ['--model'], "report: option '--model <dir>' argument missing"],
  ] as const) {
    it(`commander's refusal is one line naming the program, exit 1: ${line}`, () => {
      const result = run(entry, args);
      expect(result.status).toBe(1);
      expect(result.stderr).toBe(`${line}\n`);
      expect(result.stdout).toBe('');
    });
  }
});

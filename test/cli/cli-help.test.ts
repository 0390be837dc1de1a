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

  // The defaults shown are the ones a run uses: --lr said 0.001 where --optimizer sgd runs at
  // 0.01; --weight-decay, --patience, --prior-strength and --batch-size showed none.
  it('--help shows the defaults the code uses, per optimizer where they differ', () => {
    const words = (entry: Entry) => run(entry, ['--help']).stdout.replace(/\s+/g, ' ');
    const train = words('src/cli/train.ts');
    expect(train).toContain(
      '--lr <x> learning rate, 0 allowed (default 0.001 with adamw or adam, 0.01 with sgd)',
    );
    expect(train).toContain(
      '--weight-decay <x> weight decay (default 0.01 with adamw, 0 with adam or sgd)',
    );
    expect(train).toContain('(default none: every epoch runs)');
    const recalibrate = words('src/cli/recalibrate.ts');
    expect(recalibrate).toContain('weight of the source statistics, in rows (default 16)');
    expect(recalibrate).toContain('--batch-size <n> running mode: rows per batch (default 256)');
  });

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
    // h248: commander said only "too many arguments. Expected 0 arguments but got 2."
    [
      'src/cli/train.ts',
      ['--data', 'd.csv', '--hidden', '64', '32', '--description', 'my', 'model'],
      'train: unexpected arguments "32", "model": each flag takes one value (a list is one value, comma-separated; quote text with spaces)',
    ],
  ] as const) {
    it(`commander's refusal is one line naming the program, exit 1: ${line}`, () => {
      const result = run(entry, args);
      expect(result.status).toBe(1);
      expect(result.stderr).toBe(`${line}\n`);
      expect(result.stdout).toBe('');
    });
  }
});

/**
 * tools/torch-eval-model.py (PyTorch's reading of a model directory) against the predict CLI's
 * output, for a regression model: predict writes its outputs as `predictions` (no logits), which
 * --compare read as `logits` and crashed on (KeyError), and the summary said "accuracy None".
 * Runs where /usr/bin/python3 has torch (Debian's python3-torch).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, runEntry } from '../helpers/entries.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';
import { FUSION_RTOL } from '../helpers/tolerances.js';

afterAll(removeTempDirs);

const PYTHON = '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch']).status === 0;
const BODY_MASS = 'data/penguins/body-mass.csv';

describe.skipIf(!hasTorch)('tools/torch-eval-model.py --compare', () => {
  it('compares a regression model’s predictions and reports RMSE and R², as predict does', () => {
    const out = makeTempDir('torch-eval');
    const trained = runEntry('src/cli/train.ts', [
      ...['--no-progress', '--data', BODY_MASS, '--label-column', 'body_mass_g'],
      ...['--task', 'regression', '--epochs', '2', '--out', out],
    ]);
    expect(trained.status, trained.stderr).toBe(0);
    const model = join(out, 'body-mass/1');
    const predicted = runEntry('src/cli/predict.ts', ['--model', model, '--input', BODY_MASS]);
    expect(predicted.status, predicted.stderr).toBe(0);
    const ours = join(out, 'ours.json');
    writeFileSync(ours, predicted.stdout);
    const predictions = (JSON.parse(predicted.stdout) as { predictions: number[][] }).predictions;

    const tool = spawnSync(
      PYTHON,
      ['tools/torch-eval-model.py', model, BODY_MASS, '--compare', ours],
      { cwd: ROOT, encoding: 'utf8', timeout: 120_000 },
    );
    expect(tool.status, tool.stderr).toBe(0);
    const diff = /^max \|ours - torch\| = (\S+) over 342 outputs$/m.exec(tool.stdout);
    expect(diff, tool.stdout).not.toBeNull();
    const largest = Math.max(...predictions.map((p) => Math.abs(p[0]!)));
    expect(Number(diff![1])).toBeLessThanOrEqual(FUSION_RTOL * largest);
    // The same figures as predict's stderr line (`RMSE 434.3, R² 0.7059 (342 rows) …`).
    const fit = /^RMSE (\S+), R² (\S+) \(342 rows\)/m.exec(predicted.stderr);
    expect(fit, predicted.stderr).not.toBeNull();
    expect(tool.stdout).toMatch(
      new RegExp(
        `: 342 rows, RMSE ${fit![1]!.replace('.', '\\.')}, R² ${fit![2]!.replace('.', '\\.')}$`,
        'm',
      ),
    );
    expect(tool.stdout).not.toContain('accuracy');
  });
});

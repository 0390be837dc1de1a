/**
 * Retrains every bundled model from its config and compares the bytes with the committed
 * model.safetensors: `npm run check:models` (CI runs it after the tests). The test suite retrains
 * digits/1 in full and a two-epoch prefix of digits-cnn/1 (test/acceptance); the full CNN run
 * (30 epochs, about a minute of CPU) is checked here so that `npm test` stays quick.
 *   npx tsx tools/check-bundled-models.ts [model ...]     (default: every bundled model)
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  BUNDLED_MODEL_NAMES,
  type BundledModel,
  bundledVersionDir,
  isBundledModel,
} from '../test/helpers/bundled-models.js';

const run = promisify(execFile);

/** Bundled model (test/helpers/bundled-models.ts) → the config that reproduces it (README, Training). */
const BUNDLED: Record<BundledModel, string> = {
  digits: 'configs/digits-mlp.json',
  'digits-cnn': 'configs/digits-cnn.json',
};

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

const names = process.argv.slice(2);
const unknown = names.filter((n) => !isBundledModel(n));
if (unknown.length > 0) {
  process.stderr.write(
    `unknown model ${unknown.join(', ')}; bundled: ${Object.keys(BUNDLED).join(', ')}\n`,
  );
  process.exit(2);
}
let failed = false;
for (const name of names.length > 0 ? names.filter(isBundledModel) : BUNDLED_MODEL_NAMES) {
  const out = mkdtempSync(join(tmpdir(), `check-${name}-`));
  const started = performance.now();
  // Said first: each retraining takes a while and prints nothing until it is compared.
  process.stdout.write(`retraining ${bundledVersionDir(name)} from ${BUNDLED[name]}…\n`);
  try {
    await run(process.execPath, [
      '--import',
      'tsx',
      'src/cli/train.ts',
      '--config',
      BUNDLED[name],
      '--out',
      out,
      '--no-progress',
    ]);
    const committed = sha256(join(bundledVersionDir(name), 'model.safetensors'));
    const retrained = sha256(join(out, name, '1', 'model.safetensors'));
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const same = committed === retrained;
    failed ||= !same;
    process.stdout.write(
      `${same ? 'ok  ' : 'FAIL'} ${bundledVersionDir(name)} from ${BUNDLED[name]}: ${same ? `sha256 ${committed}` : `committed ${committed}, retrained ${retrained}`} (${seconds} s)\n`,
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
process.exit(failed ? 1 : 0);

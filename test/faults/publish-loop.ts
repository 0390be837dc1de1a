/**
 * The victim of test/faults/sigkill-publish.test.ts: opens a ModelRegistry on a repository and, in
 * a tight loop, publishes recalibrated versions of `digits` (random modes, sizes, activate or not),
 * activates random versions and deletes old ones, until it is killed.
 *   node --import tsx test/faults/publish-loop.ts <repository> <seed>
 * Prints `loaded` once its code is loaded, waits for a line on stdin (so the test can load the
 * next victim while it checks the last kill), prints `ready` once the registry is loaded, then one
 * line per finished operation.
 */
import { once } from 'node:events';
import { Rng } from '../../src/nn/index.js';
import { JobRegistry, ModelRegistry, RecalibrationService } from '../../src/service/index.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';

const [root, seedText] = process.argv.slice(2);
if (!root || !seedText) throw new Error('usage: publish-loop.ts <repository> <seed>');
const rng = new Rng(Number(seedText));
const MODEL = 'digits';
const WIDTH = 64;

const night = nightShift(digitsTestRows().x);
const rows = new Float32Array(night.length * WIDTH);
night.forEach((row, r) => {
  rows.set(row, r * WIDTH);
});

const say = (line: string) => process.stdout.write(`${line}\n`);
say('loaded');
await once(process.stdin, 'data');

const registry = new ModelRegistry(root, { maxBatchSize: 64 });
await registry.refresh();
const service = new RecalibrationService(registry, new JobRegistry(), {
  maxSamples: Number.MAX_SAFE_INTEGER,
});
say('ready');

const modes = ['exact', 'prior', 'running'] as const;
for (let op = 0; ; op++) {
  const model = registry.get(MODEL);
  const available = [...model.versions.values()]
    .filter((v) => v.state === 'AVAILABLE')
    .map((v) => v.version);
  const dice = rng.next();
  const old = available.filter((v) => v !== model.active);
  if (old.length > 6) {
    // Keep the repository small (every start loads all of it): drop a random old version.
    const version = old[rng.int(old.length)]!;
    await registry.deleteVersion(MODEL, version);
    say(`${op} delete ${version}`);
  } else if (dice < 0.55) {
    const n = 2 + rng.int(62);
    const start = rng.int(night.length - n);
    const mode = modes[rng.int(3)]!;
    const activate = rng.next() < 0.6;
    const outcome = await service.recalibrateRows(
      { model: MODEL, mode, batchSize: 8, activate, note: `op ${op}` },
      rows.subarray(start * WIDTH, (start + n) * WIDTH),
    );
    say(`${op} publish ${outcome.version} ${mode} ${activate ? 'active' : 'inactive'}`);
  } else if (dice < 0.85) {
    const version = available[rng.int(available.length)]!;
    await registry.activate(MODEL, version, `op ${op}`);
    say(`${op} activate ${version}`);
  } else if (old.length > 2) {
    const version = old[rng.int(old.length)]!;
    await registry.deleteVersion(MODEL, version);
    say(`${op} delete ${version}`);
  }
}

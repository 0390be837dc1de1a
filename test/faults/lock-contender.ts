/**
 * One contender of test/faults/lock-mutual-exclusion.test.ts: `iterations` times, takes the lock
 * `.stress.lock` of `dir` (acquireModelLock, retried while another holds it), and holding it
 * increments the number in `dir/counter.txt` (read, yield, write) with a marker file `dir/inside`
 * created exclusively around the increment; then releases it. Every `abandonEvery`-th acquisition
 * is abandoned instead, as by a holder that crashed: its heartbeat never runs and its mtime is set
 * an hour back, so the others must break it as stale.
 *   node --import tsx test/faults/lock-contender.ts <dir> <iterations> <abandonEvery> <seed>
 * Prints one JSON line at the end: `{"overlaps": n, "abandoned": n, "vanished": n}` (overlaps:
 * the marker was found when entering, so another process was inside; vanished: the lock file was
 * gone while this process held it).
 */
import { randomUUID } from 'node:crypto';
import { readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Rng } from '../../src/nn/index.js';
import { acquireModelLock } from '../../src/repository/index.js';

const [dir, iterationsText, abandonText, seedText] = process.argv.slice(2);
if (!dir || !iterationsText || !abandonText || !seedText)
  throw new Error('usage: lock-contender.ts <dir> <iterations> <abandonEvery> <seed>');
const iterations = Number(iterationsText);
const abandonEvery = Number(abandonText);
const rng = new Rng(Number(seedText));
const FILE = '.stress.lock';
/** Long enough that no live holder is ever taken for a dead one on a busy machine. */
const STALE_MS = 10_000;
const HOUR_MS = 3_600_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const counter = join(dir, 'counter.txt');
const inside = join(dir, 'inside');

let overlaps = 0;
let abandoned = 0;
let vanished = 0;
for (let i = 0; i < iterations; i++) {
  const abandon = abandonEvery > 0 && (i + 1) % abandonEvery === 0;
  const owner = randomUUID();
  for (;;) {
    const lock = await acquireModelLock(dir, owner, {
      file: FILE,
      staleMs: STALE_MS,
      // An abandoned lock shows no heartbeat: its holder "crashed" right after its increment.
      heartbeatMs: abandon ? HOUR_MS : 1_000,
    });
    if ('heldBy' in lock) {
      await sleep(Math.floor(rng.next() * 3));
      continue;
    }
    try {
      await writeFile(inside, String(process.pid), { flag: 'wx' });
    } catch {
      overlaps++;
    }
    const n = Number(await readFile(counter, 'utf8'));
    await new Promise((resolve) => setImmediate(resolve));
    await writeFile(counter, String(n + 1));
    await rm(inside, { force: true });
    if (abandon) {
      const past = new Date(Date.now() - HOUR_MS);
      // Gone while held: another process removed this live lock (counted, as an overlap is).
      await utimes(join(dir, FILE), past, past).catch(() => {
        vanished++;
      });
      abandoned++;
    } else await lock.release();
    break;
  }
}
process.stdout.write(`${JSON.stringify({ overlaps, abandoned, vanished })}\n`);

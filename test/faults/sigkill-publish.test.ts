/**
 * Crash safety of publishing: a child process (publish-loop.ts) publishes recalibrated versions,
 * activates and deletes versions of `digits` in a tight loop on a copy of models/, and is killed
 * with SIGKILL at seeded random moments. After each kill, a restart's cleanup (removeTemporaries)
 * and a FRESH ModelRegistry must find every version directory complete and AVAILABLE, the
 * active-version record parseable and naming an available version, and no temporaries left.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isNormserveError } from '../../src/errors/index.js';
import { Rng } from '../../src/nn/index.js';
import { ModelRepository } from '../../src/repository/index.js';
import {
  JobRegistry,
  ModelRegistry,
  type RecalibrationOutcome,
  RecalibrationService,
} from '../../src/service/index.js';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { nodeArgs } from '../helpers/entries.js';
import { listTree, makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = 'test/faults/publish-loop.ts' as const;
const TRIALS = 24;
const SEED = 20261126;
/** Kill delays after the child reports ready, in ms: uniform in [0, MAX_DELAY_MS). */
const MAX_DELAY_MS = 500;
/** An unreadable lock file is taken for a holder between create and write for this long. */
const LOCK_GRACE_MS = 2_000;
/** How long past the grace the lock may take to be broken: a bound for a loaded machine. */
const LOCK_WAIT_SLACK_MS = 20_000;

afterAll(removeTempDirs);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Loop {
  child: ChildProcess;
  lines: string[];
  stderr: () => string;
  /** Lets the loop open the repository; resolves once it printed `ready`. */
  go(): Promise<void>;
}

/**
 * Starts a loop; resolves once its code is loaded (`loaded`), before it touches the repository,
 * so the next victim loads while the last kill is checked.
 */
async function spawnLoop(repository: string, seed: number): Promise<Loop> {
  const child = spawn(process.execPath, [...nodeArgs(SCRIPT), repository, String(seed)], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let stderr = '';
  let pending = '';
  const waiting = new Map<string, () => void>();
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    pending += d;
    const parts = pending.split('\n');
    pending = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      waiting.get(line)?.();
    }
  });
  const exitedEarly = new Promise<never>((_, reject) => {
    child.on('exit', (code, signal) =>
      reject(new Error(`publish loop exited early (${code ?? signal}): ${stderr}`)),
    );
    child.on('error', reject);
  });
  exitedEarly.catch(() => undefined);
  const line = (text: string) =>
    Promise.race([new Promise<void>((resolve) => waiting.set(text, resolve)), exitedEarly]);
  await line('loaded');
  return {
    child,
    lines,
    stderr: () => stderr,
    go: async () => {
      const ready = line('ready');
      child.stdin!.end('go\n');
      await ready;
    },
  };
}

const FILES = ['config.json', 'metrics.json', 'model.safetensors'];

/** Per trial: start the loop (a tsx child, seconds on a loaded machine), kill it, restart, check. */
const TRIAL_TIMEOUT_MS = 60_000;

describe('SIGKILL during publish / activate / delete', () => {
  let repository = '';
  let modelDir = '';
  beforeAll(() => {
    repository = makeTempDir('sigkill');
    // Only the model the loop works on: every restart below loads the whole repository.
    copyBundledModel('digits', repository, { checkout: ROOT });
    modelDir = join(repository, 'digits');
  });
  const rng = new Rng(SEED);
  const night = nightShift(digitsTestRows().x);
  const sample = new Float32Array(32 * 64);
  night.slice(0, 32).forEach((row, r) => {
    sample.set(row, r * 64);
  });
  const stats = {
    trials: 0,
    operations: 0,
    killsWithTemporaries: 0,
    temporaryVersionDirs: 0,
    temporaryActiveRecords: 0,
    temporaryDeletions: 0,
    staleLocks: 0,
    unreadableLocks: 0,
    claimsLeft: 0,
    longestLockWaitMs: 0,
    versionsAtEnd: 0,
    killedAfterOperations: [] as number[],
  };

  let next: Promise<Loop> | undefined;
  afterAll(async () => {
    (await next?.catch(() => undefined))?.child.kill('SIGKILL');
  });

  // One test per kill, each bounded on its own; they share the repository, in order.
  for (let trial = 0; trial < TRIALS; trial++) {
    it(
      `kill ${trial + 1} of ${TRIALS} at a random moment leaves a consistent repository`,
      async () => {
        const delay = rng.uniform(0, MAX_DELAY_MS);
        const loop = await (next ?? spawnLoop(repository, SEED + trial));
        // The next victim loads its code meanwhile; it opens the repository only when told.
        next = trial + 1 < TRIALS ? spawnLoop(repository, SEED + trial + 1) : undefined;
        await loop.go();
        const { child, lines, stderr } = loop;
        const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
          (resolve) => child.once('exit', (code, signal) => resolve({ code, signal })),
        );
        await sleep(delay);
        child.kill('SIGKILL');
        const { code, signal } = await exited;
        expect(signal, `trial ${trial}: the loop died on its own (${code}): ${stderr()}`).toBe(
          'SIGKILL',
        );
        const done = lines.filter((l) => l !== 'ready').length;
        stats.trials++;
        stats.operations += done;
        stats.killedAfterOperations.push(done);

        // What the kill left behind, before a restart cleans up.
        const temps = listTree(repository).filter((p) => /(^|\/)\.tmp-/.test(p));
        const topLevel = temps.filter((p) => !p.slice(p.indexOf('.tmp-')).includes('/'));
        if (topLevel.length > 0) stats.killsWithTemporaries++;
        for (const p of topLevel) {
          const name = p.slice(p.lastIndexOf('/') + 1);
          if (name.endsWith('-active-version.json')) stats.temporaryActiveRecords++;
          else if (/-deleted-\d+$/.test(name)) stats.temporaryDeletions++;
          else stats.temporaryVersionDirs++;
        }
        const lockPath = join(modelDir, '.recalibration.lock');
        const lockLeft = existsSync(lockPath);
        if (lockLeft) {
          stats.staleLocks++;
          try {
            JSON.parse(readFileSync(lockPath, 'utf8'));
          } catch {
            stats.unreadableLocks++; // killed between creating the lock file and writing it
          }
        }

        // Restart: cleanup, then a fresh registry on the directory.
        // A lock's claim the victim held when killed (a read and an unlink) goes too.
        const claims = listTree(repository).filter((p) => /\.claim-[0-9a-f]{24}$/.test(p));
        stats.claimsLeft += claims.length;
        // And the record's lock it held (a publish, an activation, a deletion), with its claim,
        // unless the undoing of its pin took and released it first: gone either way, when it
        // could be read (one the kill left empty is judged by its age, as a writer judges it).
        const recordLock = 'digits/.active-version.lock';
        const recordLockPath = join(repository, recordLock);
        let recordLockReadable = false;
        try {
          JSON.parse(readFileSync(recordLockPath, 'utf8'));
          recordLockReadable = true;
        } catch {
          // absent, or killed before its owner was written
        }
        const { removed, failed } = await new ModelRepository(repository).removeTemporaries();
        if (recordLockReadable) expect(existsSync(recordLockPath)).toBe(false);
        expect(failed).toEqual([]);
        expect(
          removed
            .map((p) => p.slice(repository.length + 1))
            .filter((p) => !p.startsWith(recordLock))
            .sort(),
        ).toEqual([...topLevel, ...claims.filter((p) => !p.startsWith(recordLock))].sort());
        expect(listTree(repository).filter((p) => /\.tmp-|\.claim-/.test(p))).toEqual([]);

        const registry = new ModelRegistry(repository, { maxBatchSize: 64 });
        await registry.refresh();
        const model = registry.get('digits');
        const onDisk = readdirSync(modelDir)
          .filter((n) => /^[0-9]+$/.test(n))
          .map(Number)
          .sort((a, b) => a - b);
        expect([...model.versions.keys()].sort((a, b) => a - b)).toEqual(onDisk);
        for (const v of model.versions.values()) {
          expect(
            v.state,
            `trial ${trial}: version ${v.version}: ${v.state === 'FAILED' ? v.reason : ''}`,
          ).toBe('AVAILABLE');
          expect(readdirSync(join(modelDir, String(v.version))).sort()).toEqual(FILES);
        }
        const record = await registry.repository.readActive('digits');
        if (record) {
          expect(onDisk, `trial ${trial}: active-version.json names ${record.version}`).toContain(
            record.version,
          );
          expect(model.active).toBe(record.version);
        } else {
          expect(model.active).toBe(onDisk.at(-1));
        }
        stats.versionsAtEnd = onDisk.length;

        // The model is not locked for good: the next recalibration (after a stale lock, or every
        // sixth trial) succeeds and publishes the next version.
        if (lockLeft || trial % 6 === 5) {
          const service = new RecalibrationService(registry, new JobRegistry(), {
            maxSamples: 1_000_000,
          });
          // A lock of a dead process is broken at once; an unreadable one (the holder died between
          // creating and writing it) only once it is LOCK_GRACE_MS old.
          const started = Date.now();
          let outcome: RecalibrationOutcome | undefined;
          while (outcome === undefined) {
            try {
              outcome = await service.recalibrateRows(
                { model: 'digits', mode: 'exact', activate: false },
                sample,
              );
            } catch (e) {
              const busy = isNormserveError(e) && e.code === 'RECALIBRATION_IN_PROGRESS';
              if (!busy || Date.now() - started > LOCK_GRACE_MS + LOCK_WAIT_SLACK_MS) throw e;
              await sleep(50);
            }
          }
          stats.longestLockWaitMs = Math.max(stats.longestLockWaitMs, Date.now() - started);
          // Numbers of deleted versions are retired (tombstones), so the next one is above both.
          const retired = await new ModelRepository(repository).deletedVersions('digits');
          expect(outcome.version).toBe(Math.max(...onDisk, ...retired) + 1);
          expect(existsSync(join(modelDir, '.recalibration.lock'))).toBe(false);
        }
      },
      TRIAL_TIMEOUT_MS,
    );
  }

  it('summary: every kill was a SIGKILL, operations finished between kills', () => {
    console.log(
      `SIGKILL trials: ${stats.trials}, operations finished before the kills: ${stats.operations} ` +
        `(per trial ${stats.killedAfterOperations.join(',')}); kills that left temporaries ` +
        `(landed mid-write): ${stats.killsWithTemporaries} — version directories ` +
        `${stats.temporaryVersionDirs}, active records ${stats.temporaryActiveRecords}, ` +
        `deletions ${stats.temporaryDeletions}; stale recalibration locks ${stats.staleLocks} ` +
        `(unreadable ${stats.unreadableLocks}, longest wait for the lock ${stats.longestLockWaitMs} ms); ` +
        `claims left ${stats.claimsLeft}; ` +
        `versions at the end ${stats.versionsAtEnd}`,
    );
    expect(stats.trials).toBe(TRIALS);
    expect(stats.operations).toBeGreaterThan(TRIALS);
  });
});

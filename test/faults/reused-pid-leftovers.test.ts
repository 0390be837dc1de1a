/**
 * Leftovers of a process whose pid is running again: a container's restart reuses pids (the
 * server as PID 1, its workers' pids too), so a leftover named with a live pid — this process's
 * own, or another's — may be an earlier process's. It is when the start ticks in its name are not
 * the live process's, or, in a name without them, when it was last written before the live
 * process started (abandoned-writer.ts, pidReused). Before, the cleanup kept such a
 * leftover for an hour, and with it the pin of a publish killed before its rename, which hid every
 * newer version (the second reader of 2026-12-05). The pin's undoing puts back the record it
 * replaced (`pinned_over`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hostTag, temporaryName, temporaryWriter } from '../../src/repository/atomic-write.js';
import { ModelRepository, TEMP_PREFIX } from '../../src/repository/index.js';
import {
  ownPidNamespace,
  ownStartTicks,
  processStartedAtMs,
  processStartTicks,
} from '../../src/repository/process-start.js';
import { makeRepository } from '../helpers/app.js';
import { removeTempDirs } from '../helpers/temp-files.js';

const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  removeTempDirs();
});

/**
 * A staged-looking directory in `dir` named for `pid` (`<pid>_<ticks>` when given its start
 * ticks), last written at `mtimeMs`.
 */
function leftover(dir: string, pid: number | string, tail: string, mtimeMs: number): string {
  const path = join(dir, `${TEMP_PREFIX}${hostTag()}-${pid}-${tail}`);
  mkdirSync(path);
  writeFileSync(join(path, 'config.json'), '{}');
  const at = new Date(mtimeMs);
  utimesSync(path, at, at);
  return path;
}

const ownStart = (): number => {
  const started = processStartedAtMs(process.pid);
  expect(started, 'this test needs /proc (Linux)').toBeDefined();
  return started!;
};

describe('leftovers named with a pid that is running again', () => {
  it('processStartedAtMs reads a process’s start within a few hundred ms of when it was spawned', async () => {
    const before = Date.now();
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    children.push(child);
    const after = Date.now();
    let started: number | undefined;
    for (let i = 0; i < 100 && started === undefined; i++) {
      started = processStartedAtMs(child.pid!);
      if (started === undefined) await new Promise((r) => setTimeout(r, 20));
    }
    expect(started, 'this test needs /proc (Linux)').toBeDefined();
    // Ticks are 10 ms; Node's own start (the anchor) is taken a few ms after the kernel's.
    expect(started!).toBeGreaterThan(before - 250);
    expect(started!).toBeLessThan(after + 250);
    // This process's own: its anchor.
    expect(Math.abs(ownStart() - performance.timeOrigin)).toBeLessThan(1);
  });

  it('temporaryName names this process with its start ticks, and temporaryWriter reads them back', () => {
    const ticks = ownStartTicks();
    expect(ticks, 'this test needs /proc (Linux)').toBeDefined();
    expect(temporaryWriter(`${temporaryName()}-lock`)).toEqual({
      host: hostTag(),
      pid: process.pid,
      startTicks: ticks,
      pidNamespace: ownPidNamespace(),
    });
    // A name of part of 2026-12-05: the start ticks without the pid namespace.
    expect(temporaryWriter(`${TEMP_PREFIX}${hostTag()}-81_123-3f2a9b0c1d2e`)).toEqual({
      host: hostTag(),
      pid: 81,
      startTicks: 123,
    });
    // A name from before the start ticks: the pid alone.
    expect(temporaryWriter(`${TEMP_PREFIX}${hostTag()}-81-3f2a9b0c1d2e`)).toEqual({
      host: hostTag(),
      pid: 81,
    });
    expect(temporaryWriter(`${TEMP_PREFIX}removed-x`)).toBeUndefined();
  });

  it('a name with its writer’s start: another start with a live pid is removed however fresh; the live writer’s is kept however old its mtime (a lagging file-system clock)', async () => {
    const repository = makeRepository(['digits']);
    const model = join(repository, 'digits');
    const ticks = ownStartTicks()!;
    const earlier = leftover(model, `${process.pid}_${ticks - 1}`, 'ffffffffffff', Date.now());
    // Two hours behind this host's clock: the mtime rule took it for an earlier process's.
    const own = leftover(model, `${process.pid}_${ticks}`, 'aaaaaaaaaaaa', Date.now() - 7_200_000);
    const { removed } = await new ModelRepository(repository).removeTemporaries();
    expect(removed).toEqual([earlier]);
    expect(existsSync(own)).toBe(true);
  });

  it('a live writer’s leftover that is not being written: a version it hid to delete is removed at once, anything else of it after a day', async () => {
    const repository = makeRepository(['digits']);
    const model = join(repository, 'digits');
    const writer = `${process.pid}_${ownStartTicks()!}`;
    // deleteVersion's `rm` failed (files held open on NFS): before, this process's own leftover
    // stayed for as long as it ran, even through removeTemporaries(0) (the second reader of
    // c27cc84).
    const hidden = leftover(model, writer, 'aaaaaaaaaaaa-deleted-2', Date.now());
    // A staged directory whose discard failed, and one a live writer is filling (two hours
    // behind this host's clock, as a lagging file-system clock has it).
    const stale = leftover(model, writer, 'bbbbbbbbbbbb', Date.now() - 25 * 3_600_000);
    const writing = leftover(model, writer, 'cccccccccccc', Date.now() - 7_200_000);
    const { removed } = await new ModelRepository(repository).removeTemporaries(0);
    expect(removed.sort()).toEqual([hidden, stale].sort());
    expect(existsSync(writing)).toBe(true);
  });

  it('a name without its writer’s start, this process’s own pid: one written before it started is removed, one written since is kept', async () => {
    const repository = makeRepository(['digits']);
    const model = join(repository, 'digits');
    const earlier = leftover(model, process.pid, 'aaaaaaaaaaaa', ownStart() - 10_000);
    const own = leftover(model, process.pid, 'bbbbbbbbbbbb', Date.now());
    const { removed } = await new ModelRepository(repository).removeTemporaries();
    expect(removed).toContain(earlier);
    expect(removed).not.toContain(own);
    expect(existsSync(earlier)).toBe(false);
    expect(existsSync(own)).toBe(true);
  });

  it('another live process’s pid: the same rules', async () => {
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    children.push(child);
    const pid = child.pid!;
    // Its start, once /proc shows it (at once after spawn on Linux; polled with a bound).
    let started: number | undefined;
    for (let i = 0; i < 100 && started === undefined; i++) {
      started = processStartedAtMs(pid);
      if (started === undefined) await new Promise((r) => setTimeout(r, 20));
    }
    expect(started).toBeDefined();
    const repository = makeRepository(['digits']);
    const model = join(repository, 'digits');
    const ticks = processStartTicks(pid)!;
    const earlier = leftover(model, pid, 'cccccccccccc', started! - 10_000);
    const its = leftover(model, pid, 'dddddddddddd', Date.now() + 1_000);
    const earlierNamed = leftover(model, `${pid}_${ticks + 1}`, 'eeeeeeeeeeee', Date.now());
    const itsNamed = leftover(model, `${pid}_${ticks}`, 'ffffffffffff', started! - 10_000);
    const { removed } = await new ModelRepository(repository).removeTemporaries();
    expect(removed.sort()).toEqual([earlier, earlierNamed].sort());
    expect(existsSync(its) && existsSync(itsNamed)).toBe(true);
  });

  it('a pin over a record naming a version that is gone: its undoing puts that record back', async () => {
    const repository = makeRepository(['digits']);
    const model = join(repository, 'digits');
    const record = join(model, 'active-version.json');
    // The operator's choice, version 3, not there now: version 1, the highest, is served.
    const operators = `${JSON.stringify({ version: 3, note: 'keep 3' })}\n`;
    writeFileSync(record, operators);
    const staged = `${TEMP_PREFIX}${hostTag()}-${process.pid}-eeeeeeeeeeee`;
    const repo = new ModelRepository(repository);
    const pin = await repo.withActiveRecord(
      'digits',
      (held) => held.pin(async () => 1, staged, 'pinned'),
      'pin',
    );
    expect(pin?.record.pinned_for).toBe(staged);
    expect(JSON.parse(readFileSync(record, 'utf8'))).toMatchObject({
      version: 1,
      pinned_for: staged,
      pinned_over: operators,
    });
    // The publish's process died before its rename; a server with its pid starts (a restart in
    // the same pod): the staged directory was written before this process started.
    const path = leftover(model, process.pid, 'eeeeeeeeeeee', ownStart() - 10_000);
    const { removed, pinsUndone } = await repo.removeTemporaries();
    expect(removed).toContain(path);
    expect(pinsUndone).toEqual(['digits']);
    expect(readFileSync(record, 'utf8')).toBe(operators);
  });
});

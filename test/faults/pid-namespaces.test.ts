/**
 * Processes of one host name in different pid namespaces: the containers of one Kubernetes pod
 * share the pod's host name, and each has its own pids (each server is PID 1 there), as do
 * containers started with `--network host` and their host. A lock, claim, job record or temporary
 * naming this host and a pid is another container's when it names another pid namespace: its pid
 * says nothing here. Before, such a lock naming this very pid (both PID 1) was broken at once as
 * an earlier process's, a running job of the other container was settled as abandoned, and a
 * temporary the other container was writing was removed as a reused pid's.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hostTag, temporaryName, temporaryWriter } from '../../src/repository/atomic-write.js';
import {
  currentOwner,
  isOwnerGone,
  ModelRepository,
  sameProcess,
  TEMP_PREFIX,
} from '../../src/repository/index.js';
import { staleJudge } from '../../src/repository/lock-file.js';
import {
  ownPidNamespace,
  ownStartTicks,
  processStartedAtMs,
} from '../../src/repository/process-start.js';
import { makeRepository } from '../helpers/app.js';
import { removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

/** A pid that existed and no longer does (a child that has exited and been reaped). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '0']);
  expect(child.status).toBe(0);
  return child.pid;
}

const own = (): number => {
  const namespace = ownPidNamespace();
  expect(namespace, 'this test needs /proc (Linux)').toBeDefined();
  return namespace!;
};
/** Another pid namespace's inode (any other number names another namespace). */
const other = (): number => own() + 1;

describe('another pid namespace under this host name', () => {
  it('this process is named with its pid namespace, in owners and temporary names', () => {
    expect(currentOwner()).toEqual({ host: hostname(), pid: process.pid, pid_namespace: own() });
    expect(temporaryWriter(`${temporaryName()}-lock`)).toEqual({
      host: hostTag(),
      pid: process.pid,
      startTicks: ownStartTicks(),
      pidNamespace: own(),
    });
  });

  it('a lock naming this host and this very pid in another namespace is judged by its heartbeat alone', () => {
    const stale = staleJudge(30_000);
    const lock = (pidNamespace?: number) => ({
      key: 'k',
      mtimeMs: Date.now(),
      owner: {
        owner: randomUUID(),
        host: hostname(),
        pid: process.pid,
        ...(pidNamespace !== undefined ? { pid_namespace: pidNamespace } : {}),
        acquired_at: new Date().toISOString(),
      },
    });
    // Another container's PID 1: held. It was broken at once as an earlier process's.
    expect(stale(lock(other()))).toBe(false);
    // This namespace, or a lock written before namespaces were recorded: an earlier process's.
    expect(stale(lock(own()))).toBe(true);
    expect(stale(lock())).toBe(true);
    // Its heartbeat still tells, as for another host.
    expect(stale({ ...lock(other()), mtimeMs: Date.now() - 60_000 })).toBe(true);
  });

  it('a job owner of another namespace is never gone by its pid, nor this process', () => {
    const dead = deadPid();
    const here = currentOwner();
    expect(isOwnerGone({ host: here.host, pid: dead, pid_namespace: other() })).toBe(false);
    expect(isOwnerGone({ host: here.host, pid: dead, pid_namespace: own() })).toBe(true);
    expect(isOwnerGone({ host: here.host, pid: dead })).toBe(true);
    expect(sameProcess({ ...here, pid_namespace: other() }, here)).toBe(false);
    expect(sameProcess(here, here)).toBe(true);
    expect(sameProcess({ host: here.host, pid: here.pid }, here)).toBe(true);
  });

  it('a temporary of another namespace with this pid is kept while fresh; one of this namespace with other start ticks is not', async () => {
    const repository = makeRepository(['digits']);
    const model = join(repository, 'digits');
    const ticks = ownStartTicks()!;
    const make = (writer: string, tail: string) => {
      const path = join(model, `${TEMP_PREFIX}${hostTag()}-${writer}-${tail}`);
      mkdirSync(path);
      writeFileSync(join(path, 'config.json'), '{}');
      return path;
    };
    const theirs = make(`${process.pid}_${ticks + 7}_${other()}`, 'aaaaaaaaaaaa');
    const earlier = make(`${process.pid}_${ticks + 7}_${own()}`, 'bbbbbbbbbbbb');
    // Another namespace is as another host: taken as abandoned after an hour.
    const old = make(`${process.pid}_${ticks + 7}_${other()}`, 'cccccccccccc');
    const at = new Date(Date.now() - 2 * 3_600_000);
    utimesSync(old, at, at);
    const { removed } = await new ModelRepository(repository).removeTemporaries();
    expect(removed.sort()).toEqual([earlier, old].sort());
    expect(existsSync(theirs)).toBe(true);
  });

  it('a temporary of another namespace written before this one began is removed at once: this container before its restart', async () => {
    // A restart makes a new pid namespace; its PID 1 starts after every process of the old one
    // ended. A server killed in a publish left its staged directory (and a pin naming it).
    const began = processStartedAtMs(1);
    expect(began, 'this test needs /proc (Linux)').toBeDefined();
    const repository = makeRepository(['digits']);
    const model = join(repository, 'digits');
    const make = (tail: string, mtimeMs: number) => {
      const path = join(model, `${TEMP_PREFIX}${hostTag()}-1_77_${other()}-${tail}`);
      mkdirSync(path);
      const at = new Date(mtimeMs);
      utimesSync(path, at, at);
      return path;
    };
    const before = make('aaaaaaaaaaaa', began! - 10_000);
    const since = make('bbbbbbbbbbbb', Date.now());
    // A bound of 100 days: only the namespace's start can tell.
    const { removed } = await new ModelRepository(repository).removeTemporaries(100 * 86_400_000);
    expect(removed).toEqual([before]);
    expect(existsSync(since)).toBe(true);
  });
});

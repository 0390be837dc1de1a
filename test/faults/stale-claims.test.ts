/**
 * Claims (lock-claims.ts: `<lock>.claim-<hex>`, a record's `.<id>.json.claim-<hex>`) left by a
 * process that died holding one are removed by start-up cleanup (ModelRepository.removeTemporaries,
 * which a server runs before it serves), judged by the lock's own rule; a live claim never is.
 * Issue: a claim left by a crash was cleared only when the same lock was next removed, and one of
 * a lock that never came back (a record's, a deleted model's) stayed for good.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ModelRepository, writeUnderClaim } from '../../src/repository/index.js';
import { makeRepository } from '../helpers/app.js';
import { killServers, listeningPort, servingEnv, startServer } from '../helpers/server-process.js';

const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});
afterEach(killServers);

/** A pid that existed and no longer does (a child that has exited and been reaped). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '0']);
  expect(child.status).toBe(0);
  return child.pid;
}

const HEX = (c: string) => c.repeat(24);
/** A claim file as lock-claims.ts writes one: a lock's content naming its holder. */
function claim(
  path: string,
  holder: { host: string; pid: number },
  mtimeMsAgo = 0,
): { path: string; name: string } {
  writeFileSync(
    path,
    JSON.stringify({ owner: randomUUID(), ...holder, acquired_at: new Date().toISOString() }),
  );
  if (mtimeMsAgo > 0) {
    const at = new Date(Date.now() - mtimeMsAgo);
    utimesSync(path, at, at);
  }
  return { path, name: path.slice(path.lastIndexOf('/') + 1) };
}

function repository(): { root: string; modelDir: string; jobs: string } {
  const root = makeRepository(['digits']);
  roots.push(root);
  const jobs = join(root, '.jobs');
  mkdirSync(jobs, { recursive: true });
  return { root, modelDir: join(root, 'digits'), jobs };
}

const HOUR_MS = 3_600_000;
const here = hostname();
const hidden = (dir: string) =>
  readdirSync(dir)
    .filter((n) => n.startsWith('.') && n !== '.jobs')
    .sort();

describe('start-up cleanup of claims', () => {
  it('removes those of a dead process of this host and those whose heartbeat is stale; keeps live ones', async () => {
    const { root, modelDir, jobs } = repository();
    const dead = deadPid();
    const lock = join(modelDir, '.recalibration.lock');
    // Left by crashes: a dead pid of this host (fresh mtime), a claim on that claim, a record's,
    // another host's an hour old.
    const deadLock = claim(`${lock}.claim-${HEX('a')}`, { host: here, pid: dead });
    const deadNested = claim(`${deadLock.path}.claim-${HEX('b')}`, { host: here, pid: dead });
    const deadRecord = claim(join(jobs, `.${randomUUID()}.json.claim-${HEX('c')}`), {
      host: here,
      pid: dead,
    });
    const oldRemote = claim(
      join(modelDir, `.active-version.lock.claim-${HEX('d')}`),
      { host: 'another-host', pid: 4242 },
      HOUR_MS,
    );
    // Live: a process of this host (the runner's parent), another host's with a fresh heartbeat.
    const liveLocal = claim(`${lock}.claim-${HEX('e')}`, { host: here, pid: process.ppid });
    const liveRemote = claim(join(jobs, `.${randomUUID()}.json.claim-${HEX('f')}`), {
      host: 'another-host',
      pid: 4242,
    });
    // A live lock beside them, and a file that only looks like a claim: not claims' business.
    writeFileSync(
      lock,
      JSON.stringify({ owner: randomUUID(), host: here, pid: process.ppid, acquired_at: '' }),
    );
    writeFileSync(join(modelDir, 'notes.claim-x'), 'mine');

    const { removed, failed } = await new ModelRepository(root).removeTemporaries();
    expect(failed).toEqual([]);
    expect(removed.sort()).toEqual(
      [deadLock.path, deadNested.path, deadRecord.path, oldRemote.path].sort(),
    );
    expect(hidden(modelDir)).toEqual(['.recalibration.lock', liveLocal.name].sort());
    expect(hidden(jobs)).toEqual([liveRemote.name]);
    expect(readdirSync(modelDir)).toContain('notes.claim-x');
  });

  it('the record lock and its own claim, both left by a dead process (killed releasing the lock): both go', async () => {
    const { root, modelDir } = repository();
    const lock = join(modelDir, '.active-version.lock');
    const lockText = JSON.stringify({
      owner: randomUUID(),
      host: here,
      pid: deadPid(),
      acquired_at: new Date().toISOString(),
    });
    writeFileSync(lock, lockText);
    // The claim a releasing holder takes on its lock (lock-claims.ts, claimPathOf of its key).
    const key = createHash('sha256').update(`content:${lockText}`).digest('hex');
    const lockClaim = `${lock}.claim-${createHash('sha256').update(key).digest('hex').slice(0, 24)}`;
    claim(lockClaim, { host: here, pid: deadPid() });
    const { removed, failed } = await new ModelRepository(root).removeTemporaries();
    expect(failed).toEqual([]);
    // Before, the lock's removal found its claim busy, broke it on the way and left the lock.
    expect(removed).toContain(lock);
    expect(hidden(modelDir)).toEqual([]);
  });

  it('never removes a claim this process holds (a write of a record in progress)', async () => {
    const { root, jobs } = repository();
    const record = join(jobs, `${randomUUID()}.json`);
    let removedMeanwhile: string[] = [];
    let held: string[] = [];
    const outcome = await writeUnderClaim(record, async () => {
      held = hidden(jobs);
      removedMeanwhile = (await new ModelRepository(root).removeTemporaries()).removed;
      return 'written';
    });
    expect(outcome).toBe('written');
    expect(held).toHaveLength(1);
    expect(held[0]).toMatch(/\.json\.claim-[0-9a-f]{24}$/);
    expect(removedMeanwhile).toEqual([]);
    // Released once the write is done.
    expect(hidden(jobs)).toEqual([]);
  });

  it('runs when a server starts: a dead process’s claim is gone before it listens, a live one stays', async () => {
    const { root, modelDir } = repository();
    const lock = join(modelDir, '.recalibration.lock');
    const dead = claim(`${lock}.claim-${HEX('a')}`, { host: here, pid: deadPid() });
    const live = claim(`${lock}.claim-${HEX('b')}`, { host: here, pid: process.pid });
    const server = startServer(servingEnv(root, 1));
    await listeningPort(server, 1);
    const cleaned = server.logs.find((l) => Array.isArray(l.removed));
    expect(cleaned?.removed).toEqual([dead.path]);
    expect(hidden(modelDir)).toEqual([live.name]);
  });
});

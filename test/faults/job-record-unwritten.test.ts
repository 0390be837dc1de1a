/**
 * A job whose last record the storage refused: its record on disk still says `running`, with this
 * process as owner. The process that ran it must go on answering the job's real end, not read its
 * own record back once the job leaves memory and settle it as an earlier process's leftover
 * (JOB_ABANDONED, "no longer exists") — from GET /v1/jobs/{id} or from its own sweep.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type Job, JobRegistry } from '../../src/service/index.js';
import { clearFsFaults, faultHits, injectFsFaults } from '../helpers/fs-faults.mjs';

const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});
afterEach(() => clearFsFaults());

const readRecord = (dir: string, id: string): Job =>
  JSON.parse(readFileSync(join(dir, `${id}.json`), 'utf8')) as Job;

/**
 * A registry writing its records in a new directory, with keepFinished 0: every finished job whose
 * end is on disk is forgotten at the next end.
 */
function newRegistry(): { dir: string; registry: JobRegistry; said: string[] } {
  const root = mkdtempSync(join(tmpdir(), 'normserve-unwritten-'));
  roots.push(root);
  const dir = join(root, '.jobs');
  const said: string[] = [];
  const log = {
    info: (_: object, msg?: string) => said.push(`info: ${msg}`),
    warn: (_: object, msg?: string) => said.push(`warn: ${msg}`),
    error: (_: object, msg?: string) => said.push(`error: ${msg}`),
  };
  return { dir, said, registry: new JobRegistry({ dir, keepFinished: 0, heartbeatMs: 20, log }) };
}

describe('a finished job whose last record was not written', () => {
  it('is still answered from memory with its end after later jobs finish, and is not settled by its own sweep', async () => {
    const { dir, registry, said } = newRegistry();
    try {
      const job = registry.create('recalibration', 'digits');
      await registry.flush();
      expect(readRecord(dir, job.id).state).toBe('running');

      // This job's record alone (its temporary and its claim are named after it) is refused,
      // at its end and at every heartbeat's retry, until the faults are cleared below.
      injectFsFaults([{ op: 'open', path: job.id, writing: true, code: 'EIO' }]);
      registry.update(job, { state: 'succeeded', phase: 'done' });
      await registry.flush();
      expect(faultHits()[0]).toBeGreaterThan(0);
      expect(readRecord(dir, job.id).state).toBe('running');

      // Later jobs finish (each end prunes), and their records are written.
      for (let i = 0; i < 2; i++) {
        const later = registry.create('recalibration', 'digits');
        registry.update(later, { state: 'succeeded', phase: 'done' });
        await registry.flush();
      }

      const answered = await registry.get(job.id);
      expect(answered?.state).toBe('succeeded');
      expect(answered?.error).toBeUndefined();
      await registry.sweep();
      expect(readRecord(dir, job.id).state).toBe('running');

      // The storage works again: a heartbeat writes the job's end, then the job is forgotten.
      clearFsFaults();
      for (let i = 0; i < 400 && readRecord(dir, job.id).state === 'running'; i++)
        await new Promise((resolve) => setTimeout(resolve, 25));
      await registry.flush();
      expect(readRecord(dir, job.id).state).toBe('succeeded');
      const again = await registry.get(job.id);
      expect(again).not.toBe(job);
      expect(again?.state).toBe('succeeded');
      // The failure (once per reason: the record's temporary, its claim), then, once, that the
      // record is written after all (h254).
      expect(said.at(-1)).toBe('info: job record written again');
      expect(new Set(said.slice(0, -1))).toEqual(new Set(['warn: job record not written']));
    } finally {
      registry.close();
    }
  });

  it('is forgotten like any other once its end is on disk', async () => {
    const { registry } = newRegistry();
    try {
      const job = registry.create('recalibration', 'digits');
      registry.update(job, { state: 'succeeded', phase: 'done' });
      await registry.flush();
      const later = registry.create('recalibration', 'digits');
      registry.update(later, { state: 'succeeded', phase: 'done' });
      await registry.flush();
      // Read back from its record (no longer the in-memory object), with the same end.
      const answered = await registry.get(job.id);
      expect(answered).not.toBe(job);
      expect(answered?.state).toBe('succeeded');
    } finally {
      registry.close();
    }
  });
});

describe('a record whose writes are slow and failing', () => {
  it('gets one write at a time from the heartbeat, not one queued per beat', async () => {
    // h252: each beat queued another write behind the slow one, and flush() at shutdown waited
    // for them all.
    const { registry } = newRegistry();
    try {
      const job = registry.create('recalibration', 'digits');
      await registry.flush();
      injectFsFaults([{ op: 'open', path: job.id, writing: true, code: 'EIO', delayMs: 100 }]);
      registry.update(job, { state: 'succeeded', phase: 'done' });
      // Many beats (20 ms) pass while each write takes 100 ms and fails.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      registry.close();
      const before = faultHits()[0]!;
      expect(before).toBeGreaterThan(0);
      await registry.flush();
      // What was still queued when the beats stopped: the write under way, if any.
      expect(faultHits()[0]! - before).toBeLessThanOrEqual(1);
    } finally {
      registry.close();
      clearFsFaults();
    }
  });
});

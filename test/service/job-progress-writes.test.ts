/**
 * A job's progress reaches its record at most every writeIntervalMs, and the last progress of an
 * interval is written when the interval is over: other workers and replicas read the record
 * (GET /v1/jobs/{id}), and the progress before a pause (the end of an upload, a stalled client)
 * reached them only at the next heartbeat, 5 s later (h251).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Job, JobRegistry } from '../../src/service/index.js';

const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

const rowsOnDisk = (dir: string, id: string): number =>
  (JSON.parse(readFileSync(join(dir, `${id}.json`), 'utf8')) as Job).progress.rows;

describe('a job’s progress between two writes', () => {
  it('is written once its interval is over, without waiting for a heartbeat', async () => {
    const root = mkdtempSync(join(tmpdir(), 'normserve-progress-'));
    roots.push(root);
    const dir = join(root, '.jobs');
    // No heartbeat within the test: only the progress writes can bring the rows to disk.
    const registry = new JobRegistry({ dir, writeIntervalMs: 2000, heartbeatMs: 600_000 });
    try {
      const job = registry.create('recalibration', 'digits');
      await registry.flush();
      registry.update(job, { progress: { rows: 4096, total_rows: null } });
      registry.update(job, { progress: { rows: 8192, total_rows: null } });
      await registry.flush();
      // The second within the interval of the first write: not on disk yet.
      expect(rowsOnDisk(dir, job.id)).not.toBe(8192);
      for (let i = 0; i < 800 && rowsOnDisk(dir, job.id) !== 8192; i++)
        await new Promise((resolve) => setTimeout(resolve, 25));
      await registry.flush();
      expect(rowsOnDisk(dir, job.id)).toBe(8192);
      registry.update(job, { state: 'succeeded', phase: 'done' });
      await registry.flush();
    } finally {
      registry.close();
    }
  });
});

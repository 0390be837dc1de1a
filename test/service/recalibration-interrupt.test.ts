/**
 * The shutdown's end of a recalibration job (review31: a job cut by SHUTDOWN_TIMEOUT_MS left its
 * record `running` and no log line naming it). RecalibrationService.interrupt, which the drain
 * calls when the jobs' budget runs out (cli/shutdown-budget.ts), settles every job not yet
 * publishing as failed JOB_INTERRUPTED — record written, lock released, a warning naming the job,
 * the model and how far it got — and lets one that is publishing finish. Each job is held where
 * the test wants it (the service's `pause` seam between slices of work, a stalled upload, a held
 * publish); no clock is read.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isNormserveError } from '../../src/errors/index.js';
import { ACTIVE_RECORD_LOCK_FILE } from '../../src/repository/active-record-lock.js';
import { acquireModelLock } from '../../src/repository/index.js';
import { type Job, type Log, RecalibrationService } from '../../src/service/index.js';
import { digitsTestRows, nightShift, packRows } from '../helpers/digits.js';
import { closeRegistries, openRegistry } from '../helpers/registry.js';
import { removeTempDirs } from '../helpers/temp-files.js';

const rows = packRows(nightShift(digitsTestRows().x.slice(0, 256)));

interface LogLine {
  level: 'info' | 'warn' | 'error';
  msg: string | undefined;
  [key: string]: unknown;
}

/** A gate a test opens. */
function gate() {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

afterEach(() => {
  vi.restoreAllMocks();
  closeRegistries();
  removeTempDirs();
});

/**
 * A service over a copy of the digits model whose jobs stop at their first pause in the
 * statistics phase until `release` (`held` resolves then), its log lines in `logs`.
 */
async function setUp() {
  const { root, registry } = await openRegistry();
  const logs: LogLine[] = [];
  const log: Log = {
    info: (o, msg) => logs.push({ ...o, level: 'info', msg }),
    warn: (o, msg) => logs.push({ ...o, level: 'warn', msg }),
    error: (o, msg) => logs.push({ ...o, level: 'error', msg }),
  };
  const reached = gate();
  const release = gate();
  let service: RecalibrationService | undefined;
  const pause = async () => {
    const phase = service?.runningJobs()[0]?.phase ?? '';
    if (phase.startsWith('statistics')) {
      reached.open();
      await release.opened;
    }
    await new Promise((resolve) => setImmediate(resolve));
  };
  service = RecalibrationService.forRepository(registry, { maxSamples: 100_000, log, pause });
  const record = (id: string): Job =>
    JSON.parse(readFileSync(join(root, '.jobs', `${id}.json`), 'utf8')) as Job;
  const lockFile = join(root, 'digits', '.recalibration.lock');
  return {
    root,
    registry,
    service,
    logs,
    held: reached.opened,
    release: release.open,
    record,
    lockFile,
  };
}

const request = { model: 'digits', mode: 'exact', activate: true } as const;
const codeOf = (e: unknown) => (isNormserveError(e) ? e.code : String(e));

describe('RecalibrationService.interrupt (the shutdown budget ran out)', () => {
  it('settles a job held mid-computation as failed JOB_INTERRUPTED: record, warning, lock released, nothing published', async () => {
    const { registry, service, logs, held, release, record, lockFile } = await setUp();
    const started = await service.recalibrate(
      request,
      { read: () => [rows] },
      { acceptsJob: true, prefersJob: true },
    );
    if (!('job' in started)) throw new Error('expected a job');
    const id = started.job.id;
    await held;
    const interrupting = service.interrupt();
    release();
    const cut = await interrupting;

    expect(cut).toEqual([{ id, model: 'digits', phase: expect.stringMatching(/^statistics/) }]);
    const job = record(id);
    expect(job).toMatchObject({ state: 'failed', phase: 'failed' });
    expect(job.error?.code).toBe('JOB_INTERRUPTED');
    expect(job.error?.message).toMatch(
      new RegExp(
        `^job ${id} was interrupted by the server's shutdown in phase "statistics[^"]*" after \\d+ of 256 rows: SHUTDOWN_TIMEOUT_MS ran out before it finished; nothing was published`,
      ),
    );
    const warnings = logs.filter((l) => l.level === 'warn');
    expect(warnings).toEqual([
      expect.objectContaining({
        msg: 'recalibration job interrupted by shutdown: nothing published',
        job: id,
        model: 'digits',
        phase: expect.stringMatching(/^statistics/),
        progress: { rows: expect.any(Number), total_rows: 256 },
        error: expect.objectContaining({ code: 'JOB_INTERRUPTED' }),
      }),
    ]);
    expect(await registry.repository.listVersions('digits')).toEqual([1]);
    expect(existsSync(lockFile), 'the model lock is released').toBe(false);
    // Refused from now on, before any lock or job.
    const again = await service.recalibrateRows(request, rows).catch((e: unknown) => e);
    expect(codeOf(again)).toBe('SHUTTING_DOWN');
  });

  it('ends an upload waiting for its next chunk: the request rejects JOB_INTERRUPTED and so does its job', async () => {
    const { service, record, lockFile, logs } = await setUp();
    const stalled = gate();
    let jobId: string | undefined;
    async function* upload() {
      yield rows.subarray(0, 64 * 64);
      jobId = service.runningJobs()[0]?.id;
      await stalled.opened; // a client that stopped sending
      yield rows.subarray(64 * 64);
    }
    const recalibrating = service
      .recalibrate(request, { read: () => upload() }, { acceptsJob: true, prefersJob: true })
      .catch((e: unknown) => e);
    while (jobId === undefined) await new Promise((resolve) => setImmediate(resolve));
    const cut = await service.interrupt();
    const error = await recalibrating;
    stalled.open();

    expect(cut).toEqual([{ id: jobId, model: 'digits', phase: 'receiving' }]);
    expect(codeOf(error)).toBe('JOB_INTERRUPTED');
    expect(isNormserveError(error) && error.retryAfterSeconds).toBe(1);
    await service.jobs.flush();
    expect(record(jobId)).toMatchObject({
      state: 'failed',
      error: { code: 'JOB_INTERRUPTED' },
      progress: { rows: 64, total_rows: null },
    });
    expect(record(jobId).error?.message).toContain('in phase "receiving" after 64 rows');
    expect(logs.filter((l) => l.level === 'warn')).toEqual([
      expect.objectContaining({
        job: jobId,
        phase: 'receiving',
        progress: { rows: 64, total_rows: null },
      }),
    ]);
    expect(existsSync(lockFile)).toBe(false);
  });

  it('lets a job that has begun publishing finish: its version is published whole and it succeeds', async () => {
    const { registry, service, logs, record, release } = await setUp();
    release(); // never held in the statistics
    const publishing = gate();
    const published = gate();
    const publish = registry.publish.bind(registry);
    vi.spyOn(registry, 'publish').mockImplementation(async (...args) => {
      publishing.open();
      await published.opened;
      return publish(...args);
    });
    const completing = service.recalibrate(request, { read: () => [rows] });
    await publishing.opened;
    let interrupted = false;
    const interrupting = service.interrupt().then((cut) => {
      interrupted = true;
      return cut;
    });
    // interrupt waits for the publish rather than cutting it.
    await new Promise((resolve) => setImmediate(resolve));
    expect(interrupted).toBe(false);
    published.open();
    const { outcome } = await completing;
    const cut = await interrupting;

    expect(cut, 'no job interrupted').toEqual([]);
    expect(outcome).toMatchObject({ version: 2, activated: true });
    expect(record(outcome.job_id)).toMatchObject({ state: 'succeeded', phase: 'done' });
    expect(await registry.repository.listVersions('digits')).toEqual([1, 2]);
    expect(logs.filter((l) => l.msg?.includes('interrupted'))).toEqual([]);
  });

  it('ends a publish waiting for the record lock another writer holds: JOB_INTERRUPTED in phase publishing, nothing published, the record as it was (h251)', async () => {
    const { registry, service, record, release, root, lockFile } = await setUp();
    release(); // never held in the statistics
    const modelDir = join(root, 'digits');
    const recordBefore = existsSync(join(modelDir, 'active-version.json'))
      ? readFileSync(join(modelDir, 'active-version.json'), 'utf8')
      : undefined;
    // Another replica's writer, alive (its heartbeat fresh), keeps the record's lock.
    const other = await acquireModelLock(modelDir, 'stuck-writer', {
      file: ACTIVE_RECORD_LOCK_FILE,
    });
    if ('heldBy' in other) throw new Error('the lock should be free');
    try {
      const completing = service.recalibrate(request, { read: () => [rows] }).catch((e) => e);
      while (service.runningJobs()[0]?.phase !== 'publishing')
        await new Promise((resolve) => setImmediate(resolve));
      const id = service.runningJobs()[0]!.id;
      const cut = await service.interrupt();
      const error = await completing;

      expect(cut).toEqual([{ id, model: 'digits', phase: 'publishing' }]);
      expect(codeOf(error)).toBe('JOB_INTERRUPTED');
      expect(record(id)).toMatchObject({ state: 'failed', error: { code: 'JOB_INTERRUPTED' } });
      expect(record(id).error?.message).toContain('in phase "publishing"');
      expect(await registry.repository.listVersions('digits')).toEqual([1]);
      const left = readdirSync(modelDir).filter((f) => f.startsWith('.'));
      expect(left, 'no staged version left').toEqual([ACTIVE_RECORD_LOCK_FILE]);
      const recordAfter = existsSync(join(modelDir, 'active-version.json'))
        ? readFileSync(join(modelDir, 'active-version.json'), 'utf8')
        : undefined;
      expect(recordAfter).toBe(recordBefore);
      expect(existsSync(lockFile), 'the model lock is released').toBe(false);
    } finally {
      await other.release();
    }
  });

  it('a recalibration still waiting for its model lock is not started, and interrupt waits for it (review36)', async () => {
    const { service, lockFile, root } = await setUp();
    // begin passes the check of `accepting` at once and then waits for its lock (a file).
    let settled = false;
    const starting = service.begin(request).then(
      () => 'started',
      (e: unknown) => codeOf(e),
    );
    void starting.then(() => {
      settled = true;
    });
    const cut = await service.interrupt();
    expect(settled, 'interrupt resolves only once the waiting one has settled').toBe(true);
    expect(await starting).toBe('SHUTTING_DOWN');
    expect(cut).toEqual([]);
    expect(service.runningJobs()).toEqual([]);
    expect(existsSync(lockFile), 'its lock given back').toBe(false);
    expect(existsSync(join(root, '.jobs')) ? readdirSync(join(root, '.jobs')) : []).toEqual([]);
  });

  it('close waits for a running recalibration whose client went away to settle, so its record is on disk before the process ends', async () => {
    const { service, record, lockFile } = await setUp();
    const gone = gate();
    let jobId: string | undefined;
    async function* upload() {
      yield rows.subarray(0, 64 * 64);
      jobId = service.runningJobs()[0]?.id;
      await gone.opened; // the connection is closed: the upload ends with an error
      throw new Error('client gone');
    }
    const recalibrating = service
      .recalibrate(request, { read: () => upload() }, { acceptsJob: true, prefersJob: true })
      .catch((e: unknown) => e);
    while (jobId === undefined) await new Promise((resolve) => setImmediate(resolve));
    let closed = false;
    const closing = service.close().then(() => {
      closed = true;
    });
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(closed, 'close waits for the running session').toBe(false);
    gone.open();
    await closing;
    await recalibrating;
    expect(record(jobId)).toMatchObject({ state: 'failed' });
    expect(existsSync(lockFile)).toBe(false);
  });

  it('stopAccepting refuses new recalibrations with SHUTTING_DOWN while a running one finishes', async () => {
    const { service, held, release, record } = await setUp();
    const completing = service.recalibrate(request, { read: () => [rows] });
    await held;
    service.stopAccepting();
    const refused = await service.recalibrateRows(request, rows).catch((e: unknown) => e);
    expect(codeOf(refused)).toBe('SHUTTING_DOWN');
    expect(isNormserveError(refused) && refused.retryAfterSeconds).toBe(1);
    release();
    const { outcome } = await completing;
    await service.close();
    expect(record(outcome.job_id)).toMatchObject({ state: 'succeeded' });
  });
});

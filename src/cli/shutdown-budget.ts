/**
 * The drain's budget for recalibration jobs. SHUTDOWN_TIMEOUT_MS bounds the drain: close-with-grace
 * exits 1 when it runs out, whatever still runs. A job cut there would leave its record `running`
 * (until another process read it and settled it JOB_ABANDONED) and no line naming it. So the jobs
 * get the budget less a reserve, then are interrupted (RecalibrationService.interrupt): each stops
 * at its next pause between slices of work, fails JOB_INTERRUPTED, releases the model's lock and
 * writes its record, within the reserve, before the process's end.
 */
import type pino from 'pino';
import { DRAIN_RESERVE_MS, drainLastStepsMs, type RecalibrationService } from '../service/index.js';

/** What the jobs leave of SHUTDOWN_TIMEOUT_MS for settling those interrupted (DRAIN_RESERVE_MS). */
export const JOB_SETTLE_RESERVE_MS = DRAIN_RESERVE_MS;

/** How long after the drain begins the running recalibration jobs are interrupted. */
export const jobBudgetMs = drainLastStepsMs;

/**
 * Arms the jobs' budget as the drain begins; `stop()` disarms it once the drain has ended, and
 * resolves to whether it interrupted jobs (the process then exits 1: work was lost).
 */
export function armJobBudget(
  recalibration: Pick<RecalibrationService, 'runningJobs' | 'interrupt'>,
  shutdownTimeoutMs: number,
  logger: pino.Logger,
): { stop: () => Promise<boolean> } {
  let interrupting: Promise<boolean> | undefined;
  const timer = setTimeout(() => {
    const running = recalibration.runningJobs();
    if (running.length > 0) {
      logger.warn(
        { jobs: running, budgetMs: jobBudgetMs(shutdownTimeoutMs), shutdownTimeoutMs },
        'shutdown budget ran out: interrupting the running recalibration jobs',
      );
    }
    // Even with none running: a recalibration begun before SIGTERM and still taking its model's
    // lock is then not started (RecalibrationService.interrupt), instead of starting a job the
    // drain's end would cut with its record left `running`.
    interrupting = recalibration.interrupt().then(
      (cut) => cut.length > 0,
      (e: unknown) => {
        logger.error({ err: e }, 'interrupting the recalibration jobs failed');
        return true;
      },
    );
  }, jobBudgetMs(shutdownTimeoutMs));
  timer.unref();
  return {
    stop: async () => {
      clearTimeout(timer);
      return (await interrupting) ?? false;
    },
  };
}

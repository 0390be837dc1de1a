/**
 * The recalibration jobs' share of the drain (src/cli/shutdown-budget.ts): SHUTDOWN_TIMEOUT_MS less
 * a reserve for settling those interrupted, a second at most, a quarter of a short budget; the
 * timer interrupts when it runs out (a job may still be taking its lock), and says whether it cut one (the process then exits 1).
 */
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { armJobBudget, JOB_SETTLE_RESERVE_MS, jobBudgetMs } from '../../src/cli/shutdown-budget.js';
import type { RecalibrationService } from '../../src/service/index.js';

afterEach(() => {
  vi.useRealTimers();
});

/** A recalibration service reduced to what the budget asks of it. */
function fakeService(jobs: { id: string; model: string; phase: string }[]) {
  const interrupt = vi.fn(async () => jobs);
  const service: Pick<RecalibrationService, 'runningJobs' | 'interrupt'> = {
    runningJobs: () => jobs,
    interrupt,
  };
  return { service, interrupt };
}

describe('the jobs budget of the drain', () => {
  it('leaves the settle reserve of SHUTDOWN_TIMEOUT_MS, a quarter of a short one', () => {
    expect(JOB_SETTLE_RESERVE_MS).toBe(1_000);
    expect(jobBudgetMs(10_000)).toBe(9_000);
    expect(jobBudgetMs(4_000)).toBe(3_000);
    expect(jobBudgetMs(2_000)).toBe(1_500);
    expect(jobBudgetMs(100)).toBe(75);
  });

  it('interrupts the running jobs when it runs out, and says so', async () => {
    vi.useFakeTimers();
    const { service, interrupt } = fakeService([{ id: 'j', model: 'digits', phase: 'receiving' }]);
    const budget = armJobBudget(service, 10_000, pino({ level: 'silent' }));
    vi.advanceTimersByTime(8_999);
    expect(interrupt).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(interrupt).toHaveBeenCalledOnce();
    expect(await budget.stop()).toBe(true);
  });

  it('interrupts nothing when the drain ends first', async () => {
    vi.useFakeTimers();
    const early = fakeService([{ id: 'j', model: 'digits', phase: 'receiving' }]);
    const stopped = armJobBudget(early.service, 10_000, pino({ level: 'silent' }));
    expect(await stopped.stop()).toBe(false);
    vi.advanceTimersByTime(20_000);
    expect(early.interrupt).not.toHaveBeenCalled();
  });

  it('interrupts with no job running (one may be taking its lock), and reports nothing cut', async () => {
    vi.useFakeTimers();
    const idle = fakeService([]);
    const budget = armJobBudget(idle.service, 10_000, pino({ level: 'silent' }));
    vi.advanceTimersByTime(20_000);
    expect(idle.interrupt).toHaveBeenCalledOnce();
    expect(await budget.stop()).toBe(false);
  });
});

/** Learning-rate schedules, stepped once per optimizer step (per batch). */
export type LrSchedule =
  | { type: 'constant' }
  /** torch.optim.lr_scheduler.CosineAnnealingLR with T_max = total steps. */
  | { type: 'cosine'; etaMin?: number }
  /**
   * torch.optim.lr_scheduler.OneCycleLR (anneal_strategy='cos', three_phase=False,
   * cycle_momentum=False): warm up from maxLr/divFactor to maxLr over pctStart of the steps, then
   * anneal to maxLr/(divFactor·finalDivFactor). The optimizer's base lr is maxLr.
   */
  | { type: 'one_cycle'; pctStart?: number; divFactor?: number; finalDivFactor?: number };

/**
 * The schedules' defaults, PyTorch's (CosineAnnealingLR's eta_min 0; OneCycleLR's pct_start 0.3,
 * div_factor 25, final_div_factor 1e4): the one place they are written, for learningRateAt and a
 * training config's schema alike.
 */
export const SCHEDULE_DEFAULTS = {
  etaMin: 0,
  pctStart: 0.3,
  divFactor: 25,
  finalDivFactor: 1e4,
} as const;

const cosineAnneal = (start: number, end: number, pct: number): number =>
  end + ((start - end) / 2) * (Math.cos(Math.PI * pct) + 1);

/** The learning rate for step `step` (0-based) of `totalSteps`, given the base learning rate. */
export function learningRateAt(
  schedule: LrSchedule,
  baseLr: number,
  step: number,
  totalSteps: number,
): number {
  switch (schedule.type) {
    case 'constant':
      return baseLr;
    case 'cosine': {
      const etaMin = schedule.etaMin ?? SCHEDULE_DEFAULTS.etaMin;
      if (totalSteps <= 0) return baseLr;
      return (
        etaMin +
        ((baseLr - etaMin) * (1 + Math.cos((Math.PI * Math.min(step, totalSteps)) / totalSteps))) /
          2
      );
    }
    case 'one_cycle': {
      const pctStart = schedule.pctStart ?? SCHEDULE_DEFAULTS.pctStart;
      const initialLr = baseLr / (schedule.divFactor ?? SCHEDULE_DEFAULTS.divFactor);
      const minLr = initialLr / (schedule.finalDivFactor ?? SCHEDULE_DEFAULTS.finalDivFactor);
      const warmupEnd = pctStart * totalSteps - 1;
      const end = totalSteps - 1;
      if (step <= warmupEnd)
        return cosineAnneal(initialLr, baseLr, warmupEnd > 0 ? step / warmupEnd : 1);
      return cosineAnneal(
        baseLr,
        minLr,
        end > warmupEnd ? (step - warmupEnd) / (end - warmupEnd) : 1,
      );
    }
  }
}

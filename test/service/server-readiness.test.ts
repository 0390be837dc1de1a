/**
 * The readiness rule every transport asks (service/serving-phase.ts serverReadiness): from the
 * shutdown signal on not ready whatever the models, with the reason; before it, as the models are.
 * /readyz, /v2/health/ready, gRPC ServerReady and the gRPC health service all answer from it.
 */
import { describe, expect, it } from 'vitest';
import { ServingPhase, SHUTTING_DOWN_REASON, serverReadiness } from '../../src/service/index.js';

const models = (ready: boolean) => ({ isReady: () => ready });

describe('serverReadiness', () => {
  it('follows the models while serving, and without a phase', () => {
    const phase = new ServingPhase();
    expect(serverReadiness(phase, models(true))).toEqual({ ready: true });
    expect(serverReadiness(phase, models(false))).toEqual({ ready: false });
    expect(serverReadiness(undefined, models(true))).toEqual({ ready: true });
  });

  it('is not ready from the lame-duck phase on, whatever the models, and says why', () => {
    for (const next of ['lame-duck', 'draining'] as const) {
      const phase = new ServingPhase();
      phase.enter(next);
      for (const ready of [true, false])
        expect(serverReadiness(phase, models(ready))).toEqual({
          ready: false,
          reason: SHUTTING_DOWN_REASON,
        });
    }
  });
});

/**
 * The readiness rule every transport asks (service/serving-phase.ts serverReadiness): from the
 * shutdown signal on not ready whatever the models, with the reason; so too while the server starts
 * (HTTP listens, gRPC not yet); in between, as the models are.
 * /readyz, /v2/health/ready, gRPC ServerReady and the gRPC health service all answer from it.
 */
import { describe, expect, it } from 'vitest';
import {
  ServingPhase,
  SHUTTING_DOWN_REASON,
  STARTING_REASON,
  serverReadiness,
} from '../../src/service/index.js';

const models = (ready: boolean) => ({ isReady: () => ready });

describe('serverReadiness', () => {
  it('follows the models while serving, and without a phase', () => {
    const phase = new ServingPhase();
    expect(serverReadiness(phase, models(true))).toEqual({ ready: true });
    expect(serverReadiness(phase, models(false))).toEqual({ ready: false });
    expect(serverReadiness(undefined, models(true))).toEqual({ ready: true });
  });

  it('is not ready while starting (not every transport listens), whatever the models; then follows them', () => {
    const phase = new ServingPhase('starting');
    expect(phase.acceptingTraffic).toBe(true);
    for (const ready of [true, false])
      expect(serverReadiness(phase, models(ready))).toEqual({
        ready: false,
        reason: STARTING_REASON,
      });
    phase.enter('serving');
    expect(serverReadiness(phase, models(true))).toEqual({ ready: true });
    // A shutdown signal while starting: shutting down, and the start's end does not undo it.
    const stopped = new ServingPhase('starting');
    stopped.enter('lame-duck');
    stopped.enter('serving');
    expect(serverReadiness(stopped, models(true))).toEqual({
      ready: false,
      reason: SHUTTING_DOWN_REASON,
    });
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

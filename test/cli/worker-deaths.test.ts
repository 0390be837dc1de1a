/** What a cluster worker's death means to the primary (src/cli/worker-deaths.ts). */
import { describe, expect, it } from 'vitest';
import {
  CRASH_LOOP_DEATHS,
  CRASH_LOOP_WINDOW_MS,
  WorkerDeaths,
} from '../../src/cli/worker-deaths.js';

describe('WorkerDeaths', () => {
  it('a death before any worker has listened is a start-up failure', () => {
    const deaths = new WorkerDeaths();
    expect(deaths.died(0)).toBe('start-failed');
  });

  it('once a worker has listened, a replacement that dies before it is ready is replaced, not fatal', () => {
    const deaths = new WorkerDeaths();
    deaths.ready();
    // The ready worker is OOM-killed, then its replacement dies as it starts: both replaced.
    expect(deaths.died(0)).toBe('replace');
    expect(deaths.died(1_000)).toBe('replace');
  });

  it('counts the deaths of the last minute: more than CRASH_LOOP_DEATHS stop the server', () => {
    const deaths = new WorkerDeaths();
    deaths.ready();
    for (let i = 0; i < CRASH_LOOP_DEATHS; i++) expect(deaths.died(i * 100)).toBe('replace');
    expect(deaths.died(CRASH_LOOP_DEATHS * 100)).toBe('crash-loop');
    // A minute later the old deaths no longer count.
    const later = new WorkerDeaths();
    later.ready();
    for (let i = 0; i < CRASH_LOOP_DEATHS; i++) later.died(0);
    expect(later.died(CRASH_LOOP_WINDOW_MS + 1)).toBe('replace');
  });
});

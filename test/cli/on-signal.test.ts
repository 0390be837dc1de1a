/**
 * interruptOnSignal (src/cli/on-signal.ts): the first SIGINT or SIGTERM interrupts the work; the
 * same signal again within REPEATED_SIGNAL_WINDOW_MS is its copy (`npm run` forwards a terminal's
 * Ctrl-C to a child that already got it) and is ignored; a later one ends the process at once.
 * Signals are emitted on `process` (its listeners run as for a real one) and `process.kill` is
 * stubbed, so nothing is delivered; the clock is injected.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { interruptOnSignal, REPEATED_SIGNAL_WINDOW_MS } from '../../src/cli/on-signal.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** Work that runs until it is interrupted, then fails as a stopped recalibration does. */
function interruptible() {
  let stop: (e: Error) => void = () => undefined;
  const work = new Promise<never>((_, reject) => {
    stop = reject;
  });
  const interrupt = vi.fn(async () => {
    await new Promise((r) => setImmediate(r));
    stop(new Error('interrupted'));
  });
  return { work: () => work, interrupt };
}

describe('interruptOnSignal', () => {
  it('takes a copy of the first signal for the same signal, and ends by it once the work stopped', async () => {
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => true);
    const listeners = process.listenerCount('SIGINT');
    const { work, interrupt } = interruptible();
    const stopped = vi.fn();
    let t = 0;
    const running = interruptOnSignal(interrupt, stopped, work, () => t);
    process.emit('SIGINT', 'SIGINT');
    // Still listened to: a real copy arriving now must not take the default action (the end).
    expect(process.listenerCount('SIGINT')).toBe(listeners + 1);
    t = REPEATED_SIGNAL_WINDOW_MS - 1;
    process.emit('SIGINT', 'SIGINT'); // npm's forwarded copy: ignored
    expect(kill).not.toHaveBeenCalled();
    await expect(running).rejects.toThrow('interrupted');
    expect(interrupt).toHaveBeenCalledTimes(1);
    expect(stopped).toHaveBeenCalledWith('SIGINT');
    expect(kill).toHaveBeenCalledTimes(1);
    expect(kill).toHaveBeenCalledWith(process.pid, 'SIGINT');
    expect(process.listenerCount('SIGINT')).toBe(listeners);
  });

  it('ends the process at once on a signal after the window, with its listeners gone', async () => {
    const listeners = process.listenerCount('SIGTERM');
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => {
      // The default action would end the process here: no listener of ours may be left.
      expect(process.listenerCount('SIGTERM')).toBe(listeners);
      return true;
    });
    let t = 0;
    const interrupt = vi.fn(() => new Promise<void>(() => undefined)); // never finishes
    let finish: (v: string) => void = () => undefined;
    const running = interruptOnSignal(
      interrupt,
      vi.fn(),
      () => new Promise<string>((r) => (finish = r)),
      () => t,
    );
    process.emit('SIGTERM', 'SIGTERM');
    t = REPEATED_SIGNAL_WINDOW_MS;
    process.emit('SIGTERM', 'SIGTERM');
    expect(kill).toHaveBeenCalledWith(process.pid, 'SIGTERM');
    finish('done');
    await expect(running).resolves.toBe('done');
  });
});

/**
 * The recalibrate CLI's interrupt line (src/cli/recalibrate-interrupted.ts) says the lock is
 * released only when its file is gone or another's: it used to say so without looking (review of
 * 2026-12-04, finding 9). The released case is run end to end in interrupted-recalibration.test.ts.
 */
import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { interruptedLine } from '../../src/cli/recalibrate-interrupted.js';
import { ownPidNamespace } from '../../src/repository/process-start.js';

const owner = (host: string, pid: number) => ({
  owner: 'cli-job',
  host,
  pid,
  acquired_at: '2026-12-04T00:00:00.000Z',
});
const start = 'recalibrate: interrupted (SIGINT) before publishing; nothing was written, and';

describe('interruptedLine', () => {
  it('no lock file, or one of another process: released', () => {
    expect(interruptedLine('SIGINT', 'repo/digits', undefined)).toBe(
      `${start} the lock on repo/digits is released\n`,
    );
    expect(interruptedLine('SIGINT', 'repo/digits', owner(hostname(), process.pid + 1))).toBe(
      `${start} the lock on repo/digits is released\n`,
    );
    expect(interruptedLine('SIGINT', 'repo/digits', owner('elsewhere', process.pid))).toBe(
      `${start} the lock on repo/digits is released\n`,
    );
    // This pid in another pid namespace of this host: another container's PID 1, say.
    const namespace = ownPidNamespace();
    expect(namespace, 'this test needs /proc (Linux)').toBeDefined();
    const neighbour = { ...owner(hostname(), process.pid), pid_namespace: namespace! + 1 };
    expect(interruptedLine('SIGINT', 'repo/digits', neighbour)).toBe(
      `${start} the lock on repo/digits is released\n`,
    );
  });

  it('a lock file naming this process: not released, and who breaks it', () => {
    expect(interruptedLine('SIGINT', 'repo/digits', owner(hostname(), process.pid))).toBe(
      `${start} the lock on repo/digits could not be released: its file names this process, which ends now, so the next recalibration on this host breaks it as stale (on another host, 30 s after this one ends)\n`,
    );
  });

  it('a lock file that cannot be read: not known', () => {
    expect(interruptedLine('SIGTERM', 'repo/digits', 'unreadable')).toBe(
      'recalibrate: interrupted (SIGTERM) before publishing; nothing was written, and whether the lock on repo/digits is released is not known: its file cannot be read\n',
    );
  });
});

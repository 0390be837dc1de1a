/**
 * The compute lane (compute-lane.ts): one task per turn of the event loop, never in the turn that
 * queued it; a session's next task waits until its previous one is released, other sessions'
 * tasks go first meanwhile, oldest first.
 */
import { describe, expect, it } from 'vitest';
import { ComputeLane } from '../../src/grpc/compute-lane.js';

const turn = () => new Promise((r) => setImmediate(r));
const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await turn();
};

describe('ComputeLane', () => {
  it('runs one task per turn, none in the turn that queued it', async () => {
    const lane = new ComputeLane();
    const ran: string[] = [];
    for (const s of ['a', 'b', 'c']) {
      lane.run(s, (release) => {
        ran.push(s);
        release();
      });
    }
    expect(ran).toEqual([]);
    await turn();
    expect(ran).toEqual(['a']);
    await turns(10);
    expect(ran).toEqual(['a', 'b', 'c']);
  });

  it("holds a session's next task until its previous is released; other sessions go first", async () => {
    const lane = new ComputeLane();
    const ran: string[] = [];
    const releases: Record<string, () => void> = {};
    const task = (name: string) => (release: () => void) => {
      ran.push(name);
      releases[name] = release;
    };
    lane.run('a', task('a1'));
    lane.run('a', task('a2'));
    lane.run('a', task('a3'));
    lane.run('b', task('b1'));
    await turns(10);
    expect(ran).toEqual(['a1', 'b1']);
    // Queued later, a new session's task is not held behind a's.
    lane.run('c', task('c1'));
    await turns(10);
    expect(ran).toEqual(['a1', 'b1', 'c1']);
    releases.a1!();
    await turns(10);
    expect(ran).toEqual(['a1', 'b1', 'c1', 'a2']);
    releases.a2!();
    releases.a2!(); // twice is once
    await turns(10);
    expect(ran).toEqual(['a1', 'b1', 'c1', 'a2', 'a3']);
  });

  it('releases a task that throws and goes on with the next', async () => {
    const lane = new ComputeLane();
    const ran: string[] = [];
    const thrown: unknown[] = [];
    const onError = (e: unknown) => thrown.push(e);
    process.prependListener('uncaughtException', onError);
    try {
      lane.run('a', () => {
        ran.push('a1');
        throw new Error('boom');
      });
      lane.run('a', () => ran.push('a2'));
      await turns(10);
    } finally {
      process.removeListener('uncaughtException', onError);
    }
    expect(ran).toEqual(['a1', 'a2']);
  });
});

/**
 * The compute lane (compute-lane.ts): never in the turn of the event loop that
 * queued it, one task of each session per turn, each session's tasks in their order.
 */
import { describe, expect, it } from 'vitest';
import { ComputeLane } from '../../src/grpc/compute-lane.js';

const turn = () => new Promise((r) => setImmediate(r));
const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await turn();
};

describe('ComputeLane', () => {
  it('runs one task of each session per turn, none in the turn that queued it', async () => {
    const lane = new ComputeLane();
    const ran: string[] = [];
    lane.run('a', () => ran.push('a1'));
    lane.run('a', () => ran.push('a2'));
    lane.run('b', () => ran.push('b1'));
    expect(ran).toEqual([]);
    await turn();
    expect(ran).toEqual(['a1', 'b1']);
    await turn();
    expect(ran).toEqual(['a1', 'b1', 'a2']);
  });

  it("takes sessions in turn: one session's queued tasks delay another's by one task", async () => {
    const lane = new ComputeLane();
    const ran: string[] = [];
    const task = (name: string) => () => ran.push(name);
    lane.run('a', task('a1'));
    lane.run('a', task('a2'));
    lane.run('a', task('a3'));
    lane.run('b', task('b1'));
    lane.run('b', task('b2'));
    await turn();
    // Queued later, while a's and b's wait: c's first task comes before a's third.
    lane.run('c', task('c1'));
    await turns(10);
    expect(ran).toEqual(['a1', 'b1', 'a2', 'b2', 'c1', 'a3']);
  });

  it('goes on with the next task after one that throws', async () => {
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

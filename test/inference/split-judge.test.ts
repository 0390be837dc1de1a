/**
 * SplitJudge (WasmExecutor's splitWhenItPays): calls are split while a window of split calls
 * takes less than 0.75 of what the calling thread alone would have taken; after a window that did
 * not pay, calls run unsplit for a pause (32 calls, doubling to 1024 while windows keep not
 * paying, back to 32 after one that pays). Timings are given, so the verdicts are exact.
 */
import { describe, expect, it } from 'vitest';
import { SplitJudge } from '../../src/inference/index.js';

/** Asks the judge about `calls` calls; each one it splits is judged with `wallOverAlone`. */
function drive(judge: SplitJudge, calls: number, wallOverAlone: number): boolean[] {
  const verdicts: boolean[] = [];
  for (let i = 0; i < calls; i++) {
    const split = judge.shouldSplit();
    verdicts.push(split);
    // 128 of 256 rows on the calling thread in 1 ms: alone, the call takes 2 ms.
    if (split) judge.judge(1, 128, 2 * wallOverAlone, 256);
  }
  return verdicts;
}

const count = (v: boolean[]) => v.filter(Boolean).length;

describe('SplitJudge', () => {
  it('keeps splitting while splitting pays', () => {
    const judge = new SplitJudge();
    expect(count(drive(judge, 1000, 0.55))).toBe(1000);
  });

  it('pauses after a window that did not pay, doubling the pause while none pays', () => {
    const judge = new SplitJudge();
    const verdicts = drive(judge, 8 + 32 + 8 + 64 + 8, 0.8);
    // Eight split calls judged, then 32 unsplit, eight probes, 64 unsplit, eight probes.
    expect(verdicts.slice(0, 8).every(Boolean)).toBe(true);
    expect(count(verdicts.slice(8, 40))).toBe(0);
    expect(verdicts.slice(40, 48).every(Boolean)).toBe(true);
    expect(count(verdicts.slice(48, 112))).toBe(0);
    expect(verdicts.slice(112, 120).every(Boolean)).toBe(true);
  });

  it('caps the pause, and a window that pays ends it', () => {
    const judge = new SplitJudge();
    const slow = drive(judge, 20_000, 1.2);
    // Pauses of 32, 64, … 1024, then 1024 each: splitting is still tried every ~1,032 calls.
    expect(count(slow)).toBeGreaterThan(8 * 20);
    expect(count(slow)).toBeLessThan(8 * 30);
    // The probe window that follows pays: every call after it is split again.
    const quiet = drive(judge, 2000, 0.5);
    const firstSplit = quiet.indexOf(true);
    expect(firstSplit).toBeLessThanOrEqual(1024);
    expect(quiet.slice(firstSplit).every(Boolean)).toBe(true);
  });

  it('judges the mean of a window, not single calls', () => {
    const judge = new SplitJudge();
    // One slow call (a preempted helper) among fast ones: the window's mean still pays.
    let i = 0;
    for (; i < 400; i++) {
      expect(judge.shouldSplit()).toBe(true);
      judge.judge(1, 128, 2 * (i % 8 === 3 ? 1.4 : 0.6), 256);
    }
  });
});

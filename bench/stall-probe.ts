/**
 * What the stall benches (load-stall.ts, recalibration-stall.ts) share: a client loop of 1-row
 * `digits` predicts whose latencies show how long the server's event loop was held, and the
 * server's own long turns, logged by bench/stall-hook.cjs. Times are epoch milliseconds, the hook's
 * clock.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { DIGITS_ROW } from './http.js';

export interface Sample {
  start: number;
  end: number;
}

/** Epoch milliseconds with performance.now()'s resolution. */
export const epochNow = (): number => performance.timeOrigin + performance.now();

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const predictBody = JSON.stringify({ instances: [DIGITS_ROW] });

/** Predicts one at a time until `stop()`; every request's start and end (epochNow). */
export function predictLoop(port: number): { stop: () => Promise<Sample[]> } {
  const samples: Sample[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const start = epochNow();
      const response = await fetch(`http://127.0.0.1:${port}/v1/models/digits:predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: predictBody,
      });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`predict answered ${response.status}`);
      samples.push({ start, end: epochNow() });
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return samples;
    },
  };
}

/** The longest latency of a request that overlaps [from, to]. */
export const worst = (samples: Sample[], from: number, to: number) =>
  Math.max(0, ...samples.filter((s) => s.end > from && s.start < to).map((s) => s.end - s.start));

/** The server's `--require` hook that logs its turns over 4 ms. */
export const STALL_HOOK = resolve('bench/stall-hook.cjs');

/** The server's turns over 4 ms (end, wall, cpu: stall-hook.cjs) within [from, to] (epoch ms). */
export function turnsIn(log: string, from: number, to: number): [number, number, number][] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((line) => line.split(' ').map(Number) as [number, number, number])
    .filter(([end, wall]) => end >= from && end - wall <= to);
}

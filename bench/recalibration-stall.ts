/**
 * How long a recalibration upload holds the server's event loop: on a WORKERS=1 server, a client
 * loop of 1-row `digits` predicts (one in flight, keep-alive) runs while 5,040 night-shifted
 * digits rows are posted as float32 to `POST /v1/models/digits-cnn:recalibrate` (twice per
 * server: the process's first recalibration and its second); the worst predict latency whose
 * request overlaps the recalibration, against the worst of the same loop before it. Trees given
 * as arguments are alternated round by round (each a source tree with node_modules, run with tsx).
 *
 *   npx tsx bench/recalibration-stall.ts [ROUNDS] [TREE...]    (default: 3 rounds of this tree)
 *
 * The server runs with bench/stall-hook.cjs, which logs every event-loop turn over 4 ms: each
 * line also gives the server's longest turn during each recalibration, wall and CPU time
 * (STALL_TRACE=1: every long turn of the first one, timed from the request's start).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { copyBundledRepository } from '../test/helpers/bundled-models.js';
import { startTree } from './http.js';
import { nightRows, TOKEN } from './recalibration-setup.js';
import { epochNow, predictLoop, STALL_HOOK, sleep, turnsIn, worst } from './stall-probe.js';

const rounds = Number(process.argv[2] ?? 3);
const trees = process.argv.length > 3 ? process.argv.slice(3).map((t) => resolve(t)) : ['.'];
const ROWS = 5040;
const body = Buffer.from(nightRows(ROWS).buffer);

/** The server's longest event-loop turn (wall, cpu ms) within [from, to]. */
function longestTurn(log: string, from: number, to: number): [number, number] {
  let best: [number, number] = [0, 0];
  for (const [, wall, cpu] of turnsIn(log, from, to)) if (wall > best[0]) best = [wall, cpu];
  return best;
}

interface Round {
  before: number;
  first: number;
  second: number;
  /** The server's longest turn during each recalibration: wall and cpu ms. */
  turns: [number, number][];
}

async function round(tree: string): Promise<Round> {
  const dir = mkdtempSync(join(tmpdir(), 'normserve-bench-stall-'));
  copyBundledRepository(join(dir, 'repository'));
  const stallLog = join(dir, 'stalls.txt');
  const server = await startTree(
    tree,
    join(dir, 'repository'),
    join(dir, 'server.log'),
    { GRPC_PORT: '0', STALL_LOG: stallLog },
    ['--require', STALL_HOOK],
  );
  try {
    // Warm the predict path first: its own first calls are not what is measured.
    const warm = predictLoop(server.port);
    await sleep(1500);
    await warm.stop();
    const loop = predictLoop(server.port);
    await sleep(1000);
    const recalibrations: [number, number][] = [];
    for (let i = 0; i < 2; i++) {
      const t0 = epochNow();
      const response = await fetch(
        `http://127.0.0.1:${server.port}/v1/models/digits-cnn:recalibrate?activate=false`,
        {
          method: 'POST',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/octet-stream' },
          body,
        },
      );
      await response.arrayBuffer();
      if (response.status !== 201) throw new Error(`recalibrate answered ${response.status}`);
      recalibrations.push([t0, epochNow()]);
      await sleep(500);
    }
    const samples = await loop.stop();
    const [[a0, a1], [b0, b1]] = recalibrations as [[number, number], [number, number]];
    if (process.env.STALL_TRACE) {
      // Every long turn of the first recalibration: its start after the request's, wall (cpu).
      const [from, to] = recalibrations[0]!;
      const turns = turnsIn(stallLog, from, to).map(
        ([end, wall, cpu]) => `+${(end - wall - from).toFixed(0)}: ${wall} (${cpu})`,
      );
      console.log(
        `  first recalibration: ${(to - from).toFixed(0)} ms; turns > 4 ms: ${turns.join(', ')}`,
      );
    }
    return {
      before: worst(samples, 0, a0),
      first: worst(samples, a0, a1),
      second: worst(samples, b0, b1),
      turns: recalibrations.map(([from, to]) => longestTurn(stallLog, from, to)),
    };
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(
  `worst 1-row digits predict (ms) around a ${ROWS}-row float32 digits-cnn recalibration; load average ${loadavg()[0]!.toFixed(1)}`,
);
for (let r = 0; r < rounds; r++) {
  for (const tree of trees) {
    const { before, first, second, turns } = await round(tree);
    const turn = ([wall, cpu]: [number, number]) => `${wall.toFixed(1)} (cpu ${cpu.toFixed(1)})`;
    console.log(
      `round ${r + 1} ${tree}: predict before ${before.toFixed(1)}, first recalibration ${first.toFixed(1)}, second ${second.toFixed(1)}; server's longest turn ${turns.map(turn).join(', ')} (load ${loadavg()[0]!.toFixed(1)})`,
    );
  }
}

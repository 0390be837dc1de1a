/**
 * A process whose only pending work is an asynchronous engine call on helper threads stays alive
 * until it is answered (inference/wasm/event-loop-hold.ts): neither Atomics.waitAsync nor the
 * unref'd helpers hold Node's event loop, and such a script exited 13 (unsettled top-level await)
 * with the rows not computed, every run (30 of 30 before the hold). And a process whose work is
 * done exits on its own although its helper threads are still there (idle helpers never keep it
 * alive). Exit codes and results only, no timings.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { makeTempDir, removeTempDirs, writeTempFile } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

const src = (path: string): string => pathToFileURL(resolve('src', path)).href;

/**
 * A script that loads digits-cnn on two threads, waits for its helper, and top-level-awaits one
 * asynchronous call of `rows` rows (several passes on the helper) with nothing else on the event
 * loop; prints whether it equals the synchronous result and how many passes the helper ran.
 * `close` says whether it stops the helper threads at the end.
 */
function script(rows: number, close: boolean): string {
  return `
import { CompiledModel } from '${src('inference/index.ts')}';
import { finishYielding } from '${src('nn/index.ts')}';
import { loadModelDirectory } from '${src('repository/index.ts')}';
import { nodeEngineOptions } from '${src('service/engine-runtime.ts')}';

const { checkpoint } = await loadModelDirectory(${JSON.stringify(resolve(bundledVersionDir('digits-cnn')))});
const { config } = checkpoint;
const compiled = await finishYielding(
  CompiledModel.building(checkpoint.network, config.input_transform, 4096, config.input_shape,
    nodeEngineOptions({ engine: 'wasm', threads: 2 })),
);
const executor = compiled.executor;
const rows = ${rows};
const x = new Float32Array(rows * compiled.inputWidth);
for (let i = 0; i < x.length; i++) x[i] = (i * 7919) % 17;
await executor.ready(600_000);
const helpers = executor.readyHelpers;
const outputs = await executor.runAsync(x, rows);
const expected = executor.run(x, rows);
console.log(JSON.stringify({
  helpers,
  offloaded: executor.offloadedCalls,
  equal: Buffer.from(outputs.buffer).equals(Buffer.from(expected.buffer)),
}));
${close ? 'executor.close();' : '// The helper threads are left running, idle.'}
`;
}

/** Runs `source` under tsx: its exit code (null if it had to be killed), stdout and stderr. */
function runScript(
  source: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const file = writeTempFile(makeTempDir('async-exit'), 'script.mts', source);
  const tsx = pathToFileURL(resolve('node_modules/tsx/dist/loader.mjs')).href;
  return new Promise((done) => {
    // The timeout is only a bound on a process that would never exit (the idle test's failure).
    const child = execFile(
      process.execPath,
      ['--import', tsx, file],
      { timeout: 240_000 },
      (_error, stdout, stderr) => done({ code: child.exitCode, stdout, stderr }),
    );
  });
}

describe('an asynchronous engine call in a process with nothing else to do', () => {
  it('keeps the process alive until answered: exit 0, the synchronous result bit for bit', async () => {
    const { code, stdout, stderr } = await runScript(script(20_000, true));
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const result = JSON.parse(stdout) as { helpers: number; offloaded: number; equal: boolean };
    // On the helper thread (several passes of at most 4096 rows), not on the calling thread.
    expect(result.helpers).toBe(1);
    expect(result.offloaded).toBeGreaterThanOrEqual(5);
    expect(result.equal).toBe(true);
  }, 300_000);

  it('lets the process exit on its own once answered, its idle helpers still running', async () => {
    const { code, stdout } = await runScript(script(20_000, false));
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ helpers: 1, equal: true });
  }, 300_000);
});

/**
 * A CLI interrupted while it publishes leaves no temporary directory behind: SIGINT or SIGTERM
 * removes the process's own `.tmp-<host>-<pid>-…` before it ends (cleanUpOnSignal), and a publish
 * first removes what dead processes of this host left in the model's directory (the rule of a
 * server's start-up), so a SIGKILL's leftovers go with the next run of the CLI.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hostTag } from '../../src/repository/atomic-write.js';
import { ROOT, runEntry } from '../helpers/entries.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

const IRIS_DATA = join(ROOT, 'data/iris/iris.csv');

/** The pid of a process that has ended (not reused this soon on a machine with 4M pids). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(child.stdout);
}

describe('an interrupted publish', () => {
  it("train removes a dead process's temporary version directory when it publishes", () => {
    const out = makeTempDir('interrupted-publish');
    const host = hostTag();
    const leftover = join(out, 'iris', `.tmp-${host}-${deadPid()}-0123456789ab`);
    mkdirSync(leftover, { recursive: true });
    const result = runEntry('src/cli/train.ts', [
      '--no-progress',
      '--data',
      IRIS_DATA,
      '--epochs',
      '1',
      '--out',
      out,
    ]);
    expect(result.status, result.stderr).toBe(0);
    expect(readdirSync(join(out, 'iris')).sort()).toEqual(['1']);
  });

  it('SIGINT, SIGTERM or SIGHUP while publishing removes the own temporary, then ends by the signal', async () => {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      const repository = makeTempDir('interrupted-publish');
      // Another writer's temporary (this host, a live pid: the test's own) stays.
      const host = hostTag();
      const other = join(repository, 'm', `.tmp-${host}-${process.pid}-0123456789ab`);
      mkdirSync(other, { recursive: true });
      // A publish that holds its temporary directory until the signal comes.
      const script = `
        import { mkdirSync, writeFileSync } from 'node:fs';
        import { join } from 'node:path';
        const { cleanUpOnSignal } = await import(${JSON.stringify(join(ROOT, 'src/cli/on-signal.ts'))});
        const { removeOwnPublishTemporariesSync } = await import(${JSON.stringify(join(ROOT, 'src/service/index.ts'))});
        const { temporaryName } = await import(${JSON.stringify(join(ROOT, 'src/repository/atomic-write.ts'))});
        const root = ${JSON.stringify(repository)};
        await cleanUpOnSignal(() => removeOwnPublishTemporariesSync(root, 'm'), () => {
          const temp = join(root, 'm', temporaryName());
          mkdirSync(temp);
          writeFileSync(join(temp, 'config.json'), '{}');
          process.stdout.write('publishing\\n');
          return new Promise(() => setInterval(() => {}, 1000));
        });
      `;
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
      expect(chunk.toString()).toBe('publishing\n');
      expect(readdirSync(join(repository, 'm'))).toHaveLength(2);
      child.kill(signal);
      const [code, ended] = (await once(child, 'exit')) as [number | null, string | null];
      expect({ code, ended }).toEqual({ code: null, ended: signal });
      expect(readdirSync(join(repository, 'm'))).toEqual([other.split('/').at(-1)]);
      expect(existsSync(other)).toBe(true);
    }
  });
});

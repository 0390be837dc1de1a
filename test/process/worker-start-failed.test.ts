/**
 * A WORKERS=2 server whose port is taken after the primary's preflight (port-preflight.ts) and
 * before the workers listen — another program starting on it in between — stops: each worker
 * fails its listen and exits EXIT_START_FAILED, the primary prints the line once (not once per
 * worker), logs 'a worker could not start; stopping' and exits 1 instead of replacing the workers
 * in a loop (cluster-primary.ts, worker-deaths.ts). The preflight catches a port taken before the
 * start, so the workers are held at their start (test/helpers/hold-workers.mjs) while the test
 * takes it.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server as NetServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT_START_FAILED } from '../../src/cli/exit-codes.js';
import {
  digitsRepositoryCopy,
  killServersAfterEach,
  servingEnv,
  startServer,
  until,
} from '../helpers/server-process.js';
import { makeTempDir } from '../helpers/temp-files.js';

const HOLD_WORKERS = fileURLToPath(new URL('../helpers/hold-workers.mjs', import.meta.url));

killServersAfterEach();

const holders: NetServer[] = [];
afterEach(() => {
  for (const holder of holders.splice(0)) holder.close();
});

/** Listens on `port` of 127.0.0.1 (0: any free port), as another program would. */
async function listenOn(port: number): Promise<NetServer> {
  const holder = createServer();
  await new Promise<void>((resolve, reject) => {
    holder.once('error', reject);
    holder.listen(port, '127.0.0.1', resolve);
  });
  holders.push(holder);
  return holder;
}

describe('a port taken between the preflight and the workers’ listen', () => {
  it('stops the server: the line once, "a worker could not start; stopping", exit 1', async () => {
    // A port free now: the preflight passes.
    const probe = await listenOn(0);
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    holders.splice(holders.indexOf(probe), 1);

    const hold = makeTempDir('hold-workers');
    const server = startServer(
      servingEnv(digitsRepositoryCopy('worker-start-failed'), 2, {
        PORT: String(port),
        NODE_OPTIONS: `--import ${HOLD_WORKERS}`,
        NORMSERVE_TEST_HOLD_DIR: hold,
      }),
    );
    const held = () => readdirSync(hold).filter((name) => name.startsWith('held-')).length;
    // Both workers forked: the preflight is behind, no worker has loaded a model or listened.
    await until(() => held() === 2, 'both workers held at their start');
    expect(server.child.exitCode, server.stderr()).toBeNull();

    await listenOn(port);
    writeFileSync(join(hold, 'go'), '');

    const { code } = await server.exited;
    expect(existsSync(join(hold, 'go'))).toBe(true);
    expect(code, server.stderr()).toBe(1);
    // Node's words from a cluster worker's listen: `bind EADDRINUSE 127.0.0.1:<port>`.
    const lines = server.stderr().trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^normserve: \\w+ EADDRINUSE.* 127\\.0\\.0\\.1:${port}; set PORT to a free port$`),
    );
    const stopping = server.logs.filter((l) => l.msg === 'a worker could not start; stopping');
    expect(stopping).toHaveLength(1);
    expect(stopping[0]!.code).toBe(EXIT_START_FAILED);
    // Not replaced: no worker after the two held ones was forked.
    expect(held()).toBe(2);
    expect(server.logs.some((l) => l.msg === 'worker died; starting a new one')).toBe(false);
  });
});

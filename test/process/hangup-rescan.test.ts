/**
 * SIGHUP scans the model repository now (cli/rescan-on-hangup.ts), in a single server and in every
 * worker of a cluster, and ends nothing: a version copied in with polling off is served after the
 * signal, and the server then stops on SIGTERM with exit code 0. No other signal starts
 * close-with-grace's drain (its default list made SIGHUP stop a server with exit code 0).
 */
import { cpSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLOSE_WITH_GRACE_SIGNALS } from '../../src/cli/server-worker.js';
import {
  digitsRepositoryCopy,
  exitWithin,
  freshGet,
  killServersAfterEach,
  listeningPort,
  type Reply,
  servingEnv,
  startServer,
} from '../helpers/server-process.js';

killServersAfterEach();

const BOUND = { timeoutMs: 60_000 };

describe('SIGHUP', () => {
  it('skips every signal close-with-grace would listen to (its own list, so an upgrade adding one shows here)', () => {
    const { signalEvents } = createRequire(import.meta.url)(
      'close-with-grace/events/signal.events.js',
    ) as { signalEvents: string[] };
    expect([...CLOSE_WITH_GRACE_SIGNALS].sort()).toEqual([...signalEvents].sort());
  });

  for (const workers of [1, 2]) {
    it(`rescans the repository (WORKERS=${workers}) and stops nothing`, async () => {
      const root = digitsRepositoryCopy('hangup');
      const server = startServer(servingEnv(root, workers, { MODEL_POLL_INTERVAL_MS: '0' }));
      const port = await listeningPort(server, workers);
      const active = async () =>
        (
          JSON.parse(((await freshGet(port, '/v1/models/digits/versions')) as Reply).body) as {
            active_version: number;
          }
        ).active_version;
      expect(await active()).toBe(1);

      cpSync(join(root, 'digits', '1'), join(root, 'digits', '2'), { recursive: true });
      writeFileSync(join(root, 'digits', 'active-version.json'), JSON.stringify({ version: 2 }));
      process.kill(server.child.pid!, 'SIGHUP');
      // Every process applies the change: each logs it once.
      await server.waitForLog(
        (l) => l.msg === 'active version changed' && l.model === 'digits' && l.version === 2,
        `every process serves version 2 (${workers})`,
        { ...BOUND, count: workers },
      );
      for (let i = 0; i < 4; i++) expect(await active()).toBe(2);
      expect(
        server.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('shutting down')),
      ).toBe(false);

      process.kill(server.child.pid!, 'SIGTERM');
      expect((await exitWithin(server, 60_000)).code).toBe(0);
    });
  }
});

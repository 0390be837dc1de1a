/**
 * The real server process (dist/cli/server.js) polling a repository changed under it, as the
 * platform engineer did on a shared volume: a model directory copied under a new name (it fails to
 * load: its config names the old one) leaves the server ready; deleting the active version's
 * directory falls back to the highest available version; normserve_model_active_version follows
 * what is served. Each step waits for the log line the poll writes (generous bounds, no clock).
 */
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
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

const POLL_BOUND = { timeoutMs: 60_000 };

describe('the real server, its repository changed while it runs', () => {
  it('a late bad model leaves it ready; a deleted active version falls back; the gauge follows', async () => {
    const root = digitsRepositoryCopy();
    for (const v of ['2', '3'])
      cpSync(join(root, 'digits', '1'), join(root, 'digits', v), { recursive: true });
    writeFileSync(join(root, 'digits', 'active-version.json'), JSON.stringify({ version: 2 }));
    const server = startServer(servingEnv(root, '1', { MODEL_POLL_INTERVAL_MS: '100' }));
    const port = await listeningPort(server);
    const get = async (path: string) => (await freshGet(port, path)) as Reply;
    const gauge = async (name: string) =>
      new RegExp(`^${name}\\{model="digits"\\} (\\S+)$`, 'm').exec(
        (await get('/metrics')).body,
      )?.[1];
    expect((await get('/readyz')).status).toBe(200);
    expect(await gauge('normserve_model_active_version')).toBe('2');

    cpSync(join(root, 'digits'), join(root, 'digitsnew'), { recursive: true });
    const late = await server.waitForLog(
      (l) => l.msg?.startsWith('model serves no version') === true && l.model === 'digitsnew',
      'digitsnew serves no version',
      POLL_BOUND,
    );
    expect(late.level).toBe(40); // warn
    const ready = await get('/readyz');
    expect(ready.status, ready.body).toBe(200);
    expect(JSON.parse(ready.body).models).toContainEqual(
      expect.objectContaining({ name: 'digitsnew', ready: false, active_version: null }),
    );
    expect((await get('/v2/health/ready')).status).toBe(200);
    expect((await get('/v2/models/digitsnew/ready')).status).toBe(503);

    rmSync(join(root, 'digits', '2'), { recursive: true });
    await server.waitForLog(
      (l) => l.msg === 'active version changed' && l.model === 'digits' && l.version === 3,
      'digits falls back to version 3',
      POLL_BOUND,
    );
    expect((await get('/readyz')).status).toBe(200);
    expect(await gauge('normserve_model_active_version')).toBe('3');
    expect(await gauge('normserve_model_active_record_invalid')).toBe('1');
    const status = JSON.parse((await get('/v1/models/digits')).body) as {
      active_record_error?: string;
    };
    expect(status.active_record_error).toMatch(
      /names version 2, which does not exist; serving version 3/,
    );

    for (const v of ['1', '3']) rmSync(join(root, 'digits', v), { recursive: true });
    await server.waitForLog(
      (l) => l.msg === 'active version changed' && l.model === 'digits' && l.previous === 3,
      'digits serves no version',
      POLL_BOUND,
    );
    expect((await get('/readyz')).status).toBe(503);
    expect(await gauge('normserve_model_active_version')).toBeUndefined();
    expect(await gauge('normserve_model_ready')).toBe('0');

    server.child.kill('SIGTERM');
    expect(await exitWithin(server, 10_000)).toEqual({ code: 0, signal: null });
  });
});

import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { REPEATED_SIGNAL_WINDOW_MS, SIGNAL_COPY_IGNORED } from '../../src/cli/on-signal.js';
import { digitsTestRows } from '../helpers/digits.js';
import {
  digitsRepositoryCopy,
  exitWithin,
  freshGet,
  freshRequest,
  killServersAfterEach,
  listeningPort,
  type Reply,
  servingEnv,
  slowUpload,
  startServer,
} from '../helpers/server-process.js';

/** Generous bound on the drain's end after the second signal (SHUTDOWN_TIMEOUT_MS is 10 s). */
const EXIT_WITHIN_MS = 20_000;
const LAME_DUCK = 'shutting down: serving on while readiness answers 503, then draining';
const DRAINING = 'shutting down: no new connections, finishing requests in flight';
const REPEATED = 'repeated signal: draining now';

killServersAfterEach();

const predictBody = JSON.stringify({ instances: digitsTestRows().x.slice(0, 4) });

describe('SHUTDOWN_DELAY_MS: the lame-duck phase of the real server process', () => {
  for (const workers of [1, 2]) {
    it(`WORKERS=${workers}: after SIGTERM readiness is 503 (shutting_down) on every worker while predictions and liveness are served on new connections; a second SIGTERM drains, exit 0`, async () => {
      const server = startServer(
        servingEnv(digitsRepositoryCopy('lame-duck'), workers, { SHUTDOWN_DELAY_MS: '600000' }),
      );
      const port = await listeningPort(server, workers);
      expect((await freshGet(port, '/readyz')) as Reply).toMatchObject({ status: 200 });

      server.child.kill('SIGTERM');
      // Every worker entered the phase (the primary relays the signal to each).
      await server.waitForLog((l) => l.msg === LAME_DUCK, LAME_DUCK, { count: workers });
      const pids = new Set(server.logs.filter((l) => l.msg === LAME_DUCK).map((l) => l.pid));
      expect(pids.size).toBe(workers);

      // New connections, spread over the workers by the kernel: all answered.
      for (let i = 0; i < 6; i++) {
        const ready = (await freshGet(port, '/readyz')) as Reply;
        expect(ready.status, ready.body).toBe(503);
        expect(JSON.parse(ready.body)).toMatchObject({
          status: 'not_ready',
          reason: 'shutting_down',
        });
        expect(ready.headers.connection).toBe('close');
        const v2 = (await freshGet(port, '/v2/health/ready')) as Reply;
        expect(v2.status).toBe(503);
        expect(JSON.parse(v2.body)).toEqual({ ready: false, reason: 'shutting_down' });
        expect((await freshGet(port, '/healthz')) as Reply).toMatchObject({ status: 200 });
        const predicted = await freshRequest(port, 'POST', '/v1/models/digits:predict', {
          body: predictBody,
          headers: { 'content-type': 'application/json' },
        });
        expect(predicted.status, predicted.body).toBe(200);
      }
      expect(server.logs.some((l) => l.msg === 'stopped')).toBe(false);

      // The repeated signal ends the delay: the drain, then exit 0. (One within a second of the
      // first would be taken as its copy.)
      await sleep(REPEATED_SIGNAL_WINDOW_MS);
      server.child.kill('SIGTERM');
      const { code, signal } = await exitWithin(server, EXIT_WITHIN_MS);
      expect({ code, signal }, server.stderr()).toEqual({ code: 0, signal: null });
      expect(server.logs.filter((l) => l.msg === 'stopped')).toHaveLength(workers);
      expect(server.logs.some((l) => l.msg === 'repeated signal: draining now')).toBe(true);
      expect('error' in (await freshGet(port, '/healthz', 2_000))).toBe(true);
    });
  }

  it('WORKERS=2: a terminal’s Ctrl-C (SIGINT to the whole process group) is one signal: every worker serves out the delay, then drains, exit 0', async () => {
    const server = startServer(
      servingEnv(digitsRepositoryCopy('lame-duck'), 2, { SHUTDOWN_DELAY_MS: '1500' }),
    );
    const port = await listeningPort(server, 2);
    // The primary and both workers get the SIGINT; the primary relays it over IPC.
    process.kill(-server.child.pid!, 'SIGINT');
    await server.waitForLog((l) => l.msg === LAME_DUCK, LAME_DUCK, { count: 2 });
    const { code, signal } = await exitWithin(server, EXIT_WITHIN_MS);
    expect({ code, signal }, server.stderr()).toEqual({ code: 0, signal: null });
    expect(server.logs.filter((l) => l.msg === 'stopped')).toHaveLength(2);
    expect('error' in (await freshGet(port, '/healthz', 2_000))).toBe(true);
    // Neither worker took its own SIGINT and the relay for two signals.
    expect(server.logs.filter((l) => l.msg === 'repeated signal: draining now')).toEqual([]);
    expect(server.logs.filter((l) => l.msg === LAME_DUCK)).toHaveLength(2);
  });

  it('WORKERS=2: SIGTERM to the whole process group (systemd KillMode=control-group, kill -TERM -PGID) is one signal: the workers stay lame ducks, serving; a second one drains them, exit 0', async () => {
    const server = startServer(
      servingEnv(digitsRepositoryCopy('lame-duck'), 2, { SHUTDOWN_DELAY_MS: '600000' }),
    );
    const port = await listeningPort(server, 2);
    process.kill(-server.child.pid!, 'SIGTERM');
    await server.waitForLog((l) => l.msg === LAME_DUCK, LAME_DUCK, { count: 2 });
    // Still serving, on both workers (the kernel spreads new connections): not draining.
    for (let i = 0; i < 6; i++) {
      const ready = (await freshGet(port, '/readyz')) as Reply;
      expect(ready.status, JSON.stringify(ready)).toBe(503);
      expect(JSON.parse(ready.body)).toMatchObject({ reason: 'shutting_down' });
      const predicted = await freshRequest(port, 'POST', '/v1/models/digits:predict', {
        body: predictBody,
      });
      expect(predicted.status, predicted.body).toBe(200);
    }
    expect(server.logs.filter((l) => l.msg === REPEATED || l.msg === DRAINING)).toEqual([]);

    // The second group signal is the repeated one: every worker drains now, exit 0.
    await sleep(REPEATED_SIGNAL_WINDOW_MS);
    process.kill(-server.child.pid!, 'SIGTERM');
    const { code, signal } = await exitWithin(server, EXIT_WITHIN_MS);
    expect({ code, signal }, server.stderr()).toEqual({ code: 0, signal: null });
    expect(server.logs.filter((l) => l.msg === REPEATED)).toHaveLength(2);
    expect(server.logs.filter((l) => l.msg === 'stopped')).toHaveLength(2);
  });

  it('WORKERS=2: a third SIGTERM to the process group, during the drain, exits 1 at once', async () => {
    const server = startServer(
      servingEnv(digitsRepositoryCopy('lame-duck'), 2, { SHUTDOWN_DELAY_MS: '600000' }),
    );
    const port = await listeningPort(server, 2);
    // A request in flight keeps its worker draining until the third signal.
    const upload = slowUpload(port, '/v1/models/digits:predict', predictBody);
    await upload.started;
    process.kill(-server.child.pid!, 'SIGTERM');
    await server.waitForLog((l) => l.msg === LAME_DUCK, LAME_DUCK, { count: 2 });
    await sleep(REPEATED_SIGNAL_WINDOW_MS);
    process.kill(-server.child.pid!, 'SIGTERM');
    await server.waitForLog((l) => l.msg === DRAINING, DRAINING, { count: 2 });
    expect(server.logs.filter((l) => l.msg === REPEATED)).toHaveLength(2);
    expect(server.logs.some((l) => l.msg === 'SIGTERM during the drain: exiting')).toBe(false);

    await sleep(REPEATED_SIGNAL_WINDOW_MS);
    process.kill(-server.child.pid!, 'SIGTERM');
    const { code, signal } = await exitWithin(server, EXIT_WITHIN_MS);
    expect({ code, signal }, server.stderr()).toEqual({ code: 1, signal: null });
    expect(server.logs.some((l) => l.msg === 'SIGTERM during the drain: exiting')).toBe(true);
  });
  for (const workers of [1, 2]) {
    it(`WORKERS=${workers}: a copy of the signal within a second (npm start under a shell's kill %1: the process group's and npm's) is one signal: the drain finishes what is in flight, exit 0`, async () => {
      const server = startServer(servingEnv(digitsRepositoryCopy('lame-duck'), workers));
      const port = await listeningPort(server, workers);
      // A request in flight keeps the drain going while the copy arrives.
      const upload = slowUpload(port, '/v1/models/digits:predict', predictBody);
      await upload.started;
      server.child.kill('SIGTERM');
      // The copy once the first is taken (npm's comes ~5 ms after it; two sent together may
      // reach the process as one, as pending signals of a kind merge).
      const taken = workers === 1 ? DRAINING : 'stopping workers';
      await server.waitForLog((l) => l.msg === taken, taken);
      server.child.kill('SIGTERM');
      await server.waitForLog((l) => l.msg === SIGNAL_COPY_IGNORED, 'the copy ignored');
      upload.finish();
      expect((await upload.response).status).toBe(200);
      const { code, signal } = await exitWithin(server, EXIT_WITHIN_MS);
      // Before, the copy was a second signal: 'SIGTERM during the drain: exiting', exit 1.
      expect({ code, signal }, server.stderr()).toEqual({ code: 0, signal: null });
      expect(server.logs.some((l) => l.msg === 'SIGTERM during the drain: exiting')).toBe(false);
      expect(server.logs.filter((l) => l.msg === 'stopped')).toHaveLength(workers);
    });
  }
});

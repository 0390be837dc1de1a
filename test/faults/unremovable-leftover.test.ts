/**
 * A temporary leftover of an interrupted write that cannot be removed at start-up (a read-only
 * repository: every removal fails with EROFS, injected so that it fails for root as well) is a
 * warning naming the path and the error; the server starts and serves the repository. A dead
 * publisher's pin it cannot settle (a version directory it cannot read now) is a warning of its
 * own, naming the model and the error; the version pinned is served.
 */
import { cpSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hostTag } from '../../src/repository/atomic-write.js';
import { makeRepository } from '../helpers/app.js';
import { FS_FAULTS_MODULE } from '../helpers/fs-faults.mjs';
import {
  freshRequest,
  killServers,
  listeningPort,
  servingEnv,
  startServer,
} from '../helpers/server-process.js';

let repository: string | undefined;
afterEach(() => {
  killServers();
  if (repository) rmSync(repository, { recursive: true, force: true });
  repository = undefined;
});

describe('a leftover the server cannot remove at start-up', () => {
  it('is logged as a warning with its path and error, and the server serves', async () => {
    repository = makeRepository(['digits']);
    // A dead writer of this host (pid 999999 is above any pid_max default but the largest).
    const leftover = join(repository, 'digits', `.tmp-${hostTag()}-999999-abcdef`);
    mkdirSync(join(leftover, 'inner'), { recursive: true });
    const server = startServer(
      servingEnv(repository, 1, {
        NODE_OPTIONS: `--import ${FS_FAULTS_MODULE}`,
        NORMSERVE_TEST_FS_FAULTS: JSON.stringify([{ op: 'rm', path: '.tmp-', code: 'EROFS' }]),
      }),
    );
    const port = await listeningPort(server);
    const warning = server.logs.find(
      (l) => l.msg === 'could not remove a temporary leftover of an interrupted write',
    );
    expect(warning).toMatchObject({ level: 40, path: leftover });
    expect(warning?.error).toMatch(/^EROFS: read-only file system, rmdir '.*\.tmp-/);
    const reply = await freshRequest(port, 'POST', '/v1/models/digits:predict', {
      body: JSON.stringify({ instances: [new Array(64).fill(0)] }),
      headers: { 'content-type': 'application/json' },
    });
    expect(reply.status, reply.body).toBe(200);
    expect(server.stderr()).toBe('');
  });
});

describe("a dead publisher's pin the server cannot settle at start-up", () => {
  it('is logged as such, with the model and the error, and the server serves the version pinned', async () => {
    repository = makeRepository(['digits']);
    const model = join(repository, 'digits');
    cpSync(join(model, '1'), join(model, '2'), { recursive: true });
    // A pin of a publish on another host, long dead, whose staged directory is gone: version 2
    // may be it (its config.json is checked), but its directory cannot be read now (ESTALE).
    const record = join(model, 'active-version.json');
    writeFileSync(
      record,
      `${JSON.stringify({
        version: 1,
        note: 'pinned',
        pinned_for: '.tmp-otherhost-4242-aaaaaaaaaaaa',
        pinned_staged: { config_sha256: 'f'.repeat(64) },
      })}\n`,
    );
    const longAgo = new Date(Date.now() - 2 * 3_600_000);
    utimesSync(record, longAgo, longAgo);
    const server = startServer(
      servingEnv(repository, 1, {
        NODE_OPTIONS: `--import ${FS_FAULTS_MODULE}`,
        NORMSERVE_TEST_FS_FAULTS: JSON.stringify([
          { op: 'stat', suffix: join('digits', '2'), code: 'ESTALE', times: 1 },
        ]),
      }),
    );
    const port = await listeningPort(server);
    const warning = server.logs.find((l) => String(l.msg).startsWith('could not settle the pin'));
    expect(warning).toMatchObject({ level: 40, model: 'digits' });
    expect(warning?.error).toMatch(/ESTALE/);
    expect(
      server.logs.some(
        (l) => l.msg === 'could not remove a temporary leftover of an interrupted write',
      ),
    ).toBe(false);
    const reply = await freshRequest(port, 'POST', '/v1/models/digits:predict', {
      body: JSON.stringify({ instances: [new Array(64).fill(0)] }),
      headers: { 'content-type': 'application/json' },
    });
    expect(reply.status, reply.body).toBe(200);
    expect(JSON.parse(reply.body).model_version).toBe(1);
  });
});

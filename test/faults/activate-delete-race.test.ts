/**
 * An activation and a deletion of the same version at the same time (two admins, two workers, two
 * replicas): each checks the other's condition before it writes, so without care the record can
 * end up naming a version that was just deleted, and the model serves nothing (503) until an
 * operator activates another version. The repository orders them (both hold the record's lock):
 * the version either stays (and is active) or is gone (and the record is untouched).
 * activate-delete-order.test.ts interleaves them inside each other's window.
 */
import { cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ModelRepository } from '../../src/repository/index.js';
import { ADMIN, ADMIN_TOKEN } from '../helpers/admin.js';
import { makeRepository, makeTestApp } from '../helpers/app.js';

const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

let root: string;
let repository: ModelRepository;
beforeEach(() => {
  root = makeRepository(['digits']);
  roots.push(root);
  cpSync(join(root, 'digits', '1'), join(root, 'digits', '2'), { recursive: true });
  repository = new ModelRepository(root);
});

const record = () => readFileSync(join(root, 'digits', 'active-version.json'), 'utf8');

describe('activate and delete of one version, interleaved', () => {
  it('a deletion whose "not active" check predates the activation finds it active under the lock: 409, nothing deleted', async () => {
    // The deleting request found version 2 inactive; then the activation wrote its record.
    await repository.writeActive('digits', 2, 'roll forward');
    await expect(repository.deleteVersion('digits', 2)).rejects.toMatchObject({
      code: 'ACTIVE_VERSION_DELETE',
    });
    expect(await repository.listVersions('digits')).toEqual([1, 2]);
    expect(existsSync(join(root, 'digits', '.deleted-2'))).toBe(false);
    expect((await repository.readActive('digits'))?.version).toBe(2);
    expect((await repository.loadVersion('digits', 2)).config.name).toBe('digits');
  });

  it('an activation whose existence check predates the deletion finds it gone under the lock: 404, the record untouched', async () => {
    await repository.writeActive('digits', 1, 'day model');
    const before = record();
    await repository.deleteVersion('digits', 2);
    await expect(repository.writeActive('digits', 2)).rejects.toMatchObject({
      code: 'VERSION_NOT_FOUND',
    });
    expect(record()).toBe(before);
  });

  it('with no record before, the failed activation leaves none (the highest version is served)', async () => {
    await repository.deleteVersion('digits', 2);
    await expect(repository.writeActive('digits', 2)).rejects.toMatchObject({
      code: 'VERSION_NOT_FOUND',
    });
    expect(existsSync(join(root, 'digits', 'active-version.json'))).toBe(false);
  });

  it('over HTTP, on two apps sharing the repository: the model keeps an active version that exists', async () => {
    const a = await makeTestApp({
      repository: root,
      env: { ADMIN_TOKEN, ADMIN_RATE_LIMIT_PER_MINUTE: '100000' },
    });
    const b = await makeTestApp({
      repository: root,
      env: { ADMIN_TOKEN, ADMIN_RATE_LIMIT_PER_MINUTE: '100000' },
    });
    try {
      await a.registry.activate('digits', 1);
      for (let round = 0; round < 8; round++) {
        const v = Math.max(...(await repository.listVersions('digits')), 2) + 1;
        cpSync(join(root, 'digits', '1'), join(root, 'digits', String(v)), { recursive: true });
        await a.registry.refreshModel('digits');
        await b.registry.refreshModel('digits');
        const [activated, deleted] = await Promise.all([
          a.app.inject({
            method: 'POST',
            url: `/v1/models/digits/versions/${v}:activate`,
            headers: ADMIN,
          }),
          b.app.inject({
            method: 'DELETE',
            url: `/v1/models/digits/versions/${v}`,
            headers: ADMIN,
          }),
        ]);
        expect([200, 404]).toContain(activated.statusCode);
        expect([200, 409]).toContain(deleted.statusCode);
        const active = (await repository.readActive('digits'))?.version;
        expect(await repository.listVersions('digits'), `round ${round}`).toContain(active);
        if (deleted.statusCode === 200) expect(active).not.toBe(v);
        if (activated.statusCode === 200 && deleted.statusCode === 409) expect(active).toBe(v);
        const model = await a.registry.refreshModel('digits');
        expect(model.activeProblem).toBeUndefined();
        expect(model.active).toBe(active);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });
});

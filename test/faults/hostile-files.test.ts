/**
 * A repository whose files were made by someone else: symbolic links out of the repository are
 * refused (a version linking config.json to a system file is FAILED, and nothing of that file
 * reaches the public reason), reasons name files relative to the repository, and sizes are
 * checked before a file is read whole (a sparse 1.5 GB or 3 GiB model.safetensors with a small
 * header costs neither memory nor a message without the file's name).
 */
import {
  cpSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeRepository, makeTestApp } from '../helpers/app.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A repository with digits/1 and digits/2, a copy of it to be tampered with (1 stays active). */
function twoVersions(): { repository: string; v2: string } {
  const repository = makeRepository(['digits']);
  made.push(repository);
  const v2 = join(repository, 'digits', '2');
  cpSync(join(repository, 'digits', '1'), v2, { recursive: true });
  writeFileSync(join(repository, 'digits', 'active-version.json'), '{"version":1}');
  return { repository, v2 };
}

/** A directory outside the repository holding a copy of digits/1's files. */
function outside(): string {
  const dir = join(tmpdir(), `normserve-outside-${process.pid}-${made.length}`);
  made.push(dir);
  cpSync(bundledVersionDir('digits'), dir, { recursive: true });
  return dir;
}

interface Listing {
  active_version: number | null;
  versions: { version: number; state: string; reason?: string }[];
}

async function statusOf(repository: string): Promise<{ listing: Listing; raw: string }> {
  const t = await makeTestApp({ repository });
  try {
    const res = await t.app.inject({ url: '/v1/models/digits/versions' });
    const all = [
      res.body,
      (await t.app.inject({ url: '/v1/models' })).body,
      (await t.app.inject({ url: '/v1/models/digits' })).body,
    ].join('\n');
    return { listing: res.json<Listing>(), raw: all };
  } finally {
    await t.close();
  }
}

const version2 = (l: Listing) => l.versions.find((v) => v.version === 2)!;

describe('symbolic links', () => {
  it('config.json linking to a system file: FAILED, refused by name, nothing of the file shown', async () => {
    const { repository, v2 } = twoVersions();
    rmSync(join(v2, 'config.json'));
    symlinkSync('/etc/passwd', join(v2, 'config.json'));
    const { listing, raw } = await statusOf(repository);
    expect(version2(listing)).toMatchObject({
      state: 'FAILED',
      reason:
        'digits/2/config.json: a symbolic link to a place outside the model repository (refused)',
    });
    expect(listing.active_version).toBe(1);
    expect(raw).not.toContain('root:');
    expect(raw).not.toContain(repository);
    expect(raw).not.toContain('/etc/passwd');
  });

  it('weights linking out of the repository, even valid ones, do not load', async () => {
    const { repository, v2 } = twoVersions();
    const elsewhere = outside();
    rmSync(join(v2, 'model.safetensors'));
    symlinkSync(join(elsewhere, 'model.safetensors'), join(v2, 'model.safetensors'));
    const { listing, raw } = await statusOf(repository);
    expect(version2(listing)).toMatchObject({
      state: 'FAILED',
      reason: expect.stringMatching(
        /^digits\/2\/model\.safetensors: a symbolic link to a place outside/,
      ),
    });
    expect(raw).not.toContain(elsewhere);
  });

  it('a version directory linking out of the repository is not a version; a model directory neither', async () => {
    const { repository } = twoVersions();
    symlinkSync(outside(), join(repository, 'digits', '3'));
    const elsewhere = join(tmpdir(), `normserve-outside-model-${process.pid}`);
    made.push(elsewhere);
    mkdirSync(elsewhere, { recursive: true });
    cpSync(bundledVersionDir('digits'), join(elsewhere, '1'), { recursive: true });
    symlinkSync(elsewhere, join(repository, 'linked'));
    const t = await makeTestApp({ repository });
    try {
      const models = (await t.app.inject({ url: '/v1/models' })).json<{
        models: { name: string; versions: { version: number }[] }[];
      }>().models;
      expect(models.map((m) => m.name)).toEqual(['digits']);
      expect(models[0]!.versions.map((v) => v.version)).toEqual([1, 2]);
      // Not even by name (an admin call refreshes a model by name).
      expect(await t.registry.repository.hasModel('linked')).toBe(false);
    } finally {
      await t.close();
    }
  });

  it('links inside the repository are followed: version 2 sharing version 1’s weights loads', async () => {
    const { repository, v2 } = twoVersions();
    rmSync(join(v2, 'model.safetensors'));
    symlinkSync('../1/model.safetensors', join(v2, 'model.safetensors'));
    const { listing } = await statusOf(repository);
    expect(version2(listing)).toMatchObject({ state: 'AVAILABLE' });
  });

  it('a repository that is itself a link works', async () => {
    const { repository } = twoVersions();
    const link = join(tmpdir(), `normserve-repo-link-${process.pid}`);
    made.push(link);
    symlinkSync(repository, link);
    const { listing } = await statusOf(link);
    expect(listing.versions.map((v) => v.state)).toEqual(['AVAILABLE', 'AVAILABLE']);
  });
});

describe('sizes before reading', () => {
  it('a sparse 1.5 GB model.safetensors with a small header: FAILED from its header, memory untouched', async () => {
    const { repository, v2 } = twoVersions();
    truncateSync(join(v2, 'model.safetensors'), 1_500_000_000);
    const before = process.memoryUsage().rss;
    const { listing } = await statusOf(repository);
    const grown = process.memoryUsage().rss - before;
    expect(version2(listing)).toMatchObject({
      state: 'FAILED',
      reason: expect.stringMatching(
        /^digits\/2\/model\.safetensors: \d+ trailing bytes after the last tensor/,
      ),
    });
    // Reading it whole took 1.5 GB; the header and a few stats are all that is read now.
    expect(grown).toBeLessThan(300_000_000);
  });

  it('over 2 GiB (sparse 3 GiB): the message names the file', async () => {
    const { repository, v2 } = twoVersions();
    truncateSync(join(v2, 'model.safetensors'), 3 * 1024 ** 3);
    const { listing } = await statusOf(repository);
    expect(version2(listing).reason).toMatch(/^digits\/2\/model\.safetensors: /);
  });

  it('a config.json larger than any config (sparse 100 MB) is refused by its size, unread', async () => {
    const { repository, v2 } = twoVersions();
    truncateSync(join(v2, 'config.json'), 100_000_000);
    const { listing } = await statusOf(repository);
    expect(version2(listing)).toMatchObject({
      state: 'FAILED',
      reason:
        'digits/2/config.json: 100000000 bytes, more than the 16777216 a file of this kind may have',
    });
  });

  it('a directory where a file should be: named, relative', async () => {
    const { repository, v2 } = twoVersions();
    rmSync(join(v2, 'config.json'));
    mkdirSync(join(v2, 'config.json'));
    const { listing } = await statusOf(repository);
    expect(version2(listing).reason).toBe('digits/2/config.json: not a regular file');
    expect(readFileSync(join(repository, 'digits', '1', 'config.json')).length).toBeGreaterThan(0);
  });
});
